/**
 * The x86 core: memory path (segment → linear → physical), instruction fetch, ModR/M decoding,
 * the stack, interrupt delivery and the run loop. Instruction semantics live in ops-*.ts and
 * are dispatched through the opcode table (table.ts).
 */
import type { FlatMemory } from "../common/memory.js";
import type { IoBus } from "../machine/io-bus.js";
import type { InterruptController } from "../machine/irq.js";
import type { MemoryBus } from "../machine/memory-bus.js";
import { CpuidUnit } from "./cpuid.js";
import { Fpu } from "./x87/fpu.js";
import { CpuFault, CpuStateError, ExitReason, InterruptKind, NO_ERROR_CODE, Vector } from "./fault.js";
import {
  AccessKind,
  type FpuHost,
  type FpuInstrInfo,
  type PagingUnit,
  type ProtectedModeUnit,
  type X87Unit,
} from "./hooks.js";
import { Cr0, CpuState, Flag, SegAccess, Sreg } from "./state.js";
import { DISPATCH, LOCKABLE, PREFIX } from "./table.js";

export interface CpuOptions {
  memory: MemoryBus;
  io: IoBus;
  /** The interrupt controller asked at instruction boundaries when IF = 1. */
  interrupts?: InterruptController;
  /** Time source for RDTSC in ns; default: the instruction count (1 instruction = 1 tick). */
  clockNs?: () => number;
  /** Attach the x87 FPU (default true). Without it, escapes are decoded and ignored. */
  fpu?: boolean;
}

export type Handler = (cpu: Cpu) => void;

export class Cpu extends CpuState {
  readonly bus: MemoryBus;
  readonly io: IoBus;
  intc: InterruptController | null;
  readonly ram: FlatMemory;
  readonly ramU8: Uint8Array;
  readonly ramView: DataView;
  readonly pageKind: Uint8Array;
  readonly fault = new CpuFault();
  readonly cpuid: CpuidUnit;

  /** Installed by the protected-mode module; required once CR0.PE is set. */
  protectedMode: ProtectedModeUnit | null = null;
  /** Installed by the paging module; required once CR0.PG is set. */
  pagingUnit: PagingUnit | null = null;
  /** The x87 unit (D8-DF), or null: escapes are then decoded and ignored (no coprocessor). */
  fpu: X87Unit | null = null;
  /**
   * FERR#: called when a waiting x87 instruction finds an unmasked exception pending while
   * CR0.NE = 0 (PC-style error reporting: the machine raises IRQ 13). With CR0.NE = 1 it is #MF.
   */
  ferr: (() => void) | null = null;
  /** Reused for every x87 instruction. */
  readonly fpuInfo: FpuInstrInfo = {
    cs: 0,
    ip: 0,
    dataSelector: 0,
    dataOffset: 0,
    opSize32: false,
    protectedMode: false,
  };
  /** Debug registers DR0-DR7 (stored; breakpoints are not raised). */
  readonly dr = new Uint32Array(8);
  /** The active translation: `pagingUnit` while CR0.PG = 1, else null (identity). */
  paging: PagingUnit | null = null;

  // Decoder state of the current instruction.
  instrStart = 0;
  op32 = false;
  ad32 = false;
  /** Segment override (Sreg) or -1. */
  segOvr = -1;
  /** 0 none, 1 REPNE (F2), 2 REP/REPE (F3). */
  rep = 0;
  lock = false;
  /** The current opcode: one byte, or 0x100 | second byte for 0F xx. */
  opcode = 0;
  modReg = 0;
  modRm = 0;
  isReg = false;
  /** Effective address (offset) of a memory operand and its segment. */
  ea = 0;
  eaSeg = 0;

  // Run-loop state.
  halted = false;
  shutdown = false;
  /** Interrupts are inhibited for one instruction (after STI, MOV SS, POP SS). */
  shadow = false;
  private trapArmed = false;
  private deliveringException = -1;
  /** Instructions retired since reset. */
  instructions = 0;
  private runCount = 0;

  /** Set while an instruction has 4+ prefixes: the fetch window is cut at 15 bytes. */
  private lengthGuard = false;

