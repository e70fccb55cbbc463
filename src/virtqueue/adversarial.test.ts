import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory, type GuestMemory, RecordingMemory } from "../common/memory.js";
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "./constants.js";
import { QueueError } from "./errors.js";
import { VirtQueue } from "./queue.js";

/**
 * A hostile driver: random bytes in the descriptor table, the available ring and an indirect
 * area. The device side must raise nothing but QueueError and must never reach outside guest
 * memory (every access goes through RecordingMemory).
 */

const MEM = 0x4000;
const SIZE = 8;
const DESC = 0x100;
const AVAIL = 0x200;
const USED = 0x300;
const INDIRECT = 0x400;

/** A descriptor with fields drawn so that both valid and invalid values are common. */
const descArb = fc.record({
  addrLo: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: MEM - 64 }) },
    fc.integer({ min: MEM - 64, max: MEM + 64 }),
    fc.integer({ min: 0, max: 0xffff_ffff }),
    fc.constant(INDIRECT),
  ),
  addrHi: fc.oneof(
    { weight: 5, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
  ),
  len: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 64 }) },
    fc.constantFrom(0, 15, 16, 32, 48, 0x10_0000, 0xffff_fff0),
    fc.integer({ min: 0, max: 0xffff_ffff }),
  ),
  flags: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(0, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, 3) },
    fc.integer({ min: 0, max: 7 }),
    fc.integer({ min: 0, max: 0xffff }),
  ),
  next: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: SIZE - 1 }) },
    fc.integer({ min: 0, max: 0xffff }),
  ),
});

interface RawDesc {
  addrLo: number;
  addrHi: number;
  len: number;
  flags: number;
  next: number;
}

function writeDesc(m: FlatMemory, base: number, i: number, d: RawDesc): void {
  const o = base + 16 * i;
  m.writeU32(o, d.addrLo);
  m.writeU32(o + 4, d.addrHi);
  m.writeU32(o + 8, d.len);
  m.writeU16(o + 12, d.flags);
  m.writeU16(o + 14, d.next);
}

describe("hostile rings and descriptors", () => {
  it("give only QueueErrors and never touch memory outside the guest", () => {
    const codes = new Set<string>();
    let chains = 0;
    fc.assert(
      fc.property(
        fc.array(descArb, { minLength: SIZE, maxLength: SIZE }),
        fc.array(descArb, { minLength: 4, maxLength: 4 }),
        fc.array(fc.oneof(fc.integer({ min: 0, max: SIZE + 1 }), fc.integer({ min: 0, max: 0xffff })), {
          minLength: SIZE,
          maxLength: SIZE,
        }),
        fc.oneof(fc.integer({ min: 0, max: SIZE + 2 }), fc.integer({ min: 0, max: 0xffff })),
        fc.boolean(),
        fc.boolean(),
        (descs, indirect, ring, availIdx, eventIdx, negotiated) => {
          const flat = new FlatMemory(MEM);
          descs.forEach((d, i) => {
            writeDesc(flat, DESC, i, d);
          });
          indirect.forEach((d, i) => {
            writeDesc(flat, INDIRECT, i, d);
          });
          ring.forEach((h, i) => {
            flat.writeU16(AVAIL + 4 + 2 * i, h);
          });
          flat.writeU16(AVAIL + 2, availIdx);
          const mem = new RecordingMemory(flat);
          const vq = new VirtQueue(mem, {
            size: SIZE,
            desc: DESC,
            avail: AVAIL,
            used: USED,
            eventIdx,
            indirect: negotiated,
          });
          let popped = 0;
          for (let k = 0; k < SIZE + 2; k++) {
            try {
              const c = vq.pop();
              if (c === null) break;
              popped++;
              chains++;
              // Reading and writing the whole chain stays inside the guest.
              const r = c.reader();
              expect(r.readAll().length).toBe(c.readableLength);
              const w = c.writer();
              if (c.writableLength <= 0x10000) w.fill(c.writableLength, 0xee);
              vq.addUsed(c.head, w.bytesWritten);
              expect(c.readableLength + c.writableLength).toBeLessThanOrEqual(0xffff_ffff);
              for (let i = 0; i < c.length; i++) {
                expect(flat.inRange(c.addrs[i]!, c.lens[i]!)).toBe(true);
                if (i > 0 && !c.isWritable(i)) expect(c.isWritable(i - 1)).toBe(false);
              }
            } catch (e) {
              expect(e).toBeInstanceOf(QueueError);
              codes.add((e as QueueError).code);
              break;
            }
          }
          vq.flushUsed();
          expect(popped).toBeLessThanOrEqual(SIZE);
          expect(mem.outOfRange()).toEqual([]);
        },
      ),
      { numRuns: 2000 },
    );
    // The generator reaches both valid chains and most of the defects.
    expect(chains).toBeGreaterThan(100);
    expect(codes.size).toBeGreaterThanOrEqual(9);
  });
});

