/**
 * The protected-mode unit: descriptor-checked segment loads (SDM vol. 2, MOV/POP/LxS; vol. 3,
 * 5.5-5.8), the system instructions that only exist in protected mode (0F 00 group, LAR, LSL,
 * ARPL, SYSENTER/SYSEXIT), the TSS (inner stacks, I/O bitmap), and the shared pieces the far
 * transfers (transfer.ts) and interrupt delivery (interrupts.ts) use.
 *
 * Task switching (JMP/CALL to a TSS or task gate, IRET with NT = 1, task gates in the IDT) and
 * V86 mode are not implemented: they raise a `CpuStateError` naming what the guest attempted.
 */
import type { Cpu } from "../cpu.js";
import { CpuStateError, type InterruptKind, Vector } from "../fault.js";
import type { ProtectedModeUnit } from "../hooks.js";
import { Msr } from "../cpuid.js";
import { Paging } from "../paging.js";
import { Flag, Sreg } from "../state.js";
import { Descriptor, DescriptorTables, SysType } from "./descriptors.js";
import { StackFrame } from "./frame.js";
import { deliverInterrupt } from "./interrupts.js";
import { LinearAccess } from "./memory.js";
import { callFar, iret, jumpFar, returnFar } from "./transfer.js";

export class ProtectedMode implements ProtectedModeUnit {
  readonly mem: LinearAccess;
  readonly tables: DescriptorTables;
  /** Scratch descriptors (a transfer needs at most three at once). */
  readonly d1 = new Descriptor();
  readonly d2 = new Descriptor();
  readonly d3 = new Descriptor();
  readonly frame: StackFrame;
  /** Inner stack read from the TSS by `innerStack`. */
  newSs = 0;
  newEsp = 0;

  constructor(
    readonly cpu: Cpu,
    readonly paging: Paging,
  ) {
    this.mem = new LinearAccess(cpu, paging);
    this.tables = new DescriptorTables(cpu, this.mem);
    this.frame = new StackFrame(cpu, this.mem);
  }

  // ---- ProtectedModeUnit -------------------------------------------------------------------------

  loadSegment(sreg: number, selector: number): void {
    const cpu = this.cpu;
    if (sreg === Sreg.CS) cpu.ud();
    const sel = selector & 0xffff;
    const rpl = sel & 3;
    const d = this.d1;
    if (sreg === Sreg.SS) {
      if ((sel & 0xfffc) === 0) cpu.gp0();
      this.tables.fetch(sel, d, Vector.GP, 0);
      if (rpl !== cpu.cpl || !d.writableData || d.dpl !== cpu.cpl) cpu.raise(Vector.GP, sel & 0xfffc);
      if (!d.present) cpu.raise(Vector.SS, sel & 0xfffc);
    } else {
      if ((sel & 0xfffc) === 0) {
        cpu.setSegmentCache(sreg, sel, 0, 0, 0);
        return;
      }
      this.tables.fetch(sel, d, Vector.GP, 0);
      if (!d.s || !d.readable) cpu.raise(Vector.GP, sel & 0xfffc);
      if ((d.isData || !d.conforming) && (rpl > d.dpl || cpu.cpl > d.dpl)) cpu.raise(Vector.GP, sel & 0xfffc);
      if (!d.present) cpu.raise(Vector.NP, sel & 0xfffc);
    }
    this.tables.setAccessed(d);
    cpu.setSegmentCache(sreg, sel, d.base, d.limit, d.attr);
  }

  jumpFar(selector: number, offset: number): void {
    jumpFar(this, selector & 0xffff, offset);
  }

  callFar(selector: number, offset: number): void {
    callFar(this, selector & 0xffff, offset);
  }

  returnFar(popBytes: number): void {
    returnFar(this, popBytes);
  }

  iret(): void {
    iret(this);
  }

  deliverInterrupt(vector: number, kind: InterruptKind, errorCode: number): void {
    deliverInterrupt(this, vector, kind, errorCode);
  }