  constructor(options: CpuOptions) {
    super();
    this.bus = options.memory;
    this.io = options.io;
    this.intc = options.interrupts ?? null;
    this.ram = options.memory.ram;
    this.ramU8 = this.ram.u8;
    this.ramView = this.ram.view;
    this.pageKind = options.memory.pageKind;
    this.cpuid = new CpuidUnit(options.clockNs ?? (() => this.instructions + this.runCount));
    if (options.fpu !== false) this.fpu = new Fpu(this.fpuHost());
    else this.cpuid.features &= ~1;
    this.reset();
  }

  /** Power-on/RESET state: real mode at F000:FFF0 with CS base 0xFFFF0000. */
  reset(): void {
    this.r32.fill(0);
    this.r32[2] = 0x0000_0633; // EDX: family 6 model 3 stepping 3 (matches CPUID)
    this.cr0 = Cr0.ET;
    this.cr2 = this.cr3 = this.cr4 = 0;
    this.cpl = 0;
    this.paging = null;
    this.setEflags(0x2);
    for (let s = 0; s < 6; s++) this.setSegmentCache(s, 0, 0, 0xffff, 0x93);
    this.setSegmentCache(Sreg.CS, 0xf000, 0xffff_0000, 0xffff, 0x9b);
    this.eip = 0xfff0;
    this.gdtrBase = this.idtrBase = 0;
    this.gdtrLimit = 0xffff;
    this.idtrLimit = 0x3ff;
    this.halted = this.shutdown = this.shadow = this.trapArmed = false;
    this.nmiPending = this.nmiBlocked = false;
    this.deliveringException = -1;
    this.slowCheck = true;
    this.fetchLen = 0;
    this.cpuid.reset();
    this.dr.fill(0);
    this.dr[6] = 0xffff_0ff0;
    this.dr[7] = 0x400;
    this.fpu?.reset();
  }

  /** The memory/flags interface for the x87 unit: linear accesses through the CPU's translation. */
  fpuHost(): FpuHost {
    return {
      readU8: (a) => this.readLin8(a | 0),
      readU16: (a) => this.readLin16(a | 0),
      readU32: (a) => this.readLin32(a | 0) >>> 0,
      writeU8: (a, v) => this.writeLin8(a | 0, v),
      writeU16: (a, v) => this.writeLin16(a | 0, v),
      writeU32: (a, v) => this.writeLin32(a | 0, v),
      getEflags: () => this.getEflags(),
      setEflags: (v) => this.setEflags(v),
    };
  }

  /** Real mode with every segment register loaded as a real-mode selector (base = sel * 16). */
  setRealMode(cs: number, ip: number): void {
    this.cr0 &= ~(Cr0.PE | Cr0.PG);
    this.paging = null;
    this.cpl = 0;
    for (let s = 0; s < 6; s++) {
      const sel = s === Sreg.CS ? cs : this.segSel[s]!;
      this.setSegmentCache(s, sel, sel << 4, 0xffff, s === Sreg.CS ? 0x9b : 0x93);
    }
    this.eip = ip;
    this.fetchLen = 0;
    this.halted = this.shutdown = false;
  }

  /**
   * Flat 32-bit protected mode at CPL 0, no paging: CS = 0x08 (code, 4 GiB, D=1), the other
   * segments 0x10 (data, 4 GiB, B=1). Used by tests and benchmarks before a GDT exists.
   */
  setFlat32(eip: number, esp: number): void {
    this.cr0 = (this.cr0 | Cr0.PE) & ~Cr0.PG;
    this.paging = null;
    this.cpl = 0;
    for (let s = 0; s < 6; s++) {
      if (s === Sreg.CS) this.setSegmentCache(s, 0x08, 0, 0xffff_ffff, 0xc09b);
      else this.setSegmentCache(s, 0x10, 0, 0xffff_ffff, 0xc093);
    }
    this.eip = eip | 0;
    this.r32[4] = esp;
    this.fetchLen = 0;
    this.halted = this.shutdown = false;
  }

