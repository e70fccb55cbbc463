/**
 * The architectural state of the x86 core: general registers in one buffer with 8/16/32-bit
 * views, EFLAGS with lazily computed arithmetic flags, segment registers with their descriptor
 * caches, and the control registers. `Cpu` (cpu.ts) extends this with memory, decoding and the
 * run loop.
 */
import { CpuStateError } from "./fault.js";

export const Reg = { EAX: 0, ECX: 1, EDX: 2, EBX: 3, ESP: 4, EBP: 5, ESI: 6, EDI: 7 } as const;
export const Sreg = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5 } as const;
export const SREG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs"] as const;

export const Flag = {
  CF: 0x1,
  PF: 0x4,
  AF: 0x10,
  ZF: 0x40,
  SF: 0x80,
  TF: 0x100,
  IF: 0x200,
  DF: 0x400,
  OF: 0x800,
  IOPL: 0x3000,
  NT: 0x4000,
  RF: 0x1_0000,
  VM: 0x2_0000,
  AC: 0x4_0000,
  VIF: 0x8_0000,
  VIP: 0x10_0000,
  ID: 0x20_0000,
} as const;
/** The six arithmetic flags the lazy machinery computes. */
export const ARITH_FLAGS = 0x8d5;
/** Bits of EFLAGS an i686 implements (bit 1 always reads 1). */
export const EFLAGS_IMPLEMENTED = 0x3f7fd5;

/** The lazy flag kinds: which operation produced `lazyRes` from `lazyA` and `lazyB`. */
export const Lazy = { NONE: 0, ADD: 1, SUB: 2, LOGIC: 3, INC: 4, DEC: 5 } as const;

/** Segment access bits in `segAccess` (checked on every access; real mode sets all). */
export const SegAccess = { READ: 1, WRITE: 2 } as const;

/** Control register bits. */
export const Cr0 = {
  PE: 0x1,
  MP: 0x2,
  EM: 0x4,
  TS: 0x8,
  ET: 0x10,
  NE: 0x20,
  WP: 0x1_0000,
  AM: 0x4_0000,
  PG: 0x8000_0000,
} as const;

/** Operand size index used by handlers: 0 = byte, 1 = word, 2 = dword. */
export type SizeIdx = 0 | 1 | 2;
export const SIZE_MASK = [0xff, 0xffff, 0xffff_ffff] as const;
export const SIZE_SIGN = [0x80, 0x8000, 0x8000_0000] as const;
/** Left shift that moves a value's sign bit to bit 31 (for signed comparisons). */
export const SIZE_SHIFT = [24, 16, 0] as const;

export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let p = 1;
  for (let b = 0; b < 8; b++) p ^= (i >> b) & 1;
  PARITY[i] = p ? Flag.PF : 0;
}

/** Index into the byte view for 8-bit register r (AL CL DL BL AH CH DH BH). */
export const REG8 = new Uint8Array([0, 4, 8, 12, 1, 5, 9, 13]);

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new CpuStateError("the x86 core needs a little-endian host");
}

export class CpuState {
  private readonly regBuf = new ArrayBuffer(32);
  /**
   * EAX..EDI as signed 32-bit integers. Internally every 32-bit quantity (registers, EIP, offsets,
   * linear addresses, lazy-flag operands) is carried as an int32 so V8 keeps it unboxed; unsigned
   * comparisons convert with `>>> 0` locally.
   */
  readonly r32 = new Int32Array(this.regBuf);
  /** 16-bit views: register r is r16[r << 1]. */
  readonly r16 = new Uint16Array(this.regBuf);
  /** 8-bit views: AL..BH is r8[REG8[r]]. */
  readonly r8 = new Uint8Array(this.regBuf);
  eip = 0;

  /** EFLAGS except the arithmetic flags while `lazyOp !== NONE` (then only CF is kept for INC/DEC). */
  flags = 0x2;
  lazyOp: number = Lazy.NONE;
  lazyA = 0;
  lazyB = 0;
  lazyRes = 0;
  lazySize: SizeIdx = 0;

