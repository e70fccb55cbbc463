/** ALU instructions: ADD..CMP, INC/DEC, TEST, NOT/NEG, MUL/IMUL/DIV/IDIV. */
import type { Cpu, Handler } from "./cpu.js";
import { Vector } from "./fault.js";
import {
  ARITH_FLAGS,
  Flag,
  Lazy,
  PARITY,
  REG8,
  SIZE_MASK,
  SIZE_SHIFT,
  SIZE_SIGN,
  type SizeIdx,
} from "./state.js";

export const AluKind = { ADD: 0, OR: 1, ADC: 2, SBB: 3, AND: 4, SUB: 5, XOR: 6, CMP: 7 } as const;

/** One ALU operation: computes `a op b` at operand size s, sets the flags, returns the result. */
export type AluFn = (cpu: Cpu, a: number, b: number, s: SizeIdx) => number;

function lazy(cpu: Cpu, op: number, a: number, b: number, r: number, s: SizeIdx): number {
  cpu.lazyOp = op;
  cpu.lazyA = a | 0;
  cpu.lazyB = b | 0;
  cpu.lazyRes = r;
  cpu.lazySize = s;
  return r;
}

const aluAdd: AluFn = (cpu, a, b, s) => lazy(cpu, Lazy.ADD, a, b, (a + b) & SIZE_MASK[s], s);
const aluOr: AluFn = (cpu, a, b, s) => lazy(cpu, Lazy.LOGIC, a, b, a | b, s);
const aluAnd: AluFn = (cpu, a, b, s) => lazy(cpu, Lazy.LOGIC, a, b, a & b, s);
const aluXor: AluFn = (cpu, a, b, s) => lazy(cpu, Lazy.LOGIC, a, b, a ^ b, s);
const aluSub: AluFn = (cpu, a, b, s) => lazy(cpu, Lazy.SUB, a, b, (a - b) & SIZE_MASK[s], s);

const aluAdc: AluFn = (cpu, a, b, s) => {
  const c = cpu.getCF();
  const r = (a + b + c) & SIZE_MASK[s];
  const sign = SIZE_SIGN[s];
  cpu.setArith(
    c ? (r >>> 0 <= a >>> 0 ? 1 : 0) : r >>> 0 < a >>> 0 ? 1 : 0,
    PARITY[r & 0xff] !== 0,
    ((a ^ b ^ r) & 0x10) !== 0,
    r === 0,
    (r & sign) !== 0,
    ((a ^ r) & (b ^ r) & sign) !== 0,
  );
  return r;
};

const aluSbb: AluFn = (cpu, a, b, s) => {
  const c = cpu.getCF();
  const r = (a - b - c) & SIZE_MASK[s];
  const sign = SIZE_SIGN[s];
  cpu.setArith(
    c ? (a >>> 0 <= b >>> 0 ? 1 : 0) : a >>> 0 < b >>> 0 ? 1 : 0,
    PARITY[r & 0xff] !== 0,
    ((a ^ b ^ r) & 0x10) !== 0,
    r === 0,
    (r & sign) !== 0,
    ((a ^ b) & (a ^ r) & sign) !== 0,
  );
  return r;
};

/** ADC at 32 bits on int32 operands, the flags built directly (no size tables). */
function adc32(cpu: Cpu, a: number, b: number): number {
  const c = cpu.getCF();
  const r = (a + b + c) | 0;
  const cf = c !== 0 ? r >>> 0 <= a >>> 0 : r >>> 0 < a >>> 0;
  cpu.flags =
    (cpu.flags & ~ARITH_FLAGS) |
    (cf ? Flag.CF : 0) |
    PARITY[r & 0xff]! |
    (r === 0 ? Flag.ZF : 0) |
    (r < 0 ? Flag.SF : 0) |
    ((a ^ b ^ r) & Flag.AF) |
    (((a ^ r) & (b ^ r)) < 0 ? Flag.OF : 0);
  cpu.lazyOp = Lazy.NONE;
  return r;
}

/** SBB at 32 bits on int32 operands. */
function sbb32(cpu: Cpu, a: number, b: number): number {
  const c = cpu.getCF();
  const r = (a - b - c) | 0;
  const cf = c !== 0 ? a >>> 0 <= b >>> 0 : a >>> 0 < b >>> 0;
  cpu.flags =
    (cpu.flags & ~ARITH_FLAGS) |
    (cf ? Flag.CF : 0) |
    PARITY[r & 0xff]! |
    (r === 0 ? Flag.ZF : 0) |
    (r < 0 ? Flag.SF : 0) |
    ((a ^ b ^ r) & Flag.AF) |
    (((a ^ b) & (a ^ r)) < 0 ? Flag.OF : 0);
  cpu.lazyOp = Lazy.NONE;
  return r;
}

