/**
 * The FPU's state and the helpers every instruction uses: the register stack (physical
 * registers R0..R7 with TOP), the control/status words, exception delivery (masked
 * responses, unmasked pre-computation exceptions that leave the destination unchanged, the
 * ES/B summary bits) and the shared load/arithmetic/compare steps.
 */
import { add, Cmp, type Ctx, div, Flag, mul } from "./arith.js";
import { classify, type F80, f80, INDEFINITE, Kind } from "./float80.js";
import type { FpuHost } from "./fpu.js";

export const SW_C0 = 0x100;
export const SW_C1 = 0x200;
export const SW_C2 = 0x400;
export const SW_C3 = 0x4000;
export const SW_ES_B = 0x8080;
export const SW_TOP_MASK = 0x3800;
export const STACK_UNDERFLOW = Flag.IE | Flag.SF;
export const STACK_OVERFLOW = Flag.IE | Flag.SF | Flag.C1;
/** Pre-computation exceptions: unmasked, they leave the destination and TOP unchanged. */
export const PRE = Flag.IE | Flag.DE | Flag.ZE;

export const EFLAGS_CF = 0x01;
export const EFLAGS_PF = 0x04;
export const EFLAGS_AF = 0x10;
export const EFLAGS_ZF = 0x40;
export const EFLAGS_SF = 0x80;
export const EFLAGS_OF = 0x800;

/** Constants of FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2 to 128 bits: [m, e] with value m × 2^e. */
export const CONSTANTS: [bigint, number][] = [
  [0xd49a784bcd1b8afe492bf6ff4dafdb4cn, -126],
  [0xb8aa3b295c17f0bbbe87fed0691d3e88n, -127],
  [0xc90fdaa22168c234c4c6628b80dc1cd1n, -126],
  [0x9a209a84fbcff7988f8959ac0b7c9178n, -129],
  [0xb17217f7d1cf79abc9e3b39803f2f6afn, -128],
];

export class FpuCore {
  readonly host: FpuHost;
  readonly se = new Uint16Array(8);
  readonly hi = new Uint32Array(8);
  readonly lo = new Uint32Array(8);
  readonly empty = new Uint8Array(8);
  top = 0;
  cw = 0x37f;
  /** Status word without TOP. */
  sw = 0;
  fip = 0;
  fcs = 0;
  fop = 0;
  fdp = 0;
  fds = 0;
  readonly ctx: Ctx = { cw: 0x37f, flags: 0, memDenormal: null };
  readonly buf = new Uint8Array(108);

  constructor(host: FpuHost) {
    this.host = host;
    this.reset();
  }

  /** FNINIT. */
  reset(): void {
    this.cw = 0x37f;
    this.sw = 0;
    this.top = 0;
    this.empty.fill(1);
    this.fip = this.fcs = this.fop = this.fdp = this.fds = 0;
  }

  statusWord(): number {
    return (this.sw & ~SW_TOP_MASK) | (this.top << 11);
  }

  controlWord(): number {
    return this.cw;
  }

  /** The tag word computed from the registers (00 valid, 01 zero, 10 special, 11 empty). */
  tagWord(): number {
    let tw = 0;
    for (let r = 0; r < 8; r++) {
      let t = 3;
      if (!this.empty[r]) {
        const k = classify(this.se[r]!, this.hi[r]!, this.lo[r]!);
        t = k === Kind.Normal ? 0 : k === Kind.Zero ? 1 : 2;
      }
      tw |= t << (2 * r);
    }
    return tw;
  }

  hasPendingException(): boolean {
    return (this.sw & 0x80) !== 0;
  }

  /** ST(i) as a value (a copy). */
  st(i: number): F80 {
    const r = (this.top + i) & 7;
    return f80(this.se[r]!, this.hi[r]!, this.lo[r]!);
  }

  isEmpty(i: number): boolean {
    return this.empty[(this.top + i) & 7] === 1;
  }

