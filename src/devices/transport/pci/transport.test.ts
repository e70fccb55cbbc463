import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VirtkitError } from "../../../common/errors.js";
import { FlatMemory, RecordingMemory } from "../../../common/memory.js";
import type { U64 } from "../../../common/u64.js";
import { u64TestBit } from "../../../common/u64.js";
import { PCI_CAP_ID_MSIX, PCI_COMMAND } from "../../../pci/regs.js";
import { IntxRecorder, MsiRecorder, VirtioPciDriver } from "../../../testing.js";
import {
  type DeviceContext,
  VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_VERSION_1,
  type VirtioDevice,
} from "../../device.js";
import * as R from "./regs.js";
import { VirtioPciTransport } from "./transport.js";

/** A device that checks, when activated, that the setup it is given is valid. */
class CheckingDevice implements VirtioDevice<null> {
  readonly deviceId = 4;
  readonly name = "checking";
  readonly features: U64 = { lo: 1 << 1, hi: 0 };
  readonly queueMaxSizes = [16, 8];
  readonly configSize = 4;
  ctx: DeviceContext | null = null;
  activations = 0;
  transport: VirtioPciTransport | null = null;
  readConfig(): number {
    return 0x5a;
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    const t = this.transport!;
    // Never activated with an invalid setup.
    expect(t.status & VIRTIO_CONFIG_S_FEATURES_OK).not.toBe(0);
    expect(t.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).toBe(0);
    expect(u64TestBit(ctx.features, VIRTIO_F_VERSION_1)).toBe(true);
    expect((ctx.features.lo & ~t.offeredFeatures.lo) >>> 0).toBe(0);
    expect((ctx.features.hi & ~t.offeredFeatures.hi) >>> 0).toBe(0);
    for (let i = 0; i < ctx.queues.length; i++) {
      const q = ctx.queues[i];
      if (!q) continue;
      expect(t.memory.inRange(q.desc, 16 * q.size)).toBe(true);
      expect(q.size & (q.size - 1)).toBe(0);
      expect(q.size).toBeLessThanOrEqual(this.queueMaxSizes[i]!);
    }
    this.activations++;
    this.ctx = ctx;
  }
  reset(): void {
    this.ctx = null;
  }
  onQueueNotify(q: number): void {
    const vq = this.ctx!.queues[q]!;
    for (let c = vq.pop(); c; c = vq.pop()) {
      const w = c.writer();
      w.fill(w.remaining, 0xab);
      vq.addUsed(c.head, w.bytesWritten);
    }
    if (vq.flushUsed()) this.ctx!.interrupt.signalQueue(q);
  }
  save() {
    return null;
  }
  restore() {}
}

type Access =
  | { k: "step"; n: number; q: number; v: number }
  | { k: "common"; off: number; size: 1 | 2 | 4 | 3; write: boolean; value: number }
  | { k: "bar"; bar: number; off: number; size: 1 | 2 | 4; write: boolean; value: number }
  | { k: "cfg"; off: number; size: 1 | 2 | 4; write: boolean; value: number };

const valueArb = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 4, 8, 11, 15, 0x40, 0x80, 0xff, 0xffff, 0xffff_ffff, 16, 64, 0x1000, 0x8000),
  fc.integer({ min: 0, max: 0xffff_ffff }),
  // Plausible ring addresses inside the 1 MiB guest.
  fc.integer({ min: 0, max: 0x100 }).map((x) => x * 0x1000),
);
const sizeArb = fc.constantFrom<1 | 2 | 4>(1, 2, 4);
const accessArb: fc.Arbitrary<Access> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      k: fc.constant("step" as const),
      n: fc.integer({ min: 0, max: 5 }),
      q: fc.integer({ min: 0, max: 2 }),
      v: fc.integer({ min: 0, max: 0xffff_ffff }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("common" as const),
      off: fc.oneof(
        fc.constantFrom(0, 4, 8, 12, 16, 18, 20, 21, 22, 24, 26, 28, 30, 32, 36, 40, 44, 48, 52, 56, 58),
        fc.integer({ min: 0, max: 70 }),
      ),
      size: fc.constantFrom<1 | 2 | 4 | 3>(1, 2, 4, 4, 2, 3),
      write: fc.boolean(),
      value: valueArb,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("bar" as const),
      bar: fc.constantFrom(0, 0, 1, 2),
      off: fc.oneof(
        fc.constantFrom(
          R.ISR_OFFSET,
          R.DEVICE_CFG_OFFSET,
          R.NOTIFY_OFFSET,
          R.NOTIFY_OFFSET + 4,
          R.NOTIFY_OFFSET + 8,
        ),
        fc.integer({ min: 0, max: 0x4000 }),
        fc.integer({ min: 0, max: 0x80 }),
        fc.integer({ min: 0x800, max: 0x810 }),
      ),
      size: sizeArb,
      write: fc.boolean(),
      value: valueArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("cfg" as const),
      off: fc.integer({ min: 0, max: 0x100 }),
      size: sizeArb,
      write: fc.boolean(),
      value: valueArb,
    }),
  },
);

