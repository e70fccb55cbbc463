/**
 * The CPU's access layer: seg:offset → linear (limit/access check, flat fast path) → physical
 * (the one translation step) → RAM or MMIO; instruction fetch through a window over the current
 * code page; ModR/M + SIB decoding; the stack. `Cpu` (cpu.ts) extends it.
 */
import type { FlatMemory } from "../common/memory.js";
import type { MemoryBus } from "../machine/memory-bus.js";
import { CpuFault, NO_ERROR_CODE, Vector } from "./fault.js";
import { AccessKind, type PagingUnit } from "./hooks.js";
import { CpuState, SegAccess, Sreg } from "./state.js";

export class CpuAccess extends CpuState {
  // `declare`: no class-field definition (which would first store undefined and lose V8's field
  // type, so every use would re-check the typed array's map); the constructor's store is the first.
  declare readonly bus: MemoryBus;
  declare readonly ram: FlatMemory;
  declare readonly ramU8: Uint8Array;
  declare readonly ramView: DataView;
  declare readonly pageKind: Uint8Array;
  /** The preallocated fault every exception throws. */
  readonly fault = new CpuFault();
  /** Installed by the paging module; required once CR0.PG is set. */
  pagingUnit: PagingUnit | null = null;
  /** The active translation: `pagingUnit` while CR0.PG = 1, else null (identity). */
  paging: PagingUnit | null = null;

  // Decoder state of the current instruction (yes/no fields are 0/1 numbers, see CpuState).
  instrStart = 0;
  /** 1: 32-bit operand size. */
  op32 = 0;
  /** 1: 32-bit address size. */
  ad32 = 0;
  /** Segment override (Sreg) or -1. */
  segOvr = -1;
  /** 0 none, 1 REPNE (F2), 2 REP/REPE (F3). */
  rep = 0;
  /** 1: LOCK prefix. */
  lock = 0;
  /** The current opcode: one byte, or 0x100 | second byte for 0F xx. */
  opcode = 0;
  modReg = 0;
  modRm = 0;
  /** 1: the ModR/M operand is a register (mod = 3). */
  isReg = 0;
  /** Effective address (offset) of a memory operand and its segment. */
  ea = 0;
  eaSeg = 0;
  /** Set while an instruction has 4+ prefixes: the fetch window is cut at 15 bytes. */
  protected lengthGuard = false;

  constructor(memory: MemoryBus) {
    super();
    this.bus = memory;
    this.ram = memory.ram;
    this.ramU8 = this.ram.u8;
    this.ramView = this.ram.view;
    this.pageKind = memory.pageKind;
  }

  // ---- faults ---------------------------------------------------------------------------------

  /** Throws the preallocated fault. */
  raise(vector: number, errorCode: number = NO_ERROR_CODE): never {
    throw this.fault.set(vector, errorCode);
  }

  ud(): never {
    throw this.fault.set(Vector.UD, NO_ERROR_CODE);
  }

  gp0(): never {
    throw this.fault.set(Vector.GP, 0);
  }

  /**
   * The vector for a stack-segment limit/access violation: #SS on a 386+. (The 80286 raises
   * #GP for word accesses at SS:FFFF in real mode; its test harness sets 13 here.)
   */
  stackFaultVector: number = Vector.SS;

  /** A segment limit or access violation: #SS(0) for the stack segment, else #GP(0). */
  segFault(seg: number): never {
    throw this.fault.set(seg === Sreg.SS ? this.stackFaultVector : Vector.GP, 0);
  }

  // ---- linear → physical ------------------------------------------------------------------------

  /** The one translation step. Identity while CR0.PG = 0. */
  translate(linear: number, kind: AccessKind): number {
    return this.paging === null ? linear : this.paging.translate(linear, kind);
  }

  /** Drops the instruction-fetch page cache (call after CR0/CR3/CR4 writes and TLB flushes). */
  invalidateFetch(): void {
    this.fetchLen = 0;
  }

  private mmioRead(phys: number, size: 1 | 2 | 4): number {
    this.slowCheck = 1;
    return this.bus.read(phys >>> 0, size);
  }

  private mmioWrite(phys: number, size: 1 | 2 | 4, v: number): void {
    this.slowCheck = 1;
    this.bus.write(phys >>> 0, size, v);
  }

