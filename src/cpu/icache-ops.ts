/**
 * Handlers of the decoded-instruction cache (icache.ts): one function per instruction form,
 * operands taken from the `Decoded` record instead of fetched and decoded again. Each one does
 * exactly what the table's handler does for that form (same memory accesses in the same order,
 * so faults leave the same state); EIP already points past the instruction.
 */
import type { Cpu } from "./cpu.js";
import type { Decoded } from "./icache.js";
import { alu, imul32To, incDec } from "./ops-alu.js";
import { shift32 } from "./ops-shift.js";
import { Lazy, REG8, Sreg } from "./state.js";

export type DecodedRun = (cpu: Cpu, d: Decoded) => void;

/** Segment-override prefix byte → segment register + 1 (0: not one). */
export const SEG_PREFIX = new Uint8Array(256);
SEG_PREFIX[0x26] = Sreg.ES + 1;
SEG_PREFIX[0x2e] = Sreg.CS + 1;
SEG_PREFIX[0x36] = Sreg.SS + 1;
SEG_PREFIX[0x3e] = Sreg.DS + 1;
SEG_PREFIX[0x64] = Sreg.FS + 1;
SEG_PREFIX[0x65] = Sreg.GS + 1;

/** "No register" in `Decoded.base` / `Decoded.index`. */
export const NO_REG = 8;

/** Effective address of a decoded memory operand with 32-bit addressing. */
export function ea32(cpu: Cpu, d: Decoded): number {
  let ea = d.disp;
  if (d.base !== NO_REG) ea = (ea + cpu.r32[d.base]!) | 0;
  if (d.index !== NO_REG) ea = (ea + (cpu.r32[d.index]! << d.scale)) | 0;
  return ea;
}

/** NOP (90), also PAUSE (F3 90) — the decoder keeps F3 90, this is plain 90. */
export const nop: DecodedRun = () => {};

/** Effective address of a decoded memory operand with 16-bit addressing. */
export function ea16(cpu: Cpu, d: Decoded): number {
  let ea = d.disp;
  if (d.base !== NO_REG) ea += cpu.r16[d.base << 1]!;
  if (d.index !== NO_REG) ea += cpu.r16[d.index << 1]!;
  return ea & 0xffff;
}

/** Effective address by the record's address size (the byte forms serve both decoders). */
function eaAny(cpu: Cpu, d: Decoded): number {
  return d.big !== 0 ? ea32(cpu, d) : ea16(cpu, d);
}

// ---- moves --------------------------------------------------------------------------------------

export const movEGr: DecodedRun = (cpu, d) => {
  cpu.r32[d.rm] = cpu.r32[d.reg]!;
};
export const movEGm: DecodedRun = (cpu, d) => {
  cpu.write32(d.seg, ea32(cpu, d), cpu.r32[d.reg]!);
};
export const movGEr: DecodedRun = (cpu, d) => {
  cpu.r32[d.reg] = cpu.r32[d.rm]!;
};
export const movGEm: DecodedRun = (cpu, d) => {
  cpu.r32[d.reg] = cpu.read32(d.seg, ea32(cpu, d));
};
export const movEG8r: DecodedRun = (cpu, d) => {
  cpu.r8[REG8[d.rm]!] = cpu.r8[REG8[d.reg]!]!;
};
export const movEG8m: DecodedRun = (cpu, d) => {
  cpu.write8(d.seg, eaAny(cpu, d), cpu.r8[REG8[d.reg]!]!);
};
export const movGE8r: DecodedRun = (cpu, d) => {
  cpu.r8[REG8[d.reg]!] = cpu.r8[REG8[d.rm]!]!;
};
export const movGE8m: DecodedRun = (cpu, d) => {
  cpu.r8[REG8[d.reg]!] = cpu.read8(d.seg, eaAny(cpu, d));
};
export const movEI8r: DecodedRun = (cpu, d) => {
  cpu.r8[REG8[d.rm]!] = d.imm;
};
export const movEI8m: DecodedRun = (cpu, d) => {
  cpu.write8(d.seg, eaAny(cpu, d), d.imm);
};
/** SETcc Eb (0F 90-9F): condition in `kind`. */
export const setccr: DecodedRun = (cpu, d) => {
  cpu.r8[REG8[d.rm]!] = cpu.cond(d.kind) ? 1 : 0;
};
export const setccm: DecodedRun = (cpu, d) => {
  cpu.write8(d.seg, eaAny(cpu, d), cpu.cond(d.kind) ? 1 : 0);
};
/** CMOVcc r32, r/m32 (0F 40-4F): the source is always read. */
export const cmovr: DecodedRun = (cpu, d) => {
  if (cpu.cond(d.kind)) cpu.r32[d.reg] = cpu.r32[d.rm]!;
};
export const cmovm: DecodedRun = (cpu, d) => {
  const v = cpu.read32(d.seg, ea32(cpu, d));
  if (cpu.cond(d.kind)) cpu.r32[d.reg] = v;
};
export const movRI: DecodedRun = (cpu, d) => {
  cpu.r32[d.reg] = d.imm;
};
export const movEIr: DecodedRun = (cpu, d) => {
  cpu.r32[d.rm] = d.imm;
};
export const movEIm: DecodedRun = (cpu, d) => {
  cpu.write32(d.seg, ea32(cpu, d), d.imm);
};
export const lea: DecodedRun = (cpu, d) => {
  cpu.r32[d.reg] = ea32(cpu, d);
};
/** MOVZX/MOVSX r32 from a byte (kind 0/1) or a word (kind 2/3); odd kinds sign-extend. */
export const movxr: DecodedRun = (cpu, d) => {
  const k = d.kind;
  let v = k < 2 ? cpu.r8[REG8[d.rm]!]! : cpu.r16[d.rm << 1]!;
  if (k === 1) v = (v << 24) >> 24;
  else if (k === 3) v = (v << 16) >> 16;
  cpu.r32[d.reg] = v;
};
export const movxm: DecodedRun = (cpu, d) => {
  const k = d.kind;
  const ea = ea32(cpu, d);
  let v = k < 2 ? cpu.read8(d.seg, ea) : cpu.read16(d.seg, ea);
  if (k === 1) v = (v << 24) >> 24;
  else if (k === 3) v = (v << 16) >> 16;
  cpu.r32[d.reg] = v;
};
export const pushR: DecodedRun = (cpu, d) => {
  cpu.push32(cpu.r32[d.reg]!);
};
export const popR: DecodedRun = (cpu, d) => {
  cpu.r32[d.reg] = cpu.pop32();
};
export const pushEm: DecodedRun = (cpu, d) => {
  cpu.push32(cpu.read32(d.seg, ea32(cpu, d)));
};