describe("each defect has its own typed error", () => {
  const setup = (indirect = true) => {
    const m = new FlatMemory(MEM);
    const vq = new VirtQueue(m, {
      size: SIZE,
      desc: DESC,
      avail: AVAIL,
      used: USED,
      eventIdx: false,
      indirect,
    });
    const d = (t: number, i: number, addr: number, len: number, flags: number, next = 0, hi = 0) =>
      writeDesc(m, t, i, { addrLo: addr, addrHi: hi, len, flags, next });
    const offer = (...heads: number[]) => {
      heads.forEach((h, i) => {
        m.writeU16(AVAIL + 4 + 2 * i, h);
      });
      m.writeU16(AVAIL + 2, heads.length);
    };
    const code = () => {
      try {
        vq.pop();
      } catch (e) {
        expect(e).toBeInstanceOf(QueueError);
        return { code: (e as QueueError).code, message: (e as QueueError).message };
      }
      return { code: "none", message: "" };
    };
    return { m, vq, d, offer, code };
  };

  it("loop", () => {
    const s = setup();
    s.d(DESC, 0, 0x1000, 4, VIRTQ_DESC_F_NEXT, 1);
    s.d(DESC, 1, 0x1000, 4, VIRTQ_DESC_F_NEXT, 0);
    s.offer(0);
    expect(s.code()).toMatchObject({ code: "CHAIN_TOO_LONG", message: expect.stringMatching(/more than 8/) });
  });
  it("loop inside an indirect table", () => {
    const s = setup();
    s.d(DESC, 0, INDIRECT, 32, VIRTQ_DESC_F_INDIRECT);
    s.d(INDIRECT, 0, 0x1000, 4, VIRTQ_DESC_F_NEXT, 1);
    s.d(INDIRECT, 1, 0x1000, 4, VIRTQ_DESC_F_NEXT, 0);
    s.offer(0);
    expect(s.code()).toMatchObject({ code: "CHAIN_TOO_LONG", message: expect.stringMatching(/indirect/) });
  });
  it("address high half or range outside memory", () => {
    const s = setup();
    s.d(DESC, 0, 0x1000, 4, 0, 0, 1);
    s.offer(0);
    expect(s.code()).toMatchObject({
      code: "ADDR_OUT_OF_RANGE",
      message: expect.stringMatching(/0x100001000\+0x4/),
    });
    s.d(DESC, 0, MEM - 2, 4, 0);
    expect(s.code().code).toBe("ADDR_OUT_OF_RANGE");
    s.d(DESC, 0, 0xffff_fffc, 8, 0);
    expect(s.code().code).toBe("ADDR_OUT_OF_RANGE");
  });
  it("nested indirect", () => {
    const s = setup();
    s.d(DESC, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT);
    s.d(INDIRECT, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT);
    s.offer(0);
    expect(s.code().code).toBe("NESTED_INDIRECT");
  });
  it("indirect table length 0 or not a multiple of 16", () => {
    const s = setup();
    s.d(DESC, 0, INDIRECT, 0, VIRTQ_DESC_F_INDIRECT);
    s.offer(0);
    expect(s.code()).toMatchObject({
      code: "INDIRECT_BAD_LENGTH",
      message: expect.stringMatching(/length 0/),
    });
    s.d(DESC, 0, INDIRECT, 24, VIRTQ_DESC_F_INDIRECT);
    expect(s.code()).toMatchObject({
      code: "INDIRECT_BAD_LENGTH",
      message: expect.stringMatching(/length 24/),
    });
  });
  it("indirect when not negotiated, indirect with next, indirect table outside memory", () => {
    const s = setup(false);
    s.d(DESC, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT);
    s.offer(0);
    expect(s.code().code).toBe("INDIRECT_NOT_NEGOTIATED");
    const t = setup();
    t.d(DESC, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    t.offer(0);
    expect(t.code().code).toBe("INDIRECT_WITH_NEXT");
    t.d(DESC, 0, MEM - 16, 32, VIRTQ_DESC_F_INDIRECT);
    expect(t.code().code).toBe("ADDR_OUT_OF_RANGE");
  });
  it("readable after writable, also across the indirect boundary", () => {
    const s = setup();
    s.d(DESC, 0, 0x1000, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    s.d(DESC, 1, 0x1000, 4, 0);
    s.offer(0);
    expect(s.code().code).toBe("READABLE_AFTER_WRITABLE");
    s.d(DESC, 1, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT);
    s.d(INDIRECT, 0, 0x1000, 4, 0);
    expect(s.code().code).toBe("READABLE_AFTER_WRITABLE");
  });
  it("head out of range, next out of range", () => {
    const s = setup();
    s.offer(SIZE);
    expect(s.code()).toMatchObject({ code: "HEAD_OUT_OF_RANGE", message: expect.stringMatching(/head 8/) });
    s.d(DESC, 0, 0x1000, 4, VIRTQ_DESC_F_NEXT, SIZE);
    s.offer(0);
    expect(s.code().code).toBe("NEXT_OUT_OF_RANGE");
    s.d(DESC, 0, INDIRECT, 32, VIRTQ_DESC_F_INDIRECT);
    s.d(INDIRECT, 0, 0x1000, 4, VIRTQ_DESC_F_NEXT, 2);
    expect(s.code()).toMatchObject({
      code: "NEXT_OUT_OF_RANGE",
      message: expect.stringMatching(/next 2, not below 2/),
    });
  });
  it("avail idx more than the queue size ahead; the cursor does not move on errors", () => {
    const s = setup();
    s.m.writeU16(AVAIL + 2, SIZE + 1);
    expect(s.code()).toMatchObject({ code: "AVAIL_IDX_AHEAD", message: expect.stringMatching(/9 ahead/) });
    expect(s.vq.nextAvailIdx).toBe(0);
  });
  it("a chain longer than 2^32 - 1 bytes", () => {
    // A 4 GiB guest without allocating it: only the first 64 KiB are backed.
    const backing = new FlatMemory(0x10000);
    const big: GuestMemory = Object.assign(Object.create(backing) as FlatMemory, {
      size: 0xffff_f000,
      inRange: (a: number, l: number) => a >= 0 && l >= 0 && a + l <= 0xffff_f000,
    });
    const vq = new VirtQueue(big, {
      size: SIZE,
      desc: DESC,
      avail: AVAIL,
      used: USED,
      eventIdx: false,
      indirect: false,
    });
    writeDesc(backing, DESC, 0, {
      addrLo: 0x1000,
      addrHi: 0,
      len: 0x8000_0000,
      flags: VIRTQ_DESC_F_NEXT,
      next: 1,
    });
    writeDesc(backing, DESC, 1, {
      addrLo: 0x1000,
      addrHi: 0,
      len: 0x8000_0000,
      flags: VIRTQ_DESC_F_NEXT,
      next: 2,
    });
    writeDesc(backing, DESC, 2, { addrLo: 0x1000, addrHi: 0, len: 0x8000_0000, flags: 0, next: 0 });
    backing.writeU16(AVAIL + 2, 1);
    expect(() => vq.pop()).toThrow(expect.objectContaining({ code: "CHAIN_TOO_LARGE" }));
  });
});