  readLin8(lin: number): number {
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.READ);
    if (this.pageKind[phys >>> 12] === 0) return this.ramU8[phys >>> 0]!;
    return this.mmioRead(phys, 1);
  }

  readLin16(lin: number): number {
    if ((lin & 0xfff) === 0xfff) return this.readLin8(lin) | (this.readLin8((lin + 1) | 0) << 8);
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.READ);
    if (this.pageKind[phys >>> 12] === 0) {
      const p = phys >>> 0;
      return this.ramU8[p]! | (this.ramU8[p + 1]! << 8);
    }
    return this.mmioRead(phys, 2);
  }

  readLin32(lin: number): number {
    if ((lin & 0xfff) > 0xffc) return this.readLin16(lin) | (this.readLin16((lin + 2) | 0) << 16);
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.READ);
    if (this.pageKind[phys >>> 12] === 0) return this.ramView.getInt32(phys >>> 0, true);
    return this.mmioRead(phys, 4) | 0;
  }

  writeLin8(lin: number, v: number): void {
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.WRITE);
    if (this.pageKind[phys >>> 12] === 0) this.ramU8[phys >>> 0] = v;
    else this.mmioWrite(phys, 1, v & 0xff);
  }

  writeLin16(lin: number, v: number): void {
    if ((lin & 0xfff) === 0xfff) {
      // Check both pages before writing either byte.
      if (this.paging !== null) {
        this.paging.translate(lin, AccessKind.WRITE);
        this.paging.translate((lin + 1) | 0, AccessKind.WRITE);
      }
      this.writeLin8(lin, v);
      this.writeLin8((lin + 1) | 0, v >>> 8);
      return;
    }
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.WRITE);
    if (this.pageKind[phys >>> 12] === 0) {
      const p = phys >>> 0;
      this.ramU8[p] = v;
      this.ramU8[p + 1] = v >>> 8;
    } else this.mmioWrite(phys, 2, v & 0xffff);
  }

  writeLin32(lin: number, v: number): void {
    if ((lin & 0xfff) > 0xffc) {
      if (this.paging !== null) {
        this.paging.translate(lin, AccessKind.WRITE);
        this.paging.translate(((lin | 0xfff) + 1) | 0, AccessKind.WRITE); // CR2 = first byte of the second page
      }
      this.writeLin16(lin, v);
      this.writeLin16((lin + 2) | 0, v >>> 16);
      return;
    }
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.WRITE);
    if (this.pageKind[phys >>> 12] === 0) this.ramView.setInt32(phys >>> 0, v, true);
    else this.mmioWrite(phys, 4, v >>> 0);
  }

  // ---- seg:offset → linear (limit and access check) ------------------------------------------

  /** Linear address (int32) of [off, off+size) in segment `seg` for reading; faults on limit/access. */
  linRead(seg: number, off: number, size: number): number {
    const o = off >>> 0;
    if (
      o < this.segMin[seg]! ||
      o + size - 1 > this.segMax[seg]! ||
      (this.segAccess[seg]! & SegAccess.READ) === 0
    )
      this.segFault(seg);
    return (this.segBase[seg]! + off) | 0;
  }

  linWrite(seg: number, off: number, size: number): number {
    const o = off >>> 0;
    if (
      o < this.segMin[seg]! ||
      o + size - 1 > this.segMax[seg]! ||
      (this.segAccess[seg]! & SegAccess.WRITE) === 0
    )
      this.segFault(seg);
    return (this.segBase[seg]! + off) | 0;
  }

  // Data accesses: a flat segment (base 0, 4 GiB, RW) skips the limit check; without paging a
  // RAM page is then read/written inline; everything else goes through readLin/writeLin.

  read8(seg: number, off: number): number {
    const lin = this.segFlat[seg] !== 0 ? off : this.linRead(seg, off, 1);
    if (this.paging === null) {
      const p = lin >>> 0;
      if (this.pageKind[p >>> 12] === 0) return this.ramU8[p]!;
    }
    return this.readLin8(lin);
  }
  read16(seg: number, off: number): number {
    const lin =
      this.segFlat[seg] !== 0
        ? off
        : this.segFlat[seg + 6] !== 0 && off >>> 0 < 0xffff
          ? (this.segBase[seg]! + off) | 0
          : this.linRead(seg, off, 2);
    if (this.paging === null) {
      const p = lin >>> 0;
      if ((p & 0xfff) !== 0xfff && this.pageKind[p >>> 12] === 0)
        return this.ramU8[p]! | (this.ramU8[p + 1]! << 8);
    }
    return this.readLin16(lin);
  }
  read32(seg: number, off: number): number {
    const lin = this.segFlat[seg] !== 0 ? off : this.linRead(seg, off, 4);
    if (this.paging === null) {
      const p = lin >>> 0;
      if ((p & 0xfff) <= 0xffc && this.pageKind[p >>> 12] === 0) return this.ramView.getInt32(p, true);
    }
    return this.readLin32(lin);
  }
  write8(seg: number, off: number, v: number): void {
    const lin = this.segFlat[seg] !== 0 ? off : this.linWrite(seg, off, 1);
    if (this.paging === null) {
      const p = lin >>> 0;
      if (this.pageKind[p >>> 12] === 0) {
        this.ramU8[p] = v;
        return;
      }
    }
    this.writeLin8(lin, v);
  }
  write16(seg: number, off: number, v: number): void {
    const lin =
      this.segFlat[seg] !== 0
        ? off
        : this.segFlat[seg + 6] !== 0 && off >>> 0 < 0xffff
          ? (this.segBase[seg]! + off) | 0
          : this.linWrite(seg, off, 2);
    if (this.paging === null) {
      const p = lin >>> 0;
      if ((p & 0xfff) !== 0xfff && this.pageKind[p >>> 12] === 0) {
        this.ramU8[p] = v;
        this.ramU8[p + 1] = v >>> 8;
        return;
      }
    }
    this.writeLin16(lin, v);
  }
  write32(seg: number, off: number, v: number): void {
    const lin = this.segFlat[seg] !== 0 ? off : this.linWrite(seg, off, 4);
    if (this.paging === null) {
      const p = lin >>> 0;
      if ((p & 0xfff) <= 0xffc && this.pageKind[p >>> 12] === 0) {
        this.ramView.setInt32(p, v, true);
        return;
      }
    }
    this.writeLin32(lin, v);
  }

  // ---- instruction fetch ---------------------------------------------------------------------

  /**
   * Opens the fetch window at `eip` (CS limit, 15-byte limit, translation: may fault as the
   * fetch would) over its page when that is RAM; closes it otherwise. Returns the physical address.
   */
  protected openFetchWindow(eip: number): number {
    const eipU = eip >>> 0;
    if (eipU > this.segMax[Sreg.CS]! || eip - this.instrStart >= 15) this.gp0();
    const lin = (this.segBase[Sreg.CS]! + eip) | 0;
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.FETCH);
    if (this.pageKind[phys >>> 12] === 0) {
      // A window over the eips whose bytes lie in this RAM page, within the CS limit.
      let start = eipU - (lin & 0xfff);
      let len = 0x1000;
      if (start < 0) {
        len += start;
        start = 0;
      }
      const limit = this.segMax[Sreg.CS]!;
      if (start + len - 1 > limit) len = limit - start + 1;
      if (this.lengthGuard) {
        const end = (this.instrStart >>> 0) + 15;
        if (start + len > end) len = end - start;
      }
      this.fetchStart = start | 0;
      this.fetchLen = len;
      this.fetchAdj = (phys - eip) | 0;
    } else this.fetchLen = 0;
    return phys;
  }

  private fetchSlow(eip: number): number {
    this.eip = (eip + 1) | 0;
    const phys = this.openFetchWindow(eip);
    if (this.fetchLen !== 0) return this.ramU8[phys >>> 0]!;
    return this.mmioRead(phys, 1);
  }

  fetch8(): number {
    const eip = this.eip;
    if ((eip - this.fetchStart) >>> 0 < this.fetchLen) {
      this.eip = (eip + 1) | 0;
      return this.ramU8[(eip + this.fetchAdj) | 0]!;
    }
    return this.fetchSlow(eip) | 0; // (| 0: an int32 for the caller, not a value of unknown type)
  }

  fetch16(): number {
    const eip = this.eip;
    if (((eip - this.fetchStart) >>> 0) + 2 <= this.fetchLen) {
      this.eip = (eip + 2) | 0;
      const p = (eip + this.fetchAdj) | 0;
      return this.ramU8[p]! | (this.ramU8[p + 1]! << 8);
    }
    return this.fetch8() | (this.fetch8() << 8);
  }

  fetch32(): number {
    const eip = this.eip;
    if (((eip - this.fetchStart) >>> 0) + 4 <= this.fetchLen) {
      this.eip = (eip + 4) | 0;
      const p = (eip + this.fetchAdj) | 0;
      const u8 = this.ramU8;
      return u8[p]! | (u8[p + 1]! << 8) | (u8[p + 2]! << 16) | (u8[p + 3]! << 24);
    }
    return this.fetch16() | (this.fetch16() << 16);
  }

  /** Immediate of the current operand size (16 or 32 bits). */
  fetchImmV(): number {
    return this.op32 ? this.fetch32() : this.fetch16();
  }

  // ---- ModR/M ----------------------------------------------------------------------------------

  /** Decodes the ModR/M byte (and SIB, displacement) into modReg/modRm/isReg/ea/eaSeg. */
  decodeModrm(): void {
    const m = this.fetch8();
    this.modReg = (m >> 3) & 7;
    this.modRm = m & 7;
    if (m >= 0xc0) {
      this.isReg = 1;
      if (this.lock !== 0) this.ud();
      return;
    }
    this.isReg = 0;
    if (this.ad32 !== 0) this.ea32(m >> 6, m & 7);
    else this.ea16(m >> 6, m & 7);
  }

  /** ModR/M for MOV CRn/DRn: the mod field is ignored, rm is always a register. */
  decodeModrmRegOnly(): void {
    const m = this.fetch8();
    this.modReg = (m >> 3) & 7;
    this.modRm = m & 7;
    this.isReg = 1;
  }

  private ea16(mod: number, rm: number): void {
    const r = this.r16;
    let ea: number;
    let seg: number = Sreg.DS;
    switch (rm) {
      case 0:
        ea = r[6]! + r[12]!;
        break;
      case 1:
        ea = r[6]! + r[14]!;
        break;
      case 2:
        ea = r[10]! + r[12]!;
        seg = Sreg.SS;
        break;
      case 3:
        ea = r[10]! + r[14]!;
        seg = Sreg.SS;
        break;
      case 4:
        ea = r[12]!;
        break;
      case 5:
        ea = r[14]!;
        break;
      case 6:
        if (mod === 0) {
          this.ea = this.fetch16();
          this.eaSeg = this.segOvr >= 0 ? this.segOvr : Sreg.DS;
          return;
        }
        ea = r[10]!;
        seg = Sreg.SS;
        break;
      default:
        ea = r[6]!;
    }
    if (mod === 1) ea += (this.fetch8() << 24) >> 24;
    else if (mod === 2) ea += this.fetch16();
    this.ea = ea & 0xffff;
    this.eaSeg = this.segOvr >= 0 ? this.segOvr : seg;
  }

  private ea32(mod: number, rm: number): void {
    if (rm === 4) {
      this.ea32Sib(mod);
      return;
    }
    let ea: number;
    let seg: number = Sreg.DS;
    if (rm === 5 && mod === 0) {
      ea = this.fetch32();
    } else {
      ea = this.r32[rm]!;
      if (rm === 5) seg = Sreg.SS;
    }
    if (mod === 1) ea += (this.fetch8() << 24) >> 24;
    else if (mod === 2) ea += this.fetch32();
    this.ea = ea | 0;
    this.eaSeg = this.segOvr >= 0 ? this.segOvr : seg;
  }

  /** 32-bit addressing with a SIB byte. */
  private ea32Sib(mod: number): void {
    let ea: number;
    let seg: number = Sreg.DS;
    const eip = this.eip;
    if (((eip - this.fetchStart) >>> 0) + 5 <= this.fetchLen) {
      // SIB and the longest displacement inside the fetch window: read them straight from RAM
      // with one window check.
      const u8 = this.ramU8;
      const p0 = (eip + this.fetchAdj) | 0;
      const sib = u8[p0]!;
      let p = p0 + 1;
      const base = sib & 7;
      const index = (sib >> 3) & 7;
      if (base === 5 && mod === 0) {
        ea = u8[p]! | (u8[p + 1]! << 8) | (u8[p + 2]! << 16) | (u8[p + 3]! << 24);
        p += 4;
      } else {
        ea = this.r32[base]!;
        if (base === 4 || base === 5) seg = Sreg.SS;
      }
      if (index !== 4) ea = (ea + (this.r32[index]! << (sib >> 6))) | 0;
      if (mod === 1) {
        ea = (ea + ((u8[p]! << 24) >> 24)) | 0;
        p++;
      } else if (mod === 2) {
        ea = (ea + (u8[p]! | (u8[p + 1]! << 8) | (u8[p + 2]! << 16) | (u8[p + 3]! << 24))) | 0;
        p += 4;
      }
      this.eip = (eip + (p - p0)) | 0;
    } else {
      const sib = this.fetch8();
      const base = sib & 7;
      const index = (sib >> 3) & 7;
      if (base === 5 && mod === 0) ea = this.fetch32();
      else {
        ea = this.r32[base]!;
        if (base === 4 || base === 5) seg = Sreg.SS;
      }
      if (index !== 4) ea += this.r32[index]! << (sib >> 6);
      if (mod === 1) ea += (this.fetch8() << 24) >> 24;
      else if (mod === 2) ea += this.fetch32();
    }
    this.ea = ea | 0;
    this.eaSeg = this.segOvr >= 0 ? this.segOvr : seg;
  }

  /** Data segment for string sources and other DS-default operands (honours overrides). */
  get dataSeg(): number {
    return this.segOvr >= 0 ? this.segOvr : Sreg.DS;
  }

  // E operand access (after decodeModrm).
  readE8(): number {
    return this.isReg ? this.r8[REG8_IDX[this.modRm]!]! : this.read8(this.eaSeg, this.ea);
  }
  readE16(): number {
    return this.isReg ? this.r16[this.modRm << 1]! : this.read16(this.eaSeg, this.ea);
  }
  readE32(): number {
    return this.isReg ? this.r32[this.modRm]! : this.read32(this.eaSeg, this.ea);
  }
  writeE8(v: number): void {
    if (this.isReg) this.r8[REG8_IDX[this.modRm]!] = v;
    else this.write8(this.eaSeg, this.ea, v);
  }
  writeE16(v: number): void {
    if (this.isReg) this.r16[this.modRm << 1] = v;
    else this.write16(this.eaSeg, this.ea, v);
  }
  writeE32(v: number): void {
    if (this.isReg) this.r32[this.modRm] = v;
    else this.write32(this.eaSeg, this.ea, v);
  }

  // ---- stack -----------------------------------------------------------------------------------

  get sp(): number {
    return this.stackBig ? this.r32[4]! : this.r16[8]!;
  }
  set sp(v: number) {
    if (this.stackBig) this.r32[4] = v;
    else this.r16[8] = v;
  }

  push16(v: number): void {
    const sp = this.stackBig ? (this.r32[4]! - 2) | 0 : (this.r16[8]! - 2) & 0xffff;
    this.write16(Sreg.SS, sp, v);
    this.sp = sp;
  }
  push32(v: number): void {
    const sp = this.stackBig ? (this.r32[4]! - 4) | 0 : (this.r16[8]! - 4) & 0xffff;
    this.write32(Sreg.SS, sp, v);
    this.sp = sp;
  }
  /** Push of the current operand size. */
  pushV(v: number): void {
    if (this.op32) this.push32(v);
    else this.push16(v);
  }
  pop16(): number {
    const sp = this.sp;
    const v = this.read16(Sreg.SS, sp);
    this.sp = this.stackBig ? (sp + 2) | 0 : (sp + 2) & 0xffff;
    return v;
  }
  pop32(): number {
    const sp = this.sp;
    const v = this.read32(Sreg.SS, sp);
    this.sp = this.stackBig ? (sp + 4) | 0 : (sp + 4) & 0xffff;
    return v;
  }
  popV(): number {
    return this.op32 ? this.pop32() : this.pop16();
  }
}

const REG8_IDX = new Uint8Array([0, 4, 8, 12, 1, 5, 9, 13]);
