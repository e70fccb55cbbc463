/**
 * Exact x87 arithmetic on 80-bit values: add, subtract, multiply, divide, square root,
 * partial remainders, round-to-integer, scale, extract and compare. Every result is formed
 * exactly with BigInt significands (division and square root with a sticky bit) and rounded
 * once by `finishExt` with the control word's rounding and precision control, so results,
 * the precision/underflow/overflow flags and the C1 round-up indicator are bit-exact.
 */
import { fastAdd, fastMul } from "./fast.js";
import {
  bitLength,
  classify,
  compareFinite,
  EXT64,
  extFormat,
  type F80,
  f80,
  type Format,
  fromNumber,
  INDEFINITE,
  infinity,
  isNaNKind,
  Kind,
  maxFinite,
  overflowToInfinity,
  packExt,
  quiet,
  roundToFormat,
  shiftRound,
  unpack,
  zero,
} from "./float80.js";

/** Exception flags (status-word bit positions) and the C1 indicator, accumulated by an op. */
export const Flag = {
  IE: 0x01,
  DE: 0x02,
  ZE: 0x04,
  OE: 0x08,
  UE: 0x10,
  PE: 0x20,
  SF: 0x40,
  C1: 0x200,
} as const;

/** What an operation needs from the FPU and reports back. */
export interface Ctx {
  /** The control word (masks, precision control, rounding control). */
  cw: number;
  /** Flags raised (Flag bits). */
  flags: number;
  /**
   * The operand converted from a denormal 32/64-bit memory real (normal in the extended
   * format), which still raises DE where a denormal operand would.
   */
  memDenormal: F80 | null;
}

function den(v: F80, k: Kind, ctx: Ctx): boolean {
  return k === Kind.Denormal || v === ctx.memDenormal;
}

export function rcOf(ctx: Ctx): number {
  return (ctx.cw >>> 10) & 3;
}

function kindOf(v: F80): Kind {
  return classify(v.se, v.hi, v.lo);
}

function copy(v: F80): F80 {
  return f80(v.se, v.hi, v.lo);
}

export function invalid(ctx: Ctx): F80 {
  ctx.flags |= Flag.IE;
  return copy(INDEFINITE);
}

/** Bias for unmasked overflow/underflow results delivered to a register (SDM 8.5.4, 8.5.5). */
const ADJUST = 24576;

/**
 * Rounds the exact value (-1)^sign × m × 2^e to the extended format with precision f and
 * delivers what the x87 delivers to a register: masked overflow gives ∞ or the largest finite
 * value by rounding mode; unmasked overflow/underflow give the result with its exponent
 * adjusted by ∓24576.
 */
export function finishExt(sign: number, m: bigint, e: number, f: Format, ctx: Ctx): F80 {
  if (m === 0n) return zero(sign);
  const rc = rcOf(ctx);
  const rr = roundToFormat(sign, m, e, f, rc);
  // Results too far out of range even for the bias adjustment (only FSCALE makes them) get
  // the masked response, flagged as unmasked.
  const E = e + bitLength(m) - 1;
  const hugeOver = E - ADJUST > f.emax;
  const hugeUnder = E + ADJUST < f.emin;
  if (rr.overflow) {
    if (hugeOver && !(ctx.cw & Flag.OE)) {
      // Unmasked, but beyond the adjustment: infinity whatever the rounding mode.
      ctx.flags |= Flag.OE | Flag.PE | Flag.C1;
      return infinity(sign);
    }
    if (ctx.cw & Flag.OE) {
      ctx.flags |= Flag.OE | Flag.PE;
      if (overflowToInfinity(sign, rc)) {
        ctx.flags |= Flag.C1;
        return infinity(sign);
      }
      const mx = maxFinite(f);
      return packExt(sign, mx.r, mx.k);
    }
    ctx.flags |= Flag.OE;
    if (rr.inexact) ctx.flags |= Flag.PE | (rr.up ? Flag.C1 : 0);
    return packExt(sign, rr.r, rr.k, -ADJUST);
  }
  if (rr.tiny) {
    if (hugeUnder && !(ctx.cw & Flag.UE)) {
      // Unmasked, but beyond the adjustment: zero whatever the rounding mode.
      ctx.flags |= Flag.UE | Flag.PE;
      return zero(sign);
    }
    if (ctx.cw & Flag.UE) {
      if (rr.inexact) ctx.flags |= Flag.UE | Flag.PE | (rr.up ? Flag.C1 : 0);
      return packExt(sign, rr.r, rr.k);
    }
    const ru = roundToFormat(sign, m, e, f, rc, true);
    ctx.flags |= Flag.UE;
    if (ru.inexact) ctx.flags |= Flag.PE | (ru.up ? Flag.C1 : 0);
    return packExt(sign, ru.r, ru.k, ADJUST);
  }
  if (rr.inexact) ctx.flags |= Flag.PE | (rr.up ? Flag.C1 : 0);
  return packExt(sign, rr.r, rr.k);
}

