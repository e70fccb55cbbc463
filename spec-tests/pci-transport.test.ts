/**
 * Device-side requirements of section 4.1 (Virtio Over PCI Bus, modern interface) and the
 * device status rules of sections 2.1, 2.2, 2.4 and 3.1 (../shared/virtio-spec/), one test
 * each, quoting the sentence checked.
 */
import { describe, expect, it } from "vitest";
import type { U64 } from "../src/common/u64.js";
import {
  type DeviceContext,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  type VirtioDevice,
  type VirtioDeviceHost,
} from "../src/devices/device.js";
import * as R from "../src/devices/transport/pci/regs.js";
import {
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_CAPABILITY_LIST,
  PCI_MSIX_FLAGS,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from "../src/pci/regs.js";
import { FlatMemory } from "../src/common/memory.js";
import { seededEntropy, VirtioRng } from "../src/devices/rng/index.js";
import { VirtioPciTransport } from "../src/devices/transport/pci/transport.js";
import { IoBus } from "../src/machine/io-bus.js";
import { MemoryBus } from "../src/machine/memory-bus.js";
import { PciBus } from "../src/machine/pci/bus.js";
import { assignPciResources } from "../src/machine/pci/firmware.js";
import { createPciTestRig, MsiRecorder, type PciAccess, VirtioPciDriver } from "../src/testing.js";

/** A small device of our own: 2 queues, 8 bytes of config, echoes every chain with len 0. */
class EchoDevice implements VirtioDevice<{ notifies: number[] }> {
  readonly deviceId = 63;
  readonly name = "echo";
  readonly features: U64 = { lo: 1 << 3, hi: 0 };
  readonly queueMaxSizes = [64, 16];
  readonly configSize = 8;
  config = new Uint8Array(8);
  ctx: DeviceContext | null = null;
  host: VirtioDeviceHost | null = null;
  notifies: number[] = [];
  resets = 0;
  queueResets: number[] = [];
  attach(host: VirtioDeviceHost) {
    this.host = host;
  }
  readConfig(o: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.config[o + i]!;
    return v;
  }
  writeConfig(): void {}
  /** The device changes its configuration on its own. */
  change(byte: number): void {
    this.config[0] = byte;
    this.host!.configChanged();
  }
  activate(ctx: DeviceContext) {
    this.ctx = ctx;
  }
  reset() {
    this.ctx = null;
    this.resets++;
  }
  onQueueReset(q: number) {
    this.queueResets.push(q);
  }
  onQueueNotify(q: number) {
    this.notifies.push(q);
    const vq = this.ctx!.queues[q]!;
    for (let c = vq.pop(); c; c = vq.pop()) vq.addUsed(c.head, 0);
    if (vq.flushUsed()) this.ctx!.interrupt.signalQueue(q);
  }
  save() {
    return { notifies: this.notifies.slice() };
  }
  restore(s: { notifies: number[] }) {
    this.notifies = s.notifies.slice();
  }
}

function rig(interrupts: "msix" | "intx" = "msix", msixVectors?: number) {
  const dev = new EchoDevice();
  const r = createPciTestRig(dev, { interrupts, ...(msixVectors !== undefined ? { msixVectors } : {}) });
  return { ...r, dev, t: r.transport, d: r.driver };
}

/** The vendor capabilities of a function: cfg_type, bar, offset, length, cap_len, position. */
function virtioCaps(t: ReturnType<typeof rig>["t"]) {
  const caps = [];
  for (let p = t.configRead(PCI_CAPABILITY_LIST, 1); p !== 0; p = t.configRead(p + 1, 1)) {
    if (t.configRead(p, 1) !== PCI_CAP_ID_VNDR) continue;
    caps.push({
      at: p,
      capLen: t.configRead(p + 2, 1),
      type: t.configRead(p + 3, 1),
      bar: t.configRead(p + 4, 1),
      offset: t.configRead(p + 8, 4),
      length: t.configRead(p + 12, 4),
    });
  }
  return caps;
}

function addBuffer(r: ReturnType<typeof rig>, q: number) {
  return r.d.queues[q]!.queue.add([{ addr: r.d.dma.alloc(8), len: 8, write: true }]);
}

describe("4.1.1 Virtio Over PCI Bus", () => {
  it('"A Virtio device using Virtio Over PCI Bus MUST expose to guest an interface that meets the specification requirements of the appropriate PCI specification" — found, sized, placed and driven through the machine\'s PCI bus (0xCF8/0xCFC) and memory bus', () => {
    const ram = new FlatMemory(16 << 20);
    const io = new IoBus();
    const mem = new MemoryBus(ram);
    const irqs: [number, boolean][] = [];
    const bus = new PciBus({ io, memory: mem, irq: { setIrq: (n, l) => irqs.push([n, l]) } });
    const msi = new MsiRecorder();
    for (const mode of ["msix", "intx"] as const) {
      const t = new VirtioPciTransport(new VirtioRng({ entropy: seededEntropy(3) }), {
        memory: ram,
        msiTarget: msi,
        log: () => {},
      });
      const slot = mode === "msix" ? 3 : 4;
      bus.add(t, slot);
      assignPciResources(bus);
      const cfgAddr = (off: number) => 0x8000_0000 | (slot << 11) | (off & 0xfc);
      const access: PciAccess = {
        configRead(off, size) {
          io.write(0xcf8, 4, cfgAddr(off));
          return io.read(0xcfc + (off & 3), size);
        },
        configWrite(off, size, v) {
          io.write(0xcf8, 4, cfgAddr(off));
          io.write(0xcfc + (off & 3), size, v);
        },
        barRead(bar, off, size) {
          const base = access.configRead(0x10 + 4 * bar, 4) & ~0xf;
          return mem.read(base + off, size);
        },
        barWrite(bar, off, size, v) {
          const base = access.configRead(0x10 + 4 * bar, 4) & ~0xf;
          mem.write(base + off, size, v);
        },
      };
      // BAR sizing by writing all ones, as a PCI enumerator does.
      const saved = access.configRead(0x10, 4);
      access.configWrite(0x10, 4, 0xffff_ffff);
      expect((~(access.configRead(0x10, 4) & ~0xf) + 1) >>> 0).toBe(R.VIRTIO_BAR_SIZE);
      access.configWrite(0x10, 4, saved);
      const d = new VirtioPciDriver(t, ram, {
        interrupts: mode,
        msi,
        access,
        dmaBase: 0x10_0000 * (slot - 2),
        dmaSize: 0x10_0000,
      });
      const [vq] = d.bringUp();
      const buf = d.dma.alloc(64);
      const head = vq!.queue.add([{ addr: buf, len: 64, write: true }]);
      d.kick(0);
      expect(vq!.queue.getUsed()).toEqual({ id: head, len: 64 });
      if (mode === "msix") {
        expect(d.takeInterrupts().queues).toEqual([0]);
      } else {
        // INTx went through the PIIX3 routing to an IRQ line of the sink, and the ISR read lowers it.
        const line = bus.irqOf(t);
        expect(irqs.at(-1)).toEqual([line, true]);
        expect(access.barRead(0, R.ISR_OFFSET, 1)).toBe(R.VIRTIO_PCI_ISR_QUEUE);
        expect(irqs.at(-1)).toEqual([line, false]);
      }
    }
  });
});

describe("4.1.2.1 PCI Device Discovery", () => {
  it('"Devices MUST have the PCI Vendor ID 0x1AF4." and "the PCI Device ID calculated by adding 0x1040 to the Virtio Device ID"; revision 1, subsystem id >= 0x40', () => {
    const { t } = rig();
    expect(t.configRead(0, 2)).toBe(0x1af4);
    expect(t.configRead(2, 2)).toBe(0x1040 + 63);
    expect(t.configRead(8, 1)).toBeGreaterThanOrEqual(1);
    expect(t.configRead(0x2e, 2)).toBeGreaterThanOrEqual(0x40);
  });
});

describe("4.1.3.1 PCI Device Layout", () => {
  it('"For 64-bit device configuration fields, the device MUST allow driver independent access to high and low 32-bit parts of the field."', () => {
    const { d } = rig();
    d.init();
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0x12);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x3000);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x5000);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_DESCLO, 4)).toBe(0x3000);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_DESCHI, 4)).toBe(0x12);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_USEDLO, 4)).toBe(0x5000);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_USEDHI, 4)).toBe(0);
  });
});

