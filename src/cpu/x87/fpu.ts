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
 *
 * Precision: 80-bit values are moved bit-exactly; add/sub/mul/div/sqrt, FPREM/FPREM1,
 * FRNDINT, FSCALE, compares and every conversion are exact (u32 fast paths, else BigInt) and
 * rounded once with the rounding and precision control. Only the cores of FSIN, FCOS,
 * FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X and FYL2XP1 are evaluated in double precision (see
 * transcendental.ts: about 53 good bits instead of 64, C1 not meaningful).
 *
 * Where the SDM leaves behaviour undefined (C0/C2/C3 after arithmetic, C1 after FCOMI,
 * the D9 D8+i alias with an empty ST0, F2XM1/FYL2XP1 outside their domains, the remainder
 * step of an incomplete FPREM) this unit does what the AMD host x87 of the differential test
 * does.
 */
import { VirtkitError } from "../../common/errors.js";
import { FpuCore, SW_TOP_MASK } from "./core.js";
import { execMem } from "./exec-mem.js";
import { execReg } from "./exec-reg.js";
import type { F80 } from "./float80.js";

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

/** The x87 FPU as the CPU sees it. */
export class Fpu {
  private readonly core: FpuCore;

  constructor(host: FpuHost) {
    this.core = new FpuCore(host);
  }

  /** FNINIT. */
  reset(): void {
    this.core.reset();
  }

  /** The status word, TOP included (FNSTSW AX). */
  statusWord(): number {
    return this.core.statusWord();
  }

  controlWord(): number {
    return this.core.cw;
  }

  /** The tag word computed from the registers (00 valid, 01 zero, 10 special, 11 empty). */
  tagWord(): number {
    return this.core.tagWord();
  }

  /** An unmasked exception is pending: #MF (CR0.NE=1) or IRQ13 on the next waiting instruction. */
  hasPendingException(): boolean {
    return this.core.hasPendingException();
  }

  /** ST(i) (a copy of the raw 80-bit value). */
  st(i: number): F80 {
    return this.core.st(i);
  }

  isEmpty(i: number): boolean {
    return this.core.isEmpty(i);
  }

  /**
   * Executes one instruction: opcode 0xD8..0xDF and its modrm byte; `linear` is the effective
   * linear address for memory forms. Returns false for an invalid encoding (the CPU raises
   * #UD). FNSTSW AX (DF E0) is the CPU's (with statusWord()) and returns false here.
   */
  exec(opcode: number, modrm: number, linear: number, info: FpuInstrInfo): boolean {
    const op = opcode & 7;
    const reg = (modrm >>> 3) & 7;
    let control: boolean;
    if (modrm >= 0xc0) {
      const r = execReg(this.core, op, reg, modrm & 7);
      if (r === 0) return false;
      control = r === 2;
    } else {
      const r = execMem(this.core, op, reg, linear >>> 0, info);
      if (r === 0) return false;
      control = r === 2;
      if (!control) {
        this.core.fdp = info.dataOffset >>> 0;
        this.core.fds = info.dataSelector & 0xffff;
      }
    }
    if (!control) {
      this.core.fip = info.ip >>> 0;
      this.core.fcs = info.cs & 0xffff;
      this.core.fop = (op << 8) | modrm;
    }
    return true;
  }

  save(): FpuState {
    const regs = [];
    for (let r = 0; r < 8; r++)
      regs.push({ se: this.core.se[r]!, hi: this.core.hi[r]!, lo: this.core.lo[r]! });
    return {
      cw: this.core.cw,
      sw: this.core.statusWord(),
      tw: this.core.tagWord(),
      regs,
      fip: this.core.fip,
      fcs: this.core.fcs,
      fop: this.core.fop,
      fdp: this.core.fdp,
      fds: this.core.fds,
    };
  }

  /** Restores a state from save(); a malformed state throws a VirtkitError naming the field. */
  restore(s: FpuState): void {
    validateState(s);
    for (let r = 0; r < 8; r++) {
      const v = s.regs[r]!;
      this.core.se[r] = v.se;
      this.core.hi[r] = v.hi;
      this.core.lo[r] = v.lo;
      this.core.empty[r] = ((s.tw >>> (2 * r)) & 3) === 3 ? 1 : 0;
    }
    this.core.cw = s.cw & 0xffff;
    this.core.top = (s.sw >>> 11) & 7;
    this.core.sw = s.sw & ~SW_TOP_MASK & 0xffff;
    this.core.fip = s.fip >>> 0;
    this.core.fcs = s.fcs & 0xffff;
    this.core.fop = s.fop & 0x7ff;
    this.core.fdp = s.fdp >>> 0;
    this.core.fds = s.fds & 0xffff;
  }
}

function checkInt(value: unknown, max: number, what: string): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new VirtkitError(
      "FPU_STATE",
      `FPU state: ${what} must be an integer from 0 to ${max}, got ${String(value)}`,
    );
  }
}

/** Checks every field before anything is restored (no partial restore). */
function validateState(s: FpuState): void {
  if (typeof s !== "object" || s === null) throw new VirtkitError("FPU_STATE", "FPU state: not an object");
  checkInt(s.cw, 0xffff, "cw");
  checkInt(s.sw, 0xffff, "sw");
  checkInt(s.tw, 0xffff, "tw");
  checkInt(s.fip, 0xffffffff, "fip");
  checkInt(s.fcs, 0xffff, "fcs");
  checkInt(s.fop, 0x7ff, "fop");
  checkInt(s.fdp, 0xffffffff, "fdp");
  checkInt(s.fds, 0xffff, "fds");
  if (!Array.isArray(s.regs) || s.regs.length !== 8) {
    throw new VirtkitError("FPU_STATE", "FPU state: regs must be an array of 8 registers");
  }
  s.regs.forEach((v, r) => {
    if (typeof v !== "object" || v === null)
      throw new VirtkitError("FPU_STATE", `FPU state: regs[${r}] is not an object`);
    checkInt(v.se, 0xffff, `regs[${r}].se`);
    checkInt(v.hi, 0xffffffff, `regs[${r}].hi`);
    checkInt(v.lo, 0xffffffff, `regs[${r}].lo`);
  });
}