/** The x87 NaN rules for two operands (SDM table 4-7); at least one of a, b is a NaN. */
export function propagateNaN(a: F80, ka: Kind, b: F80, kb: Kind, ctx: Ctx): F80 {
  if (ka === Kind.SNaN || kb === Kind.SNaN) ctx.flags |= Flag.IE;
  if (!isNaNKind(kb)) return quiet(a);
  if (!isNaNKind(ka)) return quiet(b);
  if (ka === Kind.QNaN && kb === Kind.SNaN) return quiet(a);
  if (ka === Kind.SNaN && kb === Kind.QNaN) return quiet(b);
  // Both of one kind: the larger significand; equal significands: the positive one.
  const ahi = (a.hi | 0x40000000) >>> 0;
  const bhi = (b.hi | 0x40000000) >>> 0;
  if (ahi !== bhi) return quiet(ahi > bhi ? a : b);
  if (a.lo !== b.lo) return quiet(a.lo > b.lo ? a : b);
  return quiet(a.se <= b.se ? a : b);
}

/**
 * Checks common to two-operand arithmetic: unsupported operands and NaNs. Returns the result
 * when one of them decides it, else null (after raising DE for denormal operands).
 */
function precheck2(a: F80, ka: Kind, b: F80, kb: Kind, ctx: Ctx): F80 | null {
  if (ka === Kind.Unsupported || kb === Kind.Unsupported) return invalid(ctx);
  if (isNaNKind(ka) || isNaNKind(kb)) return propagateNaN(a, ka, b, kb, ctx);
  if (den(a, ka, ctx) || den(b, kb, ctx)) ctx.flags |= Flag.DE;
  return null;
}

/** One-operand version: NaN results (SNaN raises IE and is quieted), unsupported → invalid. */
export function precheck1(a: F80, ka: Kind, ctx: Ctx): F80 | null {
  if (ka === Kind.Unsupported) return invalid(ctx);
  if (ka === Kind.SNaN) {
    ctx.flags |= Flag.IE;
    return quiet(a);
  }
  if (ka === Kind.QNaN) return copy(a);
  if (ka === Kind.Denormal) ctx.flags |= Flag.DE;
  return null;
}