describe("4.1.4.1 Virtio Structure PCI Capabilities", () => {
  it('"The device MUST include any extra data (from the beginning of the cap_vndr field through end of the extra data fields if any) in cap_len."', () => {
    const caps = virtioCaps(rig().t);
    for (const c of caps) {
      const extra = c.type === R.VIRTIO_PCI_CAP_NOTIFY_CFG || c.type === R.VIRTIO_PCI_CAP_PCI_CFG ? 4 : 0;
      expect(c.capLen).toBe(16 + extra);
    }
  });
});

describe("4.1.4.3.1 Common configuration structure layout", () => {
  it('"offset MUST be 4-byte aligned." and "The device MUST present at least one common configuration capability."', () => {
    const common = virtioCaps(rig().t).filter((c) => c.type === R.VIRTIO_PCI_CAP_COMMON_CFG);
    expect(common.length).toBeGreaterThanOrEqual(1);
    for (const c of common) expect(c.offset % 4).toBe(0);
  });

  it('"The device MUST present the feature bits it is offering in device_feature, starting at bit device_feature_select * 32"', () => {
    const { d, t } = rig();
    expect(d.deviceFeatures()).toEqual(t.offeredFeatures);
    expect(d.deviceFeatures().lo & (1 << 3)).not.toBe(0);
    expect(d.deviceFeatures().hi & 1).toBe(1); // VIRTIO_F_VERSION_1 (32)
    d.writeCommon(R.VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_DF, 4)).toBe(0);
  });

  it('"The device MUST present any valid feature bits the driver has written in driver_feature"', () => {
    const { d } = rig();
    d.writeDriverFeatures({ lo: 1 << 3, hi: 1 });
    d.writeCommon(R.VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_GF, 4)).toBe(1 << 3);
    d.writeCommon(R.VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_GF, 4)).toBe(1);
  });

  it('"The device MUST present a changed config_generation after the driver has read a device-specific configuration value which has changed since any part of the device-specific configuration was last read."', () => {
    const { d, dev } = rig();
    const g0 = d.readCommon(R.VIRTIO_PCI_COMMON_CFGGENERATION, 1);
    expect(d.readConfig(0, 1)).toBe(0);
    dev.change(7);
    expect(d.readConfig(0, 1)).toBe(7);
    const g1 = d.readCommon(R.VIRTIO_PCI_COMMON_CFGGENERATION, 1);
    expect(g1).not.toBe(g0);
    expect([...d.readConfigBytes(0, 2)]).toEqual([7, 0]);
    // 300 changes, each read: the generation changes each time (no 8-bit wrap hides one).
    let last = d.readCommon(R.VIRTIO_PCI_COMMON_CFGGENERATION, 1);
    for (let i = 0; i < 300; i++) {
      dev.change(i & 0xff);
      d.readConfig(0, 1);
      const g = d.readCommon(R.VIRTIO_PCI_COMMON_CFGGENERATION, 1);
      expect(g).not.toBe(last);
      last = g;
    }
  });

  it('"The device MUST reset when 0 is written to device_status, and present a 0 in device_status once that is done."', () => {
    const { d, dev } = rig();
    d.bringUp();
    expect(d.status & VIRTIO_CONFIG_S_DRIVER_OK).not.toBe(0);
    const resets = dev.resets;
    d.writeCommon(R.VIRTIO_PCI_COMMON_STATUS, 1, 0);
    expect(d.status).toBe(0);
    expect(dev.resets).toBe(resets + 1);
    expect(dev.ctx).toBeNull();
  });

  it('"The device MUST present a 0 in queue_enable on reset."', () => {
    const { d } = rig();
    d.bringUp();
    d.reset();
    for (const q of [0, 1]) {
      d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
      expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_ENABLE, 2)).toBe(0);
    }
  });

  it('"If VIRTIO_F_RING_RESET has been negotiated, the device MUST present a 0 in queue_reset on reset." and "after the virtqueue is enabled with queue_enable."', () => {
    const { d } = rig();
    d.bringUp([VIRTIO_F_RING_RESET]);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_RESET, 2)).toBe(0);
    d.reset();
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_RESET, 2)).toBe(0);
  });

  it('"The device MUST reset the queue when 1 is written to queue_reset." ... "MUST present 0 in both queue_reset and queue_enable when queue reset has completed." (2.6.1: "After a queue has been reset by the driver, the device MUST NOT execute any requests from that virtqueue, or notify the driver for it.")', () => {
    const r = rig();
    const { d, dev, t } = r;
    d.bringUp([VIRTIO_F_RING_RESET]);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_RESET, 2)).toBe(0);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_ENABLE, 2)).toBe(0);
    expect(dev.queueResets).toEqual([1]);
    expect(t.queue(1)).toBeNull();
    dev.notifies.length = 0;
    addBuffer(r, 1);
    d.notify(1);
    expect(dev.notifies).toEqual([]);
    // The other queue keeps working.
    addBuffer(r, 0);
    d.notify(0);
    expect(dev.notifies).toEqual([0]);
  });

  it('2.6.2.1 Virtqueue Re-enable: "The device MUST observe any queue configuration that may have been changed by the driver, like the maximum queue size." (2.6.1: "The device MUST reset any state of a virtqueue to the default state, including the available state and the used state.")', () => {
    const r = rig();
    const { d, t } = r;
    d.bringUp([VIRTIO_F_RING_RESET]);
    addBuffer(r, 1);
    d.notify(1);
    expect(t.queue(1)!.nextUsedIdx).toBe(1);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    const vq = d.setupQueue(1, 4);
    expect(t.queue(1)!.size).toBe(4);
    expect(t.queue(1)!.nextUsedIdx).toBe(0);
    vq.queue.add([{ addr: d.dma.alloc(8), len: 8, write: true }]);
    d.notify(1);
    expect(vq.queue.getUsed()).not.toBeNull();
  });

  it('"The device MUST present a 0 in queue_size if the virtqueue corresponding to the current queue_select is unavailable."', () => {
    const { d } = rig();
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2)).toBe(0);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0xffff);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2)).toBe(0);
  });

  it('"If VIRTIO_F_RING_PACKED has not been negotiated, the device MUST present either a value of 0 or a power of 2 in queue_size."', () => {
    const { d } = rig();
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    for (const bad of [3, 100, 128, 0]) {
      d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2, bad);
      const v = d.readCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2);
      expect(v === 0 || (v & (v - 1)) === 0).toBe(true);
      expect(v).toBe(64);
    }
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2)).toBe(8);
  });
});

