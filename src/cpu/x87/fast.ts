/**
 * BigInt-free fast paths for the common case of FADD/FSUB/FMUL: both operands normal and
 * the result normal. Significands are handled as u32 limbs held in JS numbers (exact below
 * 2^53) with a 32-bit guard word whose lowest bit carries the sticky bit. Anything else
 * (specials, denormals, results that overflow or underflow) returns null before touching
 * the flags, and the exact BigInt path in arith.ts takes over. The results are the same bit
 * for bit (the differential test runs both paths against the host).
 */
import type { Ctx } from "./arith.js";
import { type F80, f80 } from "./float80.js";

const TWO32 = 0x1_0000_0000;
const PE = 0x20;
const C1 = 0x200;

function isNormal(v: F80): boolean {
  const e = v.se & 0x7fff;
  return e !== 0 && e !== 0x7fff && (v.hi & 0x80000000) !== 0;
}

/** Rounding decision: cmp is the discarded part against half an ulp (-1, 0, 1). */
function roundUp(rc: number, sign: number, cmp: number, odd: boolean): boolean {
  if (rc === 0) return cmp > 0 || (cmp === 0 && odd);
  if (rc === 1) return sign === 1;
  if (rc === 2) return sign === 0;
  return false;
}

/**
 * Rounds the normalised significand hi:lo (bit 31 of hi set) with guard word g to the
 * precision control and packs it; null when the exponent leaves the normal range.
 */
function roundPack(sign: number, exp: number, hi: number, lo: number, g: number, ctx: Ctx): F80 | null {
  if (exp < 1 || exp > 0x7ffe) return null;
  const pc = (ctx.cw >>> 8) & 3;
  const rc = (ctx.cw >>> 10) & 3;
  let inexact: boolean;
  let inc: boolean;
  if (pc === 0) {
    // 24 bits: discard hi & 0xff, lo, g.
    const d = hi & 0xff;
    inexact = d !== 0 || lo !== 0 || g !== 0;
    const cmp = d > 0x80 ? 1 : d < 0x80 ? -1 : lo !== 0 || g !== 0 ? 1 : 0;
    inc = inexact && roundUp(rc, sign, cmp, ((hi >>> 8) & 1) === 1);
    hi = (hi & 0xffffff00) >>> 0;
    lo = 0;
    if (inc) hi += 0x100;
  } else if (pc === 2) {
    // 53 bits: discard lo & 0x7ff and g.
    const d = lo & 0x7ff;
    inexact = d !== 0 || g !== 0;
    const cmp = d > 0x400 ? 1 : d < 0x400 ? -1 : g !== 0 ? 1 : 0;
    inc = inexact && roundUp(rc, sign, cmp, ((lo >>> 11) & 1) === 1);
    lo = (lo & 0xfffff800) >>> 0;
    if (inc) {
      lo += 0x800;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi += 1;
      }
    }
  } else {
    // 64 bits (PC=11, and the reserved PC=01): discard g.
    inexact = g !== 0;
    const cmp = g > 0x80000000 ? 1 : g < 0x80000000 ? -1 : 0;
    inc = inexact && roundUp(rc, sign, cmp, (lo & 1) === 1);
    if (inc) {
      lo += 1;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi += 1;
      }
    }
  }
  if (hi >= TWO32) {
    hi = 0x80000000;
    exp++;
    if (exp > 0x7ffe) return null;
  }
  if (inexact) ctx.flags |= PE | (inc ? C1 : 0);
  return f80((sign << 15) | exp, hi, lo);
}

let mHi = 0;
let mLo = 0;

/** 32 × 32 → 64-bit product into mHi:mLo. */
function mul32(x: number, y: number): void {
  const xl = x & 0xffff;
  const xh = x >>> 16;
  const yl = y & 0xffff;
  const yh = y >>> 16;
  const mid = xh * yl + xl * yh; // < 2^33
  const low = xl * yl + (mid % 65536) * 65536; // < 2^33
  mLo = low >>> 0;
  mHi = xh * yh + Math.floor(mid / 65536) + Math.floor(low / TWO32);
}

