/**
 * 64-bit values as two unsigned 32-bit halves. Hot paths never use BigInt: a guest physical
 * address is a `number` below 2^32, and a 64-bit field is read as `lo` and `hi`.
 */
export interface U64 {
  lo: number;
  hi: number;
}

export const TWO_32 = 0x1_0000_0000;

export function u64(lo: number, hi = 0): U64 {
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

/** The value as a number, exact while it is below 2^53. */
export function u64ToNumber(v: U64): number {
  return v.hi * TWO_32 + v.lo;
}

/** Splits a non-negative integer below 2^53 into halves. */
export function u64FromNumber(n: number): U64 {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a u64 below 2^53: ${n}`);
  return { lo: n >>> 0, hi: Math.floor(n / TWO_32) >>> 0 };
}

export function u64ToBigInt(v: U64): bigint {
  return (BigInt(v.hi) << 32n) | BigInt(v.lo);
}

export function u64FromBigInt(b: bigint): U64 {
  return { lo: Number(b & 0xffff_ffffn), hi: Number((b >> 32n) & 0xffff_ffffn) };
}

/** Bit `bit` (0..63) of a 64-bit value. */
export function u64TestBit(v: U64, bit: number): boolean {
  return bit < 32 ? ((v.lo >>> bit) & 1) === 1 : ((v.hi >>> (bit - 32)) & 1) === 1;
}

export function u64SetBit(v: U64, bit: number, on: boolean): U64 {
  if (bit < 32) {
    const m = (1 << bit) >>> 0;
    return { lo: (on ? v.lo | m : v.lo & ~m) >>> 0, hi: v.hi };
  }
  const m = (1 << (bit - 32)) >>> 0;
  return { lo: v.lo, hi: (on ? v.hi | m : v.hi & ~m) >>> 0 };
}

export function u64And(a: U64, b: U64): U64 {
  return { lo: (a.lo & b.lo) >>> 0, hi: (a.hi & b.hi) >>> 0 };
}

export function u64Or(a: U64, b: U64): U64 {
  return { lo: (a.lo | b.lo) >>> 0, hi: (a.hi | b.hi) >>> 0 };
}

export function u64AndNot(a: U64, b: U64): U64 {
  return { lo: (a.lo & ~b.lo) >>> 0, hi: (a.hi & ~b.hi) >>> 0 };
}

export function u64IsZero(v: U64): boolean {
  return v.lo === 0 && v.hi === 0;
}

export function u64Equal(a: U64, b: U64): boolean {
  return a.lo === b.lo && a.hi === b.hi;
}

/** Builds a 64-bit feature mask from bit numbers. */
export function u64FromBits(...bits: number[]): U64 {
  let v: U64 = { lo: 0, hi: 0 };
  for (const b of bits) v = u64SetBit(v, b, true);
  return v;
}
