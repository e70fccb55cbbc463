/**
 * The x87 FPU: register stack, control/status/tag words, the last-instruction pointers, and
 * the decoder/executor for opcodes D8..DF. The CPU checks CR0.EM/TS (#NM) before calling
 * `exec`, handles FNSTSW AX (DF E0) with `statusWord()`, and raises #MF/IRQ13 on the next
 * waiting instruction when `hasPendingException()`.
 *
 * Exceptions follow SDM vol. 1 §8.5: masked exceptions deliver the default result; an
 * unmasked invalid-operation, denormal or zero-divide exception leaves the registers and TOP
 * unchanged (only the status word is updated); unmasked overflow/underflow deliver the
 * bias-adjusted result to a register and store nothing to memory. Memory is read before any
 * state changes, and the FPU state is changed only after every memory write has succeeded,
 * so an instruction that faults on its memory operand can be restarted.
 */
import {
  abs,
  add,
  Cmp,
  type Ctx,
  chs,
  compare,
  div,
  extract,
  Flag,
  mul,
  remainder,
  roundInt,
  scale,
  sqrt,
} from "./arith.js";
import { loadBcd, loadF32, loadF64, loadInt, storeBcd, storeF32, storeF64, storeInt } from "./convert.js";
import { decodeEnv, encodeEnv, envSize } from "./env.js";
import {
  classify,
  type F80,
  f80,
  fromNumber,
  INDEFINITE,
  Kind,
  packExt,
  roundToFormat,
  EXT64,
} from "./float80.js";
import { f2xm1, fpatan, fyl2x, fyl2xp1, sinCos, tan } from "./transcendental.js";

export interface FpuHost {
  readU8(linear: number): number;
  readU16(linear: number): number;
  readU32(linear: number): number;
  writeU8(linear: number, v: number): void;
  writeU16(linear: number, v: number): void;
  /** These apply paging and may throw the CPU's fault. */
  writeU32(linear: number, v: number): void;
  /** FCOMI/FUCOMI set ZF/PF/CF; FCMOVcc reads them. */
  getEflags(): number;
  setEflags(v: number): void;
}

/** What the CPU knows about the instruction, for FIP/FDP and the environment layouts. */
export interface FpuInstrInfo {
  cs: number;
  ip: number;
  dataSelector: number;
  dataOffset: number;
  opSize32: boolean;
  protectedMode: boolean;
}

/** The FPU's state as a plain object. Registers are physical (R0..R7), not stack-relative. */
export interface FpuState {
  cw: number;
  /** Status word with TOP in bits 11-13. */
  sw: number;
  /** Tag word (only "empty" (3) versus not is kept: the other tags follow from the contents). */
  tw: number;
  regs: { se: number; hi: number; lo: number }[];
  fip: number;
  fcs: number;
  fop: number;
  fdp: number;
  fds: number;
}

const SW_C0 = 0x100;
const SW_C1 = 0x200;
const SW_C2 = 0x400;
const SW_C3 = 0x4000;
const SW_ES_B = 0x8080;
const SW_TOP_MASK = 0x3800;
const STACK_UNDERFLOW = Flag.IE | Flag.SF;
const STACK_OVERFLOW = Flag.IE | Flag.SF | Flag.C1;
/** Pre-computation exceptions: unmasked, they leave the destination and TOP unchanged. */
const PRE = Flag.IE | Flag.DE | Flag.ZE;

const EFLAGS_CF = 0x01;
const EFLAGS_PF = 0x04;
const EFLAGS_AF = 0x10;
const EFLAGS_ZF = 0x40;
const EFLAGS_SF = 0x80;
const EFLAGS_OF = 0x800;

/** Constants of FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2 to 128 bits: [m, e] with value m × 2^e. */
const CONSTANTS: [bigint, number][] = [
  [0xd49a784bcd1b8afe492bf6ff4dafdb4cn, -126],
  [0xb8aa3b295c17f0bbbe87fed0691d3e88n, -127],
  [0xc90fdaa22168c234c4c6628b80dc1cd1n, -126],
  [0x9a209a84fbcff7988f8959ac0b7c9178n, -129],
  [0xb17217f7d1cf79abc9e3b39803f2f6afn, -128],
];