describe("4.1.4.4.1 Notification capability", () => {
  it('"The device MUST present at least one notification capability." "The cap.offset MUST be 2-byte aligned." "present notify_off_multiplier as an even power of 2, or ... 0" and "cap.length >= queue_notify_off * notify_off_multiplier + 2"', () => {
    const { t, d } = rig();
    const notify = virtioCaps(t).filter((c) => c.type === R.VIRTIO_PCI_CAP_NOTIFY_CFG);
    expect(notify.length).toBeGreaterThanOrEqual(1);
    const c = notify[0]!;
    expect(c.offset % 2).toBe(0);
    const mult = t.configRead(c.at + 16, 4);
    expect(mult === 0 || (Math.log2(mult) % 2 === 0 && Number.isInteger(Math.log2(mult)))).toBe(true);
    for (let q = 0; q < 2; q++) {
      d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
      expect(c.length).toBeGreaterThanOrEqual(d.readCommon(R.VIRTIO_PCI_COMMON_Q_NOFF, 2) * mult + 2);
    }
  });
});

describe("4.1.4.5.1 ISR status capability", () => {
  it('"The device MUST present at least one VIRTIO_PCI_CAP_ISR_CFG capability."', () => {
    expect(virtioCaps(rig().t).some((c) => c.type === R.VIRTIO_PCI_CAP_ISR_CFG)).toBe(true);
  });

  it('"If MSI-X capability is disabled, the device MUST set the Queue Interrupt bit in ISR status before sending a virtqueue notification" and the PCI Interrupt Status bit is "the logical OR of all bits in ISR status"; "The device MUST reset ISR status to 0 on driver read."', () => {
    const r = rig("intx");
    r.d.bringUp();
    addBuffer(r, 0);
    r.d.notify(0);
    expect(r.intx.level).toBe(true);
    expect(r.t.peekIsr()).toBe(R.VIRTIO_PCI_ISR_QUEUE);
    expect(r.t.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).not.toBe(0);
    expect(r.d.barRead(0, R.ISR_OFFSET, 1)).toBe(1);
    expect(r.d.barRead(0, R.ISR_OFFSET, 1)).toBe(0);
    expect(r.intx.level).toBe(false);
    expect(r.t.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(0);
  });

  it('"The device MUST set the Device Configuration Interrupt bit in ISR status before sending a device configuration change notification to the driver."', () => {
    const r = rig("intx");
    r.d.bringUp();
    r.dev.change(1);
    expect(r.intx.level).toBe(true);
    expect(r.d.takeInterrupts()).toEqual({ queues: [], config: true });
    expect(r.intx.level).toBe(false);
  });
});

describe("4.1.4.6.1 Device-specific configuration", () => {
  it('"The offset for the device-specific configuration MUST be 4-byte aligned."', () => {
    const dev = virtioCaps(rig().t).filter((c) => c.type === R.VIRTIO_PCI_CAP_DEVICE_CFG);
    expect(dev).toHaveLength(1);
    expect(dev[0]!.offset % 4).toBe(0);
    expect(dev[0]!.length).toBe(8);
  });
});

describe("4.1.4.9.1 PCI configuration access capability", () => {
  it('"The device MUST present at least one VIRTIO_PCI_CAP_PCI_CFG capability." and executes reads and writes through pci_cfg_data', () => {
    const { t, d } = rig();
    const cap = virtioCaps(t).find((c) => c.type === R.VIRTIO_PCI_CAP_PCI_CFG)!;
    expect(cap).toBeDefined();
    const p = cap.at;
    // Write device_status = ACKNOWLEDGE through the window.
    t.configWrite(p + 4, 1, 0);
    t.configWrite(p + 12, 4, 1);
    t.configWrite(p + 8, 4, R.COMMON_CFG_OFFSET + R.VIRTIO_PCI_COMMON_STATUS);
    t.configWrite(p + 16, 4, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    expect(d.status).toBe(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    // Read num_queues through the window.
    t.configWrite(p + 12, 4, 2);
    t.configWrite(p + 8, 4, R.COMMON_CFG_OFFSET + R.VIRTIO_PCI_COMMON_NUMQ);
    expect(t.configRead(p + 16, 4) & 0xffff).toBe(2);
    expect(t.configRead(p + 16, 2)).toBe(2);
    // A misaligned or oversized window does nothing.
    t.configWrite(p + 8, 4, 3);
    t.configWrite(p + 16, 4, 0);
    expect(d.status).toBe(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  });
});

describe("4.1.5.1.2.1 MSI-X Vector Configuration", () => {
  it('"Device MUST report the number of vectors supported in Table Size in the MSI-X Capability"', () => {
    const { t } = rig("msix", 5);
    let p = t.configRead(PCI_CAPABILITY_LIST, 1);
    while (t.configRead(p, 1) !== PCI_CAP_ID_MSIX) p = t.configRead(p + 1, 1);
    expect((t.configRead(p + PCI_MSIX_FLAGS, 2) & 0x7ff) + 1).toBe(5);
  });

  it('"Device MUST support mapping any event type to any valid vector" and "unmapping"; "MUST return vector mapped to a given event, (NO_VECTOR if unmapped)"; failures read NO_VECTOR', () => {
    const { d } = rig("msix", 3);
    for (const v of [0, 1, 2, R.VIRTIO_MSI_NO_VECTOR]) {
      d.writeCommon(R.VIRTIO_PCI_COMMON_MSIX, 2, v);
      expect(d.readCommon(R.VIRTIO_PCI_COMMON_MSIX, 2)).toBe(v);
      d.writeCommon(R.VIRTIO_PCI_COMMON_Q_MSIX, 2, v);
      expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_MSIX, 2)).toBe(v);
    }
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_MSIX, 2, 3);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_MSIX, 2)).toBe(R.VIRTIO_MSI_NO_VECTOR);
    d.writeCommon(R.VIRTIO_PCI_COMMON_MSIX, 2, 0x7ff);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_MSIX, 2)).toBe(R.VIRTIO_MSI_NO_VECTOR);
  });

  it('"The device MUST have all queue and configuration change events are unmapped upon reset."', () => {
    const { d } = rig();
    d.bringUp();
    d.reset();
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_MSIX, 2)).toBe(R.VIRTIO_MSI_NO_VECTOR);
    for (const q of [0, 1]) {
      d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
      expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_MSIX, 2)).toBe(R.VIRTIO_MSI_NO_VECTOR);
    }
  });
});