// ---- ALU ----

/** Byte forms (both address sizes): op Eb,Gb (x0), op Gb,Eb (x2), op AL,Ib (x4, rm = 0), group 1 Eb,Ib (80, 82), TEST. */
export const aluEG8r: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r8[REG8[d.rm]!]!, cpu.r8[REG8[d.reg]!]!, 0);
  if (d.kind !== 7) cpu.r8[REG8[d.rm]!] = r;
};
export const aluEG8m: DecodedRun = (cpu, d) => {
  const ea = eaAny(cpu, d);
  const r = alu(cpu, d.kind, cpu.read8(d.seg, ea), cpu.r8[REG8[d.reg]!]!, 0);
  if (d.kind !== 7) cpu.write8(d.seg, ea, r);
};
export const aluGE8r: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r8[REG8[d.reg]!]!, cpu.r8[REG8[d.rm]!]!, 0);
  if (d.kind !== 7) cpu.r8[REG8[d.reg]!] = r;
};
export const aluGE8m: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r8[REG8[d.reg]!]!, cpu.read8(d.seg, eaAny(cpu, d)), 0);
  if (d.kind !== 7) cpu.r8[REG8[d.reg]!] = r;
};
export const aluEI8r: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r8[REG8[d.rm]!]!, d.imm, 0);
  if (d.kind !== 7) cpu.r8[REG8[d.rm]!] = r;
};
export const aluEI8m: DecodedRun = (cpu, d) => {
  const ea = eaAny(cpu, d);
  const r = alu(cpu, d.kind, cpu.read8(d.seg, ea), d.imm, 0);
  if (d.kind !== 7) cpu.write8(d.seg, ea, r);
};
/** TEST Eb,Gb (84) and TEST AL,Ib (A8: rm = 0, the immediate in `imm`, `kind` = 1). */
export const test8r: DecodedRun = (cpu, d) => {
  cpu.lazyOp = Lazy.LOGIC;
  cpu.lazyRes = cpu.r8[REG8[d.rm]!]! & (d.kind === 1 ? d.imm : cpu.r8[REG8[d.reg]!]!);
  cpu.lazySize = 0;
};
export const test8m: DecodedRun = (cpu, d) => {
  const a = cpu.read8(d.seg, eaAny(cpu, d));
  cpu.lazyOp = Lazy.LOGIC;
  cpu.lazyRes = a & cpu.r8[REG8[d.reg]!]!;
  cpu.lazySize = 0;
};

// 32-bit operand size.