/** The ALU operations by ModR/M reg / opcode bits 3-5: ADD OR ADC SBB AND SUB XOR CMP. */
export const ALU_FNS: readonly AluFn[] = [aluAdd, aluOr, aluAdc, aluSbb, aluAnd, aluSub, aluXor, aluSub];

/**
 * Computes `a kind b` at operand size s, sets the flags, returns the (masked) result. One function
 * with a switch rather than a call through ALU_FNS: every handler closure made by one factory
 * shares its feedback, so a call through a table would be megamorphic at each call site.
 */
export function alu(cpu: Cpu, kind: number, a: number, b: number, s: SizeIdx): number {
  let op: number;
  let r: number;
  switch (kind) {
    case 0:
      op = Lazy.ADD;
      r = s === 2 ? (a + b) | 0 : (a + b) & SIZE_MASK[s];
      break;
    case 1:
      op = Lazy.LOGIC;
      r = a | b;
      break;
    case 4:
      op = Lazy.LOGIC;
      r = a & b;
      break;
    case 6:
      op = Lazy.LOGIC;
      r = a ^ b;
      break;
    case 5:
    case 7:
      op = Lazy.SUB;
      r = s === 2 ? (a - b) | 0 : (a - b) & SIZE_MASK[s];
      break;
    case 2:
      return s === 2 ? adc32(cpu, a | 0, b | 0) : aluAdc(cpu, a, b, s);
    default:
      return s === 2 ? sbb32(cpu, a | 0, b | 0) : aluSbb(cpu, a, b, s);
  }
  cpu.lazyOp = op;
  cpu.lazyA = a | 0;
  cpu.lazyB = b | 0;
  cpu.lazyRes = r;
  cpu.lazySize = s;
  return r;
}

export function incDec(cpu: Cpu, a: number, dec: boolean, s: SizeIdx): number {
  const cf = cpu.getCF();
  cpu.flags = (cpu.flags & ~1) | cf;
  const r = (dec ? a - 1 : a + 1) & SIZE_MASK[s];
  cpu.lazyOp = dec ? Lazy.DEC : Lazy.INC;
  cpu.lazyA = a | 0;
  cpu.lazyB = 1;
  cpu.lazyRes = r;
  cpu.lazySize = s;
  return r;
}

function setLogic(cpu: Cpu, r: number, s: SizeIdx): void {
  cpu.lazyOp = Lazy.LOGIC;
  cpu.lazyRes = r | 0;
  cpu.lazySize = s;
}

/** op Eb,Gb / Ev,Gv (00, 01, 08, ...). */
export function aluEG(kind: number, s: SizeIdx): Handler {
  const write = kind !== AluKind.CMP;
  if (s === 2)
    return (cpu) => {
      cpu.decodeModrm();
      if (cpu.isReg) {
        const r = alu(cpu, kind, cpu.r32[cpu.modRm]!, cpu.r32[cpu.modReg]!, 2);
        if (write) cpu.r32[cpu.modRm] = r;
      } else {
        const r = alu(cpu, kind, cpu.read32(cpu.eaSeg, cpu.ea), cpu.r32[cpu.modReg]!, 2);
        if (write) cpu.write32(cpu.eaSeg, cpu.ea, r);
      }
    };
  if (s === 1)
    return (cpu) => {
      cpu.decodeModrm();
      const r = alu(cpu, kind, cpu.readE16(), cpu.r16[cpu.modReg << 1]!, 1);
      if (write) cpu.writeE16(r);
    };
  return (cpu) => {
    cpu.decodeModrm();
    const r = alu(cpu, kind, cpu.readE8(), cpu.r8[REG8[cpu.modReg]!]!, 0);
    if (write) cpu.writeE8(r);
  };
}