describe("4.1.5.3.1 / 4.1.5.4.1 interrupts with MSI-X", () => {
  it('"If MSI-X capability is enabled and queue_msix_vector is NO_VECTOR for a virtqueue, the device MUST NOT deliver an interrupt for that virtqueue."', () => {
    const r = rig();
    r.d.bringUp();
    r.d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    // Only before DRIVER_OK may queue fields change; the vector may change at any time.
    r.d.writeCommon(R.VIRTIO_PCI_COMMON_Q_MSIX, 2, R.VIRTIO_MSI_NO_VECTOR);
    r.d.queues[0]!.msixVector = R.VIRTIO_MSI_NO_VECTOR;
    addBuffer(r, 0);
    r.d.notify(0);
    expect(r.msi.messages).toEqual([]);
    expect(r.intx.raised).toBe(0);
    expect(r.t.peekIsr()).toBe(0);
  });

  it('"If MSI-X capability is enabled and config_msix_vector is NO_VECTOR, the device MUST NOT deliver an interrupt for device configuration space changes."', () => {
    const r = rig();
    r.d.bringUp();
    r.d.writeCommon(R.VIRTIO_PCI_COMMON_MSIX, 2, R.VIRTIO_MSI_NO_VECTOR);
    r.dev.change(3);
    expect(r.msi.messages).toEqual([]);
    expect(r.intx.raised).toBe(0);
  });
});