export class Fpu {
  private readonly host: FpuHost;
  private readonly se = new Uint16Array(8);
  private readonly hi = new Uint32Array(8);
  private readonly lo = new Uint32Array(8);
  private readonly empty = new Uint8Array(8);
  private top = 0;
  private cw = 0x37f;
  /** Status word without TOP. */
  private sw = 0;
  private fip = 0;
  private fcs = 0;
  private fop = 0;
  private fdp = 0;
  private fds = 0;
  private readonly ctx: Ctx = { cw: 0x37f, flags: 0, memDenormal: null };
  private readonly buf = new Uint8Array(108);

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

  save(): FpuState {
    const regs = [];
    for (let r = 0; r < 8; r++) regs.push({ se: this.se[r]!, hi: this.hi[r]!, lo: this.lo[r]! });
    return {
      cw: this.cw,
      sw: this.statusWord(),
      tw: this.tagWord(),
      regs,
      fip: this.fip,
      fcs: this.fcs,
      fop: this.fop,
      fdp: this.fdp,
      fds: this.fds,
    };
  }

  restore(s: FpuState): void {
    for (let r = 0; r < 8; r++) {
      const v = s.regs[r]!;
      this.se[r] = v.se;
      this.hi[r] = v.hi;
      this.lo[r] = v.lo;
      this.empty[r] = ((s.tw >>> (2 * r)) & 3) === 3 ? 1 : 0;
    }
    this.cw = s.cw & 0xffff;
    this.top = (s.sw >>> 11) & 7;
    this.sw = s.sw & ~SW_TOP_MASK & 0xffff;
    this.fip = s.fip >>> 0;
    this.fcs = s.fcs & 0xffff;
    this.fop = s.fop & 0x7ff;
    this.fdp = s.fdp >>> 0;
    this.fds = s.fds & 0xffff;
  }

  // ---- stack helpers ----

  private setReg(i: number, v: F80): void {
    const r = (this.top + i) & 7;
    this.se[r] = v.se;
    this.hi[r] = v.hi;
    this.lo[r] = v.lo;
    this.empty[r] = 0;
  }

  private push(v: F80): void {
    this.top = (this.top - 1) & 7;
    this.setReg(0, v);
  }

  private pop(): void {
    this.empty[this.top] = 1;
    this.top = (this.top + 1) & 7;
  }

  private begin(): Ctx {
    const c = this.ctx;
    c.cw = this.cw;
    c.flags = 0;
    c.memDenormal = null;
    return c;
  }

  /** True when an unmasked pre-computation exception means no result is delivered. */
  private blocked(flags: number): boolean {
    return (flags & PRE & ~this.cw) !== 0;
  }

  /** Merges the op's exception flags into the status word; C1 takes the op's C1. */
  private raise(flags: number): void {
    // Blocked by an unmasked pre-computation exception: no result, so no post-computation flags.
    if (this.blocked(flags)) flags &= PRE | Flag.SF | (flags & Flag.SF ? Flag.C1 : 0);
    this.sw = (this.sw & ~SW_C1) | (flags & (0x7f | SW_C1));
    this.updateSummary();
  }

  private updateSummary(): void {
    if (this.sw & ~this.cw & 0x3f) this.sw |= SW_ES_B;
    else this.sw &= ~SW_ES_B;
  }

  /** Delivers a result to ST(i) (unless blocked), then pops `pops` times. */
  private commit(i: number, v: F80, pops: number): void {
    const f = this.ctx.flags;
    if (this.blocked(f)) {
      this.raise(f);
      return;
    }
    this.setReg(i, v);
    this.raise(f);
    for (let n = 0; n < pops; n++) this.pop();
  }

  private setCC(c3: number, c2: number, c1: number, c0: number): void {
    this.sw =
      (this.sw & ~(SW_C0 | SW_C1 | SW_C2 | SW_C3)) |
      (c0 ? SW_C0 : 0) |
      (c1 ? SW_C1 : 0) |
      (c2 ? SW_C2 : 0) |
      (c3 ? SW_C3 : 0);
  }

  // ---- decode ----

  exec(opcode: number, modrm: number, linear: number, info: FpuInstrInfo): boolean {
    const op = opcode & 7;
    const reg = (modrm >>> 3) & 7;
    let control: boolean;
    if (modrm >= 0xc0) {
      const r = this.execReg(op, reg, modrm & 7);
      if (r === 0) return false;
      control = r === 2;
    } else {
      const r = this.execMem(op, reg, linear >>> 0, info);
      if (r === 0) return false;
      control = r === 2;
      if (!control) {
        this.fdp = info.dataOffset >>> 0;
        this.fds = info.dataSelector & 0xffff;
      }
    }
    if (!control) {
      this.fip = info.ip >>> 0;
      this.fcs = info.cs & 0xffff;
      this.fop = (op << 8) | modrm;
    }
    return true;
  }

