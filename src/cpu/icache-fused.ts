/**
 * Fused records of the decoded-instruction cache: a flag-setting instruction that writes no
 * memory (ALU r,r / r,imm / r,[m], CMP [m],r / [m],imm, TEST, INC/DEC r) followed by a Jcc
 * rel8, JMP rel8 or LOOP is decoded into one record, run by one handler call (the
 * compare-and-branch and step-and-loop pairs of loops). The pair is still two instructions: the
 * record compares both instructions' bytes (at most 8 together), and the handler counts the
 * second one itself, runs it only when the slice's budget has room for it and no boundary work
 * is due (`slowCheck`: single-step trap, interrupt shadow), and otherwise stops at the branch
 * (EIP rewound to it) so the loop runs it from its own record. The first instruction writes no
 * memory, so the branch's bytes still hold; when it faults (a memory operand), nothing of the
 * branch has run and `instrStart` is the pair's start; an MMIO read in it sets `slowCheck`,
 * which stops the pair at the branch. A #GP of the branch (target beyond the CS limit) is
 * raised with `instrStart` at the branch.
 */
import type { Cpu } from "./cpu.js";
import type { Decoded } from "./icache.js";
import * as B from "./icache-ops.js";
import type { DecodedRun } from "./icache-ops.js";
import * as W from "./icache16.js";
import { Sreg } from "./state.js";

/** `Decoded.cc2` of a fused JMP rel8 (EB) and LOOP (E2, with ECX or CX by the code size); 0-15: Jcc. */
const JMP = 16;
const LOOP = 17;

/** The branch of a fused record in 32-bit code (`cc2`: condition, JMP or LOOP; displacement `rel2`). */
function jcc32(cpu: Cpu, d: Decoded): void {
  const at = (cpu.eip - 2) | 0;
  if (cpu.slowCheck !== 0 || cpu.sliceRetired + 1 >= cpu.sliceBudget) {
    cpu.eip = at;
    return;
  }
  cpu.sliceRetired++;
  cpu.instrStart = at;
  const c = d.cc2;
  let taken: boolean;
  if (c < 16) taken = cpu.cond(c);
  else if (c === JMP) taken = true;
  else {
    const count = (cpu.r32[1]! - 1) | 0;
    cpu.r32[1] = count;
    taken = count !== 0;
  }
  if (taken) {
    const target = (cpu.eip + d.rel2) | 0;
    if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
    cpu.eip = target;
  }
}

/** The same in 16-bit code (IP wraps at 64 KiB). */
function jcc16(cpu: Cpu, d: Decoded): void {
  const at = (cpu.eip - 2) & 0xffff;
  if (cpu.slowCheck !== 0 || cpu.sliceRetired + 1 >= cpu.sliceBudget) {
    cpu.eip = at;
    return;
  }
  cpu.sliceRetired++;
  cpu.instrStart = at;
  const c = d.cc2;
  let taken: boolean;
  if (c < 16) taken = cpu.cond(c);
  else if (c === JMP) taken = true;
  else {
    const count = (cpu.r16[2]! - 1) & 0xffff;
    cpu.r16[2] = count;
    taken = count !== 0;
  }
  if (taken) {
    const target = (cpu.eip + d.rel2) & 0xffff;
    if (target > cpu.segMax[Sreg.CS]!) cpu.gp0();
    cpu.eip = target;
  }
}

// One function literal per pair, so each gets its own feedback and inlines both halves.

const aluEGr32: DecodedRun = (cpu, d) => {
  B.aluEGr(cpu, d);
  jcc32(cpu, d);
};
const aluGEr32: DecodedRun = (cpu, d) => {
  B.aluGEr(cpu, d);
  jcc32(cpu, d);
};
const aluEIr32: DecodedRun = (cpu, d) => {
  B.aluEIr(cpu, d);
  jcc32(cpu, d);
};
const testEGr32: DecodedRun = (cpu, d) => {
  B.testEGr(cpu, d);
  jcc32(cpu, d);
};
const incDecR32: DecodedRun = (cpu, d) => {
  B.incDecR(cpu, d);
  jcc32(cpu, d);
};
const test8r32: DecodedRun = (cpu, d) => {
  B.test8r(cpu, d);
  jcc32(cpu, d);
};
const aluEI8r32: DecodedRun = (cpu, d) => {
  B.aluEI8r(cpu, d);
  jcc32(cpu, d);
};
const aluEG8r32: DecodedRun = (cpu, d) => {
  B.aluEG8r(cpu, d);
  jcc32(cpu, d);
};

const aluEGr16: DecodedRun = (cpu, d) => {
  W.aluEGr(cpu, d);
  jcc16(cpu, d);
};
const aluGEr16: DecodedRun = (cpu, d) => {
  W.aluGEr(cpu, d);
  jcc16(cpu, d);
};
const aluEIr16: DecodedRun = (cpu, d) => {
  W.aluEIr(cpu, d);
  jcc16(cpu, d);
};
const testEGr16: DecodedRun = (cpu, d) => {
  W.testEGr(cpu, d);
  jcc16(cpu, d);
};
const incDecR16: DecodedRun = (cpu, d) => {
  W.incDecR(cpu, d);
  jcc16(cpu, d);
};
const test8r16: DecodedRun = (cpu, d) => {
  B.test8r(cpu, d);
  jcc16(cpu, d);
};
const aluEI8r16: DecodedRun = (cpu, d) => {
  B.aluEI8r(cpu, d);
  jcc16(cpu, d);
};
const aluEG8r16: DecodedRun = (cpu, d) => {
  B.aluEG8r(cpu, d);
  jcc16(cpu, d);
};

