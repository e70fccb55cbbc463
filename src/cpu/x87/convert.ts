/**
 * Conversions between the 80-bit register format and the x87 memory formats: 32/64-bit reals,
 * 16/32/64-bit integers and 18-digit packed BCD. Loads are exact; stores round once with the
 * rounding control into the target's precision and exponent range (precision control does
 * not apply to stores).
 */
import { type Ctx, Flag, invalid, precheck1, rcOf } from "./arith.js";
import {
  bitLength,
  classify,
  DOUBLE,
  EXP_MAX,
  type F80,
  f80,
  type Format,
  INDEFINITE,
  infinity,
  Kind,
  maxFinite,
  overflowToInfinity,
  packExt,
  roundToFormat,
  SINGLE,
  shiftRound,
  unpack,
  zero,
} from "./float80.js";

/** A memory real's layout. */
interface RealLayout {
  f: Format;
  fracBits: number;
  bias: number;
  expMax: number;
}

const R32: RealLayout = { f: SINGLE, fracBits: 23, bias: 127, expMax: 0xff };
const R64: RealLayout = { f: DOUBLE, fracBits: 52, bias: 1023, expMax: 0x7ff };

/** A memory real as a 64-bit pattern (32-bit reals in the low half). */
function loadReal(bits: bigint, L: RealLayout, ctx: Ctx, quietSNaN: boolean): F80 {
  const fb = BigInt(L.fracBits);
  const frac = bits & ((1n << fb) - 1n);
  const exp = Number((bits >> fb) & BigInt(L.expMax));
  const sign = Number(bits >> (fb + BigInt(Math.log2(L.expMax + 1))));
  if (exp === L.expMax) {
    if (frac === 0n) return infinity(sign);
    const sig = (1n << 63n) | (frac << BigInt(63 - L.fracBits));
    let hi = Number(sig >> 32n);
    if ((hi & 0x40000000) === 0 && quietSNaN) {
      ctx.flags |= Flag.IE;
      hi |= 0x40000000;
    }
    return f80((sign << 15) | EXP_MAX, hi, Number(sig & 0xffffffffn));
  }
  if (exp === 0) {
    if (frac === 0n) return zero(sign);
    ctx.flags |= Flag.DE;
    return packExt(sign, frac, 1 - L.bias - L.fracBits);
  }
  return packExt(sign, frac | (1n << fb), exp - L.bias - L.fracBits);
}

/**
 * FLD m32 (quietSNaN: an SNaN raises IE and loads quieted) or an arithmetic operand (the SNaN
 * is kept so the operation applies the NaN rules). A denormal raises DE.
 */
export function loadF32(bits: number, ctx: Ctx, quietSNaN: boolean): F80 {
  const exp = (bits >>> 23) & 0xff;
  if (exp !== 0 && exp !== 0xff) {
    // Normal: exact without BigInt.
    return f80(((bits >>> 31) << 15) | (exp - 127 + 16383), 0x80000000 | ((bits & 0x7fffff) << 8), 0);
  }
  return loadReal(BigInt(bits >>> 0), R32, ctx, quietSNaN);
}

export function loadF64(lo: number, hi: number, ctx: Ctx, quietSNaN: boolean): F80 {
  const exp = (hi >>> 20) & 0x7ff;
  if (exp !== 0 && exp !== 0x7ff) {
    return f80(
      ((hi >>> 31) << 15) | (exp - 1023 + 16383),
      0x80000000 | ((hi & 0xfffff) << 11) | (lo >>> 21),
      lo << 11,
    );
  }
  return loadReal((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0), R64, ctx, quietSNaN);
}

/** Round-up decision for a discarded part that is above (1), at (0) or below (-1) half an ulp. */
function incFor(rc: number, sign: number, cmpHalf: number, odd: boolean): boolean {
  if (rc === 0) return cmpHalf > 0 || (cmpHalf === 0 && odd);
  if (rc === 1) return sign === 1;
  if (rc === 2) return sign === 0;
  return false;
}

/**
 * Rounds a register value to a memory real. Returns the bit pattern, or null when an unmasked
 * overflow/underflow means nothing is stored. Invalid operands give the QNaN indefinite.
 */