  readonly segSel = new Uint16Array(6);
  /** Segment bases (int32; the linear address is `(segBase[s] + offset) | 0`). */
  readonly segBase = new Int32Array(6);
  readonly segLimit = new Uint32Array(6);
  /** Descriptor attribute bits as in the descriptor's bytes 5-6 (type, S, DPL, P, AVL, L, D/B, G). */
  readonly segAttr = new Uint16Array(6);
  /** Lowest and highest valid offset, unsigned (expand-down segments have min = limit+1). */
  readonly segMin = new Uint32Array(6);
  readonly segMax = new Uint32Array(6);
  /** SegAccess bits. */
  readonly segAccess = new Uint8Array(6);
  /**
   * [0..5]: 1 when the segment is flat: base 0, offsets 0..4 GiB-1, readable and writable (the
   * fast path). [6..11] (sreg + 6): 1 when it is a 64 KiB read/write one at any base (offsets
   * 0..0xFFFF, as in real mode): a word access below offset 0xFFFF passes the checks (the
   * read16/write16 fast path). One array, so the Cpu object keeps its field layout.
   */
  readonly segFlat = new Uint8Array(12);

  cr0: number = Cr0.ET;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  /** Current privilege level (0 in real mode). */
  cpl = 0;
  /** Instruction fetch window: eips in [fetchStart, fetchStart + fetchLen) are RAM bytes at (eip + fetchAdj) | 0. */
  fetchStart = 0;
  fetchLen = 0;
  fetchAdj = 0;
  // The hot yes/no fields below are numbers 0/1, not booleans: V8 tracks no field type for
  // booleans, so testing a boolean field compiles to a generic truthiness check, a Smi field to
  // one compare.
  /** 1: the decoder's prefix state must be reset before the next instruction (prefixes seen, CS changed). */
  decodeDirty = 1;
  /** Work after an instruction: bit 0 = wrap IP to 16 bits, bit 1 = end of a 15-byte-guarded instruction. */
  postStep = 1;
  /** 1: something needs a look at the next instruction boundary (interrupts, shadow, trap). */
  slowCheck = 1;
  /** CS.D (0/1): default operand and address size is 32 bits. */
  codeBig = 0;
  /** SS.B (0/1): the stack pointer is ESP (else SP). */
  stackBig = 0;

  gdtrBase = 0;
  gdtrLimit = 0xffff;
  idtrBase = 0;
  idtrLimit = 0x3ff;
  ldtrSel = 0;
  ldtrBase = 0;
  ldtrLimit = 0;
  trSel = 0;
  trBase = 0;
  trLimit = 0;
  trAttr = 0;

  // ---- lazy flags --------------------------------------------------------------------------

  getCF(): number {
    switch (this.lazyOp) {
      case Lazy.ADD:
        return this.lazyRes >>> 0 < this.lazyA >>> 0 ? 1 : 0;
      case Lazy.SUB:
        return this.lazyA >>> 0 < this.lazyB >>> 0 ? 1 : 0;
      case Lazy.LOGIC:
        return 0;
      default:
        return this.flags & 1;
    }
  }

  getZF(): boolean {
    return this.lazyOp === Lazy.NONE ? (this.flags & Flag.ZF) !== 0 : this.lazyRes === 0;
  }

  getSF(): boolean {
    return this.lazyOp === Lazy.NONE
      ? (this.flags & Flag.SF) !== 0
      : (this.lazyRes & SIZE_SIGN[this.lazySize]) !== 0;
  }

  getOF(): boolean {
    const a = this.lazyA;
    const b = this.lazyB;
    const r = this.lazyRes;
    switch (this.lazyOp) {
      case Lazy.ADD:
      case Lazy.INC:
        return ((a ^ r) & (b ^ r) & SIZE_SIGN[this.lazySize]) !== 0;
      case Lazy.SUB:
      case Lazy.DEC:
        return ((a ^ b) & (a ^ r) & SIZE_SIGN[this.lazySize]) !== 0;
      case Lazy.LOGIC:
        return false;
      default:
        return (this.flags & Flag.OF) !== 0;
    }
  }

  getPF(): boolean {
    return this.lazyOp === Lazy.NONE ? (this.flags & Flag.PF) !== 0 : PARITY[this.lazyRes & 0xff] !== 0;
  }

