/**
 * virtio-console, section 5.3 (../shared/virtio-spec/device-types/console/description.tex):
 * device requirements through the virtio-PCI transport and a driver modelled on Linux's
 * virtio_console. Each test names the section and quotes the sentence it checks.
 */
import { describe, expect, it } from "vitest";
import { u64TestBit } from "../src/common/u64.js";
import { MemoryConsole } from "../src/devices/console/backend.js";
import { VirtioConsole } from "../src/devices/console/console.js";
import {
  CONSOLE_CONTROL_RX,
  ConsoleConfig,
  VIRTIO_CONSOLE_DEVICE_ADD,
  VIRTIO_CONSOLE_DEVICE_REMOVE,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_PORT_NAME,
} from "../src/devices/console/constants.js";
import { ConsoleTestDriver } from "../src/devices/console/driver.js";
import {
  VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VirtioDeviceId,
} from "../src/devices/device.js";
import { VIRTIO_PCI_DEVICE_ID_BASE } from "../src/devices/transport/pci/regs.js";
import { createPciTestRig } from "../src/testing.js";

const enc = (s: string) => new TextEncoder().encode(s);

function multiport(n: number, maxPorts = n) {
  const backends = Array.from({ length: n }, () => new MemoryConsole());
  const device = new VirtioConsole({
    ports: backends.map((backend, i) => ({ backend, ...(i > 0 ? { name: `org.virtkit.port${i}` } : {}) })),
    maxPorts,
    multiport: true,
  });
  const rig = createPciTestRig(device);
  return { backends, device, rig };
}

describe("5.3.1/5.3.2 device ID and virtqueues", () => {
  it('"3" is the device ID; "The port 0 receive and transmit queues always exist: other queues only exist if VIRTIO_CONSOLE_F_MULTIPORT is set."', () => {
    const single = createPciTestRig(new VirtioConsole({ ports: [{ backend: new MemoryConsole() }] }));
    expect(single.transport.deviceId).toBe(VIRTIO_PCI_DEVICE_ID_BASE + VirtioDeviceId.CONSOLE);
    expect(u64TestBit(single.driver.deviceFeatures(), VIRTIO_CONSOLE_F_MULTIPORT)).toBe(false);
    expect(single.driver.numQueues).toBe(2);
    const { rig } = multiport(2, 4);
    expect(u64TestBit(rig.driver.deviceFeatures(), VIRTIO_CONSOLE_F_MULTIPORT)).toBe(true);
    // receiveq/transmitq of port 0, the control pair, and a pair for each of ports 1..3.
    expect(rig.driver.numQueues).toBe(10);
    expect(rig.driver.readConfig(ConsoleConfig.max_nr_ports, 4)).toBe(4);
  });
});

describe("5.3.5.1 device initialization", () => {
  it('"The device MUST allow a write to emerg_wr, even on an unconfigured device." / "The device SHOULD transmit the lower byte written to emerg_wr to an appropriate log or output method."', () => {
    const backend = new MemoryConsole();
    const rig = createPciTestRig(new VirtioConsole({ ports: [{ backend }] }));
    expect(u64TestBit(rig.driver.deviceFeatures(), VIRTIO_CONSOLE_F_EMERG_WRITE)).toBe(true);
    // No status bits set at all: the device is unconfigured.
    expect(rig.driver.status).toBe(0);
    rig.driver.writeConfig(ConsoleConfig.emerg_wr, 4, 0xabcd_ef00 | 0x21);
    rig.driver.writeConfig(ConsoleConfig.emerg_wr, 4, 0x0a);
    expect([...backend.output()]).toEqual([0x21, 0x0a]);
  });
});