/** op Gb,Eb / Gv,Ev (02, 03, ...). */
export function aluGE(kind: number, s: SizeIdx): Handler {
  const write = kind !== AluKind.CMP;
  if (s === 2)
    return (cpu) => {
      cpu.decodeModrm();
      const b = cpu.isReg ? cpu.r32[cpu.modRm]! : cpu.read32(cpu.eaSeg, cpu.ea);
      const r = alu(cpu, kind, cpu.r32[cpu.modReg]!, b, 2);
      if (write) cpu.r32[cpu.modReg] = r;
    };
  if (s === 1)
    return (cpu) => {
      cpu.decodeModrm();
      const r = alu(cpu, kind, cpu.r16[cpu.modReg << 1]!, cpu.readE16(), 1);
      if (write) cpu.r16[cpu.modReg << 1] = r;
    };
  return (cpu) => {
    cpu.decodeModrm();
    const r = alu(cpu, kind, cpu.r8[REG8[cpu.modReg]!]!, cpu.readE8(), 0);
    if (write) cpu.r8[REG8[cpu.modReg]!] = r;
  };
}

/** op AL,Ib / eAX,Iz (04, 05, ...). */
export function aluAI(kind: number, s: SizeIdx): Handler {
  const write = kind !== AluKind.CMP;
  if (s === 2)
    return (cpu) => {
      const r = alu(cpu, kind, cpu.r32[0]!, cpu.fetch32(), 2);
      if (write) cpu.r32[0] = r;
    };
  if (s === 1)
    return (cpu) => {
      const r = alu(cpu, kind, cpu.r16[0]!, cpu.fetch16(), 1);
      if (write) cpu.r16[0] = r;
    };
  return (cpu) => {
    const r = alu(cpu, kind, cpu.r8[0]!, cpu.fetch8(), 0);
    if (write) cpu.r8[0] = r;
  };
}

/** Group 1: 80/82 Eb,Ib; 81 Ev,Iz; 83 Ev,Ib (sign-extended). */
export function group1(s: SizeIdx, immByte: boolean): Handler {
  if (s === 2) return immByte ? group1Ib32 : group1Iz32;
  if (s === 1) return immByte ? group1Ib16 : group1Iz16;
  return (cpu) => {
    cpu.decodeModrm();
    const kind = cpu.modReg;
    if (cpu.lock && kind === 7) cpu.ud();
    const imm = cpu.fetch8();
    const r = alu(cpu, kind, cpu.readE8(), imm, 0);
    if (kind !== 7) cpu.writeE8(r);
  };
}

/** 83 /k Ev,Ib at 32-bit operand size: the commonest immediate form, kept separate. */
const group1Ib32: Handler = (cpu) => {
  cpu.decodeModrm();
  const kind = cpu.modReg;
  if (cpu.lock && kind === AluKind.CMP) cpu.ud();
  const imm = (cpu.fetch8() << 24) >> 24;
  group1Apply32(cpu, kind, imm);
};

/** 81 /k Ev,Id at 32-bit operand size. */
const group1Iz32: Handler = (cpu) => {
  cpu.decodeModrm();
  const kind = cpu.modReg;
  if (cpu.lock && kind === AluKind.CMP) cpu.ud();
  const imm = cpu.fetch32();
  group1Apply32(cpu, kind, imm);
};

function group1Apply32(cpu: Cpu, kind: number, imm: number): void {
  if (cpu.isReg) {
    const rm = cpu.modRm;
    const r = alu(cpu, kind, cpu.r32[rm]!, imm, 2);
    if (kind !== AluKind.CMP) cpu.r32[rm] = r;
    return;
  }
  const r = alu(cpu, kind, cpu.read32(cpu.eaSeg, cpu.ea), imm, 2);
  if (kind !== AluKind.CMP) cpu.write32(cpu.eaSeg, cpu.ea, r);
}

/** 83 /k Ev,Ib at 16-bit operand size (real-mode code's commonest ALU form), kept separate. */
const group1Ib16: Handler = (cpu) => {
  cpu.decodeModrm();
  const kind = cpu.modReg;
  if (cpu.lock && kind === AluKind.CMP) cpu.ud();
  const imm = ((cpu.fetch8() << 24) >> 24) & 0xffff;
  group1Apply16(cpu, kind, imm);
};

/** 81 /k Ev,Iw at 16-bit operand size. */
const group1Iz16: Handler = (cpu) => {
  cpu.decodeModrm();
  const kind = cpu.modReg;
  if (cpu.lock && kind === AluKind.CMP) cpu.ud();
  const imm = cpu.fetch16();
  group1Apply16(cpu, kind, imm);
};