/** a + b, or a - b when `subtract`. */
export function add(a: F80, b: F80, subtract: boolean, ctx: Ctx): F80 {
  const fast = ctx.memDenormal === null ? fastAdd(a, b, subtract, ctx) : null;
  if (fast) return fast;
  const ka = kindOf(a);
  const kb = kindOf(b);
  const pre = precheck2(a, ka, b, kb, ctx);
  if (pre) return pre;
  const sa = a.se >>> 15;
  const sb = (b.se >>> 15) ^ (subtract ? 1 : 0);
  if (ka === Kind.Infinity || kb === Kind.Infinity) {
    if (ka === Kind.Infinity && kb === Kind.Infinity && sa !== sb) return invalid(ctx);
    return infinity(ka === Kind.Infinity ? sa : sb);
  }
  const rc = rcOf(ctx);
  if (ka === Kind.Zero && kb === Kind.Zero) return zero(sa === sb ? sa : rc === 1 ? 1 : 0);
  const f = extFormat((ctx.cw >>> 8) & 3);
  if (ka === Kind.Zero) {
    const B = unpack(b);
    return finishExt(sb, B.m, B.e, f, ctx);
  }
  if (kb === Kind.Zero) {
    const A = unpack(a);
    return finishExt(sa, A.m, A.e, f, ctx);
  }
  const A = unpack(a);
  const B = unpack(b);
  let ma = A.m;
  let ea = A.e;
  let mb = B.m;
  let eb = B.e;
  // An operand far below the other only contributes a sticky bit: replace it by one unit
  // well below half an ulp of any possible result (the other has at most 64 bits).
  if (ea - eb > 140) {
    mb = 1n;
    eb = ea - 140;
  } else if (eb - ea > 140) {
    ma = 1n;
    ea = eb - 140;
  }
  const e = Math.min(ea, eb);
  const va = ma << BigInt(ea - e);
  const vb = mb << BigInt(eb - e);
  let sum = (sa ? -va : va) + (sb ? -vb : vb);
  if (sum === 0n) return zero(rc === 1 ? 1 : 0);
  let sign = 0;
  if (sum < 0n) {
    sign = 1;
    sum = -sum;
  }
  return finishExt(sign, sum, e, f, ctx);
}

export function mul(a: F80, b: F80, ctx: Ctx): F80 {
  const fast = ctx.memDenormal === null ? fastMul(a, b, ctx) : null;
  if (fast) return fast;
  const ka = kindOf(a);
  const kb = kindOf(b);
  const pre = precheck2(a, ka, b, kb, ctx);
  if (pre) return pre;
  const sign = (a.se ^ b.se) >>> 15;
  if (ka === Kind.Infinity || kb === Kind.Infinity) {
    if (ka === Kind.Zero || kb === Kind.Zero) return invalid(ctx);
    return infinity(sign);
  }
  if (ka === Kind.Zero || kb === Kind.Zero) return zero(sign);
  const A = unpack(a);
  const B = unpack(b);
  return finishExt(sign, A.m * B.m, A.e + B.e, extFormat((ctx.cw >>> 8) & 3), ctx);
}

/** a / b. */
export function div(a: F80, b: F80, ctx: Ctx): F80 {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka === Kind.Unsupported || kb === Kind.Unsupported) return invalid(ctx);
  if (isNaNKind(ka) || isNaNKind(kb)) return propagateNaN(a, ka, b, kb, ctx);
  const sign = (a.se ^ b.se) >>> 15;
  if (ka === Kind.Infinity) {
    if (kb === Kind.Infinity) return invalid(ctx);
    if (den(b, kb, ctx)) ctx.flags |= Flag.DE;
    return infinity(sign);
  }
  if (kb === Kind.Infinity) {
    if (den(a, ka, ctx)) ctx.flags |= Flag.DE;
    return zero(sign);
  }
  if (kb === Kind.Zero) {
    // x/0 reports only the zero divide, even for a denormal dividend.
    if (ka === Kind.Zero) return invalid(ctx);
    ctx.flags |= Flag.ZE;
    return infinity(sign);
  }
  if (den(a, ka, ctx) || den(b, kb, ctx)) ctx.flags |= Flag.DE;
  if (ka === Kind.Zero) return zero(sign);
  const A = unpack(a);
  const B = unpack(b);
  // The quotient gets at least 67 bits; a non-zero remainder becomes a sticky lowest bit.
  const num = A.m << 130n;
  let q = num / B.m;
  if (q * B.m !== num) q |= 1n;
  return finishExt(sign, q, A.e - B.e - 130, extFormat((ctx.cw >>> 8) & 3), ctx);
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  // Start from the double square root of the top 52-53 bits (rounded up, so x >= isqrt(n)):
  // Newton's iteration then needs only two or three steps.
  const sh = Math.max(0, (bitLength(n) - 52) & ~1);
  let x = BigInt(Math.ceil(Math.sqrt(Number(n >> BigInt(sh)))) + 1) << BigInt(sh / 2);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

