import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../common/errors.js";
import { u64TestBit } from "../../../common/u64.js";
import type { BlockBackend } from "../../../devices/blk/backend.js";
import {
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from "../../../devices/blk/constants.js";
import type { BlkCompletion, BlkRawRequest } from "../../../devices/blk/driver.js";
import {
  type BlkRig,
  createBlkRig,
  flushReq,
  pattern,
  rangesReq,
  readReq,
  writeReq,
} from "../../../devices/blk/test-helpers.js";
import { CowDisk } from "./cow.js";
import { RawFileDisk } from "./raw.js";

const dir = mkdtempSync(join(tmpdir(), "virtkit-blk-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (name: string) => join(dir, `${fileNo++}-${name}`);

const SECTORS = 256;
const CAP = SECTORS * 512;

/** Submits one request, kicks, and waits for its completion (the file backends are asynchronous). */
async function run(r: BlkRig, req: BlkRawRequest, q = 0): Promise<BlkCompletion> {
  r.blk.submit(q, req);
  r.blk.kick(q);
  for (let i = 0; i < 5000; i++) {
    const got = r.blk.collect(q);
    if (got.length > 0) return got[0]!;
    await new Promise<void>((res) => (i < 100 ? setImmediate(res) : setTimeout(res, 1)));
  }
  throw new Error("request never completed");
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

describe("RawFileDisk start-up errors", () => {
  it("a missing file is a ConfigError naming the file", async () => {
    const p = join(dir, "nope.img");
    await expect(RawFileDisk.open(p)).rejects.toThrow(ConfigError);
    await expect(RawFileDisk.open(p)).rejects.toThrow(`disk image ${p}: cannot open: no such file`);
  });

  it("a directory is refused", async () => {
    const p = tmp("adir");
    mkdirSync(p);
    await expect(RawFileDisk.open(p, { readOnly: true })).rejects.toThrow(/disk image .*adir/);
  });

  it.skipIf(process.getuid?.() === 0)("an unreadable file is refused at open", async () => {
    const p = tmp("secret.img");
    writeFileSync(p, new Uint8Array(512));
    chmodSync(p, 0o000);
    await expect(RawFileDisk.open(p)).rejects.toThrow(/permission denied/);
  });

  it("a size that is not whole sectors is refused unless truncation is asked for", async () => {
    const p = tmp("odd.img");
    writeFileSync(p, new Uint8Array(1000));
    await expect(RawFileDisk.open(p)).rejects.toThrow(/1000 is not a multiple of 512/);
    const d = await RawFileDisk.open(p, { partialSector: "truncate" });
    expect(d.capacity).toBe(512);
    await d.close();
  });
});

describe("RawFileDisk behind virtio-blk", () => {
  it("what a FLUSH acknowledged was fsynced and is in the file when it is reopened", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({
              kind: fc.constant("write" as const),
              sector: fc.integer({ min: 0, max: SECTORS - 8 }),
              count: fc.integer({ min: 1, max: 8 }),
              seed: fc.nat(),
              cuts: fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 3 }),
            }),
            fc.record({ kind: fc.constant("flush" as const) }),
            fc.record({
              kind: fc.constant("zero" as const),
              sector: fc.integer({ min: 0, max: SECTORS - 8 }),
              count: fc.integer({ min: 0, max: 8 }),
            }),
          ),
          { minLength: 1, maxLength: 12 },
        ),
        async (ops) => {
          const p = tmp("disk.img");
          writeFileSync(p, pattern(CAP, 1));
          const model = pattern(CAP, 1);
          const disk = await RawFileDisk.open(p);
          const r = createBlkRig(disk, { slots: 8, slotSize: 8192, memorySize: 4 << 20 });
          let flushes = 0;
          let flushedModel = model.slice();
          for (const op of ops) {
            if (op.kind === "write") {
              const data = pattern(op.count * 512, op.seed);
              const c = await run(r, writeReq(op.sector, data, { readCuts: op.cuts }));
              expect(c.status).toBe(VIRTIO_BLK_S_OK);
              model.set(data, op.sector * 512);
            } else if (op.kind === "zero") {
              const c = await run(
                r,
                rangesReq(VIRTIO_BLK_T_WRITE_ZEROES, [{ sector: op.sector, count: op.count }]),
              );
              expect(c.status).toBe(VIRTIO_BLK_S_OK);
              model.fill(0, op.sector * 512, (op.sector + op.count) * 512);
            } else {
              const c = await run(r, flushReq());
              expect(c.status).toBe(VIRTIO_BLK_S_OK);
              flushes++;
              // The fsync finished before the guest saw the completion.
              expect(disk.syncs).toBe(flushes);
              flushedModel = model.slice();
              expect(same(readFileSync(p), flushedModel)).toBe(true);
            }
          }
          await run(r, flushReq());
          await disk.close();
          const again = await RawFileDisk.open(p);
          const r2 = createBlkRig(again, { slots: 4, slotSize: CAP + 64, memorySize: 4 << 20 });
          const all = await run(r2, readReq(0, SECTORS));
          expect(all.status).toBe(VIRTIO_BLK_S_OK);
          expect(same(all.data, model)).toBe(true);
          await again.close();
        },
      ),
      { numRuns: 12 },
    );
  });

  it("a read-only image offers VIRTIO_BLK_F_RO, fails writes with IOERR and stays unchanged", async () => {
    const p = tmp("ro.img");
    writeFileSync(p, pattern(CAP, 4));
    const disk = await RawFileDisk.open(p, { readOnly: true });
    const r = createBlkRig(disk, { slots: 4, slotSize: 8192, memorySize: 4 << 20 });
    expect(u64TestBit(r.rig.driver.features, VIRTIO_BLK_F_RO)).toBe(true);
    expect((await run(r, writeReq(0, pattern(512, 9)))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await run(r, rangesReq(VIRTIO_BLK_T_DISCARD, [{ sector: 0, count: 1 }]))).status).toBe(
      VIRTIO_BLK_S_IOERR,
    );
    const rd = await run(r, readReq(2, 2));
    expect(rd.status).toBe(VIRTIO_BLK_S_OK);
    expect(same(rd.data, pattern(CAP, 4).subarray(1024, 2048))).toBe(true);
    expect((await run(r, flushReq())).status).toBe(VIRTIO_BLK_S_OK);
    await disk.close();
    expect(same(readFileSync(p), pattern(CAP, 4))).toBe(true);
  });
});

