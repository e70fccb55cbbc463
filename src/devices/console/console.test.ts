import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPciTestRig } from "../../testing.js";
import { VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../device.js";
import { MemoryConsole } from "./backend.js";
import { VirtioConsole, type VirtioConsoleOptions } from "./console.js";
import {
  CONSOLE_CONTROL_TX,
  ConsoleConfig,
  VIRTIO_CONSOLE_CONSOLE_PORT,
  VIRTIO_CONSOLE_DEVICE_ADD,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_PORT_NAME,
  VIRTIO_CONSOLE_PORT_OPEN,
} from "./constants.js";
import { ConsoleTestDriver } from "./driver.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function setup(
  n: number,
  opts: Partial<VirtioConsoleOptions> & { driver?: ConstructorParameters<typeof ConsoleTestDriver>[1] } = {},
) {
  const backends = Array.from({ length: n }, () => new MemoryConsole());
  const logs: string[] = [];
  const { driver: driverOpts, ...devOpts } = opts;
  const device = new VirtioConsole({
    ports: backends.map((backend, i) => ({ backend, ...(i > 0 ? { name: `port${i}` } : {}) })),
    log: (m) => logs.push(m),
    ...devOpts,
  });
  const rig = createPciTestRig(device, { memorySize: 16 << 20 });
  const drv = new ConsoleTestDriver(rig.driver, driverOpts ?? {});
  return { backends, device, rig, drv, logs };
}