function storeReal(a: F80, L: RealLayout, ctx: Ctx): bigint | null {
  const k = classify(a.se, a.hi, a.lo);
  const sign = a.se >>> 15;
  const fb = BigInt(L.fracBits);
  const expShift = fb;
  const signBit = BigInt(sign) << (fb + BigInt(Math.log2(L.expMax + 1)));
  const inf = signBit | (BigInt(L.expMax) << expShift);
  if (k === Kind.Zero) return signBit;
  if (k === Kind.Infinity) return inf;
  let v = a;
  if (k === Kind.Unsupported || k === Kind.SNaN || k === Kind.QNaN) {
    const pre = precheck1(a, k, ctx);
    v = pre ?? INDEFINITE;
    const sig = (BigInt(v.hi) << 32n) | BigInt(v.lo);
    const frac = (sig >> BigInt(63 - L.fracBits)) & ((1n << fb) - 1n);
    return (
      (BigInt(v.se >>> 15) << (fb + BigInt(Math.log2(L.expMax + 1)))) | (BigInt(L.expMax) << expShift) | frac
    );
  }
  const A = unpack(a);
  const rc = rcOf(ctx);
  const rr = roundToFormat(sign, A.m, A.e, L.f, rc);
  if (rr.overflow) {
    if ((ctx.cw & Flag.OE) === 0) {
      ctx.flags |= Flag.OE;
      return null;
    }
    ctx.flags |= Flag.OE | Flag.PE;
    if (overflowToInfinity(sign, rc)) {
      ctx.flags |= Flag.C1;
      return inf;
    }
    const mx = maxFinite(L.f);
    return packReal(signBit, mx.r, mx.k, L);
  }
  if (rr.tiny) {
    if ((ctx.cw & Flag.UE) === 0) {
      ctx.flags |= Flag.UE;
      return null;
    }
    if (rr.inexact) ctx.flags |= Flag.UE;
  }
  if (rr.inexact) ctx.flags |= Flag.PE | (rr.up ? Flag.C1 : 0);
  return packReal(signBit, rr.r, rr.k, L);
}

function packReal(signBit: bigint, r: bigint, k: number, L: RealLayout): bigint {
  if (r === 0n) return signBit;
  const Er = k + bitLength(r) - 1;
  const fb = BigInt(L.fracBits);
  if (Er >= L.f.emin) {
    const frac = (r << BigInt(L.fracBits - (Er - k))) - (1n << fb);
    return signBit | (BigInt(Er + L.bias) << fb) | frac;
  }
  return signBit | (r << BigInt(k - (L.f.emin - L.fracBits)));
}

/** FST m32: the 32-bit pattern, or null (nothing stored). */
export function storeF32(a: F80, ctx: Ctx): number | null {
  const exp = a.se & 0x7fff;
  if (exp !== 0 && exp !== 0x7fff && a.hi & 0x80000000) {
    // Normal source and (checked below) normal result: round without BigInt.
    const sign = a.se >>> 15;
    let s24 = a.hi >>> 8;
    const r8 = a.hi & 0xff;
    let e = exp;
    const inexact = r8 !== 0 || a.lo !== 0;
    const inc =
      inexact &&
      incFor(rcOf(ctx), sign, r8 > 0x80 ? 1 : r8 < 0x80 ? -1 : a.lo !== 0 ? 1 : 0, (s24 & 1) === 1);
    if (inc && ++s24 === 0x1000000) {
      s24 = 0x800000;
      e++;
    }
    const biased = e - 16383 + 127;
    if (biased >= 1 && biased <= 254) {
      if (inexact) ctx.flags |= Flag.PE | (inc ? Flag.C1 : 0);
      return ((sign << 31) | (biased << 23) | (s24 & 0x7fffff)) >>> 0;
    }
  }
  const b = storeReal(a, R32, ctx);
  return b === null ? null : Number(b);
}

/** FST m64: [lo, hi], or null (nothing stored). */
export function storeF64(a: F80, ctx: Ctx): [number, number] | null {
  const exp = a.se & 0x7fff;
  if (exp !== 0 && exp !== 0x7fff && a.hi & 0x80000000) {
    // 53-bit significand = fhi × 2^21 + flo; 11 bits discarded.
    const sign = a.se >>> 15;
    let fhi = a.hi >>> 0;
    let flo = a.lo >>> 11;
    const rem = a.lo & 0x7ff;
    let e = exp;
    const inc = rem !== 0 && incFor(rcOf(ctx), sign, rem > 0x400 ? 1 : rem < 0x400 ? -1 : 0, (flo & 1) === 1);
    if (inc && ++flo === 0x200000) {
      flo = 0;
      fhi = (fhi + 1) >>> 0;
      if (fhi === 0) {
        fhi = 0x80000000;
        e++;
      }
    }
    const biased = e - 16383 + 1023;
    if (biased >= 1 && biased <= 2046) {
      if (rem !== 0) ctx.flags |= Flag.PE | (inc ? Flag.C1 : 0);
      const hi = ((sign << 31) | (biased << 20) | ((fhi & 0x7fffffff) >>> 11)) >>> 0;
      return [(((fhi & 0x7ff) << 21) | flo) >>> 0, hi];
    }
  }
  const b = storeReal(a, R64, ctx);
  return b === null ? null : [Number(b & 0xffffffffn), Number(b >> 32n)];
}