  /** The TSS I/O permission bitmap (SDM vol. 1, 19.5.2): every bit of the access must be clear. */
  ioAllowed(port: number, size: number): boolean {
    const cpu = this.cpu;
    const type = cpu.trAttr & 0x1f;
    if ((cpu.trSel & 0xfffc) === 0 || (type !== SysType.TSS32_AVAILABLE && type !== SysType.TSS32_BUSY))
      return false;
    const limit = cpu.trLimit >>> 0;
    if (limit < 0x67) return false;
    const mapBase = this.mem.read16((cpu.trBase + 0x66) | 0, false);
    const at = mapBase + (port >>> 3);
    if (at + 1 > limit) return false;
    const bits = this.mem.read16((cpu.trBase + at) | 0, false);
    const mask = ((1 << size) - 1) << (port & 7);
    return (bits & mask) === 0;
  }

  execute(opcode: number): boolean {
    switch (opcode) {
      case 0x100:
        return this.group6();
      case 0x102:
      case 0x103:
        this.larLsl(opcode === 0x103);
        return true;
      case 0x63:
        this.arpl();
        return true;
      case 0x134:
        this.sysenter();
        return true;
      case 0x135:
        this.sysexit();
        return true;
      default:
        return false;
    }
  }

  // ---- shared by transfers and interrupts -------------------------------------------------------

  /** Loads CS from a checked code descriptor with the given RPL and makes it the CPL. */
  loadCs(sel: number, d: Descriptor, cpl: number): void {
    this.tables.setAccessed(d);
    const cpu = this.cpu;
    cpu.cpl = cpl;
    cpu.setSegmentCache(Sreg.CS, (sel & 0xfffc) | cpl, d.base, d.limit, d.attr);
  }

  /** Loads SS from a checked descriptor. */
  loadSs(sel: number, d: Descriptor): void {
    this.tables.setAccessed(d);
    this.cpu.setSegmentCache(Sreg.SS, sel, d.base, d.limit, d.attr);
  }

  /**
   * The stack for privilege level `dpl` from the current TSS (32-bit: ESPn at 4 + 8n, SSn at
   * 8 + 8n; 16-bit: SPn at 2 + 4n, SSn at 4 + 4n) into newSs/newEsp. #TS(TR) past its limit.
   */
  innerStack(dpl: number, ext: number): void {
    const cpu = this.cpu;
    const type = cpu.trAttr & 0xf;
    if ((cpu.trSel & 0xfffc) === 0) cpu.raise(Vector.TS, ext);
    const limit = cpu.trLimit >>> 0;
    if (type === SysType.TSS32_BUSY || type === SysType.TSS32_AVAILABLE) {
      const at = 4 + 8 * dpl;
      if (at + 5 > limit) cpu.raise(Vector.TS, (cpu.trSel & 0xfffc) | ext);
      this.newEsp = this.mem.read32((cpu.trBase + at) | 0, false);
      this.newSs = this.mem.read16((cpu.trBase + at + 4) | 0, false);
    } else {
      const at = 2 + 4 * dpl;
      if (at + 3 > limit) cpu.raise(Vector.TS, (cpu.trSel & 0xfffc) | ext);
      this.newEsp = this.mem.read16((cpu.trBase + at) | 0, false);
      this.newSs = this.mem.read16((cpu.trBase + at + 2) | 0, false);
    }
  }

