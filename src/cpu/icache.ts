/**
 * The decoded-instruction cache: instructions decoded once into a `Decoded` record (operands,
 * ModR/M, SIB, displacement and immediate pre-decoded) and run by a handler specialised for the
 * form, keyed by physical address in a direct-mapped table.
 *
 * No invalidation: a record keeps the instruction's bytes (up to 8, as two masked int32 words)
 * and is only used when the bytes in RAM still match, so self-modifying code, DMA into code
 * pages and paging remaps (the key is the physical address of the fetch window) can never run a
 * stale decode. A record is also keyed on CS.D (the default operand and address size).
 *
 * Forms not listed here are recorded as "not cached" (`run === null`) and go through the
 * normal decoder (`Cpu.step`); so does any instruction with a prefix (except one segment
 * override, and the string instructions' prefixes: icache-string.ts), one that does not fit in
 * the fetch window, or one longer than 8 bytes. A flag-setting register form followed by a Jcc
 * rel8 is fused into one record (icache-fused.ts).
 */
import type { Cpu } from "./cpu.js";
import { fuseJcc } from "./icache-fused.js";
import * as H from "./icache-ops.js";
import { decodeString } from "./icache-string.js";
import { decode16 } from "./icache16.js";
import { Sreg } from "./state.js";

/** log2 of the number of slots of the direct-mapped table. */
export const ICACHE_BITS = 14;
export const ICACHE_MASK = (1 << ICACHE_BITS) - 1;

const NONE = H.NO_REG;

/** `Decoded.len` of a record that is not cached: longer than any fetch window (one page). */
export const NOT_CACHED_LEN = 0x2000;

/** Physical addresses up to this are cached (the tag keeps CS.D in bit 31). */
export const ICACHE_MAX_ADDR = 0x7fff_fff0;

export class Decoded {
  /** Physical address of the first byte | CS.D << 31, or -1 for an empty slot. */
  tag = -1;
  /** CS.D when decoded (0/1). */
  big = 0;
  /** Instruction length in bytes. */
  len = 0;
  /** EIP mask after the instruction: -1 in 32-bit code, 0xffff (IP wraps) in 16-bit code. */
  ipMask = -1;
  /** The instruction's bytes as little-endian words with their masks (word 1 unused when len <= 4). */
  w0 = 0;
  m0 = 0;
  w1 = 0;
  m1 = 0;
  /** The specialised handler, or null: not cached (run through the decoder). */
  run: H.DecodedRun | null = null;
  /** ModR/M reg field (or the register of a one-byte form). */
  reg = 0;
  /** ModR/M rm field when the operand is a register. */
  rm = 0;
  /** Memory operand: base and index registers (8 = none), scale shift, displacement, segment. */
  base = NONE;
  index = NONE;
  scale = 0;
  disp = 0;
  seg = 0;
  /** Immediate (sign-extended int32) or relative displacement. */
  imm = 0;
  /** ALU kind (AluKind) or condition code. */
  kind = 0;
  /** A fused Jcc rel8 after the instruction (icache-fused.ts): its condition and displacement. */
  cc2 = 0;
  rel2 = 0;
}

/** The record every empty slot shares (never written: the first decode gives a slot its own). */
export const EMPTY_RECORD = new Decoded();

/** A table of empty slots (records are allocated as code is first decoded). */
export function newIcache(): Decoded[] {
  return new Array<Decoded>(ICACHE_MASK + 1).fill(EMPTY_RECORD);
}

// ---- the decoder --------------------------------------------------------------------------------

/**
 * Decodes the instruction at physical address `p` (RAM, with at least 16 readable bytes) into
 * `d` for code with CS.D = `big`. Sets `d.run = null` when the form is not cached. `room` is the
 * number of bytes left in the fetch window from `p`.
 */
export function decodeInto(cpu: Cpu, d: Decoded, p: number, big: number, room: number): void {
  d.tag = p | (big << 31);
  d.big = big;
  d.run = null;
  d.ipMask = big !== 0 ? -1 : 0xffff;
  const u8 = cpu.ramU8;
  let len = fuseJcc(u8, d, p, big !== 0 ? decode32(u8, d, p) : decode16(u8, d, p), room);
  if (d.run === null) len = decodeString(u8, d, p, big);
  if (d.run === null || len > 8 || len > room) {
    // Not cached: a length no fetch window holds sends it to the decoder; no bytes to compare.
    d.run = null;
    d.len = NOT_CACHED_LEN;
    d.m0 = d.w0 = d.m1 = d.w1 = 0;
    return;
  }
  d.len = len;
  const view = cpu.ramView;
  d.m0 = len >= 4 ? -1 : (1 << (len * 8)) - 1;
  d.w0 = view.getInt32(p, true) & d.m0;
  d.m1 = len <= 4 ? 0 : len === 8 ? -1 : (1 << ((len - 4) * 8)) - 1;
  d.w1 = view.getInt32(p + 4, true) & d.m1;
}

