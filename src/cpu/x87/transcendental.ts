/**
 * FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X and FYL2XP1.
 *
 * DOUBLE PRECISION HERE: the core of each function is evaluated with JavaScript's Math
 * (IEEE double, 53-bit significand) and the double result is delivered into the 80-bit
 * register. Cost: results carry about 53 good bits instead of the x87's ~64 (relative error up
 * to ~2^-52 instead of < 1 ulp of the extended format), the C1 round-up indicator is always 0
 * and PE is always set for non-exact results. Everything around the core is exact, so the
 * special cases, ranges and flags match the hardware:
 * - the argument of FSIN/FCOS/FSINCOS/FPTAN is reduced exactly (BigInt) modulo the same
 *   66-bit π the x87 uses, so large arguments give the hardware's answers, and |x| ≥ 2^63
 *   sets C2 and leaves the operand unchanged;
 * - results that would leave the double exponent range are avoided: logarithms are computed
 *   in double (always in range) and multiplied by y exactly; tiny arguments use the exact
 *   first-order term (x, x·ln2, x/ln2) multiplied in extended precision.
 */
import { add, type Ctx, div, Flag, finishExt, invalid, mul, precheck1, propagateNaN, rcOf } from "./arith.js";
import {
  bitLength,
  classify,
  EXT64,
  type F80,
  f80,
  fromNumber,
  infinity,
  isNaNKind,
  Kind,
  packExt,
  roundToFormat,
  unpack,
  zero,
} from "./float80.js";

/** The x87's internal π (66 significant bits): PI66 × 2^-66. */
const PI66 = 0xc90fdaa22168c234cn;

/** Rounds a constant given as m × 2^e (m with more than 64 bits) to 64 bits with rc. */
function constant(m: bigint, e: number, rc: number, sign = 0): F80 {
  const rr = roundToFormat(sign, m, e, EXT64, rc);
  return packExt(sign, rr.r, rr.k);
}

/** ln 2 and log2 e to 128 bits. */
const LN2_128 = 0xb17217f7d1cf79abc9e3b39803f2f6afn; // × 2^-128
const LOG2E_128 = 0xb8aa3b295c17f0bbbe87fed0691d3e88n; // × 2^-127

function ln2(ctx: Ctx): F80 {
  return constant(LN2_128, -128, rcOf(ctx));
}

function log2e(ctx: Ctx): F80 {
  return constant(LOG2E_128, -127, rcOf(ctx));
}

/**
 * A finite non-zero value moved by far less than an ulp (dir -1: toward zero, +1: away),
 * rounded with the rounding control: gives the exact x87 result, flags and C1 for functions
 * whose value differs from `a` only beyond the 64th bit.
 */
function nudged(a: F80, dir: bigint, ctx: Ctx): F80 {
  const A = unpack(a);
  return finishExt(A.sign, (A.m << 100n) + dir, A.e - 100, EXT64, ctx);
}

/** Multiply/divide in full 64-bit precision (precision control does not apply here). */
function full(ctx: Ctx): Ctx {
  return { cw: ctx.cw | 0x300, flags: 0, memDenormal: null };
}

function mulFull(a: F80, b: F80, ctx: Ctx): F80 {
  const c = full(ctx);
  const r = mul(a, b, c);
  ctx.flags |= c.flags;
  return r;
}

function divFull(a: F80, b: F80, ctx: Ctx): F80 {
  const c = full(ctx);
  const r = div(a, b, c);
  ctx.flags |= c.flags;
  return r;
}

/** The value as x × 2^s with x in [1, 2) rounded to double. */
function scaled(v: F80): { x: number; s: number } {
  const A = unpack(v);
  const bl = bitLength(A.m);
  const x = Number(A.m) / 2 ** (bl - 1);
  return { x: A.sign ? -x : x, s: A.e + bl - 1 };
}

/** Exponent of a finite non-zero value (floor(log2|v|)). */
function expOf(v: F80): number {
  const A = unpack(v);
  return A.e + bitLength(A.m) - 1;
}

/** A finite, non-zero JS number result into an F80; sets PE (and UE for a denormal result). */
function deliver(x: number, ctx: Ctx): F80 {
  if (x === 0 || !Number.isFinite(x)) return fromNumber(x);
  ctx.flags |= Flag.PE;
  return fromNumber(x);
}