function group1Apply16(cpu: Cpu, kind: number, imm: number): void {
  if (cpu.isReg) {
    const i = cpu.modRm << 1;
    const r = alu(cpu, kind, cpu.r16[i]!, imm, 1);
    if (kind !== AluKind.CMP) cpu.r16[i] = r;
    return;
  }
  const r = alu(cpu, kind, cpu.read16(cpu.eaSeg, cpu.ea), imm, 1);
  if (kind !== AluKind.CMP) cpu.write16(cpu.eaSeg, cpu.ea, r);
}

/** INC r32 (40-47), DEC r32 (48-4F): kept apart from the 16-bit forms (own JIT feedback). CF is kept. */
const inc32: Handler = (cpu) => {
  const r = cpu.opcode & 7;
  const a = cpu.r32[r]!;
  cpu.flags = (cpu.flags & ~1) | cpu.getCF();
  const res = (a + 1) | 0;
  cpu.lazyOp = Lazy.INC;
  cpu.lazyA = a;
  cpu.lazyB = 1;
  cpu.lazyRes = res;
  cpu.lazySize = 2;
  cpu.r32[r] = res;
};

const dec32: Handler = (cpu) => {
  const r = cpu.opcode & 7;
  const a = cpu.r32[r]!;
  cpu.flags = (cpu.flags & ~1) | cpu.getCF();
  const res = (a - 1) | 0;
  cpu.lazyOp = Lazy.DEC;
  cpu.lazyA = a;
  cpu.lazyB = 1;
  cpu.lazyRes = res;
  cpu.lazySize = 2;
  cpu.r32[r] = res;
};

/** INC/DEC r16/r32 (40-4F). */
export function incDecReg(s: SizeIdx, dec: boolean): Handler {
  if (s === 2) return dec ? dec32 : inc32;
  return (cpu) => {
    const r = cpu.opcode & 7;
    cpu.setReg(s, r, incDec(cpu, cpu.getReg(s, r), dec, s));
  };
}

/** TEST Eb,Gb / Ev,Gv (84, 85). */
export function testEG(s: SizeIdx): Handler {
  if (s === 2)
    return (cpu) => {
      cpu.decodeModrm();
      const a = cpu.isReg !== 0 ? cpu.r32[cpu.modRm]! : cpu.read32(cpu.eaSeg, cpu.ea);
      cpu.lazyOp = Lazy.LOGIC;
      cpu.lazyRes = a & cpu.r32[cpu.modReg]!;
      cpu.lazySize = 2;
    };
  return (cpu) => {
    cpu.decodeModrm();
    const a = s === 1 ? cpu.readE16() : cpu.readE8();
    setLogic(cpu, a & cpu.getReg(s, cpu.modReg), s);
  };
}

/** TEST AL,Ib / eAX,Iz (A8, A9). */
export function testAI(s: SizeIdx): Handler {
  return (cpu) => {
    const imm = s === 2 ? cpu.fetch32() : s === 1 ? cpu.fetch16() : cpu.fetch8();
    setLogic(cpu, cpu.getReg(s, 0) & imm, s);
  };
}

function readE(cpu: Cpu, s: SizeIdx): number {
  return s === 2 ? cpu.readE32() : s === 1 ? cpu.readE16() : cpu.readE8();
}

export function writeE(cpu: Cpu, s: SizeIdx, v: number): void {
  if (s === 2) cpu.writeE32(v);
  else if (s === 1) cpu.writeE16(v);
  else cpu.writeE8(v);
}

/** 32×32 → 64 unsigned multiply into out[0] (low) and out[1] (high). */
export function mulU32(a: number, b: number, out: Uint32Array): void {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  out[0] = ((mid << 16) | (ll & 0xffff)) >>> 0;
  out[1] = ah * bh + (lh >>> 16) + (hl >>> 16) + Math.floor(mid / 0x1_0000);
}

/** 32×32 → 64 signed multiply (two's complement halves in out). */
export function mulS32(a: number, b: number, out: Uint32Array): void {
  mulU32(a >>> 0, b >>> 0, out);
  let hi = out[1]!;
  if ((a | 0) < 0) hi -= b >>> 0;
  if ((b | 0) < 0) hi -= a >>> 0;
  out[1] = hi >>> 0;
}

/**
 * Unsigned 64/32 division of hi:lo by d (d != 0, hi < d): quotient in out[0], remainder in out[1].
 * Two 16-bit steps keep every intermediate below 2^53.
 */
export function divU64(hi: number, lo: number, d: number, out: Uint32Array): void {
  const n1 = hi * 0x1_0000 + (lo >>> 16);
  const q1 = Math.floor(n1 / d);
  const r1 = n1 - q1 * d;
  const n2 = r1 * 0x1_0000 + (lo & 0xffff);
  const q2 = Math.floor(n2 / d);
  out[0] = q1 * 0x1_0000 + q2;
  out[1] = n2 - q2 * d;
}