function imm32(u8: Uint8Array, q: number): number {
  return u8[q]! | (u8[q + 1]! << 8) | (u8[q + 2]! << 16) | (u8[q + 3]! << 24);
}

/**
 * Decodes one instruction of 32-bit code (no prefixes) at `p`: sets `d.run` (null when the
 * form is not cached) and the operands; returns the length.
 */
function decode32(u8: Uint8Array, d: Decoded, p: number): number {
  let op = u8[p]!;
  let q = p + 1;
  let run: H.DecodedRun | null = null;
  // One segment-override prefix is folded into the memory operand's segment (other forms
  // ignore it, as the processor does).
  const ovr = H.SEG_PREFIX[op]! - 1;
  if (ovr >= 0) op = u8[q++]!;
  d.seg = ovr;
  if (op === 0x0f) {
    const op2 = u8[q++]!;
    if ((op2 & 0xf0) === 0x80) {
      d.kind = op2 & 15;
      d.imm = imm32(u8, q);
      q += 4;
      run = H.jcc;
    } else if (op2 === 0xb6 || op2 === 0xb7 || op2 === 0xbe || op2 === 0xbf) {
      q = decodeModrm32(u8, d, q);
      d.kind = (op2 & 1) * 2 + (op2 >> 3 === 0x17 ? 1 : 0);
      run = d.base === -1 ? H.movxr : H.movxm;
    } else if ((op2 & 0xf0) === 0x40) {
      q = decodeModrm32(u8, d, q);
      d.kind = op2 & 15;
      run = d.base === -1 ? H.cmovr : H.cmovm;
    } else if ((op2 & 0xf0) === 0x90) {
      q = decodeModrm32(u8, d, q);
      d.kind = op2 & 15;
      run = d.base === -1 ? H.setccr : H.setccm;
    } else if (op2 === 0xaf) {
      q = decodeModrm32(u8, d, q);
      d.kind = 1;
      run = d.base === -1 ? H.imulr : H.imulm;
    }
  } else if (op < 0x40) {
    const low = op & 7;
    if (low === 1 || low === 3) {
      // ALU Ev,Gv (x1) and Gv,Ev (x3).
      d.kind = op >> 3;
      q = decodeModrm32(u8, d, q);
      if (low === 1) run = d.base === -1 ? H.aluEGr : H.aluEGm;
      else run = d.base === -1 ? H.aluGEr : H.aluGEm;
    } else if (low === 0 || low === 2) {
      // ALU Eb,Gb (x0) and Gb,Eb (x2).
      d.kind = op >> 3;
      q = decodeModrm32(u8, d, q);
      if (low === 0) run = d.base === -1 ? H.aluEG8r : H.aluEG8m;
      else run = d.base === -1 ? H.aluGE8r : H.aluGE8m;
    } else if (low === 4) {
      // ALU AL,Ib.
      d.kind = op >> 3;
      d.rm = 0;
      d.imm = u8[q++]!;
      run = H.aluEI8r;
    } else if (low === 5) {
      // ALU eAX,Iz.
      d.kind = op >> 3;
      d.rm = 0;
      d.imm = imm32(u8, q);
      q += 4;
      run = H.aluEIr;
    }
  } else if (op < 0x60) {
    d.reg = op & 7;
    d.kind = (op >> 3) & 1;
    if (op < 0x50) run = H.incDecR;
    else run = op < 0x58 ? H.pushR : H.popR;
  } else if ((op & 0xf0) === 0x70 || op === 0xeb || op === 0xe2) {
    d.kind = op & 15;
    d.imm = (u8[q]! << 24) >> 24;
    q += 1;
    run = op === 0xeb ? H.jmp : op === 0xe2 ? H.loop : H.jcc;
  } else if (op >= 0xb8 && op <= 0xbf) {
    d.reg = op & 7;
    d.imm = imm32(u8, q);
    q += 4;
    run = H.movRI;
  } else {
    switch (op) {
      case 0x69:
      case 0x6b:
        q = decodeModrm32(u8, d, q);
        d.kind = 0;
        if (op === 0x6b) d.imm = (u8[q++]! << 24) >> 24;
        else {
          d.imm = imm32(u8, q);
          q += 4;
        }
        run = d.base === -1 ? H.imulr : H.imulm;
        break;
      case 0x81:
      case 0x83:
        q = decodeModrm32(u8, d, q);
        d.kind = d.reg;
        if (op === 0x83) d.imm = (u8[q++]! << 24) >> 24;
        else {
          d.imm = imm32(u8, q);
          q += 4;
        }
        run = d.base === -1 ? H.aluEIr : H.aluEIm;
        break;
      case 0x80:
      case 0x82:
        q = decodeModrm32(u8, d, q);
        d.kind = d.reg;
        d.imm = u8[q++]!;
        run = d.base === -1 ? H.aluEI8r : H.aluEI8m;
        break;
      case 0x84:
        q = decodeModrm32(u8, d, q);
        d.kind = 0;
        run = d.base === -1 ? H.test8r : H.test8m;
        break;
      case 0xa8:
        d.rm = 0;
        d.kind = 1;
        d.imm = u8[q++]!;
        run = H.test8r;
        break;
      case 0xc6:
        q = decodeModrm32(u8, d, q);
        d.imm = u8[q++]!;
        if (d.reg === 0) run = d.base === -1 ? H.movEI8r : H.movEI8m;
        break;
      case 0x85:
        q = decodeModrm32(u8, d, q);
        run = d.base === -1 ? H.testEGr : H.testEGm;
        break;
      case 0x88:
        q = decodeModrm32(u8, d, q);
        run = d.base === -1 ? H.movEG8r : H.movEG8m;
        break;
      case 0x89:
        q = decodeModrm32(u8, d, q);
        run = d.base === -1 ? H.movEGr : H.movEGm;
        break;
      case 0x8a:
        q = decodeModrm32(u8, d, q);
        run = d.base === -1 ? H.movGE8r : H.movGE8m;
        break;
      case 0x8b:
        q = decodeModrm32(u8, d, q);
        run = d.base === -1 ? H.movGEr : H.movGEm;
        break;
      case 0x8d:
        q = decodeModrm32(u8, d, q);
        if (d.base !== -1) run = H.lea; // LEA with a register operand is #UD: the decoder raises it
        break;
      case 0xc1:
      case 0xd1: {
        q = decodeModrm32(u8, d, q);
        d.kind = d.reg;
        const count = op === 0xd1 ? 1 : u8[q++]! & 0x1f;
        d.imm = count;
        // RCL/RCR (2, 3) and a zero count stay with the decoder.
        if (count !== 0 && d.kind !== 2 && d.kind !== 3) run = d.base === -1 ? H.shiftr : H.shiftm;
        break;
      }
      case 0xc3:
        run = H.ret;
        break;
      case 0xc7:
        q = decodeModrm32(u8, d, q);
        d.imm = imm32(u8, q);
        q += 4;
        if (d.reg === 0) run = d.base === -1 ? H.movEIr : H.movEIm;
        break;
      case 0xe8:
      case 0xe9:
        d.imm = imm32(u8, q);
        q += 4;
        run = op === 0xe8 ? H.call : H.jmp;
        break;
      case 0xff:
        q = decodeModrm32(u8, d, q);
        d.kind = d.reg;
        if (d.base === -1) {
          if (d.reg === 2) run = H.callEr;
          else if (d.reg === 4) run = H.jmpEr;
        } else if (d.reg <= 1) run = H.incDecEm;
        else if (d.reg === 2) run = H.callEm;
        else if (d.reg === 4) run = H.jmpEm;
        else if (d.reg === 6) run = H.pushEm;
        break;
      case 0x90:
        run = H.nop;
        break;
    }
  }
  d.run = run;
  return q - p;
}