export function sqrt(a: F80, ctx: Ctx): F80 {
  const ka = kindOf(a);
  const sign = a.se >>> 15;
  // The square root of a negative number is invalid before any denormal report.
  if (sign && (ka === Kind.Denormal || ka === Kind.Normal || ka === Kind.Infinity)) return invalid(ctx);
  const pre = precheck1(a, ka, ctx);
  if (pre) return pre;
  if (ka === Kind.Zero) return zero(sign);
  if (ka === Kind.Infinity) return infinity(0);
  const A = unpack(a);
  // Scale to at least 140 bits with an even exponent; a non-exact root gets a sticky bit.
  let s = 140 - bitLength(A.m);
  if ((A.e - s) & 1) s++;
  const n = A.m << BigInt(s);
  let r = isqrt(n);
  if (r * r !== n) r |= 1n;
  return finishExt(0, r, (A.e - s) / 2, extFormat((ctx.cw >>> 8) & 3), ctx);
}

/** FRNDINT: rounds to an integer with the rounding control (precision control not applied). */
export function roundInt(a: F80, ctx: Ctx): F80 {
  const ka = kindOf(a);
  const pre = precheck1(a, ka, ctx);
  if (pre) return pre;
  if (ka === Kind.Zero || ka === Kind.Infinity) return copy(a);
  const A = unpack(a);
  if (A.e >= 0) return copy(a);
  const rr = shiftRound(A.m, -A.e, A.sign, rcOf(ctx));
  if (rr.inexact) ctx.flags |= Flag.PE | (rr.up ? Flag.C1 : 0);
  return rr.q === 0n ? zero(A.sign) : packExt(A.sign, rr.q, 0);
}

/** FSCALE: ST0 × 2^trunc(ST1). */
export function scale(a: F80, b: F80, ctx: Ctx): F80 {
  const ka = kindOf(a);
  const kb = kindOf(b);
  const pre = precheck2(a, ka, b, kb, ctx);
  if (pre) return pre;
  const sa = a.se >>> 15;
  if (kb === Kind.Infinity) {
    const sb = b.se >>> 15;
    if (sb === 0) return ka === Kind.Zero ? invalid(ctx) : ka === Kind.Infinity ? copy(a) : infinity(sa);
    return ka === Kind.Infinity ? invalid(ctx) : zero(sa);
  }
  if (ka === Kind.Infinity || ka === Kind.Zero) return copy(a);
  let n = 0;
  if (kb !== Kind.Zero) {
    const B = unpack(b);
    const bl = bitLength(B.m);
    if (B.e + bl - 1 > 20) n = 1 << 20;
    else n = B.e >= 0 ? Number(B.m << BigInt(B.e)) : Number(B.m >> BigInt(-B.e));
    if (B.sign) n = -n;
  }
  const A = unpack(a);
  return finishExt(sa, A.m, A.e + n, EXT64, ctx);
}

/** FXTRACT: returns [exponent, significand] (the significand is pushed above the exponent). */
export function extract(a: F80, ctx: Ctx): [F80, F80] {
  const ka = kindOf(a);
  const pre = precheck1(a, ka, ctx);
  if (pre) return [pre, copy(pre)];
  const sign = a.se >>> 15;
  if (ka === Kind.Zero) {
    ctx.flags |= Flag.ZE;
    return [infinity(1), zero(sign)];
  }
  if (ka === Kind.Infinity) return [infinity(0), copy(a)];
  const A = unpack(a);
  const E = A.e + bitLength(A.m) - 1;
  const sig = packExt(sign, A.m, -(bitLength(A.m) - 1));
  return [fromNumber(E), sig];
}

/** Compare outcome: greater, less, equal, unordered (C3,C2,C0 = 000, 001, 100, 111). */
export const Cmp = { Greater: 0, Less: 1, Equal: 2, Unordered: 3 } as const;
export type Cmp = (typeof Cmp)[keyof typeof Cmp];