const tmp = new Uint32Array(2);

function setMulFlags(cpu: Cpu, overflow: boolean, low: number, s: SizeIdx): void {
  const r = low & SIZE_MASK[s];
  cpu.setArith(overflow ? 1 : 0, PARITY[r & 0xff] !== 0, false, r === 0, (r & SIZE_SIGN[s]) !== 0, overflow);
}

function mul(cpu: Cpu, s: SizeIdx, src: number, signed: boolean): void {
  if (s === 0) {
    const a = cpu.r8[0]!;
    const p = signed ? ((a << 24) >> 24) * ((src << 24) >> 24) : a * src;
    cpu.r16[0] = p;
    setMulFlags(cpu, signed ? p !== (p << 24) >> 24 : p > 0xff, p, 0);
  } else if (s === 1) {
    const a = cpu.r16[0]!;
    const p = signed ? ((a << 16) >> 16) * ((src << 16) >> 16) : a * src;
    cpu.r16[0] = p;
    cpu.r16[4] = p >> 16;
    setMulFlags(cpu, signed ? p !== (p << 16) >> 16 : p > 0xffff, p, 1);
  } else {
    const a = cpu.r32[0]!;
    if (signed) mulS32(a, src, tmp);
    else mulU32(a >>> 0, src >>> 0, tmp);
    const lo = tmp[0]!;
    const hi = tmp[1]!;
    cpu.r32[0] = lo;
    cpu.r32[2] = hi;
    setMulFlags(cpu, signed ? hi !== ((lo | 0) < 0 ? 0xffff_ffff : 0) : hi !== 0, lo, 2);
  }
}

function div(cpu: Cpu, s: SizeIdx, d: number, signed: boolean): void {
  if (d === 0) cpu.raise(Vector.DE);
  if (s === 0) {
    const n = cpu.r16[0]!;
    if (!signed) {
      const q = Math.floor(n / d);
      if (q > 0xff) cpu.raise(Vector.DE);
      cpu.r8[0] = q;
      cpu.r8[1] = n % d;
    } else {
      const ns = (n << 16) >> 16;
      const ds = (d << 24) >> 24;
      const q = Math.trunc(ns / ds);
      if (q > 127 || q < -128) cpu.raise(Vector.DE);
      cpu.r8[0] = q;
      cpu.r8[1] = ns % ds;
    }
  } else if (s === 1) {
    const n = ((cpu.r16[4]! << 16) | cpu.r16[0]!) >>> 0;
    if (!signed) {
      const q = Math.floor(n / d);
      if (q > 0xffff) cpu.raise(Vector.DE);
      cpu.r16[0] = q;
      cpu.r16[4] = n % d;
    } else {
      const ns = n | 0;
      const ds = (d << 16) >> 16;
      const q = Math.trunc(ns / ds);
      if (q > 32767 || q < -32768) cpu.raise(Vector.DE);
      cpu.r16[0] = q;
      cpu.r16[4] = ns % ds;
    }
  } else {
    let hi = cpu.r32[2]! >>> 0;
    let lo = cpu.r32[0]! >>> 0;
    d >>>= 0;
    if (!signed) {
      if (hi >= d) cpu.raise(Vector.DE);
      divU64(hi, lo, d, tmp);
      cpu.r32[0] = tmp[0]!;
      cpu.r32[2] = tmp[1]!;
      return;
    }
    const negN = (hi | 0) < 0;
    if (negN) {
      // 64-bit two's complement negate.
      lo = (~lo + 1) >>> 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    }
    const negD = (d | 0) < 0;
    const ad = negD ? -(d | 0) >>> 0 : d;
    if (hi >= ad) cpu.raise(Vector.DE);
    divU64(hi, lo, ad, tmp);
    const q = tmp[0]!;
    const r = tmp[1]!;
    const neg = negN !== negD;
    if (neg ? q > 0x8000_0000 : q > 0x7fff_ffff) cpu.raise(Vector.DE);
    cpu.r32[0] = neg ? -q : q;
    cpu.r32[2] = negN ? -r : r;
  }
}

