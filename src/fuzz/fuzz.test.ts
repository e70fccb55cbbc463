import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import type { U64 } from "../common/u64.js";
import { VirtioBalloon } from "../devices/balloon/balloon.js";
import { VIRTIO_BALLOON_F_STATS_VQ } from "../devices/balloon/constants.js";
import { VirtioBlk } from "../devices/blk/blk.js";
import { MemoryDisk } from "../devices/blk/backend.js";
import { blkHeader } from "../devices/blk/driver.js";
import { ManualBackend } from "../devices/blk/test-backends.js";
import { MemoryConsole } from "../devices/console/backend.js";
import { VirtioConsole } from "../devices/console/console.js";
import type { FrameSink } from "../devices/net/backend.js";
import { VirtioNet } from "../devices/net/net.js";
import {
  type DeviceContext,
  VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  VIRTIO_F_RING_RESET,
  type VirtioDevice,
} from "../devices/device.js";
import { createPciTestRig } from "../testing.js";
import type { VirtQueue } from "../virtqueue/queue.js";
import { FUZZ_DEVICES, type FuzzDeviceFactory } from "./devices.js";
import { GuardedMemory } from "./guarded-memory.js";
import { mixSeed, Prng } from "./prng.js";
import { emptyStats, runDeviceCases } from "./world.js";

describe("Prng", () => {
  it("gives the same sequence for the same seed and different ones for different seeds", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const c = new Prng(43);
    const xs = Array.from({ length: 8 }, () => a.u32());
    expect(Array.from({ length: 8 }, () => b.u32())).toEqual(xs);
    expect(Array.from({ length: 8 }, () => c.u32())).not.toEqual(xs);
    expect(mixSeed(1, 2)).not.toBe(mixSeed(2, 1));
  });

  it("keeps int() and range() inside their bounds", () => {
    const r = new Prng(7);
    for (let i = 0; i < 10_000; i++) {
      const n = r.int(10);
      expect(n >= 0 && n < 10).toBe(true);
      const m = r.range(-3, 3);
      expect(m >= -3 && m <= 3).toBe(true);
    }
  });
});

describe("GuardedMemory", () => {
  it("records accesses outside memory (which still throw) and nothing for accesses inside", () => {
    const m = new GuardedMemory(new FlatMemory(4096));
    m.writeU32(4092, 1);
    m.subarray(0, 4096);
    expect(m.violationCount).toBe(0);
    expect(() => m.readU32(4093)).toThrow();
    expect(() => m.fill(4000, 200, 0)).toThrow();
    expect(m.violationCount).toBe(2);
    expect(m.violations[0]).toEqual({ kind: "read", addr: 4093, len: 4 });
  });
});

/** A device with a planted bug, for checking that the harness finds it. */
class PlantedDevice implements VirtioDevice {
  readonly deviceId = 63;
  readonly name = "planted";
  readonly features: U64 = { lo: 0, hi: 0 };
  readonly queueMaxSizes = [16];
  readonly configSize = 0;
  ctx: DeviceContext | null = null;
  queue: VirtQueue | null = null;
  constructor(readonly bug: "throws" | "out-of-range" | "ignores" | "keeps-going") {}
  readConfig(): number {
    return 0;
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.queue = ctx.queues[0] ?? null;
  }
  reset(): void {
    this.ctx = null;
    this.queue = null;
  }
  onQueueNotify(q: number): void {
    const ctx = this.ctx;
    const vq = ctx?.queues[q];
    if (!ctx || !vq) return;
    if (this.bug === "throws") throw new TypeError("planted host bug");
    if (this.bug === "ignores") return;
    if (this.bug === "out-of-range") ctx.memory.readU32(ctx.memory.size - 2);
    for (let c = vq.pop(); c; c = vq.pop()) vq.addUsed(c.head, 0);
    if (vq.flushUsed()) ctx.interrupt.signalQueue(q);
  }
  /**
   * A host-side path that ignores DEVICE_NEEDS_RESET: completes a late request on the queue it
   * kept from activation (only the "keeps-going" device has such a path).
   */
  hostPoke(): void {
    const vq = this.queue;
    if (this.bug !== "keeps-going" || !vq) return;
    vq.addUsed(0, 0);
    vq.flushUsed();
  }
  save(): null {
    return null;
  }
  restore(): void {}
}

