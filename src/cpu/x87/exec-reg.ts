/**
 * Register forms of D8..DF (mod = 3): register arithmetic, compares (FCOM*, FUCOM*, FCOMI*,
 * FUCOMI*, FTST, FXAM), FCMOVcc, FXCH, FST/FSTP ST(i), FFREE(P), constants, FNINIT/FNCLEX and
 * the D9 E0..FF group (FCHS, FABS, transcendentals, FPREM/FPREM1, FSQRT, FRNDINT, FSCALE,
 * FXTRACT, FINCSTP/FDECSTP), including the undocumented aliases the hardware executes.
 */
import { abs, Cmp, chs, compare, extract, Flag, remainder, roundInt, scale, sqrt } from "./arith.js";
import {
  classify,
  EXT64,
  type F80,
  f80,
  fromNumber,
  INDEFINITE,
  Kind,
  packExt,
  roundToFormat,
} from "./float80.js";
import { f2xm1, fpatan, fyl2x, fyl2xp1, sinCos, tan } from "./transcendental.js";
import {
  CONSTANTS,
  EFLAGS_AF,
  EFLAGS_CF,
  EFLAGS_OF,
  EFLAGS_PF,
  EFLAGS_SF,
  EFLAGS_ZF,
  type FpuCore,
  STACK_OVERFLOW,
  STACK_UNDERFLOW,
  SW_C1,
  SW_C2,
  SW_ES_B,
} from "./core.js";

/** FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2 rounded with each rounding control (index c * 4 + rc). */
const ROUNDED_CONSTANTS: readonly F80[] = CONSTANTS.flatMap(([m, e]) =>
  [0, 1, 2, 3].map((rc) => {
    const rr = roundToFormat(0, m, e, EXT64, rc);
    return packExt(0, rr.r, rr.k);
  }),
);

/** Register forms. Returns 0 invalid, 1 executed, 2 control instruction. */
export function execReg(fpu: FpuCore, op: number, reg: number, i: number): number {
  switch (op) {
    case 0:
      if (reg === 2 || reg === 3) compareReg(fpu, i, false, reg === 3 ? 1 : 0);
      else arithReg(fpu, reg, 0, i, false);
      return 1;
    case 4:
    case 6:
      if (reg === 2 || reg === 3) {
        // DC D0/D8 and DE D0 are aliases of FCOM/FCOMP; DE D9 is FCOMPP.
        if (op === 4) compareReg(fpu, i, false, reg === 3 ? 1 : 0);
        else if (reg === 2) compareReg(fpu, i, false, 1);
        else if (i === 1) compareReg(fpu, 1, false, 2);
        else return 0;
      } else arithReg(fpu, reg >= 4 ? reg ^ 1 : reg, i, 0, op === 6);
      return 1;
    case 1:
      return execD9(fpu, reg, i);
    case 2:
      if (reg < 4) {
        fcmov(fpu, reg, i, false);
        return 1;
      }
      if (reg === 5 && i === 1) {
        compareReg(fpu, 1, true, 2);
        return 1;
      }
      return 0;
    case 3:
      if (reg < 4) {
        fcmov(fpu, reg, i, true);
        return 1;
      }
      if (reg === 4) {
        if (i === 2) fpu.sw &= ~(0x7f | SW_ES_B);
        else if (i === 3) fpu.reset();
        else if (i !== 0 && i !== 1 && i !== 4) return 0;
        return 2;
      }
      if (reg === 5 || reg === 6) {
        compareEflags(fpu, i, reg === 5, false);
        return 1;
      }
      return 0;
    case 5:
      switch (reg) {
        case 0:
          fpu.empty[(fpu.top + i) & 7] = 1;
          fpu.raise(0);
          return 1;
        case 1:
          fxch(fpu, i);
          return 1;
        case 2:
        case 3:
          fstReg(fpu, i, reg === 3);
          return 1;
        case 4:
        case 5:
          compareReg(fpu, i, true, reg === 5 ? 1 : 0);
          return 1;
        default:
          return 0;
      }
    default:
      switch (reg) {
        case 0:
          fpu.empty[(fpu.top + i) & 7] = 1;
          fpu.pop();
          fpu.raise(0);
          return 1;
        case 1:
          fxch(fpu, i);
          return 1;
        case 2:
        case 3:
          fstReg(fpu, i, true);
          return 1;
        case 5:
        case 6:
          compareEflags(fpu, i, reg === 5, true);
          return 1;
        default:
          return 0;
      }
  }
}