/** Exact reduction of v by π/2 (66-bit π): returns the quadrant and the reduced value. */
function reduce(v: F80): { quadrant: number; r: number } {
  const A = unpack(v);
  // |v| = m × 2^e; π/2 = PI66 × 2^-67. Work at exponent min(e, -67).
  const e = Math.min(A.e, -67);
  const M = A.m << BigInt(A.e - e);
  const P = PI66 << BigInt(-67 - e);
  let n = M / P;
  let rem = M - n * P;
  if (rem << 1n > P) {
    n += 1n;
    rem -= P;
  }
  // rem × 2^e as a double (rem fits easily: |rem| ≤ P/2 ≈ 2^67 at e = -67... scaled exactly).
  const neg = rem < 0n;
  const abs = neg ? -rem : rem;
  const bl = bitLength(abs);
  const r = bl === 0 ? 0 : Number(abs >> BigInt(Math.max(0, bl - 64))) * 2 ** (e + Math.max(0, bl - 64));
  const q = Number(n & 3n);
  const quadrant = A.sign ? (4 - q) & 3 : q;
  const rs = A.sign ? (neg ? r : -r) : neg ? -r : r;
  return { quadrant, r: rs };
}

export interface TrigResult {
  /** C2: the operand is out of range (|x| ≥ 2^63); nothing was computed. */
  outOfRange: boolean;
  sin: F80;
  cos: F80;
}

/**
 * Sine and cosine of a (for FSIN, FCOS, FSINCOS). NaN/invalid results are in both fields.
 * `want` selects which result's tiny-argument special case matters for flags.
 */
export function sinCos(a: F80, ctx: Ctx, want: "sin" | "cos" | "both"): TrigResult {
  const k = classify(a.se, a.hi, a.lo);
  const pre = precheck1(a, k, ctx);
  if (pre) return { outOfRange: false, sin: pre, cos: f80(pre.se, pre.hi, pre.lo) };
  if (k === Kind.Infinity) {
    const ind = invalid(ctx);
    return { outOfRange: false, sin: ind, cos: f80(ind.se, ind.hi, ind.lo) };
  }
  if (k === Kind.Zero) return { outOfRange: false, sin: f80(a.se, a.hi, a.lo), cos: fromNumber(1) };
  const E = expOf(a);
  if (E >= 63) return { outOfRange: true, sin: a, cos: a };
  if (E < -40) {
    // sin x = x, cos x = 1 to well below an ulp of the extended format.
    // sin x = x - x³/6 and cos x = 1 - x²/2: just below x and 1 in magnitude.
    const one = fromNumber(1);
    return {
      outOfRange: false,
      sin: want !== "cos" ? nudged(a, -1n, ctx) : a,
      cos: want !== "sin" ? nudged(one, -1n, ctx) : one,
    };
  }
  const { quadrant, r } = reduce(a);
  const s = Math.sin(r);
  const c = Math.cos(r);
  const sv = quadrant === 0 ? s : quadrant === 1 ? c : quadrant === 2 ? -s : -c;
  const cv = quadrant === 0 ? c : quadrant === 1 ? -s : quadrant === 2 ? -c : s;
  return { outOfRange: false, sin: deliver(sv, ctx), cos: deliver(cv, ctx) };
}

/** FPTAN's tangent (the caller pushes 1.0). */
export function tan(a: F80, ctx: Ctx): { outOfRange: boolean; value: F80 } {
  const k = classify(a.se, a.hi, a.lo);
  const pre = precheck1(a, k, ctx);
  if (pre) return { outOfRange: false, value: pre };
  if (k === Kind.Infinity) return { outOfRange: false, value: invalid(ctx) };
  if (k === Kind.Zero) return { outOfRange: false, value: f80(a.se, a.hi, a.lo) };
  const E = expOf(a);
  if (E >= 63) return { outOfRange: true, value: a };
  if (E < -40) {
    // tan x = x + x³/3: just above x in magnitude.
    return { outOfRange: false, value: nudged(a, 1n, ctx) };
  }
  const { quadrant, r } = reduce(a);
  const t = quadrant & 1 ? -1 / Math.tan(r) : Math.tan(r);
  return { outOfRange: false, value: deliver(t, ctx) };
}