export const aluEGr: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r32[d.rm]!, cpu.r32[d.reg]!, 2);
  if (d.kind !== 7) cpu.r32[d.rm] = r;
};
export const aluEGm: DecodedRun = (cpu, d) => {
  const ea = ea32(cpu, d);
  const r = alu(cpu, d.kind, cpu.read32(d.seg, ea), cpu.r32[d.reg]!, 2);
  if (d.kind !== 7) cpu.write32(d.seg, ea, r);
};
export const aluGEr: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r32[d.reg]!, cpu.r32[d.rm]!, 2);
  if (d.kind !== 7) cpu.r32[d.reg] = r;
};
export const aluGEm: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r32[d.reg]!, cpu.read32(d.seg, ea32(cpu, d)), 2);
  if (d.kind !== 7) cpu.r32[d.reg] = r;
};
/** op Ev,imm (81, 83) with a register operand; also op eAX,Iz (x5) with rm = 0. */
export const aluEIr: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r32[d.rm]!, d.imm, 2);
  if (d.kind !== 7) cpu.r32[d.rm] = r;
};
export const aluEIm: DecodedRun = (cpu, d) => {
  const ea = ea32(cpu, d);
  const r = alu(cpu, d.kind, cpu.read32(d.seg, ea), d.imm, 2);
  if (d.kind !== 7) cpu.write32(d.seg, ea, r);
};
export const testEGr: DecodedRun = (cpu, d) => {
  cpu.lazyOp = Lazy.LOGIC;
  cpu.lazyRes = cpu.r32[d.rm]! & cpu.r32[d.reg]!;
  cpu.lazySize = 2;
};
export const testEGm: DecodedRun = (cpu, d) => {
  const a = cpu.read32(d.seg, ea32(cpu, d));
  cpu.lazyOp = Lazy.LOGIC;
  cpu.lazyRes = a & cpu.r32[d.reg]!;
  cpu.lazySize = 2;
};
/** INC r32 (kind 0) / DEC r32 (kind 1); CF is kept. */
export const incDecR: DecodedRun = (cpu, d) => {
  const r = d.reg;
  const a = cpu.r32[r]!;
  cpu.flags = (cpu.flags & ~1) | cpu.getCF();
  const res = d.kind === 0 ? (a + 1) | 0 : (a - 1) | 0;
  cpu.lazyOp = d.kind === 0 ? Lazy.INC : Lazy.DEC;
  cpu.lazyA = a;
  cpu.lazyB = 1;
  cpu.lazyRes = res;
  cpu.lazySize = 2;
  cpu.r32[r] = res;
};
export const incDecEm: DecodedRun = (cpu, d) => {
  const ea = ea32(cpu, d);
  cpu.write32(d.seg, ea, incDec(cpu, cpu.read32(d.seg, ea), d.kind !== 0, 2));
};
/** IMUL r32, r/m32[, imm]: `imm` is the immediate, or `kind` = 1 for the two-operand 0F AF form. */
export const imulr: DecodedRun = (cpu, d) => {
  imul32To(cpu, d.reg, cpu.r32[d.rm]!, d.kind === 1 ? cpu.r32[d.reg]! : d.imm);
};
export const imulm: DecodedRun = (cpu, d) => {
  const a = cpu.read32(d.seg, ea32(cpu, d));
  imul32To(cpu, d.reg, a, d.kind === 1 ? cpu.r32[d.reg]! : d.imm);
};
/** Group 2 (ROL..SAR by `kind`) with an immediate or 1 count in `imm` (already masked, non-zero). */
export const shiftr: DecodedRun = (cpu, d) => {
  cpu.r32[d.rm] = shift32(cpu, d.kind, cpu.r32[d.rm]!, d.imm);
};
export const shiftm: DecodedRun = (cpu, d) => {
  const ea = ea32(cpu, d);
  const r = shift32(cpu, d.kind, cpu.read32(d.seg, ea), d.imm);
  cpu.write32(d.seg, ea, r);
};

// ---- control transfer (32-bit code) --------------------------------------------------------------

function jumpTo(cpu: Cpu, target: number): void {
  if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.eip = target;
}

/** Jcc rel8/rel32: condition in `kind`, displacement in `imm`. */
export const jcc: DecodedRun = (cpu, d) => {
  if (cpu.cond(d.kind)) jumpTo(cpu, (cpu.eip + d.imm) | 0);
};
export const jmp: DecodedRun = (cpu, d) => {
  jumpTo(cpu, (cpu.eip + d.imm) | 0);
};
/** LOOP with ECX. */
export const loop: DecodedRun = (cpu, d) => {
  const count = (cpu.r32[1]! - 1) | 0;
  cpu.r32[1] = count;
  if (count !== 0) jumpTo(cpu, (cpu.eip + d.imm) | 0);
};
export const call: DecodedRun = (cpu, d) => {
  const ret = cpu.eip;
  const target = (ret + d.imm) | 0;
  if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.push32(ret);
  cpu.eip = target;
};
export const ret: DecodedRun = (cpu) => {
  const sp = cpu.sp;
  const target = cpu.pop32();
  if (target >>> 0 > cpu.segMax[Sreg.CS]!) {
    cpu.sp = sp;
    cpu.gp0();
  }
  cpu.eip = target;
};
/** CALL r/m32 (FF /2). */
export const callEr: DecodedRun = (cpu, d) => {
  const target = cpu.r32[d.rm]!;
  if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.push32(cpu.eip);
  cpu.eip = target;
};
export const callEm: DecodedRun = (cpu, d) => {
  const target = cpu.read32(d.seg, ea32(cpu, d));
  if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.push32(cpu.eip);
  cpu.eip = target;
};
/** JMP r/m32 (FF /4). */
export const jmpEr: DecodedRun = (cpu, d) => {
  jumpTo(cpu, cpu.r32[d.rm]!);
};
export const jmpEm: DecodedRun = (cpu, d) => {
  jumpTo(cpu, cpu.read32(d.seg, ea32(cpu, d)));
};