/** FCOMI/FUCOMI(P). */
function compareEflags(fpu: FpuCore, i: number, quiet: boolean, popAfter: boolean): void {
  const c = fpu.begin();
  let res: Cmp = Cmp.Unordered;
  if (fpu.isEmpty(0) || fpu.isEmpty(i)) c.flags |= STACK_UNDERFLOW;
  else res = compare(fpu.st(0), fpu.st(i), quiet, c);
  // C1 is left unchanged unless a stack fault clears it (as the host x87 does).
  fpu.sw |= c.flags & 0x7f;
  if (c.flags & Flag.SF) fpu.sw &= ~SW_C1;
  fpu.updateSummary();
  // EFLAGS are written even when an unmasked exception blocks the pop.
  let fl = fpu.host.getEflags() & ~(EFLAGS_CF | EFLAGS_PF | EFLAGS_ZF | EFLAGS_OF | EFLAGS_SF | EFLAGS_AF);
  if (res === Cmp.Less) fl |= EFLAGS_CF;
  else if (res === Cmp.Equal) fl |= EFLAGS_ZF;
  else if (res === Cmp.Unordered) fl |= EFLAGS_CF | EFLAGS_PF | EFLAGS_ZF;
  fpu.host.setEflags(fl);
  if (popAfter && !fpu.blocked(c.flags)) fpu.pop();
}

/** ST(dst) = ST(dst) op ST(src) (reg in the D8 numbering), popping for the DE forms. */
function arithReg(fpu: FpuCore, reg: number, dst: number, src: number, popAfter: boolean): void {
  const c = fpu.begin();
  if (fpu.isEmpty(dst) || fpu.isEmpty(src)) {
    c.flags |= STACK_UNDERFLOW;
    fpu.commit(dst, INDEFINITE, popAfter ? 1 : 0);
    return;
  }
  fpu.commit(dst, fpu.compute(reg, fpu.st(dst), fpu.st(src)), popAfter ? 1 : 0);
}

function compareReg(fpu: FpuCore, i: number, quiet: boolean, pops: number): void {
  const c = fpu.begin();
  let res: Cmp = Cmp.Unordered;
  if (fpu.isEmpty(0) || fpu.isEmpty(i)) c.flags |= STACK_UNDERFLOW;
  else res = compare(fpu.st(0), fpu.st(i), quiet, c);
  fpu.finishCompare(res, pops);
}

function fcmov(fpu: FpuCore, cond: number, i: number, negate: boolean): void {
  const c = fpu.begin();
  if (fpu.isEmpty(0) || fpu.isEmpty(i)) {
    c.flags |= STACK_UNDERFLOW;
    fpu.commit(0, INDEFINITE, 0);
    return;
  }
  const fl = fpu.host.getEflags();
  let t: boolean;
  if (cond === 0) t = (fl & EFLAGS_CF) !== 0;
  else if (cond === 1) t = (fl & EFLAGS_ZF) !== 0;
  else if (cond === 2) t = (fl & (EFLAGS_CF | EFLAGS_ZF)) !== 0;
  else t = (fl & EFLAGS_PF) !== 0;
  if (t !== negate) fpu.setReg(0, fpu.st(i));
}

function fxch(fpu: FpuCore, i: number): void {
  const c = fpu.begin();
  let a = fpu.st(0);
  let b = fpu.st(i);
  if (fpu.isEmpty(0) || fpu.isEmpty(i)) {
    c.flags |= STACK_UNDERFLOW;
    if (fpu.blocked(c.flags)) {
      fpu.raise(c.flags);
      return;
    }
    if (fpu.isEmpty(0)) a = INDEFINITE;
    if (fpu.isEmpty(i)) b = INDEFINITE;
  }
  fpu.setReg(0, b);
  fpu.setReg(i, a);
  fpu.raise(c.flags);
}

function fstReg(fpu: FpuCore, i: number, popAfter: boolean): void {
  const c = fpu.begin();
  if (fpu.isEmpty(0)) {
    c.flags |= STACK_UNDERFLOW;
    fpu.commit(i, INDEFINITE, popAfter ? 1 : 0);
    return;
  }
  fpu.commit(i, fpu.st(0), popAfter ? 1 : 0);
}