describe("2.1.2 Device Requirements: Device Status Field", () => {
  it('"The device MUST NOT consume buffers or send any used buffer notifications to the driver before DRIVER_OK." and DRIVER_OK re-checks every queue', () => {
    const r = rig();
    r.d.init();
    r.d.setupQueue(0);
    r.d.setupQueue(1);
    addBuffer(r, 0);
    addBuffer(r, 1);
    r.d.notify(0); // races activation
    expect(r.dev.notifies).toEqual([]);
    expect(r.t.ignoredNotifies).toBe(1);
    expect(r.d.queues[0]!.queue.hasUsed()).toBe(false);
    r.d.driverOk();
    expect(r.dev.notifies).toEqual([0, 1]);
    expect(r.d.queues[0]!.queue.getUsed()).not.toBeNull();
    expect(r.d.queues[1]!.queue.getUsed()).not.toBeNull();
  });

  it('"If DRIVER_OK is set, after it sets DEVICE_NEEDS_RESET, the device MUST send a device configuration change notification to the driver." — a bad chain stops this device only', () => {
    const r = rig();
    const other = rig();
    r.d.bringUp();
    other.d.bringUp();
    // A descriptor pointing outside guest memory.
    const q = r.d.queues[0]!.queue;
    q.add([{ addr: r.memory.size - 4, len: 4, write: true }]);
    r.memory.writeU32(q.desc + 8, 64);
    r.d.notify(0);
    expect(r.d.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(r.d.takeInterrupts()).toEqual({ queues: [], config: true });
    expect(r.t.guestErrors).toBe(1);
    expect(r.t.lastError?.message).toMatch(/outside guest memory/);
    // No more processing until reset.
    r.dev.notifies.length = 0;
    r.d.notify(1);
    expect(r.dev.notifies).toEqual([]);
    // The other device goes on.
    addBuffer(other, 0);
    other.d.notify(0);
    expect(other.d.queues[0]!.queue.getUsed()).not.toBeNull();
    // And a reset brings this one back.
    r.d.bringUp();
    addBuffer(r, 0);
    r.d.notify(0);
    expect(r.d.queues[0]!.queue.getUsed()).not.toBeNull();
  });

  it('2.1.1 "The driver MUST NOT clear a device status bit": a write that clears one is ignored', () => {
    const { d, t } = rig();
    d.init();
    d.writeCommon(R.VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    expect(d.status).toBe(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    expect(t.refusedWrites).toBe(1);
  });

  it("the driver cannot set DEVICE_NEEDS_RESET, and DRIVER_OK without FEATURES_OK is not taken", () => {
    const { d, dev } = rig();
    d.reset();
    d.writeCommon(
      R.VIRTIO_PCI_COMMON_STATUS,
      1,
      VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
    );
    expect(d.status).toBe(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    d.writeCommon(R.VIRTIO_PCI_COMMON_STATUS, 1, 1 | 2 | VIRTIO_CONFIG_S_DRIVER_OK);
    expect(d.status).toBe(1 | 2);
    expect(dev.ctx).toBeNull();
  });

  it("a queue layout outside guest memory at DRIVER_OK sets DEVICE_NEEDS_RESET instead of activating", () => {
    const { d, dev, t } = rig();
    d.init();
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0xfff0_0000);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    d.driverOk();
    expect(d.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(dev.ctx).toBeNull();
    expect(t.lastError?.message).toMatch(/queue 0: descriptor table/);
  });
});

describe("2.2.2 Device Requirements: Feature Bits", () => {
  it('"...otherwise it MUST fail to set the FEATURES_OK device status bit when the driver writes it": bits not offered', () => {
    const { d } = rig();
    d.reset();
    d.setStatus(1 | 2);
    d.writeDriverFeatures({ lo: 1 << 5, hi: 1 });
    d.setStatus(VIRTIO_CONFIG_S_FEATURES_OK);
    expect(d.status & VIRTIO_CONFIG_S_FEATURES_OK).toBe(0);
  });

  it('6.2: "A device MAY fail to operate further if VIRTIO_F_VERSION_1 is not accepted." — FEATURES_OK refused without it', () => {
    const { d } = rig();
    d.reset();
    d.setStatus(1 | 2);
    d.writeDriverFeatures({ lo: 1 << 3, hi: 0 });
    d.setStatus(VIRTIO_CONFIG_S_FEATURES_OK);
    expect(d.status & VIRTIO_CONFIG_S_FEATURES_OK).toBe(0);
    d.writeDriverFeatures({ lo: 1 << 3, hi: 1 << (VIRTIO_F_VERSION_1 - 32) });
    d.setStatus(VIRTIO_CONFIG_S_FEATURES_OK);
    expect(d.status & VIRTIO_CONFIG_S_FEATURES_OK).not.toBe(0);
  });

  it("FEATURES_OK is refused when the driver leaves out a bit the device requires", () => {
    const dev = new EchoDevice();
    Object.assign(dev, { requiredFeatures: { lo: 1 << 3, hi: 0 } });
    const { driver: d } = createPciTestRig(dev);
    expect(() => d.init([])).toThrow(/refused FEATURES_OK/);
    expect(d.status & VIRTIO_CONFIG_S_FEATURES_OK).toBe(0);
    d.init([3]);
    expect(d.status & VIRTIO_CONFIG_S_FEATURES_OK).not.toBe(0);
  });

  it('3.1.1: "The driver MUST NOT accept new feature bits after this step." — writes after FEATURES_OK are ignored', () => {
    const { d } = rig();
    d.init([]);
    d.writeDriverFeatures({ lo: 1 << 3, hi: 1 });
    d.writeCommon(R.VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_GF, 4)).toBe(0);
  });
});

describe("2.4.1 Device Requirements: Device Reset", () => {
  it('"A device MUST NOT send notifications or interact with the queues after indicating completion of the reset"', () => {
    const r = rig();
    r.d.bringUp();
    r.d.reset();
    r.msi.messages.length = 0;
    r.dev.notifies.length = 0;
    // The driver side forgot its queues; write the notify address directly.
    r.d.barWrite(0, R.NOTIFY_OFFSET, 2, 0);
    r.dev.change(9);
    expect(r.dev.notifies).toEqual([]);
    expect(r.msi.messages).toEqual([]);
    expect(r.intx.raised).toBe(0);
  });
});

describe("3.1 queues are configurable only before DRIVER_OK", () => {
  it("queue_size, addresses and queue_enable writes after DRIVER_OK are ignored", () => {
    const { d, t } = rig();
    d.bringUp();
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    const desc = d.readCommon(R.VIRTIO_PCI_COMMON_Q_DESCLO, 4);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x9000);
    d.writeCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2, 2);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_DESCLO, 4)).toBe(desc);
    expect(d.readCommon(R.VIRTIO_PCI_COMMON_Q_SIZE, 2)).toBe(64);
    expect(t.queue(0)!.desc).toBe(desc);
  });
});
