/**
 * The decoded-instruction cache for 16-bit code (CS.D = 0: real mode, V86, 16-bit protected
 * mode): the decoder of the common forms without prefixes and their handlers (16-bit operand
 * and address size). See icache.ts for the cache itself.
 */
import type { Cpu } from "./cpu.js";
import type { Decoded } from "./icache.js";
import * as B from "./icache-ops.js";
import { type DecodedRun, ea16, NO_REG, SEG_PREFIX } from "./icache-ops.js";
import { alu, imul16To, incDec } from "./ops-alu.js";
import { shift16 } from "./ops-shift.js";
import { Lazy, Sreg } from "./state.js";

function jumpTo(cpu: Cpu, target: number): void {
  if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.eip = target;
}

const movEGr: DecodedRun = (cpu, d) => {
  cpu.r16[d.rm << 1] = cpu.r16[d.reg << 1]!;
};
const movEGm: DecodedRun = (cpu, d) => {
  cpu.write16(d.seg, ea16(cpu, d), cpu.r16[d.reg << 1]!);
};
const movGEr: DecodedRun = (cpu, d) => {
  cpu.r16[d.reg << 1] = cpu.r16[d.rm << 1]!;
};
const movGEm: DecodedRun = (cpu, d) => {
  cpu.r16[d.reg << 1] = cpu.read16(d.seg, ea16(cpu, d));
};
const movRI: DecodedRun = (cpu, d) => {
  cpu.r16[d.reg << 1] = d.imm;
};
const movEIr: DecodedRun = (cpu, d) => {
  cpu.r16[d.rm << 1] = d.imm;
};
const movEIm: DecodedRun = (cpu, d) => {
  cpu.write16(d.seg, ea16(cpu, d), d.imm);
};
const lea: DecodedRun = (cpu, d) => {
  cpu.r16[d.reg << 1] = ea16(cpu, d);
};
const pushR: DecodedRun = (cpu, d) => {
  cpu.push16(cpu.r16[d.reg << 1]!);
};
const popR: DecodedRun = (cpu, d) => {
  cpu.r16[d.reg << 1] = cpu.pop16();
};
const pushEm: DecodedRun = (cpu, d) => {
  cpu.push16(cpu.read16(d.seg, ea16(cpu, d)));
};

export const aluEGr: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r16[d.rm << 1]!, cpu.r16[d.reg << 1]!, 1);
  if (d.kind !== 7) cpu.r16[d.rm << 1] = r;
};
export const aluEGm: DecodedRun = (cpu, d) => {
  const ea = ea16(cpu, d);
  const r = alu(cpu, d.kind, cpu.read16(d.seg, ea), cpu.r16[d.reg << 1]!, 1);
  if (d.kind !== 7) cpu.write16(d.seg, ea, r);
};
export const aluGEr: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r16[d.reg << 1]!, cpu.r16[d.rm << 1]!, 1);
  if (d.kind !== 7) cpu.r16[d.reg << 1] = r;
};
export const aluGEm: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r16[d.reg << 1]!, cpu.read16(d.seg, ea16(cpu, d)), 1);
  if (d.kind !== 7) cpu.r16[d.reg << 1] = r;
};
/** op Ev,imm (81, 83; imm already masked to 16 bits) and op AX,Iw (x5, rm = 0). */
export const aluEIr: DecodedRun = (cpu, d) => {
  const r = alu(cpu, d.kind, cpu.r16[d.rm << 1]!, d.imm, 1);
  if (d.kind !== 7) cpu.r16[d.rm << 1] = r;
};
export const aluEIm: DecodedRun = (cpu, d) => {
  const ea = ea16(cpu, d);
  const r = alu(cpu, d.kind, cpu.read16(d.seg, ea), d.imm, 1);
  if (d.kind !== 7) cpu.write16(d.seg, ea, r);
};
export const testEGr: DecodedRun = (cpu, d) => {
  cpu.lazyOp = Lazy.LOGIC;
  cpu.lazyRes = cpu.r16[d.rm << 1]! & cpu.r16[d.reg << 1]!;
  cpu.lazySize = 1;
};
export const testEGm: DecodedRun = (cpu, d) => {
  const a = cpu.read16(d.seg, ea16(cpu, d));
  cpu.lazyOp = Lazy.LOGIC;
  cpu.lazyRes = a & cpu.r16[d.reg << 1]!;
  cpu.lazySize = 1;
};
export const incDecR: DecodedRun = (cpu, d) => {
  cpu.r16[d.reg << 1] = incDec(cpu, cpu.r16[d.reg << 1]!, d.kind !== 0, 1);
};
const incDecEm: DecodedRun = (cpu, d) => {
  const ea = ea16(cpu, d);
  cpu.write16(d.seg, ea, incDec(cpu, cpu.read16(d.seg, ea), d.kind !== 0, 1));
};
const imulr: DecodedRun = (cpu, d) => {
  imul16To(cpu, d.reg, cpu.r16[d.rm << 1]!, d.imm);
};
const imulm: DecodedRun = (cpu, d) => {
  imul16To(cpu, d.reg, cpu.read16(d.seg, ea16(cpu, d)), d.imm);
};
/** Group 2 by `kind` with the count (1 or Ib masked to 5 bits, non-zero) in `imm`. */
const shiftr: DecodedRun = (cpu, d) => {
  cpu.r16[d.rm << 1] = shift16(cpu, d.kind, cpu.r16[d.rm << 1]!, d.imm);
};
const shiftm: DecodedRun = (cpu, d) => {
  const ea = ea16(cpu, d);
  const r = shift16(cpu, d.kind, cpu.read16(d.seg, ea), d.imm);
  cpu.write16(d.seg, ea, r);
};