function execD9(fpu: FpuCore, reg: number, i: number): number {
  switch (reg) {
    case 0: {
      const c = fpu.begin();
      let v = fpu.st(i);
      if (fpu.isEmpty(i)) {
        c.flags |= STACK_UNDERFLOW;
        v = INDEFINITE;
      }
      fpu.load(v);
      return 1;
    }
    case 1:
      fxch(fpu, i);
      return 1;
    case 2:
      if (i !== 0) return 0;
      return 1; // FNOP
    case 3:
      // D9 D8+i (an alias of FSTP ST(i)) raises no stack underflow: with ST0 empty it
      // only pops (as the host x87 does).
      fpu.begin();
      if (!fpu.isEmpty(0)) fpu.setReg(i, fpu.st(0));
      fpu.pop();
      fpu.raise(0);
      return 1;
    case 4:
      return execD9E0(fpu, i);
    case 5: {
      if (i === 7) return 0;
      fpu.begin();
      if (i === 0) fpu.load(fromNumber(1));
      else if (i === 6) fpu.load(fromNumber(0));
      else fpu.load(ROUNDED_CONSTANTS[(i - 1) * 4 + ((fpu.cw >>> 10) & 3)]!);
      return 1;
    }
    case 6:
      execD9F0(fpu, i);
      return 1;
    default:
      execD9F8(fpu, i);
      return 1;
  }
}