/** Compares a with b. `quietNaNOk` (FUCOM*) raises IE only for SNaNs and unsupported. */
export function compare(a: F80, b: F80, quietNaNOk: boolean, ctx: Ctx): Cmp {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka === Kind.Unsupported || kb === Kind.Unsupported) {
    ctx.flags |= Flag.IE;
    return Cmp.Unordered;
  }
  if (isNaNKind(ka) || isNaNKind(kb)) {
    if (!quietNaNOk || ka === Kind.SNaN || kb === Kind.SNaN) ctx.flags |= Flag.IE;
    return Cmp.Unordered;
  }
  if (den(a, ka, ctx) || den(b, kb, ctx)) ctx.flags |= Flag.DE;
  let c: number;
  if (ka === Kind.Infinity || kb === Kind.Infinity) {
    const va = ka === Kind.Infinity ? (a.se >>> 15 ? -2 : 2) : 0;
    const vb = kb === Kind.Infinity ? (b.se >>> 15 ? -2 : 2) : 0;
    if (va !== 0 && vb !== 0) c = va === vb ? 0 : va < vb ? -1 : 1;
    else if (va !== 0) c = va < 0 ? -1 : 1;
    else c = vb < 0 ? 1 : -1;
  } else c = compareFinite(a, ka, b, kb);
  return c === 0 ? Cmp.Equal : c < 0 ? Cmp.Less : Cmp.Greater;
}

/** Result of FPREM/FPREM1. */
export interface Remainder {
  value: F80;
  /** Low three quotient bits (valid when complete); -1 when special operands gave no quotient. */
  q: number;
  /** C2: the reduction is incomplete. */
  partial: boolean;
}

/** FPREM (quotient truncated) or FPREM1 (IEEE: quotient rounded to nearest even) of a by b. */
export function remainder(a: F80, b: F80, ieee: boolean, ctx: Ctx): Remainder {
  const ka = kindOf(a);
  const kb = kindOf(b);
  const numbers = !isNaNKind(ka) && !isNaNKind(kb) && ka !== Kind.Unsupported && kb !== Kind.Unsupported;
  if (numbers && (ka === Kind.Infinity || kb === Kind.Zero))
    return { value: invalid(ctx), q: -1, partial: false };
  const pre = precheck2(a, ka, b, kb, ctx);
  if (pre) return { value: pre, q: -1, partial: false };
  if (ka === Kind.Zero) return { value: copy(a), q: 0, partial: false };
  const A = unpack(a);
  // An unchanged dividend is delivered normalised (pseudo-denormals become normal).
  if (kb === Kind.Infinity) return { value: finishExt(A.sign, A.m, A.e, EXT64, ctx), q: 0, partial: false };
  const B = unpack(b);
  const Ea = A.e + bitLength(A.m) - 1;
  const Eb = B.e + bitLength(B.m) - 1;
  const d = Ea - Eb;
  if (d < -1) return { value: finishExt(A.sign, A.m, A.e, EXT64, ctx), q: 0, partial: false };
  let partial = false;
  let eb = B.e;
  if (d >= 64) {
    partial = true;
    const n = 32 + (d % 32);
    eb += d - n;
  }
  const e = Math.min(A.e, eb);
  const MA = A.m << BigInt(A.e - e);
  const MB = B.m << BigInt(eb - e);
  let q = MA / MB;
  let rem = MA - q * MB;
  let sign = A.sign;
  if (ieee && !partial) {
    const twice = rem << 1n;
    if (twice > MB || (twice === MB && (q & 1n) === 1n)) {
      q += 1n;
      rem = MB - rem;
      sign ^= 1;
    }
  }
  const qbits = Number(q & 7n);
  if (rem === 0n) return { value: zero(A.sign), q: qbits, partial };
  return { value: finishExt(sign, rem, e, EXT64, ctx), q: qbits, partial };
}

/** |a| and -a (no exceptions other than stack faults). */
export function abs(a: F80): F80 {
  return f80(a.se & 0x7fff, a.hi, a.lo);
}

export function chs(a: F80): F80 {
  return f80(a.se ^ 0x8000, a.hi, a.lo);
}

/** Exact value of an integer as an F80 (|n| < 2^64). */
export function fromBigInt(n: bigint): F80 {
  if (n === 0n) return zero(0);
  const sign = n < 0n ? 1 : 0;
  const m = sign ? -n : n;
  return packExt(sign, m, 0);
}