/**
 * ModR/M (+ SIB, displacement) with 32-bit addressing at `q`. A register operand sets
 * `d.base = -1` and `d.rm`; a memory operand sets base/index/scale/disp/seg. Returns the offset
 * after the operand bytes.
 */
function decodeModrm32(u8: Uint8Array, d: Decoded, q: number): number {
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
  let base = rm;
  let index = NONE;
  let scale = 0;
  let disp = 0;
  let seg: number = Sreg.DS;
  if (rm === 4) {
    const sib = u8[q++]!;
    base = sib & 7;
    index = (sib >> 3) & 7;
    if (index === 4) index = NONE;
    scale = sib >> 6;
    if (base === 5 && mod === 0) {
      base = NONE;
      disp = u8[q]! | (u8[q + 1]! << 8) | (u8[q + 2]! << 16) | (u8[q + 3]! << 24);
      q += 4;
    } else if (base === 4 || base === 5) seg = Sreg.SS;
  } else if (rm === 5 && mod === 0) {
    base = NONE;
    disp = u8[q]! | (u8[q + 1]! << 8) | (u8[q + 2]! << 16) | (u8[q + 3]! << 24);
    q += 4;
  } else if (rm === 5) seg = Sreg.SS;
  if (mod === 1) {
    disp = (disp + ((u8[q]! << 24) >> 24)) | 0;
    q += 1;
  } else if (mod === 2) {
    disp = (disp + (u8[q]! | (u8[q + 1]! << 8) | (u8[q + 2]! << 16) | (u8[q + 3]! << 24))) | 0;
    q += 4;
  }
  d.base = base;
  d.index = index;
  d.scale = scale;
  d.disp = disp;
  d.seg = ovr >= 0 ? ovr : seg;
  return q;
}