function execD9E0(fpu: FpuCore, i: number): number {
  const c = fpu.begin();
  switch (i) {
    case 0:
    case 1:
      if (fpu.isEmpty(0)) {
        c.flags |= STACK_UNDERFLOW;
        fpu.commit(0, INDEFINITE, 0);
      } else fpu.commit(0, i === 0 ? chs(fpu.st(0)) : abs(fpu.st(0)), 0);
      return 1;
    case 4: {
      let res: Cmp = Cmp.Unordered;
      if (fpu.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
      else res = compare(fpu.st(0), f80(0, 0, 0), false, c);
      fpu.finishCompare(res, 0);
      return 1;
    }
    case 5: {
      const v = fpu.st(0);
      const sign = v.se >>> 15;
      if (fpu.isEmpty(0)) fpu.setCC(1, 0, sign, 1);
      else {
        const k = classify(v.se, v.hi, v.lo);
        switch (k) {
          case Kind.Unsupported:
            fpu.setCC(0, 0, sign, 0);
            break;
          case Kind.QNaN:
          case Kind.SNaN:
            fpu.setCC(0, 0, sign, 1);
            break;
          case Kind.Normal:
            fpu.setCC(0, 1, sign, 0);
            break;
          case Kind.Infinity:
            fpu.setCC(0, 1, sign, 1);
            break;
          case Kind.Zero:
            fpu.setCC(1, 0, sign, 0);
            break;
          default:
            fpu.setCC(1, 1, sign, 0);
        }
      }
      return 1;
    }
    default:
      return 0;
  }
}

/** D9 F0..F7: F2XM1, FYL2X, FPTAN, FPATAN, FXTRACT, FPREM1, FDECSTP, FINCSTP. */
function execD9F0(fpu: FpuCore, i: number): void {
  const c = fpu.begin();
  switch (i) {
    case 0:
      unary(fpu, (a) => f2xm1(a, c));
      return;
    case 1:
      binaryToST1(fpu, (x, y) => fyl2x(x, y, c));
      return;
    case 2: {
      if (fpu.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
      else if (!fpu.isEmpty(7)) c.flags |= STACK_OVERFLOW;
      if (c.flags) {
        twoResults(fpu, INDEFINITE, INDEFINITE);
        return;
      }
      const t = tan(fpu.st(0), c);
      if (t.outOfRange) {
        fpu.raise(c.flags);
        fpu.sw |= SW_C2;
        return;
      }
      // A NaN result (NaN operand or invalid) is pushed in place of the 1.0 as well.
      const k = classify(t.value.se, t.value.hi, t.value.lo);
      twoResults(fpu, t.value, k === Kind.QNaN ? t.value : fromNumber(1));
      return;
    }
    case 3:
      binaryToST1(fpu, (x, y) => fpatan(x, y, c));
      return;
    case 4: {
      if (fpu.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
      else if (!fpu.isEmpty(7)) c.flags |= STACK_OVERFLOW;
      if (c.flags) {
        twoResults(fpu, INDEFINITE, INDEFINITE, false);
        return;
      }
      const [e, s] = extract(fpu.st(0), c);
      twoResults(fpu, e, s, false);
      return;
    }
    case 5:
      prem(fpu, true);
      return;
    case 6:
      fpu.top = (fpu.top - 1) & 7;
      fpu.raise(0);
      return;
    default:
      fpu.top = (fpu.top + 1) & 7;
      fpu.raise(0);
  }
}

/** D9 F8..FF: FPREM, FYL2XP1, FSQRT, FSINCOS, FRNDINT, FSCALE, FSIN, FCOS. */
function execD9F8(fpu: FpuCore, i: number): void {
  const c = fpu.begin();
  switch (i) {
    case 0:
      prem(fpu, false);
      return;
    case 1:
      binaryToST1(fpu, (x, y) => fyl2xp1(x, y, c));
      return;
    case 2:
      unary(fpu, (a) => sqrt(a, c));
      return;
    case 3: {
      if (fpu.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
      else if (!fpu.isEmpty(7)) c.flags |= STACK_OVERFLOW;
      if (c.flags) {
        twoResults(fpu, INDEFINITE, INDEFINITE);
        return;
      }
      const r = sinCos(fpu.st(0), c, "both");
      if (r.outOfRange) {
        fpu.raise(c.flags);
        fpu.sw |= SW_C2;
        return;
      }
      twoResults(fpu, r.sin, r.cos);
      return;
    }
    case 4:
      unary(fpu, (a) => roundInt(a, c));
      return;
    case 5: {
      if (fpu.isEmpty(0) || fpu.isEmpty(1)) {
        c.flags |= STACK_UNDERFLOW;
        fpu.commit(0, INDEFINITE, 0);
        return;
      }
      fpu.commit(0, scale(fpu.st(0), fpu.st(1), c), 0);
      return;
    }
    default: {
      if (fpu.isEmpty(0)) {
        c.flags |= STACK_UNDERFLOW;
        fpu.commit(0, INDEFINITE, 0);
        fpu.sw &= ~SW_C2;
        return;
      }
      const r = sinCos(fpu.st(0), c, i === 6 ? "sin" : "cos");
      if (r.outOfRange) {
        fpu.raise(c.flags);
        fpu.sw |= SW_C2;
        return;
      }
      fpu.commit(0, i === 6 ? r.sin : r.cos, 0);
      fpu.sw &= ~SW_C2;
    }
  }
}

/** ST0 = f(ST0). */
function unary(fpu: FpuCore, f: (a: F80) => F80): void {
  const c = fpu.ctx;
  if (fpu.isEmpty(0)) {
    c.flags |= STACK_UNDERFLOW;
    fpu.commit(0, INDEFINITE, 0);
    return;
  }
  fpu.commit(0, f(fpu.st(0)), 0);
}

/** ST1 = f(ST0, ST1), then pop (FYL2X, FYL2XP1, FPATAN). */
function binaryToST1(fpu: FpuCore, f: (x: F80, y: F80) => F80): void {
  const c = fpu.ctx;
  if (fpu.isEmpty(0) || fpu.isEmpty(1)) {
    c.flags |= STACK_UNDERFLOW;
    fpu.commit(1, INDEFINITE, 1);
    return;
  }
  fpu.commit(1, f(fpu.st(0), fpu.st(1)), 1);
}

/** FPTAN, FXTRACT, FSINCOS: ST0 = first, then push second; clears C2. */
function twoResults(fpu: FpuCore, first: F80, second: F80, clearC2 = true): void {
  const f = fpu.ctx.flags;
  if (fpu.blocked(f)) {
    fpu.raise(f);
    if (clearC2) fpu.sw &= ~SW_C2;
    return;
  }
  fpu.setReg(0, first);
  fpu.push(second);
  fpu.raise(f);
  if (clearC2) fpu.sw &= ~SW_C2;
}

function prem(fpu: FpuCore, ieee: boolean): void {
  const c = fpu.ctx;
  if (fpu.isEmpty(0) || fpu.isEmpty(1)) {
    c.flags |= STACK_UNDERFLOW;
    fpu.commit(0, INDEFINITE, 0);
    fpu.sw &= ~SW_C2;
    return;
  }
  const r = remainder(fpu.st(0), fpu.st(1), ieee, c);
  if (fpu.blocked(c.flags)) {
    fpu.raise(c.flags);
    fpu.sw &= ~SW_C2;
    return;
  }
  fpu.setReg(0, r.value);
  fpu.raise(c.flags & ~Flag.C1);
  const q = r.q;
  // C0 = Q2, C3 = Q1, C1 = Q0; C2 = reduction incomplete (then the quotient bits are 0).
  // Special operands (NaN, invalid, ...) give no quotient: C0 and C3 are left unchanged.
  if (q < 0) fpu.sw &= ~(SW_C1 | SW_C2);
  else if (r.partial) fpu.setCC(0, 1, 0, 0);
  else fpu.setCC((q >> 1) & 1, 0, q & 1, (q >> 2) & 1);
}