  /** Checks the TSS-supplied stack segment for level `dpl` (#TS, or #SS when not present). */
  checkInnerSs(sel: number, dpl: number, d: Descriptor, ext: number): void {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0) cpu.raise(Vector.TS, ext);
    this.tables.fetch(sel, d, Vector.TS, ext);
    if ((sel & 3) !== dpl || d.dpl !== dpl || !d.writableData) cpu.raise(Vector.TS, (sel & 0xfffc) | ext);
    if (!d.present) cpu.raise(Vector.SS, (sel & 0xfffc) | ext);
  }

  /** Checks the stack segment popped by a return to an outer level with RPL `rpl` (#GP, #SS). */
  checkOuterSs(sel: number, rpl: number, d: Descriptor): void {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0) cpu.gp0();
    this.tables.fetch(sel, d, Vector.GP, 0);
    if ((sel & 3) !== rpl || !d.writableData || d.dpl !== rpl) cpu.raise(Vector.GP, sel & 0xfffc);
    if (!d.present) cpu.raise(Vector.SS, sel & 0xfffc);
  }

  /**
   * After a return to an outer level: ES, DS, FS and GS holding a data or non-conforming code
   * segment more privileged than the new CPL become null (SDM RET/IRET "FOR each of segment register").
   */
  nullifyDataSegments(): void {
    const cpu = this.cpu;
    for (const s of [Sreg.ES, Sreg.DS, Sreg.FS, Sreg.GS]) {
      const attr = cpu.segAttr[s]!;
      if ((attr & 0x80) === 0 || (attr & 0x10) === 0) continue;
      const dpl = (attr >>> 5) & 3;
      const conformingCode = (attr & 0xc) === 0xc;
      if (!conformingCode && dpl < cpu.cpl) cpu.setSegmentCache(s, 0, 0, 0, 0);
    }
  }

  /** Reads `size` bytes at SS:(SP + delta) on the current stack (no change to ESP). */
  readStack(delta: number, size: number): number {
    const cpu = this.cpu;
    const off = cpu.stackBig ? (cpu.r32[4]! + delta) | 0 : (cpu.r16[8]! + delta) & 0xffff;
    return size === 4 ? cpu.read32(Sreg.SS, off) : cpu.read16(Sreg.SS, off);
  }

  /** A guest operation this unit does not implement: stops the machine with a clear error. */
  unsupported(what: string): never {
    throw new CpuStateError(
      `${what} is not supported (at CS:EIP ${hex(this.cpu.segSel[Sreg.CS]!)}:${hex(this.cpu.instrStart)})`,
    );
  }

  // ---- 0F 00, LAR, LSL, ARPL ----------------------------------------------------------------------

  private setZf(on: boolean): void {
    const cpu = this.cpu;
    cpu.materializeFlags();
    cpu.flags = on ? cpu.flags | Flag.ZF : cpu.flags & ~Flag.ZF;
  }

  private group6(): boolean {
    const cpu = this.cpu;
    switch (cpu.modReg) {
      case 0:
      case 1: {
        // SLDT / STR: a register destination with 32-bit operand size is zero-extended.
        const v = cpu.modReg === 0 ? cpu.ldtrSel : cpu.trSel;
        if (cpu.isReg && cpu.op32) cpu.r32[cpu.modRm] = v & 0xffff;
        else cpu.writeE16(v);
        return true;
      }
      case 2:
        this.lldt(cpu.readE16());
        return true;
      case 3:
        this.ltr(cpu.readE16());
        return true;
      case 4:
      case 5:
        this.setZf(this.verify(cpu.readE16(), cpu.modReg === 5));
        return true;
      default:
        return false;
    }
  }

  private lldt(sel: number): void {
    const cpu = this.cpu;
    if (cpu.cpl !== 0) cpu.gp0();
    if ((sel & 0xfffc) === 0) {
      cpu.ldtrSel = sel;
      cpu.ldtrBase = 0;
      cpu.ldtrLimit = 0;
      return;
    }
    if ((sel & 4) !== 0) cpu.raise(Vector.GP, sel & 0xfffc);
    const d = this.tables.fetch(sel, this.d1, Vector.GP, 0);
    if (d.s || d.type !== SysType.LDT) cpu.raise(Vector.GP, sel & 0xfffc);
    if (!d.present) cpu.raise(Vector.NP, sel & 0xfffc);
    cpu.ldtrSel = sel;
    cpu.ldtrBase = d.base;
    cpu.ldtrLimit = d.limit;
  }

  private ltr(sel: number): void {
    const cpu = this.cpu;
    if (cpu.cpl !== 0) cpu.gp0();
    if ((sel & 0xfffc) === 0) cpu.gp0();
    if ((sel & 4) !== 0) cpu.raise(Vector.GP, sel & 0xfffc);
    const d = this.tables.fetch(sel, this.d1, Vector.GP, 0);
    if (d.s || (d.type !== SysType.TSS32_AVAILABLE && d.type !== SysType.TSS16_AVAILABLE))
      cpu.raise(Vector.GP, sel & 0xfffc);
    if (!d.present) cpu.raise(Vector.NP, sel & 0xfffc);
    this.tables.setBusy(d);
    cpu.trSel = sel;
    cpu.trBase = d.base;
    cpu.trLimit = d.limit;
    cpu.trAttr = d.attr;
  }

  /** VERR (write = false) / VERW. */
  private verify(sel: number, write: boolean): boolean {
    const cpu = this.cpu;
    if ((sel & 0xfffc) === 0) return false;
    const d = this.d1;
    if (!this.tables.read(sel, d) || !d.s) return false;
    const conformingCode = d.isCode && d.conforming;
    if (!conformingCode && (d.dpl < cpu.cpl || d.dpl < (sel & 3))) return false;
    return write ? d.writableData : d.readable;
  }

  /** LAR (0F 02) / LSL (0F 03): Gv, Ew. */
  private larLsl(lsl: boolean): void {
    const cpu = this.cpu;
    const sel = cpu.readE16();
    const d = this.d1;
    let ok = (sel & 0xfffc) !== 0 && this.tables.read(sel, d);
    if (ok && !d.s) {
      const t = d.type;
      ok = lsl
        ? t === 1 || t === 2 || t === 3 || t === 9 || t === 11
        : t === 1 || t === 2 || t === 3 || t === 4 || t === 5 || t === 9 || t === 11 || t === 12;
    }
    if (ok && !(d.isCode && d.conforming) && (d.dpl < cpu.cpl || d.dpl < (sel & 3))) ok = false;
    this.setZf(ok);
    if (!ok) return;
    const v = lsl ? d.limit : d.hi & 0x00f0_ff00; // 00FxFF00: bits 19:16 are undefined (0 here, as QEMU)
    if (cpu.op32) cpu.r32[cpu.modReg] = v;
    else cpu.r16[cpu.modReg << 1] = v;
  }

  /** ARPL Ew, Gw (63). */
  private arpl(): void {
    const cpu = this.cpu;
    const dst = cpu.readE16();
    const src = cpu.r16[cpu.modReg << 1]!;
    if ((dst & 3) < (src & 3)) {
      cpu.writeE16((dst & ~3) | (src & 3));
      this.setZf(true);
    } else this.setZf(false);
  }

  // ---- SYSENTER / SYSEXIT (SDM vol. 2) ---------------------------------------------------------------

  private msrLo(index: number): number {
    return this.cpu.cpuid.msrs.get(index)?.lo ?? 0;
  }

  private sysenter(): void {
    const cpu = this.cpu;
    const cs = this.msrLo(Msr.SYSENTER_CS) & 0xfffc;
    if (cs === 0) cpu.gp0();
    cpu.setEflags(cpu.getEflags() & ~(Flag.VM | Flag.IF | Flag.RF));
    cpu.cpl = 0;
    cpu.setSegmentCache(Sreg.CS, cs, 0, 0xffff_ffff, 0xc09b);
    cpu.setSegmentCache(Sreg.SS, (cs + 8) & 0xfffc, 0, 0xffff_ffff, 0xc093);
    cpu.r32[4] = this.msrLo(Msr.SYSENTER_ESP);
    cpu.eip = this.msrLo(Msr.SYSENTER_EIP) | 0;
  }

  private sysexit(): void {
    const cpu = this.cpu;
    const cs = this.msrLo(Msr.SYSENTER_CS) & 0xfffc;
    if (cs === 0 || cpu.cpl !== 0) cpu.gp0();
    cpu.cpl = 3;
    cpu.setSegmentCache(Sreg.CS, ((cs + 16) & 0xfffc) | 3, 0, 0xffff_ffff, 0xc0fb);
    cpu.setSegmentCache(Sreg.SS, ((cs + 24) & 0xfffc) | 3, 0, 0xffff_ffff, 0xc0f3);
    cpu.r32[4] = cpu.r32[1]!;
    cpu.eip = cpu.r32[2]!;
  }
}

function hex(n: number): string {
  return (n >>> 0).toString(16);
}

/**
 * Installs protected mode and paging on a CPU: `cpu.protectedMode` and `cpu.pagingUnit`.
 * Returns the units (tests inspect the TLB through `paging`).
 */
export function attachProtectedMode(cpu: Cpu): { protectedMode: ProtectedMode; paging: Paging } {
  const paging = new Paging(cpu);
  const protectedMode = new ProtectedMode(cpu, paging);
  cpu.pagingUnit = paging;
  cpu.protectedMode = protectedMode;
  if (cpu.paging !== null) cpu.paging = paging;
  return { protectedMode, paging };
}