/** FILD m16/m32 (exact, no BigInt). */
export function loadInt32(n: number): F80 {
  if (n === 0) return zero(0);
  const sign = n < 0 ? 1 : 0;
  const mag = (sign ? -n : n) >>> 0;
  const z = Math.clz32(mag);
  return f80((sign << 15) | (16383 + 31 - z), mag << z, 0);
}

/** Integer loads (exact). */
export function loadInt(n: bigint): F80 {
  if (n === 0n) return zero(0);
  const sign = n < 0n ? 1 : 0;
  return packExt(sign, sign ? -n : n, 0);
}

/**
 * FIST/FISTP: rounds to an integer with the rounding control. Out of range, NaN, infinity or
 * unsupported: IE and the integer indefinite (-2^(bits-1)).
 */
export function storeInt(a: F80, bits: number, ctx: Ctx): bigint {
  const ex = (a.se & 0x7fff) - 16383;
  if (ex >= 0 && ex <= 30 && a.hi & 0x80000000) {
    // 1 <= |a| < 2^31: the integer part and the discarded bits from the u32 halves.
    const sign = a.se >>> 15;
    const sh = 31 - ex; // 1..31 bits of hi below the integer part
    const hi = a.hi >>> 0;
    const unit = 2 ** sh;
    let q = Math.floor(hi / unit);
    const frac = hi % unit;
    const half = unit / 2;
    const inexact = frac !== 0 || a.lo !== 0;
    const cmp = frac > half ? 1 : frac < half ? -1 : a.lo !== 0 ? 1 : 0;
    const inc = inexact && incFor(rcOf(ctx), sign, cmp, (q & 1) === 1);
    if (inc) q++;
    const n = sign ? -q : q;
    const lim = 2 ** (bits - 1);
    if (n >= -lim && n < lim) {
      if (inexact) ctx.flags |= Flag.PE | (inc ? Flag.C1 : 0);
      return BigInt(n);
    }
  }
  const k = classify(a.se, a.hi, a.lo);
  const indefinite = -(1n << BigInt(bits - 1));
  if (k === Kind.Zero) return 0n;
  if (k !== Kind.Normal && k !== Kind.Denormal) {
    ctx.flags |= Flag.IE;
    return indefinite;
  }
  const A = unpack(a);
  const E = A.e + bitLength(A.m) - 1;
  if (E >= bits) {
    ctx.flags |= Flag.IE;
    return indefinite;
  }
  const rr = shiftRound(A.m, -A.e, A.sign, rcOf(ctx));
  const n = A.sign ? -rr.q : rr.q;
  if (n < indefinite || n > -indefinite - 1n) {
    ctx.flags |= Flag.IE;
    return indefinite;
  }
  if (rr.inexact) ctx.flags |= Flag.PE | (rr.up ? Flag.C1 : 0);
  return n;
}

/** FBLD: 10 bytes, 18 BCD digits (byte 0 least significant) and the sign in byte 9 bit 7. */
export function loadBcd(bytes: ArrayLike<number>): F80 {
  let n = 0n;
  for (let i = 8; i >= 0; i--) {
    const b = bytes[i]! & 0xff;
    n = n * 100n + BigInt((b >> 4) * 10 + (b & 15));
  }
  const sign = (bytes[9]! & 0x80) !== 0 ? 1 : 0;
  if (n === 0n) return zero(sign);
  return packExt(sign, n, 0);
}

const BCD_LIMIT = 10n ** 18n;
const BCD_INDEFINITE = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];

/** FBSTP: rounds to an integer and packs 18 digits; out of range or not a number: indefinite. */
export function storeBcd(a: F80, ctx: Ctx): number[] {
  const k = classify(a.se, a.hi, a.lo);
  const sign = a.se >>> 15;
  let n = 0n;
  if (k === Kind.Normal || k === Kind.Denormal) {
    const A = unpack(a);
    const E = A.e + bitLength(A.m) - 1;
    if (E >= 60) {
      ctx.flags |= Flag.IE;
      return BCD_INDEFINITE.slice();
    }
    const rr = shiftRound(A.m, -A.e, sign, rcOf(ctx));
    if (rr.q >= BCD_LIMIT) {
      ctx.flags |= Flag.IE;
      return BCD_INDEFINITE.slice();
    }
    if (rr.inexact) ctx.flags |= Flag.PE | (rr.up ? Flag.C1 : 0);
    n = rr.q;
  } else if (k !== Kind.Zero) {
    invalid(ctx);
    return BCD_INDEFINITE.slice();
  }
  const out = new Array<number>(10).fill(0);
  for (let i = 0; i < 9; i++) {
    const lo = Number(n % 10n);
    n /= 10n;
    const hi = Number(n % 10n);
    n /= 10n;
    out[i] = (hi << 4) | lo;
  }
  out[9] = sign ? 0x80 : 0;
  return out;
}