/** One step of what a correct driver does, possibly at the wrong moment. */
function step(t: VirtioPciTransport, a: { n: number; q: number; v: number }): void {
  const w = (off: number, size: 1 | 2 | 4, value: number) =>
    t.bar(R.VIRTIO_BAR)!.handler.mmioWrite(R.COMMON_CFG_OFFSET + off, size, value);
  switch (a.n) {
    case 0: {
      // Usually sets one more bit (as setStatus does), sometimes resets or sets FAILED.
      const cur = t.status;
      const pick = a.v % 10;
      w(
        R.VIRTIO_PCI_COMMON_STATUS,
        1,
        pick === 0 ? 0 : pick === 1 ? cur | 0x80 : cur | [1, 2, 8, 4][pick % 4]!,
      );
      return;
    }
    case 1:
      w(R.VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
      w(R.VIRTIO_PCI_COMMON_GF, 4, a.v & t.offeredFeatures.lo);
      w(R.VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
      w(R.VIRTIO_PCI_COMMON_GF, 4, (a.v >>> 16) % 8 !== 0 ? 1 : 0);
      return;
    case 2:
    case 3: {
      // Queue q laid out at a page of its own, size a power of two (sometimes too big).
      const size = 1 << (a.v % 6);
      const base = 0x10000 * (a.q + 1);
      w(R.VIRTIO_PCI_COMMON_Q_SELECT, 2, a.q);
      w(R.VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
      w(R.VIRTIO_PCI_COMMON_Q_DESCLO, 4, base);
      w(R.VIRTIO_PCI_COMMON_Q_AVAILLO, 4, base + 0x1000);
      w(R.VIRTIO_PCI_COMMON_Q_USEDLO, 4, base + 0x2000);
      w(R.VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
      return;
    }
    case 4:
      w(R.VIRTIO_PCI_COMMON_STATUS, 1, 15);
      return;
    default:
      // A guest scribbling an avail idx (often too far ahead) and a descriptor, then notifying.
      if (a.v & 1) {
        const base = 0x10000 * (a.q + 1);
        t.memory.writeU16(base + 0x1000 + 2, (a.v >>> 1) & 0xffff);
        t.memory.writeU32(base, a.v);
        t.memory.writeU32(base + 8, a.v >>> 8);
        t.memory.writeU16(base + 12, (a.v >>> 3) & 7);
      }
      t.bar(R.VIRTIO_BAR)!.handler.mmioWrite(R.NOTIFY_OFFSET + 4 * a.q, 2, a.q);
  }
}

function apply(t: VirtioPciTransport, a: Access): void {
  if (a.k === "step") step(t, a);
  else if (a.k === "common") {
    const size = a.size as 1 | 2 | 4;
    const bar = t.bar(R.VIRTIO_BAR)!;
    if (a.write) bar.handler.mmioWrite(R.COMMON_CFG_OFFSET + a.off, size, a.value);
    else bar.handler.mmioRead(R.COMMON_CFG_OFFSET + a.off, size);
  } else if (a.k === "bar") {
    const bar = t.bar(a.bar);
    if (!bar || a.off + a.size > bar.size) return;
    if (a.write) bar.handler.mmioWrite(a.off, a.size, a.value);
    else bar.handler.mmioRead(a.off, a.size);
  } else if (a.write) t.configWrite(a.off, a.size, a.value);
  else t.configRead(a.off, a.size);
}

describe("VirtioPciTransport under random register traffic", () => {
  it("never throws, never activates an invalid setup, never touches memory outside the guest, and a correct driver can always bring it back", () => {
    let activatedRuns = 0;
    let needsResetRuns = 0;
    fc.assert(
      fc.property(
        fc.array(accessArb, { minLength: 1, maxLength: 150 }),
        fc.constantFrom("msix", "intx"),
        fc.boolean(),
        (accesses, mode, bringUpFirst) => {
          const flat = new FlatMemory(1 << 20);
          const mem = new RecordingMemory(flat);
          const dev = new CheckingDevice();
          const msi = new MsiRecorder();
          const intx = new IntxRecorder();
          const t = new VirtioPciTransport(dev, { memory: mem, msiTarget: msi, log: () => {} });
          dev.transport = t;
          t.connectIntx(intx);
          if (bringUpFirst) {
            // A correct bring-up first, so the random traffic also hits a live device.
            const w = (off: number, size: 1 | 2 | 4, value: number) =>
              t.bar(R.VIRTIO_BAR)!.handler.mmioWrite(R.COMMON_CFG_OFFSET + off, size, value);
            t.configWrite(PCI_COMMAND, 2, 0x6); // memory space + bus master, as a driver's probe does
            w(R.VIRTIO_PCI_COMMON_STATUS, 1, 1);
            w(R.VIRTIO_PCI_COMMON_STATUS, 1, 3);
            step(t, { n: 1, q: 0, v: 1 << 16 });
            w(R.VIRTIO_PCI_COMMON_STATUS, 1, 11);
            step(t, { n: 2, q: 0, v: 3 });
            step(t, { n: 2, q: 1, v: 2 });
            w(R.VIRTIO_PCI_COMMON_STATUS, 1, 15);
            expect(dev.ctx).not.toBeNull();
          }
          for (const a of accesses) apply(t, a);
          expect(mem.outOfRange()).toEqual([]);
          if (dev.activations > 0) activatedRuns++;
          if (t.guestErrors > 0) needsResetRuns++;
          // Recovery: a correct driver resets and brings the device up.
          const d = new VirtioPciDriver(t, mem, {
            interrupts: mode,
            msi,
            intx,
            dmaBase: 0x80000,
            dmaSize: 0x80000,
          });
          const [vq] = d.bringUp();
          expect(d.status & VIRTIO_CONFIG_S_DRIVER_OK).not.toBe(0);
          const buf = d.dma.alloc(32);
          const head = vq!.queue.add([{ addr: buf, len: 32, write: true }]);
          d.notify(0);
          expect(vq!.queue.getUsed()).toEqual({ id: head, len: 32 });
          expect(d.takeInterrupts().queues).toContain(0);
          expect(mem.outOfRange()).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
    // The traffic reaches activation and the error state often enough to mean something.
    expect(activatedRuns).toBeGreaterThan(20);
    expect(needsResetRuns).toBeGreaterThan(5);
  });

  it("a driver's probe clears an Interrupt Disable bit left set before it, so INTx works (found by the random traffic)", () => {
    const dev = new CheckingDevice();
    const intx = new IntxRecorder();
    const t = new VirtioPciTransport(dev, { memory: new FlatMemory(1 << 20), log: () => {} });
    dev.transport = t;
    t.connectIntx(intx);
    t.configWrite(PCI_COMMAND, 2, 0x400); // an earlier guest turned INTx off
    const d = new VirtioPciDriver(t, t.memory, {
      interrupts: "intx",
      intx,
      dmaBase: 0x80000,
      dmaSize: 0x80000,
    });
    expect(t.configRead(PCI_COMMAND, 2) & 0x400).toBe(0);
    const [vq] = d.bringUp();
    const head = vq!.queue.add([{ addr: d.dma.alloc(32), len: 32, write: true }]);
    d.notify(0);
    expect(vq!.queue.getUsed()).toEqual({ id: head, len: 32 });
    expect(intx.level).toBe(true);
    expect(d.takeInterrupts().queues).toContain(0);
  });

  it("counts ignored accesses instead of throwing, including with memory decode off", () => {
    const dev = new CheckingDevice();
    const t = new VirtioPciTransport(dev, { memory: new FlatMemory(1 << 20), log: () => {} });
    dev.transport = t;
    const h = t.bar(0)!.handler;
    h.mmioWrite(R.NOTIFY_OFFSET + 1, 2, 0);
    h.mmioWrite(R.NOTIFY_OFFSET, 1, 0);
    h.mmioWrite(R.NOTIFY_OFFSET + 4 * 5, 2, 0);
    h.mmioRead(R.DEVICE_CFG_OFFSET + 2, 4);
    expect(t.ignoredAccesses).toBe(4);
    expect(h.mmioRead(R.DEVICE_CFG_OFFSET, 1)).toBe(0x5a);
    t.configWrite(PCI_COMMAND, 2, 0);
    const d = new VirtioPciDriver(t, t.memory, { interrupts: "intx" });
    expect(t.memorySpaceEnabled).toBe(true);
    expect(d.numQueues).toBe(2);
  });
});

describe("guest errors and host bugs", () => {
  function rigWith(onNotify: (ctx: DeviceContext) => void) {
    const dev = new CheckingDevice();
    dev.onQueueNotify = () => onNotify(dev.ctx!);
    const msi = new MsiRecorder();
    const logs: string[] = [];
    const t = new VirtioPciTransport(dev, {
      memory: new FlatMemory(1 << 20),
      msiTarget: msi,
      log: (m) => logs.push(m),
    });
    dev.transport = t;
    const d = new VirtioPciDriver(t, t.memory, {
      interrupts: "msix",
      msi,
      dmaBase: 0x80000,
      dmaSize: 0x80000,
    });
    return { dev, t, d, logs };
  }

  it("ctx.fail (an asynchronous backend's report) sets DEVICE_NEEDS_RESET with one config interrupt, logged once", () => {
    const { dev, t, d, logs } = rigWith(() => {});
    d.bringUp();
    dev.ctx!.fail(new VirtkitError("BACKEND", "bad sector number 99"));
    dev.ctx!.fail(new VirtkitError("BACKEND", "again"));
    expect(d.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(d.takeInterrupts()).toEqual({ queues: [], config: true });
    expect(t.guestErrors).toBe(2);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/bad sector number 99/);
    // After DEVICE_NEEDS_RESET no queue interrupt goes out.
    dev.ctx!.interrupt.signalQueue(0);
    expect(d.takeInterrupts().queues).toEqual([]);
  });

  it("an error that is not a VirtkitError is a host bug and is rethrown", () => {
    const { d } = rigWith(() => {
      throw new TypeError("bug");
    });
    expect(() => d.bringUp()).toThrow(TypeError);
  });

  it("a PCI function reset (machine reset) resets the device, MSI-X and the configuration space", () => {
    const { dev, t, d } = rigWith(() => {});
    d.bringUp();
    expect(t.msix!.enabled).toBe(true);
    t.reset();
    expect(dev.ctx).toBeNull();
    expect(t.status).toBe(0);
    expect(t.msix!.enabled).toBe(false);
    expect(t.msix!.isMasked(0)).toBe(true);
    expect(t.memorySpaceEnabled).toBe(false);
  });

  it("MSI-X table, pending bits and queue vectors survive save/restore", () => {
    const { t, d } = rigWith(() => {});
    d.bringUp();
    t.bar(R.MSIX_BAR)!.handler.mmioWrite(R.MSIX_TABLE_OFFSET + 12, 4, 1);
    t.signalConfig();
    expect(t.msix!.isPending(0)).toBe(true);
    const snap = JSON.parse(JSON.stringify(t.save()));
    const dev2 = new CheckingDevice();
    const msi2 = new MsiRecorder();
    const t2 = new VirtioPciTransport(dev2, { memory: t.memory, msiTarget: msi2, log: () => {} });
    dev2.transport = t2;
    t2.restore(snap);
    expect(t2.msix!.isPending(0)).toBe(true);
    expect(t2.queueSlot(1)!.msixVector).toBe(2);
    expect(dev2.activations).toBe(1);
    t2.bar(R.MSIX_BAR)!.handler.mmioWrite(R.MSIX_TABLE_OFFSET + 12, 4, 0);
    expect(msi2.messages).toEqual([{ addressLo: 0xfee0_0000, addressHi: 0, data: 0x40 }]);
  });
});

describe("INTx and MSI-X", () => {
  it("with msixVectors 0 (no local APIC) there is no MSI-X capability or BAR, and INTx carries every interrupt", () => {
    const dev = new CheckingDevice();
    const intx = new IntxRecorder();
    const t = new VirtioPciTransport(dev, { memory: new FlatMemory(1 << 20), log: () => {}, msixVectors: 0 });
    dev.transport = t;
    t.connectIntx(intx);
    expect(t.msix).toBeNull();
    expect(t.capabilities().some((c) => c.id === PCI_CAP_ID_MSIX)).toBe(false);
    expect(t.bars().map((b) => b.index)).toEqual([0]);
    const d = new VirtioPciDriver(t, t.memory, {
      interrupts: "intx",
      intx,
      dmaBase: 0x80000,
      dmaSize: 0x80000,
    });
    d.bringUp();
    // config_msix_vector cannot be set to anything but NO_VECTOR
    t.signalConfig();
    expect(intx.level).toBe(true);
    expect(d.takeInterrupts().config).toBe(true);
    expect(intx.level).toBe(false);
  });

  it("enabling MSI-X lowers an INTx that was raised before; disabling it raises it again while the ISR holds bits", () => {
    const dev = new CheckingDevice();
    const intx = new IntxRecorder();
    const t = new VirtioPciTransport(dev, { memory: new FlatMemory(1 << 20), log: () => {} });
    dev.transport = t;
    t.connectIntx(intx);
    const d = new VirtioPciDriver(t, t.memory, {
      interrupts: "intx",
      intx,
      dmaBase: 0x80000,
      dmaSize: 0x80000,
    });
    d.bringUp();
    t.signalConfig();
    expect(intx.level).toBe(true);
    d.enableMsix();
    expect(intx.level).toBe(false);
    const cap = d.msixCapOffset;
    t.configWrite(cap + 2, 2, t.configRead(cap + 2, 2) & ~0x8000);
    expect(intx.level).toBe(true);
    expect(d.barRead(0, R.ISR_OFFSET, 1)).toBe(R.VIRTIO_PCI_ISR_CONFIG);
    expect(intx.level).toBe(false);
  });
});