/** F2XM1: 2^x - 1 (defined for -1 ≤ x ≤ 1). */
export function f2xm1(a: F80, ctx: Ctx): F80 {
  const k = classify(a.se, a.hi, a.lo);
  const pre = precheck1(a, k, ctx);
  if (pre) return pre;
  if (k === Kind.Zero) return f80(a.se, a.hi, a.lo);
  if (k === Kind.Infinity) return a.se >>> 15 ? fromNumber(-1) : infinity(0);
  const E = expOf(a);
  if (E > 0 || (E === 0 && (a.hi !== 0x80000000 || a.lo !== 0))) {
    // Outside the domain -1..1 the result is undefined; the host x87 returns the operand.
    ctx.flags |= Flag.PE;
    return f80(a.se, a.hi, a.lo);
  }
  if (E < -60) {
    // 2^x - 1 = x·ln2 (1 + x·ln2/2 + ...): the product, correctly rounded, is within the error.
    const r = mulFull(a, ln2(ctx), ctx);
    ctx.flags |= Flag.PE;
    return r;
  }
  const { x, s } = scaled(a);
  return deliver(Math.expm1(x * 2 ** s * Math.LN2), ctx);
}

/** FYL2X: y × log2(x), x = ST0, y = ST1. */
export function fyl2x(x: F80, y: F80, ctx: Ctx): F80 {
  const kx = classify(x.se, x.hi, x.lo);
  const ky = classify(y.se, y.hi, y.lo);
  if (kx === Kind.Unsupported || ky === Kind.Unsupported) return invalid(ctx);
  if (isNaNKind(kx) || isNaNKind(ky)) return propagateNaN(x, kx, y, ky, ctx);
  const sx = x.se >>> 15;
  const sy = y.se >>> 15;
  if (sx && kx !== Kind.Zero) return invalid(ctx);
  if (kx === Kind.Zero) {
    // log2(0) = -∞: a zero divide (no denormal report for y).
    if (ky === Kind.Zero) return invalid(ctx);
    if (ky !== Kind.Infinity) ctx.flags |= Flag.ZE;
    return infinity(sy ^ 1);
  }
  if (kx === Kind.Denormal || ky === Kind.Denormal) ctx.flags |= Flag.DE;
  if (kx === Kind.Infinity) {
    if (ky === Kind.Zero) return invalid(ctx);
    return infinity(sy);
  }
  // log2(x) for finite positive x: exponent plus log2 of the significand in [1, 2).
  const { x: xs, s } = scaled(x);
  const isOne = s === 0 && x.hi === 0x80000000 && x.lo === 0;
  if (isOne) {
    if (ky === Kind.Infinity) return invalid(ctx);
    return zero(rcOf(ctx) === 1 ? sy ^ 1 : sy);
  }
  // y = 0 or ∞: exact, signed by log2 x (negative below 1).
  if (ky === Kind.Zero) return zero(sy ^ (s < 0 ? 1 : 0));
  if (ky === Kind.Infinity) return infinity(sy ^ (s < 0 ? 1 : 0));
  let l: F80;
  if (s === 0 || s === -1) {
    // Near 1: log2(x) = log1p(x - 1)/ln2 with x - 1 computed exactly.
    const t = add(x, fromNumber(1), true, { cw: ctx.cw | 0x300, flags: 0, memDenormal: null });
    l = log2p1(t, ctx);
  } else {
    // log2 of a power of two is exact.
    l = xs === 1 && x.lo === 0 && x.hi === 0x80000000 ? fromNumber(s) : deliver(s + Math.log2(xs), ctx);
  }
  return mulFull(y, l, ctx);
}

/** log2(1 + t) for a finite t > -1 (t not zero). */
function log2p1(t: F80, ctx: Ctx): F80 {
  if (classify(t.se, t.hi, t.lo) === Kind.Zero) return zero(0);
  if (expOf(t) < -60) {
    ctx.flags |= Flag.PE;
    return mulFull(t, log2e(ctx), ctx);
  }
  const { x, s } = scaled(t);
  // Far above 1, log2(1 + t) = log2(t) to well below an ulp.
  if (s > 60) return deliver(s + Math.log2(x), ctx);
  return deliver(Math.log1p(x * 2 ** s) / Math.LN2, ctx);
}