/** a × b for normal operands with a normal result, else null. */
export function fastMul(a: F80, b: F80, ctx: Ctx): F80 | null {
  if (!isNormal(a) || !isNormal(b)) return null;
  const ah = a.hi >>> 0;
  const al = a.lo >>> 0;
  const bh = b.hi >>> 0;
  const bl = b.lo >>> 0;
  mul32(al, bl);
  const p0 = mLo;
  const c0 = mHi;
  mul32(ah, bl);
  const h2 = mHi;
  const l2 = mLo;
  mul32(al, bh);
  const h3 = mHi;
  const l3 = mLo;
  mul32(ah, bh);
  const h4 = mHi;
  const l4 = mLo;
  const s1 = c0 + l2 + l3;
  const p1 = s1 % TWO32;
  const s2 = h2 + h3 + l4 + Math.floor(s1 / TWO32);
  const p2 = s2 % TWO32;
  const p3 = h4 + Math.floor(s2 / TWO32);
  let exp = (a.se & 0x7fff) + (b.se & 0x7fff) - 16383;
  let hi: number;
  let lo: number;
  let g: number;
  if (p3 >= 0x80000000) {
    exp++;
    hi = p3;
    lo = p2;
    g = (p1 | (p0 !== 0 ? 1 : 0)) >>> 0;
  } else {
    hi = ((p3 << 1) | (p2 >>> 31)) >>> 0;
    lo = ((p2 << 1) | (p1 >>> 31)) >>> 0;
    g = ((p1 << 1) | (p0 >>> 31) | ((p0 & 0x7fffffff) !== 0 ? 1 : 0)) >>> 0;
  }
  return roundPack((a.se ^ b.se) >>> 15, exp, hi, lo, g, ctx);
}

/** a + b (b negated when subtract) for normal operands with a normal result, else null. */
export function fastAdd(a: F80, b: F80, subtract: boolean, ctx: Ctx): F80 | null {
  if (!isNormal(a) || !isNormal(b)) return null;
  const ea = a.se & 0x7fff;
  const eb = b.se & 0x7fff;
  const sa = a.se >>> 15;
  const sb = (b.se >>> 15) ^ (subtract ? 1 : 0);
  // x: the larger magnitude.
  const aBig =
    ea > eb || (ea === eb && (a.hi >>> 0 > b.hi >>> 0 || (a.hi === b.hi && a.lo >>> 0 >= b.lo >>> 0)));
  const x = aBig ? a : b;
  const y = aBig ? b : a;
  const sx = aBig ? sa : sb;
  let exp = x.se & 0x7fff;
  let d = exp - (y.se & 0x7fff);
  if (d > 96) d = 96;
  // y shifted right by d into h:m:l, sticky into the lowest bit.
  let h = y.hi >>> 0;
  let m = y.lo >>> 0;
  let l = 0;
  let sticky = 0;
  while (d >= 32) {
    sticky |= l;
    l = m;
    m = h;
    h = 0;
    d -= 32;
  }
  if (d > 0) {
    sticky |= (l << (32 - d)) >>> 0;
    l = ((l >>> d) | (m << (32 - d))) >>> 0;
    m = ((m >>> d) | (h << (32 - d))) >>> 0;
    h = h >>> d;
  }
  if (sticky !== 0) l = (l | 1) >>> 0;
  let hi: number;
  let lo: number;
  let g: number;
  if (sx === (aBig ? sb : sa)) {
    g = l;
    lo = (x.lo >>> 0) + m;
    let c = lo >= TWO32 ? 1 : 0;
    lo -= c * TWO32;
    hi = (x.hi >>> 0) + h + c;
    if (hi >= TWO32) {
      // Carry out: shift right one bit, keeping the sticky bit.
      g = ((g >>> 1) | ((lo & 1) << 31) | (g & 1)) >>> 0;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = (0x80000000 | ((hi - TWO32) >>> 1)) >>> 0;
      exp++;
      c = 0;
    }
  } else {
    let borrow = l !== 0 ? 1 : 0;
    g = borrow ? TWO32 - l : 0;
    lo = (x.lo >>> 0) - m - borrow;
    borrow = lo < 0 ? 1 : 0;
    lo += borrow * TWO32;
    hi = (x.hi >>> 0) - h - borrow;
    if (hi === 0 && lo === 0 && g === 0) return null; // exact zero: the slow path signs it
    // Normalise (a big shift only happens when the guard word is exact).
    while (hi === 0) {
      hi = lo;
      lo = g;
      g = 0;
      exp -= 32;
    }
    const z = Math.clz32(hi);
    if (z > 0) {
      hi = ((hi << z) | (lo >>> (32 - z))) >>> 0;
      lo = ((lo << z) | (g >>> (32 - z))) >>> 0;
      g = (g << z) >>> 0;
      exp -= z;
    }
  }
  return roundPack(sx, exp, hi, lo, g, ctx);
}