  getAF(): boolean {
    if (this.lazyOp === Lazy.NONE) return (this.flags & Flag.AF) !== 0;
    if (this.lazyOp === Lazy.LOGIC) return false;
    return ((this.lazyA ^ this.lazyB ^ this.lazyRes) & 0x10) !== 0;
  }

  /** The full EFLAGS value (one pass over the lazy state). */
  getEflags(): number {
    const op = this.lazyOp;
    if (op === Lazy.NONE) return this.flags;
    const a = this.lazyA;
    const b = this.lazyB;
    const r = this.lazyRes;
    const sign = SIZE_SIGN[this.lazySize];
    let f =
      (this.flags & ~ARITH_FLAGS) |
      PARITY[r & 0xff]! |
      (r === 0 ? Flag.ZF : 0) |
      ((r & sign) !== 0 ? Flag.SF : 0);
    switch (op) {
      case Lazy.ADD:
        if (r >>> 0 < a >>> 0) f |= Flag.CF;
        if (((a ^ r) & (b ^ r) & sign) !== 0) f |= Flag.OF;
        f |= (a ^ b ^ r) & Flag.AF;
        break;
      case Lazy.SUB:
        if (a >>> 0 < b >>> 0) f |= Flag.CF;
        if (((a ^ b) & (a ^ r) & sign) !== 0) f |= Flag.OF;
        f |= (a ^ b ^ r) & Flag.AF;
        break;
      case Lazy.INC:
        f |= this.flags & Flag.CF;
        if (((a ^ r) & (b ^ r) & sign) !== 0) f |= Flag.OF;
        f |= (a ^ b ^ r) & Flag.AF;
        break;
      case Lazy.DEC:
        f |= this.flags & Flag.CF;
        if (((a ^ b) & (a ^ r) & sign) !== 0) f |= Flag.OF;
        f |= (a ^ b ^ r) & Flag.AF;
        break;
    }
    return f >>> 0;
  }

  /** Sets EFLAGS wholesale (no privilege checks: callers such as POPF apply them). */
  setEflags(v: number): void {
    this.flags = ((v & EFLAGS_IMPLEMENTED) | 2) >>> 0;
    this.lazyOp = Lazy.NONE;
    if ((v & (Flag.IF | Flag.TF)) !== 0) this.slowCheck = 1;
  }

  /** Folds the lazy flags into `flags`. */
  materializeFlags(): void {
    if (this.lazyOp !== Lazy.NONE) {
      this.flags = this.getEflags();
      this.lazyOp = Lazy.NONE;
    }
  }

  /** Sets the arithmetic flags from explicit values (eager producers: ADC/SBB, shifts, MUL...). */
  setArith(cf: number, pf: boolean, af: boolean, zf: boolean, sf: boolean, of: boolean): void {
    this.flags =
      (this.flags & ~ARITH_FLAGS) |
      (cf ? Flag.CF : 0) |
      (pf ? Flag.PF : 0) |
      (af ? Flag.AF : 0) |
      (zf ? Flag.ZF : 0) |
      (sf ? Flag.SF : 0) |
      (of ? Flag.OF : 0);
    this.lazyOp = Lazy.NONE;
  }

  /** Sets CF only, keeping the other flags. */
  setCF(cf: boolean): void {
    this.materializeFlags();
    this.flags = cf ? this.flags | Flag.CF : this.flags & ~Flag.CF;
  }

  setOF(of: boolean): void {
    this.materializeFlags();
    this.flags = of ? this.flags | Flag.OF : this.flags & ~Flag.OF;
  }

  /** Condition code cc (0-15, the low nibble of Jcc/SETcc/CMOVcc). */
  cond(cc: number): boolean {
    let t: boolean;
    switch (cc >> 1) {
      case 0:
        t = this.getOF();
        break;
      case 1:
        t = this.getCF() !== 0;
        break;
      case 2:
        t = this.getZF();
        break;
      case 3:
        t = belowEq(this);
        break;
      case 4:
        t = this.getSF();
        break;
      case 5:
        t = this.getPF();
        break;
      case 6:
        t = less(this);
        break;
      default:
        t = lessEq(this);
    }
    return (cc & 1) !== 0 ? !t : t;
  }