function planted(bug: PlantedDevice["bug"]): FuzzDeviceFactory {
  return {
    name: `planted-${bug}`,
    create() {
      const device = new PlantedDevice(bug);
      return {
        device,
        consumes: (q) => q === 0,
        request: (rng) => ({ readable: [rng.bytes(rng.int(32))], writable: [rng.int(64)], mustFail: false }),
        hostEvent: () => device.hostPoke(),
        settle: () => true,
        busy: () => false,
      };
    },
  };
}

describe("the harness finds planted bugs", () => {
  for (const [bug, kind] of [
    ["throws", "escape"],
    ["out-of-range", "out-of-range"],
    ["ignores", "needs-reset-missing"],
    ["keeps-going", "processing-after-needs-reset"],
  ] as const) {
    it(`a device that ${bug}: ${kind}`, async () => {
      const failures = await runDeviceCases(planted(bug), 99, 1234, 0, 400, emptyStats());
      expect(failures.map((f) => f.kind)).toContain(kind);
      const f = failures.find((x) => x.kind === kind)!;
      expect(f.seed).toBe(1234);
      expect(f.trace.length).toBeGreaterThan(0);
    });
  }
});

describe("every shipped device survives a short run", () => {
  for (const d of FUZZ_DEVICES) {
    it(`${d.name}: 500 cases, no escapes`, async () => {
      const stats = emptyStats();
      const failures = await runDeviceCases(d, FUZZ_DEVICES.indexOf(d), 99, 0, 500, stats);
      expect(failures).toEqual([]);
      expect(stats.cases).toBe(500);
      expect(stats.needsResetChecked).toBeGreaterThan(0);
      expect(stats.neighbourRequests).toBe(500);
    });
  }

  it("replays a case exactly (same failures, same trace) from its seed", async () => {
    const a = await runDeviceCases(planted("ignores"), 99, 77, 0, 300, emptyStats());
    const first = a[0]!;
    const b = await runDeviceCases(
      planted("ignores"),
      99,
      77,
      first.caseIndex,
      first.caseIndex + 1,
      emptyStats(),
    );
    expect(b.find((f) => f.caseIndex === first.caseIndex)).toEqual(first);
  });
});

