/**
 * Fused records of the decoded-instruction cache: a flag-setting register instruction (ALU
 * r,r / r,imm, TEST, INC/DEC r) followed by a Jcc rel8 is decoded into one record, run by one
 * handler call (the compare-and-branch pairs of every loop). The pair is still two
 * instructions: the record compares both instructions' bytes (at most 8 together), and the
 * handler counts the second one itself, runs it only when the slice's budget has room for it and
 * no boundary work is due (`slowCheck`: single-step trap, interrupt shadow), and otherwise
 * stops at the Jcc (EIP rewound to it) so the loop runs it from its own record. The first
 * instruction touches registers and flags only, so it can neither fault nor make boundary work
 * due; a #GP of the Jcc (target beyond the CS limit) is raised with `instrStart` at the Jcc.
 */
import type { Cpu } from "./cpu.js";
import type { Decoded } from "./icache.js";
import * as B from "./icache-ops.js";
import type { DecodedRun } from "./icache-ops.js";
import * as W from "./icache16.js";
import { Sreg } from "./state.js";

/** The Jcc rel8 of a fused record in 32-bit code (condition `cc2`, displacement `rel2`). */
function jcc32(cpu: Cpu, d: Decoded): void {
  const at = (cpu.eip - 2) | 0;
  if (cpu.slowCheck !== 0 || cpu.sliceRetired + 1 >= cpu.sliceBudget) {
    cpu.eip = at;
    return;
  }
  cpu.sliceRetired++;
  cpu.instrStart = at;
  if (cpu.cond(d.cc2)) {
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
  if (cpu.cond(d.cc2)) {
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
]);

/**
 * Fuses the decoded instruction in `d` (length `len` at `p`) with a following Jcc rel8 when the
 * form allows it and the pair fits in `room` bytes and in 8; returns the record's new length.
 */
export function fuseJcc(u8: Uint8Array, d: Decoded, p: number, len: number, room: number): number {
  const run = d.run;
  if (run === null || len + 2 > 8 || len + 2 > room) return len;
  const next = u8[p + len]!;
  if ((next & 0xf0) !== 0x70) return len;
  const fused = (d.big !== 0 ? FUSE32 : FUSE16).get(run);
  if (fused === undefined) return len;
  d.cc2 = next & 15;
  d.rel2 = (u8[p + len + 1]! << 24) >> 24;
  d.run = fused;
  return len + 2;
}
