import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GuestMemoryError } from "./errors.js";
import { FlatMemory, RecordingMemory } from "./memory.js";
import { u64FromBigInt, u64ToBigInt } from "./u64.js";

describe("FlatMemory", () => {
  it("reads and writes little-endian values", () => {
    const m = new FlatMemory(64);
    m.writeU32(0, 0x11223344);
    expect([...m.subarray(0, 4)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(m.readU16(1)).toBe(0x2233);
    m.writeU64(8, { lo: 0xdeadbeef, hi: 0x01020304 });
    expect(m.readU32(12)).toBe(0x01020304);
    expect(m.readU64(8)).toEqual({ lo: 0xdeadbeef, hi: 0x01020304 });
    m.writeU8(63, 0x1ff);
    expect(m.readU8(63)).toBe(0xff);
  });

  it("refuses every access that is not wholly inside, naming address and length", () => {
    const m = new FlatMemory(16);
    m.fill(0, 16, 0xaa);
    expect(() => m.readU32(13)).toThrow(GuestMemoryError);
    expect(() => m.writeU32(13, 0)).toThrow(/0xd length 4/);
    expect(() => m.readU8(16)).toThrow(GuestMemoryError);
    expect(() => m.readU8(-1)).toThrow(GuestMemoryError);
    expect(() => m.writeFrom(10, new Uint8Array(7))).toThrow(GuestMemoryError);
    expect(() => m.readInto(0xffff_fff0, new Uint8Array(0x20))).toThrow(GuestMemoryError);
    expect(() => m.subarray(8, 9)).toThrow(GuestMemoryError);
    expect(() => m.fill(15, 2, 0)).toThrow(GuestMemoryError);
    // nothing was partially written
    expect([...m.subarray(0, 16)].every((b) => b === 0xaa)).toBe(true);
    expect(m.inRange(16, 0)).toBe(true);
    expect(m.inRange(17, 0)).toBe(false);
    expect(m.inRange(0, 1.5)).toBe(false);
  });

  it("subarray is a zero-copy view", () => {
    const m = new FlatMemory(32);
    const v = m.subarray(4, 8);
    v[0] = 7;
    expect(m.readU8(4)).toBe(7);
  });

  it("round-trips random values at random in-range addresses", () => {
    const m = new FlatMemory(256);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 248 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (a, v) => {
        m.writeU64(a, u64FromBigInt(v));
        expect(u64ToBigInt(m.readU64(a))).toBe(v);
        expect(m.readU32(a)).toBe(Number(v & 0xffffffffn));
      }),
    );
  });

  it("range check equals the arithmetic definition", () => {
    const m = new FlatMemory(100);
    fc.assert(
      fc.property(fc.integer({ min: -5, max: 200 }), fc.integer({ min: -5, max: 200 }), (a, l) => {
        expect(m.inRange(a, l)).toBe(a >= 0 && l >= 0 && a + l <= 100);
      }),
    );
  });
});

describe("RecordingMemory", () => {
  it("records accesses, including refused ones", () => {
    const r = new RecordingMemory(new FlatMemory(8));
    r.readU32(0);
    expect(() => r.readU32(6)).toThrow(GuestMemoryError);
    expect(r.accesses).toHaveLength(2);
    expect(r.outOfRange()).toEqual([{ kind: "read", addr: 6, len: 4 }]);
  });
});