  /** Returns 0 for an invalid encoding, 1 for an executed instruction, 2 for a control one. */
  private execMem(op: number, reg: number, lin: number, info: FpuInstrInfo): number {
    const h = this.host;
    switch (op) {
      case 0: {
        const c = this.begin();
        this.arithMem(reg, loadF32(h.readU32(lin), c, false));
        return 1;
      }
      case 2: {
        const n = h.readU32(lin) | 0;
        this.begin();
        this.arithMem(reg, loadInt(BigInt(n)));
        return 1;
      }
      case 4: {
        const lo = h.readU32(lin);
        const hi = h.readU32(lin + 4);
        const c = this.begin();
        this.arithMem(reg, loadF64(lo, hi, c, false));
        return 1;
      }
      case 6: {
        const n = (h.readU16(lin) << 16) >> 16;
        this.begin();
        this.arithMem(reg, loadInt(BigInt(n)));
        return 1;
      }
      case 1:
        switch (reg) {
          case 0: {
            const bits = h.readU32(lin);
            const c = this.begin();
            this.load(loadF32(bits, c, true));
            return 1;
          }
          case 2:
          case 3: {
            const c = this.begin();
            let bits: number | null = 0xffc00000;
            if (this.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
            else bits = storeF32(this.st(0), c);
            if (bits === null || this.blocked(c.flags)) {
              this.raise(c.flags);
              return 1;
            }
            h.writeU32(lin, bits);
            this.storeDone(reg === 3);
            return 1;
          }
          case 4:
            this.loadEnv(lin, info);
            return 2;
          case 5:
            this.cw = (h.readU16(lin) & 0x1f3f) | 0x40;
            this.updateSummary();
            return 2;
          case 6:
            this.storeEnv(lin, info, false);
            return 2;
          case 7:
            h.writeU16(lin, this.cw);
            return 2;
          default:
            return 0;
        }
      case 3:
        switch (reg) {
          case 0: {
            const n = h.readU32(lin) | 0;
            this.begin();
            this.load(loadInt(BigInt(n)));
            return 1;
          }
          case 2:
          case 3:
            this.storeInteger(lin, 32, reg === 3);
            return 1;
          case 5: {
            const lo = h.readU32(lin);
            const hi = h.readU32(lin + 4);
            const se = h.readU16(lin + 8);
            this.begin();
            this.load(f80(se, hi, lo));
            return 1;
          }
          case 7: {
            const c = this.begin();
            let v: F80 = INDEFINITE;
            if (this.isEmpty(0)) {
              c.flags |= STACK_UNDERFLOW;
              if (this.blocked(c.flags)) {
                this.raise(c.flags);
                return 1;
              }
            } else v = this.st(0);
            h.writeU32(lin, v.lo);
            h.writeU32(lin + 4, v.hi);
            h.writeU16(lin + 8, v.se);
            this.storeDone(true);
            return 1;
          }
          default:
            return 0;
        }
      case 5:
        switch (reg) {
          case 0: {
            const lo = h.readU32(lin);
            const hi = h.readU32(lin + 4);
            const c = this.begin();
            this.load(loadF64(lo, hi, c, true));
            return 1;
          }
          case 2:
          case 3: {
            const c = this.begin();
            let pair: [number, number] | null = [0, 0xfff80000];
            if (this.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
            else pair = storeF64(this.st(0), c);
            if (pair === null || this.blocked(c.flags)) {
              this.raise(c.flags);
              return 1;
            }
            h.writeU32(lin, pair[0]);
            h.writeU32(lin + 4, pair[1]);
            this.storeDone(reg === 3);
            return 1;
          }
          case 4:
            this.restoreImage(lin, info);
            return 2;
          case 6:
            this.storeEnv(lin, info, true);
            return 2;
          case 7:
            h.writeU16(lin, this.statusWord());
            return 2;
          default:
            return 0;
        }
      default:
        switch (reg) {
          case 0: {
            const n = (h.readU16(lin) << 16) >> 16;
            this.begin();
            this.load(loadInt(BigInt(n)));
            return 1;
          }
          case 2:
          case 3:
            this.storeInteger(lin, 16, reg === 3);
            return 1;
          case 4: {
            const b: number[] = [];
            for (let i = 0; i < 10; i++) b.push(h.readU8(lin + i));
            this.begin();
            this.load(loadBcd(b));
            return 1;
          }
          case 5: {
            const lo = h.readU32(lin);
            const hi = h.readU32(lin + 4);
            this.begin();
            this.load(loadInt((BigInt(hi | 0) << 32n) | BigInt(lo >>> 0)));
            return 1;
          }
          case 6: {
            const c = this.begin();
            let bytes: number[];
            if (this.isEmpty(0)) {
              c.flags |= STACK_UNDERFLOW;
              bytes = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];
            } else bytes = storeBcd(this.st(0), c);
            if (this.blocked(c.flags)) {
              this.raise(c.flags);
              return 1;
            }
            for (let i = 0; i < 10; i++) h.writeU8(lin + i, bytes[i]!);
            this.storeDone(true);
            return 1;
          }
          case 7:
            this.storeInteger(lin, 64, true);
            return 1;
          default:
            return 0;
        }
    }
  }

  /** After a successful store: flags, then pop for the popping form. */
  private storeDone(popAfter: boolean): void {
    this.raise(this.ctx.flags);
    if (popAfter) this.pop();
  }

  private storeInteger(lin: number, bits: number, popAfter: boolean): void {
    const c = this.begin();
    let n: bigint;
    if (this.isEmpty(0)) {
      c.flags |= STACK_UNDERFLOW;
      n = -(1n << BigInt(bits - 1));
    } else n = storeInt(this.st(0), bits, c);
    if (this.blocked(c.flags)) {
      this.raise(c.flags);
      return;
    }
    const h = this.host;
    if (bits === 16) h.writeU16(lin, Number(n & 0xffffn));
    else if (bits === 32) h.writeU32(lin, Number(n & 0xffffffffn));
    else {
      h.writeU32(lin, Number(n & 0xffffffffn));
      h.writeU32(lin + 4, Number((n >> 32n) & 0xffffffffn));
    }
    this.storeDone(popAfter);
  }

  /** FLD/FILD/FBLD: pushes v (flags from the conversion are in ctx). */
  private load(v: F80): void {
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

  /** D8/DA/DC/DE memory forms: ST0 op= operand (reg 2/3: compare, 3 pops). */
  private arithMem(reg: number, b: F80): void {
    const c = this.ctx;
    // A denormal memory real raised DE on conversion; the x87 reports it only when the
    // operation goes on to use the value (not for a stack fault or a NaN/unsupported ST0).
    if (c.flags & Flag.DE) c.memDenormal = b;
    c.flags &= ~Flag.DE;
    if (this.isEmpty(0)) {
      c.flags = STACK_UNDERFLOW;
      if (reg === 2 || reg === 3) this.finishCompare(Cmp.Unordered, reg === 3 ? 1 : 0);
      else this.commit(0, INDEFINITE, 0);
      return;
    }
    const a = this.st(0);
    if (reg === 2 || reg === 3) this.finishCompare(compare(a, b, false, c), reg === 3 ? 1 : 0);
    else this.commit(0, this.compute(reg, a, b), 0);
  }

  private compute(reg: number, a: F80, b: F80): F80 {
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

  private finishCompare(res: Cmp, pops: number): void {
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

  /** FCOMI/FUCOMI(P). */
  private compareEflags(i: number, quiet: boolean, popAfter: boolean): void {
    const c = this.begin();
    let res: Cmp = Cmp.Unordered;
    if (this.isEmpty(0) || this.isEmpty(i)) c.flags |= STACK_UNDERFLOW;
    else res = compare(this.st(0), this.st(i), quiet, c);
    // C1 is left unchanged unless a stack fault clears it (as the host x87 does).
    this.sw |= c.flags & 0x7f;
    if (c.flags & Flag.SF) this.sw &= ~SW_C1;
    this.updateSummary();
    // EFLAGS are written even when an unmasked exception blocks the pop.
    let fl = this.host.getEflags() & ~(EFLAGS_CF | EFLAGS_PF | EFLAGS_ZF | EFLAGS_OF | EFLAGS_SF | EFLAGS_AF);
    if (res === Cmp.Less) fl |= EFLAGS_CF;
    else if (res === Cmp.Equal) fl |= EFLAGS_ZF;
    else if (res === Cmp.Unordered) fl |= EFLAGS_CF | EFLAGS_PF | EFLAGS_ZF;
    this.host.setEflags(fl);
    if (popAfter && !this.blocked(c.flags)) this.pop();
  }

  /** Register forms. Returns 0 invalid, 1 executed, 2 control instruction. */
  private execReg(op: number, reg: number, i: number): number {
    switch (op) {
      case 0:
        if (reg === 2 || reg === 3) this.compareReg(i, false, reg === 3 ? 1 : 0);
        else this.arithReg(reg, 0, i, false);
        return 1;
      case 4:
      case 6:
        if (reg === 2 || reg === 3) {
          // DC D0/D8 and DE D0 are aliases of FCOM/FCOMP; DE D9 is FCOMPP.
          if (op === 4) this.compareReg(i, false, reg === 3 ? 1 : 0);
          else if (reg === 2) this.compareReg(i, false, 1);
          else if (i === 1) this.compareReg(1, false, 2);
          else return 0;
        } else this.arithReg(reg >= 4 ? reg ^ 1 : reg, i, 0, op === 6);
        return 1;
      case 1:
        return this.execD9(reg, i);
      case 2:
        if (reg < 4) {
          this.fcmov(reg, i, false);
          return 1;
        }
        if (reg === 5 && i === 1) {
          this.compareReg(1, true, 2);
          return 1;
        }
        return 0;
      case 3:
        if (reg < 4) {
          this.fcmov(reg, i, true);
          return 1;
        }
        if (reg === 4) {
          if (i === 2) this.sw &= ~(0x7f | SW_ES_B);
          else if (i === 3) this.reset();
          else if (i !== 0 && i !== 1 && i !== 4) return 0;
          return 2;
        }
        if (reg === 5 || reg === 6) {
          this.compareEflags(i, reg === 5, false);
          return 1;
        }
        return 0;
      case 5:
        switch (reg) {
          case 0:
            this.empty[(this.top + i) & 7] = 1;
            this.raise(0);
            return 1;
          case 1:
            this.fxch(i);
            return 1;
          case 2:
          case 3:
            this.fstReg(i, reg === 3);
            return 1;
          case 4:
          case 5:
            this.compareReg(i, true, reg === 5 ? 1 : 0);
            return 1;
          default:
            return 0;
        }
      default:
        switch (reg) {
          case 0:
            this.empty[(this.top + i) & 7] = 1;
            this.pop();
            this.raise(0);
            return 1;
          case 1:
            this.fxch(i);
            return 1;
          case 2:
          case 3:
            this.fstReg(i, true);
            return 1;
          case 5:
          case 6:
            this.compareEflags(i, reg === 5, true);
            return 1;
          default:
            return 0;
        }
    }
  }

  /** ST(dst) = ST(dst) op ST(src) (reg in the D8 numbering), popping for the DE forms. */
  private arithReg(reg: number, dst: number, src: number, popAfter: boolean): void {
    const c = this.begin();
    if (this.isEmpty(dst) || this.isEmpty(src)) {
      c.flags |= STACK_UNDERFLOW;
      this.commit(dst, INDEFINITE, popAfter ? 1 : 0);
      return;
    }
    this.commit(dst, this.compute(reg, this.st(dst), this.st(src)), popAfter ? 1 : 0);
  }

  private compareReg(i: number, quiet: boolean, pops: number): void {
    const c = this.begin();
    let res: Cmp = Cmp.Unordered;
    if (this.isEmpty(0) || this.isEmpty(i)) c.flags |= STACK_UNDERFLOW;
    else res = compare(this.st(0), this.st(i), quiet, c);
    this.finishCompare(res, pops);
  }

  private fcmov(cond: number, i: number, negate: boolean): void {
    const c = this.begin();
    if (this.isEmpty(0) || this.isEmpty(i)) {
      c.flags |= STACK_UNDERFLOW;
      this.commit(0, INDEFINITE, 0);
      return;
    }
    const fl = this.host.getEflags();
    let t: boolean;
    if (cond === 0) t = (fl & EFLAGS_CF) !== 0;
    else if (cond === 1) t = (fl & EFLAGS_ZF) !== 0;
    else if (cond === 2) t = (fl & (EFLAGS_CF | EFLAGS_ZF)) !== 0;
    else t = (fl & EFLAGS_PF) !== 0;
    if (t !== negate) this.setReg(0, this.st(i));
  }

  private fxch(i: number): void {
    const c = this.begin();
    let a = this.st(0);
    let b = this.st(i);
    if (this.isEmpty(0) || this.isEmpty(i)) {
      c.flags |= STACK_UNDERFLOW;
      if (this.blocked(c.flags)) {
        this.raise(c.flags);
        return;
      }
      if (this.isEmpty(0)) a = INDEFINITE;
      if (this.isEmpty(i)) b = INDEFINITE;
    }
    this.setReg(0, b);
    this.setReg(i, a);
    this.raise(c.flags);
  }

  private fstReg(i: number, popAfter: boolean): void {
    const c = this.begin();
    if (this.isEmpty(0)) {
      c.flags |= STACK_UNDERFLOW;
      this.commit(i, INDEFINITE, popAfter ? 1 : 0);
      return;
    }
    this.commit(i, this.st(0), popAfter ? 1 : 0);
  }

  private execD9(reg: number, i: number): number {
    switch (reg) {
      case 0: {
        const c = this.begin();
        let v = this.st(i);
        if (this.isEmpty(i)) {
          c.flags |= STACK_UNDERFLOW;
          v = INDEFINITE;
        }
        this.load(v);
        return 1;
      }
      case 1:
        this.fxch(i);
        return 1;
      case 2:
        if (i !== 0) return 0;
        return 1; // FNOP
      case 3:
        // D9 D8+i (an alias of FSTP ST(i)) raises no stack underflow: with ST0 empty it
        // only pops (as the host x87 does).
        this.begin();
        if (!this.isEmpty(0)) this.setReg(i, this.st(0));
        this.pop();
        this.raise(0);
        return 1;
      case 4:
        return this.execD9E0(i);
      case 5: {
        if (i === 7) return 0;
        this.begin();
        if (i === 0) this.load(fromNumber(1));
        else if (i === 6) this.load(fromNumber(0));
        else {
          const [m, e] = CONSTANTS[i - 1]!;
          const rr = roundToFormat(0, m, e, EXT64, (this.cw >>> 10) & 3);
          this.load(packExt(0, rr.r, rr.k));
        }
        return 1;
      }
      case 6:
        this.execD9F0(i);
        return 1;
      default:
        this.execD9F8(i);
        return 1;
    }
  }

  private execD9E0(i: number): number {
    const c = this.begin();
    switch (i) {
      case 0:
      case 1:
        if (this.isEmpty(0)) {
          c.flags |= STACK_UNDERFLOW;
          this.commit(0, INDEFINITE, 0);
        } else this.commit(0, i === 0 ? chs(this.st(0)) : abs(this.st(0)), 0);
        return 1;
      case 4: {
        let res: Cmp = Cmp.Unordered;
        if (this.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
        else res = compare(this.st(0), f80(0, 0, 0), false, c);
        this.finishCompare(res, 0);
        return 1;
      }
      case 5: {
        const v = this.st(0);
        const sign = v.se >>> 15;
        if (this.isEmpty(0)) this.setCC(1, 0, sign, 1);
        else {
          const k = classify(v.se, v.hi, v.lo);
          switch (k) {
            case Kind.Unsupported:
              this.setCC(0, 0, sign, 0);
              break;
            case Kind.QNaN:
            case Kind.SNaN:
              this.setCC(0, 0, sign, 1);
              break;
            case Kind.Normal:
              this.setCC(0, 1, sign, 0);
              break;
            case Kind.Infinity:
              this.setCC(0, 1, sign, 1);
              break;
            case Kind.Zero:
              this.setCC(1, 0, sign, 0);
              break;
            default:
              this.setCC(1, 1, sign, 0);
          }
        }
        return 1;
      }
      default:
        return 0;
    }
  }

  /** D9 F0..F7: F2XM1, FYL2X, FPTAN, FPATAN, FXTRACT, FPREM1, FDECSTP, FINCSTP. */
  private execD9F0(i: number): void {
    const c = this.begin();
    switch (i) {
      case 0:
        this.unary((a) => f2xm1(a, c));
        return;
      case 1:
        this.binaryToST1((x, y) => fyl2x(x, y, c));
        return;
      case 2: {
        if (this.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
        else if (!this.isEmpty(7)) c.flags |= STACK_OVERFLOW;
        if (c.flags) {
          this.twoResults(INDEFINITE, INDEFINITE);
          return;
        }
        const t = tan(this.st(0), c);
        if (t.outOfRange) {
          this.raise(c.flags);
          this.sw |= SW_C2;
          return;
        }
        // A NaN result (NaN operand or invalid) is pushed in place of the 1.0 as well.
        const k = classify(t.value.se, t.value.hi, t.value.lo);
        this.twoResults(t.value, k === Kind.QNaN ? t.value : fromNumber(1));
        return;
      }
      case 3:
        this.binaryToST1((x, y) => fpatan(x, y, c));
        return;
      case 4: {
        if (this.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
        else if (!this.isEmpty(7)) c.flags |= STACK_OVERFLOW;
        if (c.flags) {
          this.twoResults(INDEFINITE, INDEFINITE, false);
          return;
        }
        const [e, s] = extract(this.st(0), c);
        this.twoResults(e, s, false);
        return;
      }
      case 5:
        this.prem(true);
        return;
      case 6:
        this.top = (this.top - 1) & 7;
        this.raise(0);
        return;
      default:
        this.top = (this.top + 1) & 7;
        this.raise(0);
    }
  }

  /** D9 F8..FF: FPREM, FYL2XP1, FSQRT, FSINCOS, FRNDINT, FSCALE, FSIN, FCOS. */
  private execD9F8(i: number): void {
    const c = this.begin();
    switch (i) {
      case 0:
        this.prem(false);
        return;
      case 1:
        this.binaryToST1((x, y) => fyl2xp1(x, y, c));
        return;
      case 2:
        this.unary((a) => sqrt(a, c));
        return;
      case 3: {
        if (this.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
        else if (!this.isEmpty(7)) c.flags |= STACK_OVERFLOW;
        if (c.flags) {
          this.twoResults(INDEFINITE, INDEFINITE);
          return;
        }
        const r = sinCos(this.st(0), c, "both");
        if (r.outOfRange) {
          this.raise(c.flags);
          this.sw |= SW_C2;
          return;
        }
        this.twoResults(r.sin, r.cos);
        return;
      }
      case 4:
        this.unary((a) => roundInt(a, c));
        return;
      case 5: {
        if (this.isEmpty(0) || this.isEmpty(1)) {
          c.flags |= STACK_UNDERFLOW;
          this.commit(0, INDEFINITE, 0);
          return;
        }
        this.commit(0, scale(this.st(0), this.st(1), c), 0);
        return;
      }
      default: {
        if (this.isEmpty(0)) {
          c.flags |= STACK_UNDERFLOW;
          this.commit(0, INDEFINITE, 0);
          this.sw &= ~SW_C2;
          return;
        }
        const r = sinCos(this.st(0), c, i === 6 ? "sin" : "cos");
        if (r.outOfRange) {
          this.raise(c.flags);
          this.sw |= SW_C2;
          return;
        }
        this.commit(0, i === 6 ? r.sin : r.cos, 0);
        this.sw &= ~SW_C2;
      }
    }
  }

  /** ST0 = f(ST0). */
  private unary(f: (a: F80) => F80): void {
    const c = this.ctx;
    if (this.isEmpty(0)) {
      c.flags |= STACK_UNDERFLOW;
      this.commit(0, INDEFINITE, 0);
      return;
    }
    this.commit(0, f(this.st(0)), 0);
  }

  /** ST1 = f(ST0, ST1), then pop (FYL2X, FYL2XP1, FPATAN). */
  private binaryToST1(f: (x: F80, y: F80) => F80): void {
    const c = this.ctx;
    if (this.isEmpty(0) || this.isEmpty(1)) {
      c.flags |= STACK_UNDERFLOW;
      this.commit(1, INDEFINITE, 1);
      return;
    }
    this.commit(1, f(this.st(0), this.st(1)), 1);
  }

  /** FPTAN, FXTRACT, FSINCOS: ST0 = first, then push second; clears C2. */
  private twoResults(first: F80, second: F80, clearC2 = true): void {
    const f = this.ctx.flags;
    if (this.blocked(f)) {
      this.raise(f);
      if (clearC2) this.sw &= ~SW_C2;
      return;
    }
    this.setReg(0, first);
    this.push(second);
    this.raise(f);
    if (clearC2) this.sw &= ~SW_C2;
  }

  private prem(ieee: boolean): void {
    const c = this.ctx;
    if (this.isEmpty(0) || this.isEmpty(1)) {
      c.flags |= STACK_UNDERFLOW;
      this.commit(0, INDEFINITE, 0);
      this.sw &= ~SW_C2;
      return;
    }
    const r = remainder(this.st(0), this.st(1), ieee, c);
    if (this.blocked(c.flags)) {
      this.raise(c.flags);
      this.sw &= ~SW_C2;
      return;
    }
    this.setReg(0, r.value);
    this.raise(c.flags & ~Flag.C1);
    const q = r.q;
    // C0 = Q2, C3 = Q1, C1 = Q0; C2 = reduction incomplete (then the quotient bits are 0).
    // Special operands (NaN, invalid, ...) give no quotient: C0 and C3 are left unchanged.
    if (q < 0) this.sw &= ~(SW_C1 | SW_C2);
    else if (r.partial) this.setCC(0, 1, 0, 0);
    else this.setCC((q >> 1) & 1, 0, q & 1, (q >> 2) & 1);
  }

  // ---- environment, save and restore ----

  private env(): {
    cw: number;
    sw: number;
    tw: number;
    fip: number;
    fcs: number;
    fop: number;
    fdp: number;
    fds: number;
  } {
    return {
      cw: this.cw,
      sw: this.statusWord(),
      tw: this.tagWord(),
      fip: this.fip,
      fcs: this.fcs,
      fop: this.fop,
      fdp: this.fdp,
      fds: this.fds,
    };
  }

  /** FNSTENV (then masks all exceptions) or FNSAVE (environment + registers, then FNINIT). */
  private storeEnv(lin: number, info: FpuInstrInfo, withRegs: boolean): void {
    const n = envSize(info.opSize32);
    const total = withRegs ? n + 80 : n;
    const img = this.buf.subarray(0, total);
    img.fill(0);
    encodeEnv(this.env(), info.opSize32, info.protectedMode, img);
    if (withRegs) {
      for (let i = 0; i < 8; i++) {
        const v = this.st(i);
        const o = n + i * 10;
        for (let b = 0; b < 4; b++) {
          img[o + b] = (v.lo >>> (8 * b)) & 0xff;
          img[o + 4 + b] = (v.hi >>> (8 * b)) & 0xff;
        }
        img[o + 8] = v.se & 0xff;
        img[o + 9] = v.se >>> 8;
      }
    }
    this.writeImage(lin, img);
    if (withRegs) this.reset();
    else {
      this.cw |= 0x3f;
      this.updateSummary();
    }
  }

  /** Writes an image: the last byte first (so a fault on a second page comes before any write). */
  private writeImage(lin: number, img: Uint8Array): void {
    const h = this.host;
    h.writeU8(lin + img.length - 1, img[img.length - 1]!);
    for (let o = 0; o < img.length; o++) h.writeU8(lin + o, img[o]!);
  }

  private readImage(lin: number, len: number): Uint8Array {
    const img = this.buf.subarray(0, len);
    for (let o = 0; o < len; o++) img[o] = this.host.readU8(lin + o);
    return img;
  }

  private loadEnv(lin: number, info: FpuInstrInfo): void {
    const img = this.readImage(lin, envSize(info.opSize32));
    this.applyEnv(img, info);
  }

  private applyEnv(img: Uint8Array, info: FpuInstrInfo): void {
    const env = decodeEnv(img, info.opSize32, info.protectedMode);
    this.cw = (env.cw & 0x1f3f) | 0x40;
    this.top = (env.sw >>> 11) & 7;
    this.sw = env.sw & ~SW_TOP_MASK & 0xffff;
    for (let r = 0; r < 8; r++) this.empty[r] = ((env.tw >>> (2 * r)) & 3) === 3 ? 1 : 0;
    this.fip = env.fip;
    this.fcs = env.fcs;
    this.fop = env.fop;
    this.fdp = env.fdp;
    this.fds = env.fds;
    this.updateSummary();
  }

  /** FRSTOR: every byte is read before any state changes. */
  private restoreImage(lin: number, info: FpuInstrInfo): void {
    const n = envSize(info.opSize32);
    const img = this.readImage(lin, n + 80);
    const regs: F80[] = [];
    for (let i = 0; i < 8; i++) {
      const o = n + i * 10;
      const lo = (img[o]! | (img[o + 1]! << 8) | (img[o + 2]! << 16) | (img[o + 3]! << 24)) >>> 0;
      const hi = (img[o + 4]! | (img[o + 5]! << 8) | (img[o + 6]! << 16) | (img[o + 7]! << 24)) >>> 0;
      regs.push(f80(img[o + 8]! | (img[o + 9]! << 8), hi, lo));
    }
    this.applyEnv(img.subarray(0, n), info);
    for (let i = 0; i < 8; i++) {
      const r = (this.top + i) & 7;
      this.se[r] = regs[i]!.se;
      this.hi[r] = regs[i]!.hi;
      this.lo[r] = regs[i]!.lo;
    }
  }
}