const jcc: DecodedRun = (cpu, d) => {
  if (cpu.cond(d.kind)) jumpTo(cpu, (cpu.eip + d.imm) & 0xffff);
};
const jmp: DecodedRun = (cpu, d) => {
  jumpTo(cpu, (cpu.eip + d.imm) & 0xffff);
};
/** LOOP with CX. */
const loop: DecodedRun = (cpu, d) => {
  const count = (cpu.r16[2]! - 1) & 0xffff;
  cpu.r16[2] = count;
  if (count !== 0) jumpTo(cpu, (cpu.eip + d.imm) & 0xffff);
};
const call: DecodedRun = (cpu, d) => {
  const ret = cpu.eip;
  const target = (ret + d.imm) & 0xffff;
  if (target > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.push16(ret);
  cpu.eip = target;
};
const ret: DecodedRun = (cpu) => {
  const sp = cpu.sp;
  const target = cpu.pop16();
  if (target > cpu.segMax[Sreg.CS]!) {
    cpu.sp = sp;
    cpu.gp0();
  }
  cpu.eip = target;
};
const callEr: DecodedRun = (cpu, d) => {
  const target = cpu.r16[d.rm << 1]!;
  if (target > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.push16(cpu.eip);
  cpu.eip = target;
};
const callEm: DecodedRun = (cpu, d) => {
  const target = cpu.read16(d.seg, ea16(cpu, d));
  if (target > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.push16(cpu.eip);
  cpu.eip = target;
};
const jmpEr: DecodedRun = (cpu, d) => {
  jumpTo(cpu, cpu.r16[d.rm << 1]!);
};
const jmpEm: DecodedRun = (cpu, d) => {
  jumpTo(cpu, cpu.read16(d.seg, ea16(cpu, d)));
};

// ---- the decoder --------------------------------------------------------------------------------

/** Base and index registers of the eight 16-bit rm encodings (NO_REG = none). */
const RM_BASE = [3, 3, 5, 5, NO_REG, NO_REG, 5, 3];
const RM_INDEX = [6, 7, 6, 7, 6, 7, NO_REG, NO_REG];

/**
 * ModR/M (+ displacement) with 16-bit addressing at `q`. A register operand sets `d.base = -1`
 * and `d.rm`; a memory operand sets base/index/disp/seg. Returns the offset after it.
 */
function decodeModrm16(u8: Uint8Array, d: Decoded, q: number): number {
  const ovr = d.seg;
  const m = u8[q++]!;
  const mod = m >> 6;
  const rm = m & 7;
  d.reg = (m >> 3) & 7;
  d.rm = rm;
  if (mod === 3) {
    d.base = -1;
    return q;
  }
  let base = RM_BASE[rm]!;
  const index = RM_INDEX[rm]!;
  let disp = 0;
  if (mod === 0 && rm === 6) {
    base = NO_REG;
    disp = u8[q]! | (u8[q + 1]! << 8);
    q += 2;
  } else if (mod === 1) {
    disp = (u8[q]! << 24) >> 24;
    q += 1;
  } else if (mod === 2) {
    disp = u8[q]! | (u8[q + 1]! << 8);
    q += 2;
  }
  d.base = base;
  d.index = index;
  d.scale = 0;
  d.disp = disp;
  d.seg = ovr >= 0 ? ovr : base === 5 ? Sreg.SS : Sreg.DS;
  return q;
}

function imm16(u8: Uint8Array, q: number): number {
  return u8[q]! | (u8[q + 1]! << 8);
}

/**
 * Decodes one instruction of 16-bit code (no prefixes) at `p`: sets `d.run` (null when the
 * form is not cached) and the operands; returns the length.
 */
export function decode16(u8: Uint8Array, d: Decoded, p: number): number {
  let op = u8[p]!;
  let q = p + 1;
  let run: DecodedRun | null = null;
  const ovr = SEG_PREFIX[op]! - 1;
  if (ovr >= 0) op = u8[q++]!;
  d.seg = ovr;
  if (op < 0x40) {
    const low = op & 7;
    if (low === 1 || low === 3) {
      d.kind = op >> 3;
      q = decodeModrm16(u8, d, q);
      if (low === 1) run = d.base === -1 ? aluEGr : aluEGm;
      else run = d.base === -1 ? aluGEr : aluGEm;
    } else if (low === 0 || low === 2) {
      // ALU Eb,Gb (x0) and Gb,Eb (x2).
      d.kind = op >> 3;
      q = decodeModrm16(u8, d, q);
      if (low === 0) run = d.base === -1 ? B.aluEG8r : B.aluEG8m;
      else run = d.base === -1 ? B.aluGE8r : B.aluGE8m;
    } else if (low === 4) {
      // ALU AL,Ib.
      d.kind = op >> 3;
      d.rm = 0;
      d.imm = u8[q++]!;
      run = B.aluEI8r;
    } else if (low === 5) {
      d.kind = op >> 3;
      d.rm = 0;
      d.imm = imm16(u8, q);
      q += 2;
      run = aluEIr;
    }
  } else if (op < 0x60) {
    d.reg = op & 7;
    d.kind = (op >> 3) & 1;
    if (op < 0x50) run = incDecR;
    else run = op < 0x58 ? pushR : popR;
  } else if ((op & 0xf0) === 0x70 || op === 0xeb || op === 0xe2) {
    d.kind = op & 15;
    d.imm = (u8[q]! << 24) >> 24;
    q += 1;
    run = op === 0xeb ? jmp : op === 0xe2 ? loop : jcc;
  } else if (op >= 0xb8 && op <= 0xbf) {
    d.reg = op & 7;
    d.imm = imm16(u8, q);
    q += 2;
    run = movRI;
  } else {
    switch (op) {
      case 0x69:
      case 0x6b:
        q = decodeModrm16(u8, d, q);
        if (op === 0x6b) d.imm = (u8[q++]! << 24) >> 24;
        else {
          d.imm = imm16(u8, q);
          q += 2;
        }
        run = d.base === -1 ? imulr : imulm;
        break;
      case 0x81:
      case 0x83:
        q = decodeModrm16(u8, d, q);
        d.kind = d.reg;
        if (op === 0x83) d.imm = ((u8[q++]! << 24) >> 24) & 0xffff;
        else {
          d.imm = imm16(u8, q);
          q += 2;
        }
        run = d.base === -1 ? aluEIr : aluEIm;
        break;
      case 0x80:
      case 0x82:
        q = decodeModrm16(u8, d, q);
        d.kind = d.reg;
        d.imm = u8[q++]!;
        run = d.base === -1 ? B.aluEI8r : B.aluEI8m;
        break;
      case 0x84:
        q = decodeModrm16(u8, d, q);
        d.kind = 0;
        run = d.base === -1 ? B.test8r : B.test8m;
        break;
      case 0xa8:
        d.rm = 0;
        d.kind = 1;
        d.imm = u8[q++]!;
        run = B.test8r;
        break;
      case 0xc6:
        q = decodeModrm16(u8, d, q);
        d.imm = u8[q++]!;
        if (d.reg === 0) run = d.base === -1 ? B.movEI8r : B.movEI8m;
        break;
      case 0x85:
        q = decodeModrm16(u8, d, q);
        run = d.base === -1 ? testEGr : testEGm;
        break;
      case 0x88:
        q = decodeModrm16(u8, d, q);
        run = d.base === -1 ? B.movEG8r : B.movEG8m;
        break;
      case 0x89:
        q = decodeModrm16(u8, d, q);
        run = d.base === -1 ? movEGr : movEGm;
        break;
      case 0x8a:
        q = decodeModrm16(u8, d, q);
        run = d.base === -1 ? B.movGE8r : B.movGE8m;
        break;
      case 0x8b:
        q = decodeModrm16(u8, d, q);
        run = d.base === -1 ? movGEr : movGEm;
        break;
      case 0x8d:
        q = decodeModrm16(u8, d, q);
        if (d.base !== -1) run = lea;
        break;
      case 0xc1:
      case 0xd1: {
        q = decodeModrm16(u8, d, q);
        d.kind = d.reg;
        const count = op === 0xd1 ? 1 : u8[q++]! & 0x1f;
        d.imm = count;
        if (count !== 0) run = d.base === -1 ? shiftr : shiftm;
        break;
      }
      case 0xc3:
        run = ret;
        break;
      case 0xc7:
        q = decodeModrm16(u8, d, q);
        d.imm = imm16(u8, q);
        q += 2;
        if (d.reg === 0) run = d.base === -1 ? movEIr : movEIm;
        break;
      case 0xe8:
      case 0xe9:
        d.imm = imm16(u8, q);
        q += 2;
        run = op === 0xe8 ? call : jmp;
        break;
      case 0xff:
        q = decodeModrm16(u8, d, q);
        d.kind = d.reg;
        if (d.base === -1) {
          if (d.reg === 2) run = callEr;
          else if (d.reg === 4) run = jmpEr;
        } else if (d.reg <= 1) run = incDecEm;
        else if (d.reg === 2) run = callEm;
        else if (d.reg === 4) run = jmpEm;
        else if (d.reg === 6) run = pushEm;
        break;
    }
  }
  d.run = run;
  return q - p;
}