  /** Recomputes both halves of `segFlat` after a cache or access change (call after editing the arrays directly). */
  updateFlat(sreg: number): void {
    this.segFlat[sreg] =
      this.segBase[sreg] === 0 &&
      this.segMin[sreg] === 0 &&
      this.segMax[sreg] === 0xffff_ffff &&
      this.segAccess[sreg] === (SegAccess.READ | SegAccess.WRITE)
        ? 1
        : 0;
    this.segFlat[sreg + 6] =
      this.segMin[sreg] === 0 &&
      this.segMax[sreg] === 0xffff &&
      this.segAccess[sreg] === (SegAccess.READ | SegAccess.WRITE)
        ? 1
        : 0;
  }

  // ---- register helpers ---------------------------------------------------------------------

  getReg(size: SizeIdx, r: number): number {
    return size === 2 ? this.r32[r]! : size === 1 ? this.r16[r << 1]! : this.r8[REG8[r]!]!;
  }

  setReg(size: SizeIdx, r: number, v: number): void {
    if (size === 2) this.r32[r] = v;
    else if (size === 1) this.r16[r << 1] = v;
    else this.r8[REG8[r]!] = v;
  }

  /** Sets a segment register's cache directly (no checks): real-mode style or from a descriptor. */
  setSegmentCache(sreg: number, selector: number, base: number, limit: number, attr: number): void {
    this.segSel[sreg] = selector;
    this.segBase[sreg] = base;
    this.segLimit[sreg] = limit >>> 0;
    this.segAttr[sreg] = attr;
    const big = (attr & 0x4000) !== 0;
    const isData = (attr & 0x18) === 0x10;
    const expandDown = isData && (attr & 0x4) !== 0;
    if (expandDown) {
      this.segMin[sreg] = (limit + 1) >>> 0;
      this.segMax[sreg] = big ? 0xffff_ffff : 0xffff;
    } else {
      this.segMin[sreg] = 0;
      this.segMax[sreg] = limit >>> 0;
    }
    const code = (attr & 0x18) === 0x18;
    const system = (attr & 0x10) === 0;
    let acc = 0;
    if (!system) {
      if (code) acc = attr & 2 ? SegAccess.READ : 0;
      else acc = attr & 2 ? SegAccess.READ | SegAccess.WRITE : SegAccess.READ;
    }
    // Real mode (and V86) segments are always readable and writable.
    if ((this.cr0 & Cr0.PE) === 0 || (this.flags & Flag.VM) !== 0) acc = SegAccess.READ | SegAccess.WRITE;
    if ((attr & 0x80) === 0) acc = 0; // not present / null selector: any access faults
    this.segAccess[sreg] = acc;
    this.updateFlat(sreg);
    if (sreg === 1) {
      this.codeBig = big ? 1 : 0;
      this.fetchLen = 0;
      this.decodeDirty = 1;
      this.postStep = big ? 0 : 1;
    } else if (sreg === 2) this.stackBig = big ? 1 : 0;
  }
}

/** Signed "less than" of the last lazy SUB (CMP) operands, or SF != OF. */
function less(c: CpuState): boolean {
  if (c.lazyOp === Lazy.SUB) {
    const sh = SIZE_SHIFT[c.lazySize];
    return c.lazyA << sh < c.lazyB << sh;
  }
  return c.getSF() !== c.getOF();
}

function lessEq(c: CpuState): boolean {
  if (c.lazyOp === Lazy.SUB) {
    const sh = SIZE_SHIFT[c.lazySize];
    return c.lazyA << sh <= c.lazyB << sh;
  }
  return c.getZF() || c.getSF() !== c.getOF();
}

function belowEq(c: CpuState): boolean {
  if (c.lazyOp === Lazy.SUB) return c.lazyA >>> 0 <= c.lazyB >>> 0;
  return c.getCF() !== 0 || c.getZF();
}

/** The 16 x86 conditions (O NO B AE E NE BE A S NS P NP L GE LE G) as functions (`cond(cc)` inlined). */
export const COND: readonly ((c: CpuState) => boolean)[] = Array.from(
  { length: 16 },
  (_, cc) => (c: CpuState) => c.cond(cc),
);