  setReg(i: number, v: F80): void {
    const r = (this.top + i) & 7;
    this.se[r] = v.se;
    this.hi[r] = v.hi;
    this.lo[r] = v.lo;
    this.empty[r] = 0;
  }

  push(v: F80): void {
    this.top = (this.top - 1) & 7;
    this.setReg(0, v);
  }

  pop(): void {
    this.empty[this.top] = 1;
    this.top = (this.top + 1) & 7;
  }

  begin(): Ctx {
    const c = this.ctx;
    c.cw = this.cw;
    c.flags = 0;
    c.memDenormal = null;
    return c;
  }

  /** True when an unmasked pre-computation exception means no result is delivered. */
  blocked(flags: number): boolean {
    return (flags & PRE & ~this.cw) !== 0;
  }

  /** Merges the op's exception flags into the status word; C1 takes the op's C1. */
  raise(flags: number): void {
    // Blocked by an unmasked pre-computation exception: no result, so no post-computation flags.
    if (this.blocked(flags)) flags &= PRE | Flag.SF | (flags & Flag.SF ? Flag.C1 : 0);
    this.sw = (this.sw & ~SW_C1) | (flags & (0x7f | SW_C1));
    this.updateSummary();
  }

  updateSummary(): void {
    if (this.sw & ~this.cw & 0x3f) this.sw |= SW_ES_B;
    else this.sw &= ~SW_ES_B;
  }

  /** Delivers a result to ST(i) (unless blocked), then pops `pops` times. */
  commit(i: number, v: F80, pops: number): void {
    const f = this.ctx.flags;
    if (this.blocked(f)) {
      this.raise(f);
      return;
    }
    this.setReg(i, v);
    this.raise(f);
    for (let n = 0; n < pops; n++) this.pop();
  }

  setCC(c3: number, c2: number, c1: number, c0: number): void {
    this.sw =
      (this.sw & ~(SW_C0 | SW_C1 | SW_C2 | SW_C3)) |
      (c0 ? SW_C0 : 0) |
      (c1 ? SW_C1 : 0) |
      (c2 ? SW_C2 : 0) |
      (c3 ? SW_C3 : 0);
  }

  /** FLD/FILD/FBLD: pushes v (flags from the conversion are in ctx). */
  load(v: F80): void {
    const c = this.ctx;
    if (c.flags & Flag.SF) v = INDEFINITE;
    else if (!this.isEmpty(7)) {
      c.flags = STACK_OVERFLOW;
      v = INDEFINITE;
    }
    // An unmasked denormal exception does not stop the load (the value is pushed).
    if (this.blocked(c.flags & ~Flag.DE)) {
      this.raise(c.flags);
      return;
    }
    this.push(f80(v.se, v.hi, v.lo));
    this.sw = (this.sw & ~SW_C1) | (c.flags & (0x7f | SW_C1));
    this.updateSummary();
  }

  compute(reg: number, a: F80, b: F80): F80 {
    const c = this.ctx;
    switch (reg) {
      case 0:
        return add(a, b, false, c);
      case 1:
        return mul(a, b, c);
      case 4:
        return add(a, b, true, c);
      case 5:
        return add(b, a, true, c);
      case 6:
        return div(a, b, c);
      default:
        return div(b, a, c);
    }
  }

  finishCompare(res: Cmp, pops: number): void {
    const f = this.ctx.flags;
    // The condition codes are written even when an unmasked exception blocks the pops.
    this.raise(f & ~Flag.C1);
    this.setCC(
      res === Cmp.Equal || res === Cmp.Unordered ? 1 : 0,
      res === Cmp.Unordered ? 1 : 0,
      0,
      res === Cmp.Less || res === Cmp.Unordered ? 1 : 0,
    );
    if (this.blocked(f)) return;
    for (let n = 0; n < pops; n++) this.pop();
  }
}