describe("5.3.6 device operation", () => {
  it('"If the driver negotiated the VIRTIO_CONSOLE_F_SIZE feature, a configuration change notification indicates that the updated size can be read from the configuration fields. This size applies to port 0 only."', () => {
    const p0 = new MemoryConsole();
    const p1 = new MemoryConsole();
    const device = new VirtioConsole({
      ports: [
        { backend: p0, cols: 80, rows: 24 },
        { backend: p1, console: true, cols: 10, rows: 10 },
      ],
    });
    const rig = createPciTestRig(device);
    const drv = new ConsoleTestDriver(rig.driver);
    expect(u64TestBit(rig.driver.features, VIRTIO_CONSOLE_F_SIZE)).toBe(true);
    rig.driver.takeInterrupts();
    p1.resize(50, 20);
    expect(rig.driver.takeInterrupts().config).toBe(false);
    expect(rig.driver.readConfig(ConsoleConfig.cols, 2)).toBe(80);
    p0.resize(120, 40);
    expect(rig.driver.takeInterrupts().config).toBe(true);
    expect(rig.driver.readConfig(ConsoleConfig.cols, 2)).toBe(120);
    expect(rig.driver.readConfig(ConsoleConfig.rows, 2)).toBe(40);
    drv.poll();
    // Multiport console ports get their size by VIRTIO_CONSOLE_RESIZE instead.
    expect(drv.ports.get(1)!.resize).toEqual([50, 20]);
  });

  it('"active ports are announced by the device using the VIRTIO_CONSOLE_PORT_ADD control message. The same message is used for port hot-plug as well."', () => {
    const { rig, device } = multiport(2, 3);
    const drv = new ConsoleTestDriver(rig.driver);
    const adds = () => drv.controlLog.filter((m) => m.event === VIRTIO_CONSOLE_DEVICE_ADD).map((m) => m.id);
    expect(adds()).toEqual([0, 1]);
    device.addPort({ backend: new MemoryConsole() });
    drv.poll();
    expect(adds()).toEqual([0, 1, 2]);
  });

  it('"The device MUST NOT specify a port which exists in a VIRTIO_CONSOLE_DEVICE_ADD message, nor a port which is equal or greater than max_nr_ports."', () => {
    const { rig, device } = multiport(2, 3);
    const drv = new ConsoleTestDriver(rig.driver);
    // A second DEVICE_READY (a driver re-probing its control queue) announces nothing twice.
    drv.sendControl(0, 0, 1);
    drv.poll();
    expect(device.addPort({ backend: new MemoryConsole() })).toBe(2);
    expect(() => device.addPort({ backend: new MemoryConsole() })).toThrow(/all 3 ports are in use/);
    drv.poll();
    const ids = drv.controlLog.filter((m) => m.event === VIRTIO_CONSOLE_DEVICE_ADD).map((m) => m.id);
    expect(ids).toEqual([0, 1, 2]);
    expect(ids.every((id) => id < rig.driver.readConfig(ConsoleConfig.max_nr_ports, 4))).toBe(true);
  });

  it('"The device MUST NOT specify a port in VIRTIO_CONSOLE_DEVICE_REMOVE which has not been created with a previous VIRTIO_CONSOLE_DEVICE_ADD."', () => {
    const { rig, device } = multiport(2, 3);
    // Before the driver is ready no port was added: removing sends nothing.
    const extra = device.addPort({ backend: new MemoryConsole() });
    device.removePort(extra);
    const drv = new ConsoleTestDriver(rig.driver);
    expect(drv.controlLog.filter((m) => m.event === VIRTIO_CONSOLE_DEVICE_REMOVE)).toEqual([]);
    device.removePort(1);
    drv.poll();
    const removes = drv.controlLog.filter((m) => m.event === VIRTIO_CONSOLE_DEVICE_REMOVE).map((m) => m.id);
    expect(removes).toEqual([1]);
    expect(() => device.removePort(1)).toThrow(/no port 1/);
  });

  it('VIRTIO_CONSOLE_PORT_NAME: "This control command is immediately followed by the UTF-8 name of the port for identification within the guest (without a NUL terminator)."', () => {
    const device = new VirtioConsole({
      ports: [{ backend: new MemoryConsole() }, { backend: new MemoryConsole(), name: "ünïcode.port" }],
    });
    const drv = new ConsoleTestDriver(createPciTestRig(device).driver);
    const msg = drv.controlLog.find((m) => m.event === VIRTIO_CONSOLE_PORT_NAME)!;
    expect(msg.id).toBe(1);
    expect([...msg.extra]).toEqual([...enc("ünïcode.port")]);
    expect(drv.ports.get(1)!.name).toBe("ünïcode.port");
  });

  it('"Upon receipt of a VIRTIO_CONSOLE_CONSOLE_PORT message, the driver ... MUST respond with a VIRTIO_CONSOLE_PORT_OPEN message" — the device then treats the console port as open', () => {
    const { rig, device, backends } = multiport(2);
    const drv = new ConsoleTestDriver(rig.driver);
    expect(device.ports[0]!.guestOpen).toBe(true);
    expect(backends[0]!.guestIsOpen).toBe(true);
    backends[0]!.send("login: ");
    drv.poll();
    expect(new TextDecoder().decode(drv.received(0))).toBe("login: ");
  });

  it('"The driver MUST NOT put a device-readable buffer in a receiveq. The driver MUST NOT put a device-writable buffer in a transmitq." — the device treats either as a guest error', () => {
    const { rig } = multiport(1);
    new ConsoleTestDriver(rig.driver, { features: [VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, 1] });
    const addr = rig.driver.dma.alloc(8);
    rig.driver.queues[1]!.queue.add([{ addr, len: 8, write: true }]);
    rig.driver.kick(1);
    expect(rig.driver.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    const other = multiport(1);
    new ConsoleTestDriver(other.rig.driver);
    other.rig.driver.queues[CONSOLE_CONTROL_RX]!.queue.add([{ addr, len: 8, write: false }]);
    other.rig.driver.kick(CONSOLE_CONTROL_RX);
    // The 8 good control buffers take the first 8 messages; the 9th lands in the bad one.
    for (let i = 1; i <= 9; i++) other.backends[0]!.resize(80 + i, 25);
    expect(other.rig.driver.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
  });
});