describe("virtio-console port 0 without multiport", () => {
  it("host input reaches the receive buffers, guest output reaches the backend, two queues only", () => {
    const { backends, drv, rig } = setup(1);
    expect(rig.driver.numQueues).toBe(2);
    expect(drv.multiport).toBe(false);
    backends[0]!.send("hello");
    drv.poll();
    expect(dec(drv.received(0))).toBe("hello");
    drv.write(0, enc("from guest"), [3, 2]);
    expect(backends[0]!.outputText()).toBe("from guest");
  });

  it("input that arrives before any receive buffer waits and is delivered when buffers come", () => {
    const { backends, drv } = setup(1, { driver: { rxBuffers: 0 } });
    expect(backends[0]!.send("early")).toBe(true);
    drv.poll();
    expect(drv.received(0)).toHaveLength(0);
    // Post two 3-byte buffers: "ear" and "ly".
    drv.postReceiveBuffer(0, 3);
    drv.postReceiveBuffer(0, 3);
    drv.poll();
    expect(dec(drv.received(0))).toBe("early");
  });

  it("config: cols/rows with VIRTIO_CONSOLE_F_SIZE, a resize sends a configuration change", () => {
    const backend = new MemoryConsole();
    const device = new VirtioConsole({ ports: [{ backend, cols: 80, rows: 25 }] });
    const rig = createPciTestRig(device);
    const drv = new ConsoleTestDriver(rig.driver);
    expect(rig.driver.features.lo & (1 << VIRTIO_CONSOLE_F_SIZE)).not.toBe(0);
    expect(rig.driver.readConfig(ConsoleConfig.cols, 2)).toBe(80);
    expect(rig.driver.readConfig(ConsoleConfig.rows, 2)).toBe(25);
    rig.driver.takeInterrupts();
    backend.resize(132, 43);
    expect(rig.driver.takeInterrupts().config).toBe(true);
    expect(rig.driver.readConfig(ConsoleConfig.cols, 2)).toBe(132);
    expect(rig.driver.readConfig(ConsoleConfig.rows, 2)).toBe(43);
    expect(drv.controlLog).toEqual([]);
  });

  it("emerg_wr writes reach port 0 before the driver touched the device", () => {
    const backend = new MemoryConsole();
    const device = new VirtioConsole({ ports: [{ backend }] });
    const rig = createPciTestRig(device);
    expect(rig.driver.deviceFeatures().lo & (1 << VIRTIO_CONSOLE_F_EMERG_WRITE)).not.toBe(0);
    for (const c of enc("OOPS\n")) rig.driver.writeConfig(ConsoleConfig.emerg_wr, 4, 0x1234_5600 | c);
    expect(backend.outputText()).toBe("OOPS\n");
  });

  it("a device-readable buffer in the receiveq is a guest error (DEVICE_NEEDS_RESET)", () => {
    const { backends, drv, rig } = setup(1, { driver: { rxBuffers: 0 } });
    const addr = rig.driver.dma.alloc(16);
    rig.driver.queues[0]!.queue.add([{ addr, len: 16, write: false }]);
    rig.driver.kick(0);
    backends[0]!.send("x");
    expect(rig.driver.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    void drv;
  });
});

describe("virtio-console multiport", () => {
  it("announces ports, names them, nominates port 0 as console, opens host-connected ports", () => {
    const { drv, device } = setup(3, { resizeOrder: "rows-cols" });
    expect(drv.multiport).toBe(true);
    expect([...drv.ports.keys()].sort()).toEqual([0, 1, 2]);
    expect(drv.ports.get(0)!.console).toBe(true);
    expect(drv.ports.get(1)!.console).toBe(false);
    expect(drv.ports.get(1)!.name).toBe("port1");
    expect(drv.ports.get(2)!.name).toBe("port2");
    for (const id of [0, 1, 2]) expect(drv.ports.get(id)!.hostOpen).toBe(true);
    const events = drv.controlLog.map((m) => [m.id, m.event]);
    expect(events.filter(([, e]) => e === VIRTIO_CONSOLE_DEVICE_ADD).map(([id]) => id)).toEqual([0, 1, 2]);
    expect(events).toContainEqual([0, VIRTIO_CONSOLE_CONSOLE_PORT]);
    expect(events).toContainEqual([1, VIRTIO_CONSOLE_PORT_NAME]);
    expect(events).toContainEqual([1, VIRTIO_CONSOLE_PORT_OPEN]);
    // The console port answered PORT_OPEN 1.
    expect(device.ports[0]!.guestOpen).toBe(true);
    expect(device.ports[1]!.guestOpen).toBe(false);
  });

  it("input on a generic port waits until the guest opens it; past the bound the backend is paused, then resumed", () => {
    const { backends, drv, device } = setup(2, { inputLimit: 100 });
    const b = backends[1]!;
    const sent: number[] = [];
    let ok = true;
    for (let i = 0; ok && i < 50; i++) {
      const chunk = new Uint8Array(30).fill(i);
      ok = b.send(chunk);
      sent.push(...chunk);
    }
    expect(ok).toBe(false);
    expect(b.paused).toBe(true);
    expect(device.ports[1]!.buffered).toBe(120);
    drv.poll();
    expect(drv.received(1)).toHaveLength(0);
    drv.open(1);
    drv.poll();
    expect([...drv.received(1)]).toEqual(sent);
    expect(b.paused).toBe(false);
    expect(device.ports[1]!.droppedBytes).toBe(0);
  });

  it("a backend that ignores pause is buffered up to the hard limit, then drops are counted and logged", () => {
    const { backends, device, logs } = setup(2, { inputLimit: 10, inputHardLimit: 40 });
    for (let i = 0; i < 10; i++) backends[1]!.send(new Uint8Array(7));
    expect(device.ports[1]!.buffered).toBe(40);
    expect(device.ports[1]!.droppedBytes).toBe(30);
    expect(logs.join("\n")).toMatch(/bytes dropped past the 40-byte hard limit/);
  });

  it("a slow host: output stops at the transmitq until the backend drains", () => {
    const { backends, drv } = setup(2);
    const b = backends[1]!;
    b.blockOutput = true;
    drv.write(1, enc("one"));
    drv.write(1, enc("two"));
    expect(b.outputText()).toBe("one");
    b.unblock();
    expect(b.outputText()).toBe("onetwo");
    drv.poll();
  });

  it("resize sends VIRTIO_CONSOLE_RESIZE in the configured field order", () => {
    for (const order of ["cols-rows", "rows-cols"] as const) {
      const { backends, drv } = setup(1, { multiport: true, resizeOrder: order });
      backends[0]!.resize(100, 30);
      drv.poll();
      expect(drv.ports.get(0)!.resize).toEqual(order === "cols-rows" ? [100, 30] : [30, 100]);
    }
  });

  it("hot plug and unplug", () => {
    const { drv, device } = setup(1, { maxPorts: 4 });
    const extra = new MemoryConsole();
    const id = device.addPort({ backend: extra, name: "hot" });
    drv.poll();
    expect(drv.ports.get(id)!.name).toBe("hot");
    drv.open(id);
    extra.send("hi");
    drv.poll();
    expect(dec(drv.received(id))).toBe("hi");
    device.removePort(id);
    drv.poll();
    expect(drv.ports.get(id)!.removed).toBe(true);
    // The id is free again and is announced anew.
    expect(device.addPort({ backend: new MemoryConsole() })).toBe(id);
  });

  it("a short control message is a guest error", () => {
    const { rig } = setup(2);
    const addr = rig.driver.dma.alloc(4);
    rig.driver.queues[CONSOLE_CONTROL_TX]!.queue.add([{ addr, len: 4, write: false }]);
    rig.driver.kick(CONSOLE_CONTROL_TX);
    expect(rig.driver.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
  });

  it("undelivered input survives a device reset and reaches the next driver", () => {
    const { backends, rig, device } = setup(2);
    backends[1]!.send("kept");
    rig.driver.reset();
    expect(device.ports[1]!.buffered).toBe(4);
    const drv2 = new ConsoleTestDriver(rig.driver);
    drv2.open(1);
    expect(dec(drv2.received(1))).toBe("kept");
  });

  it("save/restore carries undelivered input and port flags", () => {
    const { backends, device } = setup(2);
    backends[1]!.send("abc");
    const s = JSON.parse(JSON.stringify(device.save()));
    const other = new VirtioConsole({
      ports: [{ backend: new MemoryConsole() }, { backend: new MemoryConsole(), name: "port1" }],
    });
    other.restore(s);
    expect(other.ports[1]!.pendingBytes()).toEqual(enc("abc"));
    expect(other.ports[0]!.guestOpen).toBe(true);
  });
});

describe("virtio-console byte streams", () => {
  it("random streams both ways on every port, random buffer sizes and timing, arrive exactly and in order", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 }),
        fc.array(
          fc.record({
            port: fc.nat(),
            dir: fc.constantFrom("in", "out", "poll", "open"),
            len: fc.integer({ min: 1, max: 200 }),
            cuts: fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 3 }),
            indirect: fc.boolean(),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        fc.integer({ min: 16, max: 400 }),
        (nPorts, bufSizes, steps, limit) => {
          const { backends, drv, device } = setup(nPorts, {
            multiport: true,
            inputLimit: limit,
            driver: {
              rxBuffers: 4,
              rxBufferSize: (_p, i) => bufSizes[i % bufSizes.length]!,
              features: [VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, 1],
            },
          });
          const sentIn: number[][] = backends.map(() => []);
          const sentOut: number[][] = backends.map(() => []);
          // A well-behaved host: while its port is paused it holds its bytes back.
          const held: Uint8Array[][] = backends.map(() => []);
          const feed = () => {
            backends.forEach((b, p) => {
              while (!b.paused && held[p]!.length > 0) b.send(held[p]!.shift()!);
            });
          };
          let seq = 0;
          for (const s of steps) {
            const p = s.port % nPorts;
            const data = Uint8Array.from({ length: s.len }, () => seq++ & 0xff);
            feed();
            if (s.dir === "in") {
              held[p]!.push(data);
              sentIn[p]!.push(...data);
              feed();
            } else if (s.dir === "out") {
              drv.write(p, data, s.cuts, s.indirect && s.cuts.length < 7);
              sentOut[p]!.push(...data);
            } else if (s.dir === "open") {
              drv.open(p);
            } else {
              drv.poll();
            }
          }
          for (let p = 0; p < nPorts; p++) drv.open(p);
          for (let i = 0; i < 1000 && held.some((h) => h.length > 0); i++) {
            drv.poll();
            feed();
          }
          drv.poll();
          for (let p = 0; p < nPorts; p++) {
            expect(device.ports[p]!.droppedBytes).toBe(0);
            expect([...drv.received(p)]).toEqual(sentIn[p]);
            expect([...backends[p]!.output()]).toEqual(sentOut[p]);
            expect(backends[p]!.paused).toBe(false);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
