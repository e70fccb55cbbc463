/**
 * The x87 80-bit extended format and exact rounding.
 *
 * A value is kept as its raw fields: `se` (sign << 15 | 15-bit biased exponent) and the 64-bit
 * significand (explicit integer bit 63) as two u32 halves `hi`/`lo`. Moves never touch the
 * fields, so every 80-bit pattern (unnormals, pseudo-NaNs, pseudo-denormals) is kept
 * bit-exactly.
 *
 * Arithmetic that must round (add/sub/mul/div/sqrt, FPREM, FRNDINT, FSCALE, conversions to
 * integers, to 32/64-bit reals and to BCD) is done exactly: the operands become
 * `m × 2^e` with `m` a BigInt, the exact (or exact-plus-sticky) result is formed, and
 * `roundToFormat` rounds it once with the rounding control, the precision control and the
 * target's exponent range, detecting tininess after rounding as the x87 does.
 */

export const EXP_BIAS = 16383;
export const EXP_MAX = 0x7fff;

/** Operand classes. */
export const Kind = {
  Zero: 0,
  Denormal: 1, // exponent 0, significand non-zero (includes pseudo-denormals, J=1)
  Normal: 2,
  Infinity: 3,
  QNaN: 4,
  SNaN: 5,
  Unsupported: 6, // unnormals, pseudo-infinities, pseudo-NaNs
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

export function classify(se: number, hi: number, lo: number): Kind {
  const exp = se & EXP_MAX;
  if (exp === 0) return hi === 0 && lo === 0 ? Kind.Zero : Kind.Denormal;
  if ((hi & 0x80000000) === 0) return Kind.Unsupported;
  if (exp === EXP_MAX) {
    if ((hi & 0x7fffffff) === 0 && lo === 0) return Kind.Infinity;
    return hi & 0x40000000 ? Kind.QNaN : Kind.SNaN;
  }
  return Kind.Normal;
}

export function isNaNKind(k: Kind): boolean {
  return k === Kind.QNaN || k === Kind.SNaN;
}

/** A mutable 80-bit value. */
export interface F80 {
  se: number;
  hi: number;
  lo: number;
}

export function f80(se: number, hi: number, lo: number): F80 {
  return { se: se & 0xffff, hi: hi >>> 0, lo: lo >>> 0 };
}

/** The QNaN "real indefinite" (the masked response to an invalid operation). */
export const INDEFINITE: Readonly<F80> = Object.freeze({ se: 0xffff, hi: 0xc0000000, lo: 0 });

/** Rounding control (control word bits 10-11). */
export const Rc = { Nearest: 0, Down: 1, Up: 2, Zero: 3 } as const;
export type Rc = (typeof Rc)[keyof typeof Rc];

/** A target format: precision in bits and normal exponent range (unbiased, value 1.f × 2^E). */
export interface Format {
  p: number;
  emin: number;
  emax: number;
}

export const EXT64: Format = { p: 64, emin: -16382, emax: 16383 };
export const EXT53: Format = { p: 53, emin: -16382, emax: 16383 };
export const EXT24: Format = { p: 24, emin: -16382, emax: 16383 };
export const DOUBLE: Format = { p: 53, emin: -1022, emax: 1023 };
export const SINGLE: Format = { p: 24, emin: -126, emax: 127 };

/** The extended-range format for a precision-control field (PC=01 is reserved: treated as 64). */
export function extFormat(pc: number): Format {
  return pc === 0 ? EXT24 : pc === 2 ? EXT53 : EXT64;
}

export function sigOf(v: F80): bigint {
  return (BigInt(v.hi) << 32n) | BigInt(v.lo);
}

/** Number of significant bits of a positive BigInt (0 for 0). */
export function bitLength(m: bigint): number {
  let n = 0;
  while (m >= 0x10000000000000000n) {
    if (m >= 1n << 1024n) {
      m >>= 1024n;
      n += 1024;
    } else {
      m >>= 64n;
      n += 64;
    }
  }
  const hi = Number(m >> 32n);
  return hi !== 0 ? n + 64 - Math.clz32(hi) : n + 32 - Math.clz32(Number(m));
}

/**
 * An exact finite non-zero value `(-1)^sign × m × 2^e`. Unsupported encodings are never
 * unpacked (they are invalid operands).
 */
export interface Exact {
  sign: number;
  m: bigint;
  e: number;
}

/** Unpacks a Normal or Denormal value (pseudo-denormals have the same value as exponent 1). */
export function unpack(v: F80): Exact {
  const exp = v.se & EXP_MAX;
  return { sign: v.se >>> 15, m: sigOf(v), e: (exp === 0 ? 1 : exp) - EXP_BIAS - 63 };
}

/** Result of rounding an exact value to a format. */
export interface Rounded {
  sign: number;
  /** Rounded significand (at most p bits; 0 when the value rounded to zero). */
  r: bigint;
  /** Exponent of the significand's least significant bit: value = r × 2^k. */
  k: number;
  inexact: boolean;
  /** The magnitude was increased by rounding (C1 after an inexact result). */
  up: boolean;
  /** Tiny after rounding with unbounded exponent (x87 tininess). */
  tiny: boolean;
  overflow: boolean;
}

interface ShiftRound {
  q: bigint;
  inexact: boolean;
  up: boolean;
}

/** Rounds m / 2^shift to an integer with rounding control rc for a value of sign `sign`. */
export function shiftRound(m: bigint, shift: number, sign: number, rc: number): ShiftRound {
  if (shift <= 0) return { q: m << BigInt(-shift), inexact: false, up: false };
  const s = BigInt(shift);
  const q = m >> s;
  const rem = m - (q << s);
  if (rem === 0n) return { q, inexact: false, up: false };
  let inc: boolean;
  switch (rc) {
    case Rc.Nearest: {
      const half = 1n << (s - 1n);
      inc = rem > half || (rem === half && (q & 1n) === 1n);
      break;
    }
    case Rc.Down:
      inc = sign === 1;
      break;
    case Rc.Up:
      inc = sign === 0;
      break;
    default:
      inc = false;
  }
  return { q: inc ? q + 1n : q, inexact: true, up: inc };
}

/**
 * Rounds `(-1)^sign × m × 2^e` (m > 0) to format f with rounding control rc. Denormal results
 * are multiples of 2^(emin-p+1) (for the extended format with a reduced precision control this
 * is rounding at the fixed bit position of the 64-bit significand, as the x87 does).
 * `unbounded` skips denormalisation (used for the bias-adjusted unmasked-underflow result).
 */
export function roundToFormat(
  sign: number,
  m: bigint,
  e: number,
  f: Format,
  rc: number,
  unbounded = false,
): Rounded {
  const bl = bitLength(m);
  const E = e + bl - 1;
  let tiny = false;
  if (E < f.emin) {
    // Tininess after rounding: round to p bits with an unbounded exponent first.
    const k1 = E - f.p + 1;
    const t = shiftRound(m, k1 - e, sign, rc);
    const E1 = bitLength(t.q) > f.p ? E + 1 : E;
    tiny = E1 < f.emin;
  }
  let k = (unbounded ? E : Math.max(E, f.emin)) - f.p + 1;
  const rr = shiftRound(m, k - e, sign, rc);
  let r = rr.q;
  if (bitLength(r) > f.p) {
    r >>= 1n;
    k++;
  }
  const Er = r === 0n ? k : k + bitLength(r) - 1;
  return { sign, r, k, inexact: rr.inexact, up: rr.up, tiny, overflow: r !== 0n && Er > f.emax };
}

/** The largest finite magnitude of a format, as significand and lsb exponent. */
export function maxFinite(f: Format): { r: bigint; k: number } {
  return { r: (1n << BigInt(f.p)) - 1n, k: f.emax - f.p + 1 };
}

/** Whether a masked overflow delivers infinity (otherwise the largest finite value). */
export function overflowToInfinity(sign: number, rc: number): boolean {
  return rc === Rc.Nearest || (rc === Rc.Down && sign === 1) || (rc === Rc.Up && sign === 0);
}

/** Packs r × 2^k (r < 2^64, in the extended range, exponent-adjusted by `bias`) into an F80. */
export function packExt(sign: number, r: bigint, k: number, bias = 0): F80 {
  if (r === 0n) return f80(sign << 15, 0, 0);
  const Er = k + bitLength(r) - 1;
  const biased = Er + EXP_BIAS + bias;
  let sig: bigint;
  let exp: number;
  if (biased >= 1) {
    exp = biased;
    sig = r << BigInt(63 - (Er - k));
  } else {
    exp = 0;
    const sh = k + bias + EXP_BIAS + 62; // value = sig × 2^(1 - 16383 - 63)
    sig = sh >= 0 ? r << BigInt(sh) : r >> BigInt(-sh);
  }
  return f80((sign << 15) | exp, Number(sig >> 32n), Number(sig & 0xffffffffn));
}

export function infinity(sign: number): F80 {
  return f80((sign << 15) | EXP_MAX, 0x80000000, 0);
}

export function zero(sign: number): F80 {
  return f80(sign << 15, 0, 0);
}

/** The F80 holding a quieted copy of a NaN. */
export function quiet(v: F80): F80 {
  return f80(v.se, v.hi | 0x40000000, v.lo);
}

/** An exact value from a JS number (finite, non-zero). */
export function exactFromNumber(x: number): Exact {
  const sign = x < 0 || Object.is(x, -0) ? 1 : 0;
  let a = Math.abs(x);
  let e = 0;
  // Scale into [2^52, 2^53) so the significand is an integer.
  while (a >= 2 ** 53) {
    a /= 2 ** 32;
    e += 32;
  }
  while (a < 2 ** 52) {
    a *= 2 ** 32;
    e -= 32;
  }
  while (!Number.isInteger(a)) {
    a *= 2;
    e -= 1;
  }
  return { sign, m: BigInt(a), e };
}

const scratch = new DataView(new ArrayBuffer(8));

/** Converts a JS number exactly to F80 (doubles always fit). */
export function fromNumber(x: number): F80 {
  scratch.setFloat64(0, x);
  const hi = scratch.getUint32(0);
  const exp = (hi >>> 20) & 0x7ff;
  if (exp !== 0 && exp !== 0x7ff) {
    const lo = scratch.getUint32(4);
    return f80(
      ((hi >>> 31) << 15) | (exp - 1023 + 16383),
      0x80000000 | ((hi & 0xfffff) << 11) | (lo >>> 21),
      lo << 11,
    );
  }
  if (Number.isNaN(x)) return f80(0xffff, 0xc0000000, 0);
  if (x === 0) return zero(Object.is(x, -0) ? 1 : 0);
  if (!Number.isFinite(x)) return infinity(x < 0 ? 1 : 0);
  const ex = exactFromNumber(x);
  const rr = roundToFormat(ex.sign, ex.m, ex.e, EXT64, Rc.Nearest);
  return packExt(ex.sign, rr.r, rr.k);
}

/**
 * The value as a JS number (rounded to nearest double; exponent out of double range gives
 * ±Infinity or ±0). For NaN/unsupported it returns NaN.
 */
export function toNumber(v: F80): number {
  const kind = classify(v.se, v.hi, v.lo);
  const neg = v.se >>> 15 === 1;
  switch (kind) {
    case Kind.Zero:
      return neg ? -0 : 0;
    case Kind.Infinity:
      return neg ? -Infinity : Infinity;
    case Kind.Normal:
    case Kind.Denormal: {
      const ex = unpack(v);
      const rr = roundToFormat(ex.sign, ex.m, ex.e, DOUBLE, Rc.Nearest);
      if (rr.overflow) return neg ? -Infinity : Infinity;
      const mag =
        Number(rr.r) * 2 ** Math.max(rr.k, -1074 - 60) * (rr.k < -1074 - 60 ? 2 ** (rr.k + 1134) : 1);
      return neg ? -mag : mag;
    }
    default:
      return Number.NaN;
  }
}

/** Compares two finite values exactly: -1, 0, 1 (zeros of either sign are equal). */
export function compareFinite(a: F80, ka: Kind, b: F80, kb: Kind): number {
  const az = ka === Kind.Zero;
  const bz = kb === Kind.Zero;
  if (az && bz) return 0;
  const sa = a.se >>> 15;
  const sb = b.se >>> 15;
  if (az) return sb ? 1 : -1;
  if (bz) return sa ? -1 : 1;
  if (sa !== sb) return sa ? -1 : 1;
  const mag = compareMagnitude(a, b);
  return sa ? -mag : mag;
}

/** Compares |a| and |b| of finite values (both Normal/Denormal/Zero). */
export function compareMagnitude(a: F80, b: F80): number {
  const na = normalized(a);
  const nb = normalized(b);
  if (na.e !== nb.e) return na.e < nb.e ? -1 : 1;
  if (na.hi !== nb.hi) return na.hi < nb.hi ? -1 : 1;
  if (na.lo !== nb.lo) return na.lo < nb.lo ? -1 : 1;
  return 0;
}

/** Exponent and left-aligned significand of a finite value, without BigInt. Zero gives e = -Infinity. */
function normalized(v: F80): { e: number; hi: number; lo: number } {
  let hi = v.hi >>> 0;
  let lo = v.lo >>> 0;
  let e = v.se & EXP_MAX;
  if (hi === 0 && lo === 0) return { e: Number.NEGATIVE_INFINITY, hi: 0, lo: 0 };
  if (e === 0) e = 1;
  while ((hi & 0x80000000) === 0) {
    if (hi === 0) {
      hi = lo;
      lo = 0;
      e -= 32;
      continue;
    }
    const s = Math.clz32(hi);
    hi = ((hi << s) | (lo >>> (32 - s))) >>> 0;
    lo = (lo << s) >>> 0;
    e -= s;
  }
  return { e, hi, lo };
}