describe("regressions found by the fuzzer", () => {
  it("console: host input after DEVICE_NEEDS_RESET takes no receive buffer", () => {
    const backend = new MemoryConsole();
    const device = new VirtioConsole({ ports: [{ backend }], log: () => {} });
    const rig = createPciTestRig(device);
    const [rx, tx] = rig.driver.bringUp();
    const buf = rig.driver.dma.alloc(64);
    rx!.queue.add([{ addr: buf, len: 64, write: true }]);
    rig.driver.kick(0);
    // A device-writable buffer in the transmitq: a guest error.
    tx!.queue.add([{ addr: buf, len: 8, write: true }]);
    rig.driver.kick(1);
    expect(rig.transport.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    backend.send("after the error");
    expect(rx!.queue.getUsed()).toBeNull();
  });

  it("blk: an asynchronous completion after DEVICE_NEEDS_RESET uses no buffer", async () => {
    const backend = new ManualBackend(new MemoryDisk(64 * 1024));
    const device = new VirtioBlk({ backend, queues: 2 });
    const rig = createPciTestRig(device);
    const [q0, q1] = rig.driver.bringUp();
    const hdr = rig.driver.dma.alloc(16);
    rig.memory.writeFrom(hdr, blkHeader(0, 0));
    const data = rig.driver.dma.alloc(513);
    q0!.queue.add([
      { addr: hdr, len: 16, write: false },
      { addr: data, len: 513, write: true },
    ]);
    rig.driver.kick(0);
    expect(backend.pending).toHaveLength(1);
    // No device-writable byte for the status on queue 1: a guest error.
    q1!.queue.add([{ addr: hdr, len: 16, write: false }]);
    rig.driver.kick(1);
    expect(rig.transport.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    backend.releaseAt(0);
    await device.drain();
    await Promise.resolve();
    expect(q0!.queue.getUsed()).toBeNull();
    expect(device.stats.staleCompletions).toBe(1);
  });

  it("balloon: a stats buffer held across a queue reset of the stats queue is dropped", () => {
    const device = new VirtioBalloon({ freePageReporting: false });
    const rig = createPciTestRig(device);
    rig.driver.init([VIRTIO_BALLOON_F_STATS_VQ, VIRTIO_F_RING_RESET]);
    for (let i = 0; i < 3; i++) rig.driver.setupQueue(i, 16);
    rig.driver.driverOk();
    const stats = rig.driver.queues[2]!;
    const buf = rig.driver.dma.alloc(20);
    stats.queue.add([{ addr: buf, len: 10, write: false }]);
    stats.queue.add([{ addr: buf + 10, len: 10, write: false }]);
    rig.driver.kick(2);
    // The device gave the first buffer back and holds the second (head 1). Reset the queue and
    // enable it again with one entry: head 1 means nothing on the new queue.
    rig.driver.writeCommon(22, 2, 2);
    rig.driver.writeCommon(58, 2, 1);
    rig.driver.setupQueue(2, 1);
    expect(() => device.requestStats()).not.toThrow();
    expect(device.requestStats()).toBe(false);
    expect(rig.transport.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).toBe(0);
  });

  it("transport: re-enabling a reset queue does not revive a device that needs a reset", () => {
    const backend = new MemoryConsole();
    const device = new VirtioConsole({ ports: [{ backend }], log: () => {} });
    const rig = createPciTestRig(device);
    rig.driver.init([VIRTIO_F_RING_RESET]);
    rig.driver.setupQueue(0, 8);
    const tx = rig.driver.setupQueue(1, 8);
    rig.driver.driverOk();
    const buf = rig.driver.dma.alloc(64);
    tx.queue.add([{ addr: buf, len: 8, write: true }]);
    rig.driver.kick(1);
    expect(rig.transport.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    // queue_reset and enable queue 0 again, post a receive buffer, then host input arrives.
    rig.driver.writeCommon(22, 2, 0);
    rig.driver.writeCommon(58, 2, 1);
    const rx = rig.driver.setupQueue(0, 8);
    rx.queue.add([{ addr: buf, len: 64, write: true }]);
    rig.driver.kick(0);
    backend.send("after the error");
    expect(rig.transport.queue(0)).toBeNull();
    expect(rx.queue.getUsed()).toBeNull();
  });

  it("net: a frame longer than 64 KiB from the network is dropped, not copied past the scratch buffer", () => {
    let sink: FrameSink | null = null;
    const device = new VirtioNet({
      mac: "02:00:00:00:00:01",
      backend: {
        connect(rx) {
          sink = rx;
          return { acceptsPartialChecksum: true, deliver: () => true };
        },
        disconnect() {},
      },
    });
    const rig = createPciTestRig(device);
    rig.driver.bringUp([]);
    const frame = new Uint8Array(70_000).fill(0xff);
    const deliver = (sink as FrameSink | null)!.deliver;
    expect(() => deliver(frame, { start: 14, offset: 6 })).not.toThrow();
    expect(deliver(frame, null)).toBe(false);
    expect(device.counters.rxDroppedTooLarge).toBe(2);
  });

  it("transport: DRIVER_OK over a queue layout outside memory sends the configuration change notification", () => {
    const device = new VirtioConsole({ ports: [{ backend: new MemoryConsole() }], log: () => {} });
    const rig = createPciTestRig(device, { interrupts: "intx" });
    rig.driver.init([]);
    rig.driver.setupQueue(0, 8);
    rig.driver.writeCommon(22, 2, 1); // queue_select 1
    rig.driver.writeCommon(32, 4, 0xfff_fff0); // queue_desc far outside guest memory
    rig.driver.writeCommon(28, 2, 1); // queue_enable
    rig.driver.driverOk();
    expect(rig.transport.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(rig.intx.level).toBe(true);
    expect(rig.driver.takeInterrupts().config).toBe(true);
  });
});