describe("CowDisk", () => {
  it("guest writes land in the overlay, reads see them, the base file never changes", async () => {
    const p = tmp("base.img");
    writeFileSync(p, pattern(CAP, 2));
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            kind: fc.constantFrom("write", "zero", "discard", "read"),
            sector: fc.integer({ min: 0, max: SECTORS - 1 }),
            count: fc.integer({ min: 0, max: 24 }),
            seed: fc.nat(),
          }),
          { minLength: 1, maxLength: 16 },
        ),
        fc.boolean(),
        async (ops, concurrent) => {
          const cow = await CowDisk.open(p, { clusterSize: 4096 });
          const r = createBlkRig(cow, {
            slots: 20,
            slotSize: 24 * 512 + 64,
            memorySize: 4 << 20,
            discard: { maxSectors: 64 },
            writeZeroes: { maxSectors: 64 },
          });
          const model = pattern(CAP, 2);
          const fix = (o: (typeof ops)[number]) => ({
            ...o,
            sector: Math.min(o.sector, SECTORS - o.count),
            count: o.kind === "write" ? Math.max(1, o.count) : o.count,
          });
          if (concurrent) {
            // All writes at once, 512-byte pieces into shared clusters, non-overlapping sectors.
            const used = new Set<number>();
            for (const o of ops.map(fix)) {
              if (o.kind !== "write" || used.has(o.sector)) continue;
              used.add(o.sector);
              const data = pattern(512, o.seed);
              r.blk.submit(0, writeReq(o.sector, data));
              model.set(data, o.sector * 512);
            }
            r.blk.kick(0);
            for (let i = 0; i < 5000 && r.blk.pending(0) > 0; i++) {
              for (const c of r.blk.collect(0)) expect(c.status).toBe(VIRTIO_BLK_S_OK);
              await new Promise<void>((res) => (i < 100 ? setImmediate(res) : setTimeout(res, 1)));
            }
            expect(r.blk.pending(0)).toBe(0);
          } else {
            for (const o of ops.map(fix)) {
              if (o.kind === "write") {
                const data = pattern(o.count * 512, o.seed);
                expect((await run(r, writeReq(o.sector, data))).status).toBe(VIRTIO_BLK_S_OK);
                model.set(data, o.sector * 512);
              } else if (o.kind === "read") {
                const c = await run(r, readReq(o.sector, o.count));
                expect(same(c.data, model.subarray(o.sector * 512, (o.sector + o.count) * 512))).toBe(true);
              } else {
                const type = o.kind === "zero" ? VIRTIO_BLK_T_WRITE_ZEROES : VIRTIO_BLK_T_DISCARD;
                expect((await run(r, rangesReq(type, [{ sector: o.sector, count: o.count }]))).status).toBe(
                  VIRTIO_BLK_S_OK,
                );
                model.fill(0, o.sector * 512, (o.sector + o.count) * 512);
              }
            }
          }
          const all = await readAll(cow);
          expect(same(all, model)).toBe(true);
          await cow.close();
          expect(same(readFileSync(p), pattern(CAP, 2))).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  });

  it("refuses a cluster size that is not a power of two", () => {
    const base: BlockBackend = new (class {
      capacity = 4096;
      readOnly = true;
      read = () => new Uint8Array(0);
      write = () => undefined;
      flush = () => undefined;
      discard = () => undefined;
      writeZeroes = () => undefined;
    })();
    expect(() => new CowDisk(base, { clusterSize: 3000 })).toThrow(ConfigError);
  });
});

async function readAll(b: BlockBackend): Promise<Uint8Array> {
  return await b.read(0, b.capacity);
}