// Forms that read memory (and write no memory: CMP / TEST, or a register destination).

const aluGEm32: DecodedRun = (cpu, d) => {
  B.aluGEm(cpu, d);
  jcc32(cpu, d);
};
const aluEGm32: DecodedRun = (cpu, d) => {
  B.aluEGm(cpu, d);
  jcc32(cpu, d);
};
const aluEIm32: DecodedRun = (cpu, d) => {
  B.aluEIm(cpu, d);
  jcc32(cpu, d);
};
const testEGm32: DecodedRun = (cpu, d) => {
  B.testEGm(cpu, d);
  jcc32(cpu, d);
};
const test8m32: DecodedRun = (cpu, d) => {
  B.test8m(cpu, d);
  jcc32(cpu, d);
};
const aluGE8m32: DecodedRun = (cpu, d) => {
  B.aluGE8m(cpu, d);
  jcc32(cpu, d);
};
const aluEG8m32: DecodedRun = (cpu, d) => {
  B.aluEG8m(cpu, d);
  jcc32(cpu, d);
};
const aluEI8m32: DecodedRun = (cpu, d) => {
  B.aluEI8m(cpu, d);
  jcc32(cpu, d);
};

const aluGEm16: DecodedRun = (cpu, d) => {
  W.aluGEm(cpu, d);
  jcc16(cpu, d);
};
const aluEGm16: DecodedRun = (cpu, d) => {
  W.aluEGm(cpu, d);
  jcc16(cpu, d);
};
const aluEIm16: DecodedRun = (cpu, d) => {
  W.aluEIm(cpu, d);
  jcc16(cpu, d);
};
const testEGm16: DecodedRun = (cpu, d) => {
  W.testEGm(cpu, d);
  jcc16(cpu, d);
};
const test8m16: DecodedRun = (cpu, d) => {
  B.test8m(cpu, d);
  jcc16(cpu, d);
};
const aluGE8m16: DecodedRun = (cpu, d) => {
  B.aluGE8m(cpu, d);
  jcc16(cpu, d);
};
const aluEG8m16: DecodedRun = (cpu, d) => {
  B.aluEG8m(cpu, d);
  jcc16(cpu, d);
};
const aluEI8m16: DecodedRun = (cpu, d) => {
  B.aluEI8m(cpu, d);
  jcc16(cpu, d);
};

/** First-instruction handler → fused handler, for 32-bit code. */
const FUSE32 = new Map<DecodedRun, DecodedRun>([
  [B.aluEGr, aluEGr32],
  [B.aluGEr, aluGEr32],
  [B.aluEIr, aluEIr32],
  [B.testEGr, testEGr32],
  [B.incDecR, incDecR32],
  [B.test8r, test8r32],
  [B.aluEI8r, aluEI8r32],
  [B.aluEG8r, aluEG8r32],
  [B.aluGEm, aluGEm32],
  [B.aluEGm, aluEGm32],
  [B.aluEIm, aluEIm32],
  [B.testEGm, testEGm32],
  [B.test8m, test8m32],
  [B.aluGE8m, aluGE8m32],
  [B.aluEG8m, aluEG8m32],
  [B.aluEI8m, aluEI8m32],
]);

/** The same for 16-bit code. */
const FUSE16 = new Map<DecodedRun, DecodedRun>([
  [W.aluEGr, aluEGr16],
  [W.aluGEr, aluGEr16],
  [W.aluEIr, aluEIr16],
  [W.testEGr, testEGr16],
  [W.incDecR, incDecR16],
  [B.test8r, test8r16],
  [B.aluEI8r, aluEI8r16],
  [B.aluEG8r, aluEG8r16],
  [W.aluGEm, aluGEm16],
  [W.aluEGm, aluEGm16],
  [W.aluEIm, aluEIm16],
  [W.testEGm, testEGm16],
  [B.test8m, test8m16],
  [B.aluGE8m, aluGE8m16],
  [B.aluEG8m, aluEG8m16],
  [B.aluEI8m, aluEI8m16],
]);

/** Forms with a memory destination: fused only as CMP (kind 7), which writes no memory (a write could change the branch's bytes). */
const CMP_ONLY = new Set<DecodedRun>([B.aluEGm, B.aluEIm, B.aluEG8m, B.aluEI8m, W.aluEGm, W.aluEIm]);

/**
 * Fuses the decoded instruction in `d` (length `len` at `p`) with a following Jcc rel8, JMP rel8
 * or LOOP when the
 * form allows it and the pair fits in `room` bytes and in 8; returns the record's new length.
 */
export function fuseJcc(u8: Uint8Array, d: Decoded, p: number, len: number, room: number): number {
  const run = d.run;
  if (run === null || len + 2 > 8 || len + 2 > room) return len;
  const next = u8[p + len]!;
  if ((next & 0xf0) !== 0x70 && next !== 0xeb && next !== 0xe2) return len;
  const fused = (d.big !== 0 ? FUSE32 : FUSE16).get(run);
  if (fused === undefined || (d.kind !== 7 && CMP_ONLY.has(run))) return len;
  d.cc2 = next === 0xeb ? JMP : next === 0xe2 ? LOOP : next & 15;
  d.rel2 = (u8[p + len + 1]! << 24) >> 24;
  d.run = fused;
  return len + 2;
}