  get protectedModeActive(): boolean {
    return (this.cr0 & Cr0.PE) !== 0 && (this.flags & Flag.VM) === 0;
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

  /** NMI latched (`nmi()`) and not yet delivered; NMIs blocked from delivery until the next IRET. */
  nmiPending = false;
  nmiBlocked = false;

  /** The NMI input (an edge): delivered at the next instruction boundary whatever IF is. */
  nmi(): void {
    this.nmiPending = true;
    this.slowCheck = true;
  }

  /** Tell the CPU the interrupt controller's state may have changed (device raised a line). */
  notifyInterrupt(): void {
    this.slowCheck = true;
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
    this.slowCheck = true;
    return this.bus.read(phys >>> 0, size);
  }

  private mmioWrite(phys: number, size: 1 | 2 | 4, v: number): void {
    this.slowCheck = true;
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

  // Fast path: a flat read/write segment (base 0, 4 GiB) without paging goes straight to RAM.
  read8(seg: number, off: number): number {
    if (this.segFlat[seg] !== 0 && this.paging === null) {
      const p = off >>> 0;
      if (this.pageKind[p >>> 12] === 0) return this.ramU8[p]!;
    }
    return this.readLin8(this.linRead(seg, off, 1));
  }
  read16(seg: number, off: number): number {
    if (this.segFlat[seg] !== 0 && this.paging === null) {
      const p = off >>> 0;
      if ((p & 0xfff) !== 0xfff && this.pageKind[p >>> 12] === 0)
        return this.ramU8[p]! | (this.ramU8[p + 1]! << 8);
    }
    return this.readLin16(this.linRead(seg, off, 2));
  }
  read32(seg: number, off: number): number {
    if (this.segFlat[seg] !== 0 && this.paging === null) {
      const p = off >>> 0;
      if ((p & 0xfff) <= 0xffc && this.pageKind[p >>> 12] === 0) return this.ramView.getInt32(p, true);
    }
    return this.readLin32(this.linRead(seg, off, 4));
  }
  write8(seg: number, off: number, v: number): void {
    if (this.segFlat[seg] !== 0 && this.paging === null) {
      const p = off >>> 0;
      if (this.pageKind[p >>> 12] === 0) {
        this.ramU8[p] = v;
        return;
      }
    }
    this.writeLin8(this.linWrite(seg, off, 1), v);
  }
  write16(seg: number, off: number, v: number): void {
    if (this.segFlat[seg] !== 0 && this.paging === null) {
      const p = off >>> 0;
      if ((p & 0xfff) !== 0xfff && this.pageKind[p >>> 12] === 0) {
        this.ramU8[p] = v;
        this.ramU8[p + 1] = v >>> 8;
        return;
      }
    }
    this.writeLin16(this.linWrite(seg, off, 2), v);
  }
  write32(seg: number, off: number, v: number): void {
    if (this.segFlat[seg] !== 0 && this.paging === null) {
      const p = off >>> 0;
      if ((p & 0xfff) <= 0xffc && this.pageKind[p >>> 12] === 0) {
        this.ramView.setInt32(p, v, true);
        return;
      }
    }
    this.writeLin32(this.linWrite(seg, off, 4), v);
  }

  // ---- instruction fetch ---------------------------------------------------------------------

  private fetchSlow(eip: number): number {
    const eipU = eip >>> 0;
    if (eipU > this.segMax[Sreg.CS]! || eip - this.instrStart >= 15) this.gp0();
    this.eip = (eip + 1) | 0;
    const lin = (this.segBase[Sreg.CS]! + eip) | 0;
    const phys = this.paging === null ? lin : this.paging.translate(lin, AccessKind.FETCH);
    if (this.pageKind[phys >>> 12] === 0) {
      // Open a window over the eips whose bytes lie in this RAM page, within the CS limit.
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
      return this.ramU8[phys >>> 0]!;
    }
    this.fetchLen = 0;
    return this.mmioRead(phys, 1);
  }

  fetch8(): number {
    const eip = this.eip;
    if ((eip - this.fetchStart) >>> 0 < this.fetchLen) {
      this.eip = (eip + 1) | 0;
      return this.ramU8[(eip + this.fetchAdj) | 0]!;
    }
    return this.fetchSlow(eip);
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
      this.isReg = true;
      if (this.lock) this.ud();
      return;
    }
    this.isReg = false;
    if (this.ad32) this.ea32(m >> 6, m & 7);
    else this.ea16(m >> 6, m & 7);
  }

  /** ModR/M for MOV CRn/DRn: the mod field is ignored, rm is always a register. */
  decodeModrmRegOnly(): void {
    const m = this.fetch8();
    this.modReg = (m >> 3) & 7;
    this.modRm = m & 7;
    this.isReg = true;
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
    let ea: number;
    let seg: number = Sreg.DS;
    if (rm === 4) {
      const sib = this.fetch8();
      const base = sib & 7;
      const index = (sib >> 3) & 7;
      if (base === 5 && mod === 0) ea = this.fetch32();
      else {
        ea = this.r32[base]!;
        if (base === 4 || base === 5) seg = Sreg.SS;
      }
      if (index !== 4) ea += this.r32[index]! << (sib >> 6);
    } else if (rm === 5 && mod === 0) {
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

  // ---- segments, control transfer, interrupts --------------------------------------------------

  /** The one place segment registers are loaded. Real/V86 mode here; protected mode in its unit. */
  loadSegment(sreg: number, selector: number): void {
    selector &= 0xffff;
    if ((this.cr0 & Cr0.PE) === 0) {
      this.segSel[sreg] = selector;
      this.segBase[sreg] = selector << 4;
      this.updateFlat(sreg);
      if (sreg === Sreg.CS) this.fetchLen = 0;
      return;
    }
    if ((this.flags & Flag.VM) !== 0) {
      this.setSegmentCache(sreg, selector, selector << 4, 0xffff, sreg === Sreg.CS ? 0xf3 | 0x8 : 0xf3);
      return;
    }
    this.pm().loadSegment(sreg, selector);
  }

  pm(): ProtectedModeUnit {
    if (this.protectedMode === null)
      throw new CpuStateError("the guest is in protected mode but no protected-mode unit is installed");
    return this.protectedMode;
  }

  /** Sets EIP for a near transfer, masked to the operand size, checked against the CS limit. */
  jumpNear(target: number): void {
    target = this.op32 ? target | 0 : target & 0xffff;
    if (target >>> 0 > this.segMax[Sreg.CS]!) this.gp0();
    this.eip = target;
  }

  jumpFar(selector: number, offset: number): void {
    if (this.protectedModeActive) this.pm().jumpFar(selector, offset);
    else {
      if (offset >>> 0 > this.segMax[Sreg.CS]!) this.gp0();
      this.loadSegment(Sreg.CS, selector);
      this.eip = offset;
    }
  }

  callFar(selector: number, offset: number): void {
    if (this.protectedModeActive) {
      this.pm().callFar(selector, offset);
      return;
    }
    if (offset >>> 0 > this.segMax[Sreg.CS]!) this.gp0();
    const sp = this.sp;
    try {
      this.pushV(this.segSel[Sreg.CS]!);
      this.pushV(this.eip);
    } catch (e) {
      this.sp = sp;
      throw e;
    }
    this.loadSegment(Sreg.CS, selector);
    this.eip = offset;
  }

  returnFar(popBytes: number): void {
    if (this.protectedModeActive) {
      this.pm().returnFar(popBytes);
      return;
    }
    const sp = this.sp;
    const ip = this.popV();
    const cs = this.popV();
    if (ip >>> 0 > this.segMax[Sreg.CS]!) {
      this.sp = sp;
      this.gp0();
    }
    this.loadSegment(Sreg.CS, cs);
    this.eip = ip;
    this.sp = this.stackBig ? (this.r32[4]! + popBytes) | 0 : (this.r16[8]! + popBytes) & 0xffff;
  }

  iret(): void {
    if (this.nmiBlocked) {
      // IRET ends NMI blocking (SDM vol. 3, 6.7.1).
      this.nmiBlocked = false;
      if (this.nmiPending) this.slowCheck = true;
    }
    if ((this.cr0 & Cr0.PE) !== 0) {
      this.pm().iret();
      return;
    }
    const sp = this.sp;
    const ip = this.popV();
    const cs = this.popV() & 0xffff;
    const fl = this.popV();
    if (ip >>> 0 > this.segMax[Sreg.CS]!) {
      this.sp = sp;
      this.gp0();
    }
    this.loadSegment(Sreg.CS, cs);
    this.eip = ip;
    if (this.op32) this.setEflagsChecked(fl, 0x25_7fd5);
    else this.setEflagsChecked((this.flags & 0xffff_0000) | fl, 0x7fd5);
  }

  /** POPF/IRET flag load: only the bits in `writable` change (VM/RF/IOPL/IF rules by the caller). */
  setEflagsChecked(v: number, writable: number): void {
    const old = this.getEflags();
    this.setEflags((old & ~writable) | (v & writable));
  }

  /**
   * The one delivery path for exceptions and interrupts: IVT in real mode; the protected-mode
   * unit (IDT, gates, privilege change) otherwise. EIP must already be the return address.
   */
  deliverInterrupt(vector: number, kind: InterruptKind, errorCode: number): void {
    if ((this.cr0 & Cr0.PE) !== 0) {
      this.pm().deliverInterrupt(vector, kind, errorCode);
      return;
    }
    if (vector * 4 + 3 > this.idtrLimit) this.gp0();
    const fl = this.getEflags();
    const sp = this.sp;
    try {
      this.push16(fl);
      this.push16(this.segSel[Sreg.CS]!);
      this.push16(this.eip);
    } catch (e) {
      this.sp = sp;
      throw e;
    }
    this.setEflags(fl & ~(Flag.IF | Flag.TF | Flag.AC | Flag.RF));
    const entry = (this.idtrBase + vector * 4) | 0;
    const ip = this.readLin16(entry);
    const cs = this.readLin16((entry + 2) | 0);
    this.loadSegment(Sreg.CS, cs);
    this.eip = ip;
    this.halted = false;
  }

  // ---- the run loop ----------------------------------------------------------------------------

  /** Executes one instruction (prefixes, opcode, operands). */
  step(): void {
    let b = this.fetch8();
    if (this.decodeDirty) this.resetDecode();
    if (PREFIX[b] !== 0) b = this.prefixes(b);
    else if (b === 0x0f) b = 0x100 | this.fetch8();
    this.opcode = b;
    DISPATCH[this.op32 ? b | 0x200 : b]!(this);
    if (this.postStep !== 0) this.afterStep();
  }

  /** Back to the default operand/address size and no prefixes. */
  private resetDecode(): void {
    this.op32 = this.ad32 = this.codeBig;
    this.segOvr = -1;
    this.rep = 0;
    this.lock = false;
    this.decodeDirty = false;
    this.postStep = this.codeBig ? 0 : 1;
  }

  /** Consumes prefix bytes starting with `b`; returns the opcode (0x100 | xx for 0F xx). */
  private prefixes(b: number): number {
    this.decodeDirty = true;
    while (PREFIX[b] !== 0) {
      switch (b) {
        case 0x26:
          this.segOvr = Sreg.ES;
          break;
        case 0x2e:
          this.segOvr = Sreg.CS;
          break;
        case 0x36:
          this.segOvr = Sreg.SS;
          break;
        case 0x3e:
          this.segOvr = Sreg.DS;
          break;
        case 0x64:
          this.segOvr = Sreg.FS;
          break;
        case 0x65:
          this.segOvr = Sreg.GS;
          break;
        case 0x66:
          this.op32 = !this.codeBig;
          break;
        case 0x67:
          this.ad32 = !this.codeBig;
          break;
        case 0xf0:
          this.lock = true;
          break;
        case 0xf2:
          this.rep = 1;
          break;
        default:
          this.rep = 2;
      }
      if (this.eip - this.instrStart > 3 && !this.lengthGuard) {
        // Many prefixes: close the fetch window so the 15-byte limit is checked (#GP).
        this.lengthGuard = true;
        this.postStep |= 2;
        this.fetchLen = 0;
      }
      b = this.fetch8();
    }
    if (b === 0x0f) b = 0x100 | this.fetch8();
    if (this.lock && LOCKABLE[b] === 0) this.ud();
    return b;
  }

  /** 16-bit code: IP wraps at 64 KiB (a fetch beyond the limit faulted already); end of a long instruction. */
  private afterStep(): void {
    if (!this.codeBig) this.eip &= 0xffff;
    if (this.lengthGuard) this.endLengthGuard();
  }

  private endLengthGuard(): void {
    this.lengthGuard = false;
    this.postStep = this.codeBig ? 0 : 1;
    this.fetchLen = 0;
  }

  /**
   * Runs until `budget` instructions have retired or the CPU exits (HLT with nothing to wake it,
   * shutdown). Faults are caught here once and delivered.
   */
  run(budget: number): ExitReason {
    let n = 0;
    this.slowCheck = true;
    while (true) {
      try {
        while (n < budget) {
          if (this.slowCheck) {
            this.instrStart = this.eip;
            const exit = this.boundary();
            if (exit >= 0) {
              this.instructions += n;
              return exit as ExitReason;
            }
          }
          this.instrStart = this.eip;
          this.step();
          n++;
        }
        this.instructions += n;
        return ExitReason.BUDGET;
      } catch (e) {
        if (e !== this.fault) throw e;
        n++;
        if (this.lengthGuard) this.endLengthGuard();
        this.eip = this.instrStart;
        this.exception(this.fault.vector, this.fault.errorCode);
        if (this.shutdown) {
          this.instructions += n;
          return ExitReason.SHUTDOWN;
        }
      }
    }
  }

  /** Delivers a fault, escalating to #DF and shutdown when delivery itself faults. */
  private exception(vector: number, errorCode: number): void {
    let v = vector;
    let code = errorCode;
    for (;;) {
      if (this.deliveringException === Vector.DF) {
        this.shutdown = true;
        this.halted = true;
        this.deliveringException = -1;
        return;
      }
      if (this.deliveringException >= 0 && becomesDoubleFault(this.deliveringException, v)) {
        v = Vector.DF;
        code = 0;
      }
      this.deliveringException = v;
      try {
        this.deliverInterrupt(v, InterruptKind.EXCEPTION, code);
        this.deliveringException = -1;
        this.trapArmed = false;
        return;
      } catch (e) {
        if (e !== this.fault) {
          this.deliveringException = -1;
          throw e;
        }
        // The fault raised during delivery: delivered next (serially or as #DF, above).
        v = this.fault.vector;
        code = this.fault.errorCode;
      }
    }
  }

  /** Work at an instruction boundary. Returns an ExitReason to stop, or -1 to go on. */
  private boundary(): number {
    this.slowCheck = false;
    if (this.shutdown) return ExitReason.SHUTDOWN;
    if (this.trapArmed) {
      this.trapArmed = false;
      this.exception(Vector.DB, NO_ERROR_CODE);
      if (this.shutdown) return ExitReason.SHUTDOWN;
    }
    if (this.shadow) {
      this.shadow = false;
      this.slowCheck = true; // look again after the next instruction
    } else if (this.nmiPending && !this.nmiBlocked) {
      this.nmiPending = false;
      this.nmiBlocked = true;
      this.halted = false;
      this.deliverInterrupt(Vector.NMI, InterruptKind.EXTERNAL, NO_ERROR_CODE);
    } else if ((this.flags & Flag.IF) !== 0 && this.intc !== null && this.intc.hasInterrupt()) {
      const vector = this.intc.acknowledge();
      this.halted = false;
      this.deliverInterrupt(vector, InterruptKind.EXTERNAL, NO_ERROR_CODE);
    }
    if (this.halted) {
      this.slowCheck = true;
      return ExitReason.HLT;
    }
    if ((this.flags & Flag.TF) !== 0) {
      this.trapArmed = true;
      this.slowCheck = true;
    }
    return -1;
  }

  /** HLT: stop at this boundary; `run` returns HLT until an interrupt arrives. */
  halt(): void {
    this.halted = true;
    this.slowCheck = true;
  }
}

const REG8_IDX = new Uint8Array([0, 4, 8, 12, 1, 5, 9, 13]);

/**
 * SDM vol. 3, table 6-5: an exception raised while delivering `first` becomes a double fault
 * when both are contributory (#DE #TS #NP #SS #GP), or `first` is #PF and the second is #PF or
 * contributory; otherwise the second one is simply delivered.
 */
function becomesDoubleFault(first: number, second: number): boolean {
  const contributory = second === Vector.DE || (second >= Vector.TS && second <= Vector.GP);
  if (first === Vector.PF) return contributory || second === Vector.PF;
  return contributory && (first === Vector.DE || (first >= Vector.TS && first <= Vector.GP));
}
