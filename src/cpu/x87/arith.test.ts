/**
 * The BigInt-free fast paths (fast.ts) against the exact BigInt arithmetic, and exact
 * rounding properties of the 80-bit helpers. These run everywhere (no host x87 needed).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { add, type Ctx, div, mul, sqrt } from "./arith.js";
import { fastAdd, fastMul } from "./fast.js";
import { DOUBLE, type F80, f80, fromNumber, Rc, roundToFormat, toNumber, unpack } from "./float80.js";

/** A normal 80-bit value with an exponent near `base` (random significand with J set). */
const normal = (spread: number) =>
  fc
    .tuple(
      fc.integer({ min: 0, max: 1 }),
      fc.integer({ min: 16383 - spread, max: 16383 + spread }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 3 }),
    )
    .map(([s, e, hi, lo, shape]) => {
      // Shapes: random, low word clear, all ones, a single bit (ties and carries).
      const h = shape === 2 ? 0xffffffff : shape === 3 ? 0x80000000 : hi;
      const l = shape === 1 ? 0 : shape === 2 ? 0xffffffff : shape === 3 ? 0 : lo;
      return f80((s << 15) | e, (h | 0x80000000) >>> 0, l);
    });

const controlWord = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
  .map(([pc, rc]) => 0x7f | (pc << 8) | (rc << 10));

/** The exact path: a memDenormal marker that is neither operand disables the fast path. */
function slowCtx(cw: number): Ctx {
  return { cw, flags: 0, memDenormal: f80(0, 0, 0) };
}

describe("fast paths agree with the exact BigInt arithmetic", () => {
  it("FADD/FSUB", () => {
    fc.assert(
      fc.property(normal(70), normal(70), fc.boolean(), controlWord, (a, b, sub, cw) => {
        const fast: Ctx = { cw, flags: 0, memDenormal: null };
        const r = fastAdd(a, b, sub, fast);
        const slow = slowCtx(cw);
        const s = add(a, b, sub, slow);
        if (r) {
          expect(r).toEqual(s);
          expect(fast.flags).toBe(slow.flags);
        } else expect(fast.flags).toBe(0);
      }),
      { numRuns: 3000 },
    );
  });

  it("FMUL", () => {
    fc.assert(
      fc.property(normal(9000), normal(9000), controlWord, (a, b, cw) => {
        const fast: Ctx = { cw, flags: 0, memDenormal: null };
        const r = fastMul(a, b, fast);
        const slow = slowCtx(cw);
        const s = mul(a, b, slow);
        if (r) {
          expect(r).toEqual(s);
          expect(fast.flags).toBe(slow.flags);
        } else expect(fast.flags).toBe(0);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("exact arithmetic", () => {
  const ctx = (): Ctx => ({ cw: 0x37f, flags: 0, memDenormal: null });

  it("add, mul, div and sqrt of doubles agree with IEEE double when rounded to 53 bits", () => {
    const d = fc.double({ min: -1e300, max: 1e300, noNaN: true, noDefaultInfinity: true });
    fc.assert(
      fc.property(d, d, (x, y) => {
        const c: Ctx = { cw: 0x27f, flags: 0, memDenormal: null }; // PC = 53 bits, nearest
        const check = (v: F80, want: number) => {
          if (!Number.isFinite(want) || (want !== 0 && Math.abs(want) < 2.3e-308)) return; // double range only
          expect(toNumber(v)).toBe(want);
        };
        check(add(fromNumber(x), fromNumber(y), false, c), x + y);
        check(add(fromNumber(x), fromNumber(y), true, c), x - y);
        check(mul(fromNumber(x), fromNumber(y), c), x * y);
        if (y !== 0) check(div(fromNumber(x), fromNumber(y), c), x / y);
        check(sqrt(fromNumber(Math.abs(x)), c), Math.sqrt(Math.abs(x)));
      }),
      { numRuns: 2000 },
    );
  });

  it("x - x is +0, or -0 when rounding down", () => {
    const x = fromNumber(1.5);
    expect(add(x, x, true, ctx())).toEqual(f80(0, 0, 0));
    expect(add(x, x, true, { cw: 0x37f | (Rc.Down << 10), flags: 0, memDenormal: null })).toEqual(
      f80(0x8000, 0, 0),
    );
  });

  it("roundToFormat detects tininess after rounding", () => {
    // Just below the smallest normal double: rounds up to it (not tiny after rounding).
    const m = (1n << 60n) - 1n; // 60 ones
    const e = -1022 - 60; // value = (2^60 - 1) × 2^-1082 < 2^-1022
    const r = roundToFormat(0, m, e, DOUBLE, Rc.Nearest);
    expect(r.tiny).toBe(false);
    expect(r.inexact).toBe(true);
    const down = roundToFormat(0, m, e, DOUBLE, Rc.Zero);
    expect(down.tiny).toBe(true);
  });

  it("unpack of a pseudo-denormal has the value of the same bits with exponent 1", () => {
    const pd = unpack(f80(0, 0x80000000, 0));
    const n = unpack(f80(1, 0x80000000, 0));
    expect(pd.m).toBe(n.m);
    expect(pd.e).toBe(n.e);
  });
});