/** Group 3: F6/F7 TEST, NOT, NEG, MUL, IMUL, DIV, IDIV. */
export function group3(s: SizeIdx): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const op = cpu.modReg;
    if (cpu.lock && op !== 2 && op !== 3) cpu.ud();
    switch (op) {
      case 0:
      case 1: {
        const a = readE(cpu, s);
        const imm = s === 2 ? cpu.fetch32() : s === 1 ? cpu.fetch16() : cpu.fetch8();
        setLogic(cpu, a & imm, s);
        return;
      }
      case 2:
        writeE(cpu, s, ~readE(cpu, s) & SIZE_MASK[s]);
        return;
      case 3: {
        const a = readE(cpu, s);
        writeE(cpu, s, alu(cpu, AluKind.SUB, 0, a, s));
        return;
      }
      case 4:
        mul(cpu, s, readE(cpu, s), false);
        return;
      case 5:
        mul(cpu, s, readE(cpu, s), true);
        return;
      case 6:
        div(cpu, s, readE(cpu, s), false);
        return;
      default:
        div(cpu, s, readE(cpu, s), true);
    }
  };
}

/** Group 4/5 INC/DEC forms (FE /0 /1, FF /0 /1). */
export function incDecE(cpu: Cpu, s: SizeIdx, dec: boolean): void {
  writeE(cpu, s, incDec(cpu, readE(cpu, s), dec, s));
}

/** IMUL Gv,Ev (0F AF), Gv,Ev,Iz (69), Gv,Ev,Ib (6B). */
export function imulG(s: SizeIdx, imm: 0 | 1 | 2): Handler {
  if (s === 2) return imm === 0 ? imul32 : imm === 1 ? imul32Ib : imul32Iz;
  return (cpu) => {
    cpu.decodeModrm();
    const a = readE(cpu, s);
    let b: number;
    if (imm === 0) b = cpu.getReg(s, cpu.modReg);
    else if (imm === 1) b = (cpu.fetch8() << 24) >> 24;
    else b = cpu.fetch16();
    const sh = SIZE_SHIFT[s];
    const p = ((a << sh) >> sh) * ((b << sh) >> sh);
    const lo = p & 0xffff;
    const overflow = p !== (p << 16) >> 16;
    cpu.setReg(s, cpu.modReg, lo);
    setMulFlags(cpu, overflow, lo, s);
  };
}

/**
 * 32-bit IMUL result: the low half by Math.imul; the double product is exact whenever the true
 * product fits in int32 and (rounding being monotone) outside the int32 range whenever it does
 * not, so it equals the low half exactly when the signed result did not overflow.
 */
function imul32Set(cpu: Cpu, a: number, b: number): void {
  imul32To(cpu, cpu.modReg, a, b);
}

/** 16-bit IMUL of `a` and `b` (sign-extended from 16 bits) into register `reg`, with CF/OF. */
export function imul16To(cpu: Cpu, reg: number, a: number, b: number): void {
  const p = ((a << 16) >> 16) * ((b << 16) >> 16);
  const lo = p & 0xffff;
  cpu.r16[reg << 1] = lo;
  setMulFlags(cpu, p !== (p << 16) >> 16, lo, 1);
}

/** 32-bit IMUL of int32 `a` and `b` into register `reg`, with CF/OF (also the decoded-instruction cache's). */
export function imul32To(cpu: Cpu, reg: number, a: number, b: number): void {
  const lo = Math.imul(a, b);
  const overflow = a * b !== lo;
  cpu.r32[reg] = lo;
  setMulFlags(cpu, overflow, lo, 2);
}

/** IMUL r32, r/m32 (0F AF). */
const imul32: Handler = (cpu) => {
  cpu.decodeModrm();
  const a = cpu.isReg !== 0 ? cpu.r32[cpu.modRm]! : cpu.read32(cpu.eaSeg, cpu.ea);
  imul32Set(cpu, a, cpu.r32[cpu.modReg]!);
};

/** IMUL r32, r/m32, imm8 (6B). */
const imul32Ib: Handler = (cpu) => {
  cpu.decodeModrm();
  const a = cpu.isReg !== 0 ? cpu.r32[cpu.modRm]! : cpu.read32(cpu.eaSeg, cpu.ea);
  imul32Set(cpu, a, (cpu.fetch8() << 24) >> 24);
};

/** IMUL r32, r/m32, imm32 (69). */
const imul32Iz: Handler = (cpu) => {
  cpu.decodeModrm();
  const a = cpu.isReg !== 0 ? cpu.r32[cpu.modRm]! : cpu.read32(cpu.eaSeg, cpu.ea);
  imul32Set(cpu, a, cpu.fetch32());
};
