import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET, VIRTIO_F_RING_RESET } from "../device.js";
import { VIRTIO_PCI_COMMON_Q_RESET, VIRTIO_PCI_COMMON_Q_SELECT } from "../transport/pci/regs.js";
import { MemoryDisk } from "./backend.js";
import {
  BlkConfig,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from "./constants.js";
import type { BlkRawRequest } from "./driver.js";
import { FailingBackend, ManualBackend } from "./test-backends.js";
import {
  BLK_DRIVER_FEATURES,
  createBlkRig,
  flushReq,
  getIdReq,
  pattern,
  rangesReq,
  readReq,
  writeReq,
} from "./test-helpers.js";

const SECTORS = 512;
const CAP = SECTORS * 512;

/** Index of the first byte that differs (or the shorter length), -1 when equal. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("virtio-blk basics", () => {
  it("reads what is on the disk, writes land, used length covers the writable part, one interrupt", () => {
    const disk = new MemoryDisk(pattern(CAP, 3));
    const { blk, rig } = createBlkRig(disk, { id: "virtkit-disk-0" });
    const before = disk.bytes.slice();
    blk.submit(0, readReq(10, 3));
    blk.submit(0, writeReq(100, pattern(1024, 9)));
    blk.submit(0, getIdReq());
    blk.kick(0);
    expect(rig.driver.takeInterrupts()).toEqual({ queues: [0], config: false });
    const [r, w, id] = blk.collect(0);
    expect(r!.status).toBe(VIRTIO_BLK_S_OK);
    expect(r!.len).toBe(3 * 512 + 1);
    expect(r!.data).toEqual(before.subarray(10 * 512, 13 * 512));
    expect(w!.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(100 * 512, 102 * 512)).toEqual(pattern(1024, 9));
    expect(new TextDecoder().decode(id!.data)).toBe("virtkit-disk-0\0\0\0\0\0\0");
  });

  it("offers its configuration: capacity, seg_max, blk_size, num_queues, topology, writeback", () => {
    const { rig } = createBlkRig(new MemoryDisk(CAP), {
      queues: 2,
      queueSize: 128,
      sizeMax: 65536,
      topology: { physicalBlockExp: 3, alignmentOffset: 0, minIoSize: 8, optIoSize: 64 },
    });
    const d = rig.driver;
    expect(d.readConfig(BlkConfig.capacity, 4)).toBe(SECTORS);
    expect(d.readConfig(BlkConfig.capacity + 4, 4)).toBe(0);
    expect(d.readConfig(BlkConfig.size_max, 4)).toBe(65536);
    expect(d.readConfig(BlkConfig.seg_max, 4)).toBe(126);
    expect(d.readConfig(BlkConfig.blk_size, 4)).toBe(512);
    expect(d.readConfig(BlkConfig.physical_block_exp, 1)).toBe(3);
    expect(d.readConfig(BlkConfig.min_io_size, 2)).toBe(8);
    expect(d.readConfig(BlkConfig.opt_io_size, 4)).toBe(64);
    expect(d.readConfig(BlkConfig.num_queues, 2)).toBe(2);
    expect(d.readConfig(BlkConfig.writeback, 1)).toBe(1);
    expect(d.readConfig(BlkConfig.max_discard_seg, 4)).toBe(1);
    expect(d.numQueues).toBe(2);
  });

  it("a failing backend completes the request with IOERR and the device goes on", () => {
    const inner = new MemoryDisk(CAP);
    let failNext = true;
    const backend = new FailingBackend(inner, (kind) => {
      if (kind === "write" && failNext) {
        failNext = false;
        return true;
      }
      return false;
    });
    const { blk, rig } = createBlkRig(backend);
    blk.submit(0, writeReq(0, pattern(512, 1)));
    blk.submit(0, writeReq(1, pattern(512, 2)));
    blk.kick(0);
    const [a, b] = blk.collect(0);
    expect(a!.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(b!.status).toBe(VIRTIO_BLK_S_OK);
    expect(inner.bytes.subarray(0, 512).every((x) => x === 0)).toBe(true);
    expect(inner.bytes.subarray(512, 1024)).toEqual(pattern(512, 2));
    expect(rig.driver.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).toBe(0);
  });

  it("a backend read that returns the wrong number of bytes completes with IOERR", () => {
    const inner = new MemoryDisk(CAP);
    const short = {
      capacity: CAP,
      readOnly: false,
      read: (o: number, l: number) => inner.read(o, l).subarray(0, l - 1),
      write: () => undefined,
      flush: () => undefined,
      discard: () => undefined,
      writeZeroes: () => undefined,
    };
    const { blk } = createBlkRig(short);
    blk.submit(0, readReq(0, 1));
    blk.kick(0);
    expect(blk.collect(0)[0]!.status).toBe(VIRTIO_BLK_S_IOERR);
  });

  it("a rejected asynchronous read gives IOERR and zeroes, not stale bytes, in the data part", async () => {
    const manual = new ManualBackend(new MemoryDisk(pattern(CAP, 5)));
    const { blk } = createBlkRig(manual);
    blk.submit(0, readReq(0, 2));
    blk.kick(0);
    expect(manual.pending).toHaveLength(1);
    manual.pending.pop()!.fail();
    await tick();
    const [c] = blk.collect(0);
    expect(c!.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(c!.len).toBe(1025);
    expect(c!.data.every((x) => x === 0)).toBe(true);
  });

  it("writethrough (writeback = 0 written by the driver) flushes every write before completing it", () => {
    const disk = new MemoryDisk(CAP);
    const { blk, rig, device } = createBlkRig(disk);
    rig.driver.writeConfig(BlkConfig.writeback, 1, 0);
    expect(device.writeback).toBe(0);
    blk.submit(0, writeReq(0, pattern(512, 1)));
    blk.submit(0, rangesReq(VIRTIO_BLK_T_WRITE_ZEROES, [{ sector: 4, count: 2 }]));
    blk.kick(0);
    expect(blk.collect(0).map((c) => c.status)).toEqual([0, 0]);
    expect(disk.flushes).toBe(2);
    // Back to writeback: no flush until the driver asks.
    rig.driver.writeConfig(BlkConfig.writeback, 1, 1);
    blk.submit(0, writeReq(0, pattern(512, 2)));
    blk.kick(0);
    blk.collect(0);
    expect(disk.flushes).toBe(2);
    blk.submit(0, flushReq());
    blk.kick(0);
    expect(blk.collect(0)[0]!.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.flushes).toBe(3);
  });

  it("without FLUSH and CONFIG_WCE negotiated, every write is made stable before it completes", () => {
    const disk = new MemoryDisk(CAP);
    const { blk } = createBlkRig(disk, {
      features: BLK_DRIVER_FEATURES.filter((b) => b !== VIRTIO_BLK_F_FLUSH && b !== VIRTIO_BLK_F_CONFIG_WCE),
    });
    blk.submit(0, writeReq(0, pattern(512, 1)));
    blk.kick(0);
    expect(blk.collect(0)[0]!.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.flushes).toBe(1);
  });

  it("secure erase zeroes the ranges and flushes", () => {
    const disk = new MemoryDisk(pattern(CAP, 8));
    const { blk } = createBlkRig(disk, { secureErase: { maxSeg: 2 } });
    blk.submit(
      0,
      rangesReq(VIRTIO_BLK_T_SECURE_ERASE, [
        { sector: 1, count: 1 },
        { sector: 7, count: 3 },
      ]),
    );
    blk.kick(0);
    expect(blk.collect(0)[0]!.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(512, 1024).every((x) => x === 0)).toBe(true);
    expect(disk.bytes.subarray(7 * 512, 10 * 512).every((x) => x === 0)).toBe(true);
    expect(disk.bytes.subarray(0, 512)).toEqual(pattern(CAP, 8).subarray(0, 512));
    expect(disk.flushes).toBe(1);
  });
});

describe("virtio-blk asynchronous completion", () => {
  it("requests on several queues are in flight together and complete in the backend's order", async () => {
    const manual = new ManualBackend(new MemoryDisk(pattern(CAP, 1)));
    const { blk, rig } = createBlkRig(manual, { queues: 2 });
    blk.submit(0, readReq(0, 1), 100);
    blk.submit(1, writeReq(8, pattern(512, 4)), 200);
    blk.submit(1, readReq(16, 1), 201);
    blk.kick(0);
    blk.kick(1);
    expect(manual.pending.map((p) => p.kind)).toEqual(["read", "write", "read"]);
    // The backend finishes queue 1's read first, then queue 0's read, then the write.
    manual.releaseAt(2);
    await tick();
    expect(rig.driver.takeInterrupts().queues).toEqual([1]);
    expect(blk.collect(1).map((c) => c.tag)).toEqual([201]);
    expect(blk.collect(0)).toEqual([]);
    manual.releaseAt(0);
    await tick();
    expect(blk.collect(0).map((c) => c.tag)).toEqual([100]);
    manual.releaseAt(0);
    await tick();
    expect(blk.collect(1).map((c) => [c.tag, c.status])).toEqual([[200, VIRTIO_BLK_S_OK]]);
  });

  it("a completion that arrives after a device reset is dropped, and the device works after re-init", async () => {
    const disk = new MemoryDisk(CAP);
    const manual = new ManualBackend(disk);
    const { blk, rig, device } = createBlkRig(manual);
    const vq = rig.driver.queues[0]!;
    blk.submit(0, writeReq(0, pattern(512, 1)));
    blk.submit(0, readReq(4, 1));
    blk.kick(0);
    expect(device.requestsInFlight).toBe(2);
    const usedIdx = () => rig.memory.readU16(vq.queue.used + 2);
    rig.driver.reset();
    manual.releaseAt(0);
    manual.releaseAt(0);
    await device.drain();
    await tick();
    expect(device.stats.staleCompletions).toBe(2);
    expect(usedIdx()).toBe(0);
    // A fresh driver instance on the same device works.
    rig.driver.bringUp(BLK_DRIVER_FEATURES);
    const { BlkTestDriver } = await import("./driver.js");
    const blk2 = new BlkTestDriver(rig.driver, { slots: 4, slotSize: 4096 });
    blk2.submit(0, readReq(0, 1));
    blk2.kick(0);
    manual.releaseAt(0);
    await tick();
    const [c] = blk2.collect(0);
    expect(c!.status).toBe(VIRTIO_BLK_S_OK);
    // The write that was in flight at reset did reach the backend (it was running), which is
    // what a real disk does too; only its completion was dropped.
    expect(c!.data).toEqual(pattern(512, 1));
  });

  it("a completion that arrives after a queue reset (VIRTIO_F_RING_RESET) is dropped", async () => {
    const manual = new ManualBackend(new MemoryDisk(CAP));
    const { blk, rig, device } = createBlkRig(manual, {
      queues: 2,
      features: [...BLK_DRIVER_FEATURES, VIRTIO_F_RING_RESET],
    });
    blk.submit(0, readReq(0, 1));
    blk.submit(1, readReq(0, 1));
    blk.kick(0);
    blk.kick(1);
    rig.driver.writeCommon(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    rig.driver.writeCommon(VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    manual.releaseAt(0);
    manual.releaseAt(0);
    await tick();
    expect(device.stats.staleCompletions).toBe(1);
    expect(blk.collect(1)).toHaveLength(1);
  });

  it("save refuses while requests are in flight and works once drained", async () => {
    const manual = new ManualBackend(new MemoryDisk(CAP));
    const { blk, device } = createBlkRig(manual);
    blk.submit(0, readReq(0, 1));
    blk.kick(0);
    expect(() => device.save()).toThrow(/in flight/);
    manual.releaseAt(0);
    await device.drain();
    expect(device.save()).toEqual({ writeback: 1 });
  });
});

// ---- model-based property test ------------------------------------------------------------

type Op =
  | { kind: "read"; sector: number; count: number }
  | { kind: "write"; sector: number; count: number; seed: number }
  | { kind: "flush" }
  | { kind: "discard"; sector: number; count: number }
  | { kind: "wz"; sector: number; count: number; unmap: boolean };

interface Req {
  op: Op;
  queue: number;
  readCuts: number[];
  writeCuts: number[];
  indirect: boolean;
}

const range = fc
  .record({ sector: fc.integer({ min: 0, max: SECTORS - 1 }), count: fc.integer({ min: 0, max: 12 }) })
  .map(({ sector, count }) => ({ sector: Math.min(sector, SECTORS - count), count }));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: range.map((r) => ({ kind: "read" as const, ...r })) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(range, fc.integer({ min: 1, max: 1 << 30 }))
      .map(([r, seed]) => ({ kind: "write" as const, ...r, count: Math.max(1, r.count), seed })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "flush" as const }) },
  { weight: 1, arbitrary: range.map((r) => ({ kind: "discard" as const, ...r })) },
  {
    weight: 1,
    arbitrary: fc.tuple(range, fc.boolean()).map(([r, unmap]) => ({ kind: "wz" as const, ...r, unmap })),
  },
);

const cutsArb = fc.array(fc.integer({ min: 0, max: 1100 }), { maxLength: 3 });
const reqArb: fc.Arbitrary<Req> = fc.record({
  op: opArb,
  queue: fc.integer({ min: 0, max: 2 }),
  readCuts: cutsArb,
  writeCuts: cutsArb,
  indirect: fc.boolean(),
});

function toRaw(r: Req): BlkRawRequest {
  const layout = { readCuts: r.readCuts, writeCuts: r.writeCuts, indirect: r.indirect };
  const op = r.op;
  switch (op.kind) {
    case "read":
      return readReq(op.sector, op.count, layout);
    case "write":
      return writeReq(op.sector, pattern(op.count * 512, op.seed), layout);
    case "flush":
      return flushReq(layout);
    case "discard":
      return rangesReq(VIRTIO_BLK_T_DISCARD, [{ sector: op.sector, count: op.count }], layout);
    case "wz":
      return rangesReq(
        VIRTIO_BLK_T_WRITE_ZEROES,
        [{ sector: op.sector, count: op.count, flags: op.unmap ? 1 : 0 }],
        layout,
      );
  }
}

/** Drops requests of a batch that would race with another one (overlapping write ranges). */
function nonConflicting(batch: Req[]): Req[] {
  const claimed: { s: number; e: number; write: boolean }[] = [];
  const out: Req[] = [];
  for (const r of batch) {
    if (r.op.kind === "flush") {
      out.push(r);
      continue;
    }
    const s = r.op.sector;
    const e = s + r.op.count;
    const write = r.op.kind !== "read";
    if (claimed.some((c) => c.s < e && s < c.e && (c.write || write))) continue;
    claimed.push({ s, e, write });
    out.push(r);
  }
  return out;
}

function applyToModel(model: Uint8Array, op: Op): void {
  if (op.kind === "write") model.set(pattern(op.count * 512, op.seed), op.sector * 512);
  else if (op.kind === "discard" || op.kind === "wz")
    model.fill(0, op.sector * 512, (op.sector + op.count) * 512);
}

describe("virtio-blk against a model disk", () => {
  for (const mode of ["sync", "async"] as const) {
    it(`random request sequences on 3 queues, random segment layouts, ${mode} backend: the disk equals the model`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(reqArb, { minLength: 1, maxLength: 10 }), { minLength: 1, maxLength: 6 }),
          fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
          async (batches, picks) => {
            const initial = pattern(CAP, 77);
            const disk = new MemoryDisk(initial.slice());
            const manual = new ManualBackend(disk);
            const { blk, rig } = createBlkRig(mode === "async" ? manual : disk, {
              queues: 3,
              queueSize: 64,
              slots: 40,
              slotSize: 16 * 1024,
              interrupts: "intx",
            });
            const model = initial.slice();
            let pick = 0;
            for (const raw of batches) {
              const batch = nonConflicting(raw);
              const tags = new Map<number, Req>();
              batch.forEach((r, i) => {
                blk.submit(r.queue, toRaw(r), i);
                tags.set(i, r);
              });
              for (const q of [2, 0, 1]) rig.driver.notify(q);
              // Release the backend's operations in a random order until everything completed.
              while (manual.pending.length > 0) {
                manual.releaseAt(picks[pick++ % picks.length]! % manual.pending.length);
                if (pick % 3 === 0) await tick();
              }
              await tick();
              let done = 0;
              for (const q of [0, 1, 2]) {
                for (const c of blk.collect(q)) {
                  done++;
                  const r = tags.get(c.tag)!;
                  expect(c.status).toBe(VIRTIO_BLK_S_OK);
                  if (r.op.kind === "read") {
                    const s = r.op.sector * 512;
                    expect(firstDifference(c.data, model.subarray(s, s + r.op.count * 512))).toBe(-1);
                  }
                }
              }
              expect(done).toBe(batch.length);
              for (const r of batch) applyToModel(model, r.op);
              expect(firstDifference(disk.bytes, model)).toBe(-1);
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  }
});