/** FYL2XP1: y × log2(x + 1), x = ST0, y = ST1. */
export function fyl2xp1(x: F80, y: F80, ctx: Ctx): F80 {
  const kx = classify(x.se, x.hi, x.lo);
  const ky = classify(y.se, y.hi, y.lo);
  if (kx === Kind.Unsupported || ky === Kind.Unsupported) return invalid(ctx);
  if (isNaNKind(kx) || isNaNKind(ky)) return propagateNaN(x, kx, y, ky, ctx);
  const sx = x.se >>> 15;
  const sy = y.se >>> 15;
  if (kx === Kind.Zero) {
    if (ky === Kind.Infinity) return invalid(ctx);
    if (ky === Kind.Denormal) ctx.flags |= Flag.DE;
    return zero(sx ^ sy);
  }
  if (kx === Kind.Infinity) {
    if (sx) return invalid(ctx);
    if (ky === Kind.Zero) return invalid(ctx);
    if (ky === Kind.Denormal) ctx.flags |= Flag.DE;
    return infinity(sy);
  }
  if (kx === Kind.Denormal || ky === Kind.Denormal) ctx.flags |= Flag.DE;
  if (ky === Kind.Infinity) return infinity(sy ^ sx);
  if (ky === Kind.Zero) return zero(sy ^ sx);
  if (sx && expOf(x) >= 0) {
    // 1 + x <= 0: outside the domain; the host x87 returns x (and -1 gives log2 0 = -∞).
    if (expOf(x) === 0 && x.hi === 0x80000000 && x.lo === 0) {
      ctx.flags |= Flag.ZE;
      return infinity(sy ^ 1);
    }
    ctx.flags |= Flag.PE;
    return f80(x.se, x.hi, x.lo);
  }
  if (expOf(x) < -60) {
    // y × x × log2(e) as one exact product, rounded once (no intermediate underflow).
    const X = unpack(x);
    const Y = unpack(y);
    ctx.flags |= Flag.PE;
    return finishExt(sx ^ sy, X.m * Y.m * LOG2E_128, X.e + Y.e - 127, EXT64, ctx);
  }
  const l = log2p1(x, ctx);
  return mulFull(y, l, ctx);
}

/** FPATAN: atan2(y = ST1, x = ST0). */
export function fpatan(x: F80, y: F80, ctx: Ctx): F80 {
  const kx = classify(x.se, x.hi, x.lo);
  const ky = classify(y.se, y.hi, y.lo);
  if (kx === Kind.Unsupported || ky === Kind.Unsupported) return invalid(ctx);
  if (isNaNKind(kx) || isNaNKind(ky)) return propagateNaN(x, kx, y, ky, ctx);
  if (kx === Kind.Denormal || ky === Kind.Denormal) ctx.flags |= Flag.DE;
  const sx = x.se >>> 15;
  const sy = y.se >>> 15;
  const rc = rcOf(ctx);
  // Multiples of π/4 from the 66-bit π, rounded with the rounding control.
  const piQuarters = (n: number, sign: number): F80 => {
    ctx.flags |= Flag.PE;
    return constant(PI66 * BigInt(n), -68, rc, sign);
  };
  if (ky === Kind.Zero) {
    if (sx === 0) return zero(sy);
    return piQuarters(4, sy);
  }
  if (kx === Kind.Zero) return piQuarters(2, sy);
  if (ky === Kind.Infinity) {
    if (kx === Kind.Infinity) return piQuarters(sx ? 3 : 1, sy);
    return piQuarters(2, sy);
  }
  if (kx === Kind.Infinity) return sx ? piQuarters(4, sy) : zero(sy);
  const ex = expOf(x);
  const ey = expOf(y);
  if (sx === 0 && ey - ex < -60) {
    // atan(y/x) = y/x to well below an ulp.
    const q = divFull(y, x, ctx);
    ctx.flags |= Flag.PE;
    return q;
  }
  const a = scaled(x);
  const b = scaled(y);
  const shift = Math.max(a.s, b.s);
  const r = Math.atan2(b.x * 2 ** Math.max(b.s - shift, -1100), a.x * 2 ** Math.max(a.s - shift, -1100));
  return deliver(r, ctx);
}
