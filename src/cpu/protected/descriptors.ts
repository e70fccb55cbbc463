/**
 * Segment and gate descriptors (Intel SDM vol. 3, 3.4.5 and 5.8-5.12): reading them from the
 * GDT/LDT/IDT, decoding their fields, and setting the accessed and busy bits as the processor
 * does. Descriptors are decoded into preallocated `Descriptor` objects (no allocation on the
 * hot paths: segment loads, far transfers, interrupts).
 */
import type { Cpu } from "../cpu.js";
import type { LinearAccess } from "./memory.js";

/** System descriptor types (S = 0), SDM table 3-2. */
export const SysType = {
  TSS16_AVAILABLE: 1,
  LDT: 2,
  TSS16_BUSY: 3,
  CALL_GATE16: 4,
  TASK_GATE: 5,
  INT_GATE16: 6,
  TRAP_GATE16: 7,
  TSS32_AVAILABLE: 9,
  TSS32_BUSY: 11,
  CALL_GATE32: 12,
  INT_GATE32: 14,
  TRAP_GATE32: 15,
} as const;

/** Type bits of a code/data descriptor (S = 1). */
export const SegType = {
  ACCESSED: 1,
  WRITABLE: 2,
  READABLE: 2,
  EXPAND_DOWN: 4,
  CONFORMING: 4,
  CODE: 8,
} as const;

/** One decoded descriptor. */
export class Descriptor {
  /** The selector it was read for. */
  sel = 0;
  /** Linear address of the 8-byte entry. */
  addr = 0;
  lo = 0;
  hi = 0;
  base = 0;
  /** Byte-granular limit (G applied). */
  limit = 0;
  /** Attribute bits as the segment caches hold them: byte 5 | (byte 6 & 0xF0) << 8. */
  attr = 0;
  /** The 4-bit type. */
  type = 0;
  /** S: code or data (true) vs system (false). */
  s = false;
  dpl = 0;
  present = false;

  decode(lo: number, hi: number): this {
    this.lo = lo | 0;
    this.hi = hi | 0;
    this.base = (lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff00_0000) | 0;
    let limit = (lo & 0xffff) | (hi & 0xf_0000);
    if ((hi & 0x80_0000) !== 0) limit = ((limit << 12) | 0xfff) >>> 0;
    this.limit = limit;
    this.attr = ((hi >>> 8) & 0xff) | ((hi >>> 8) & 0xf000);
    this.type = (hi >>> 8) & 0xf;
    this.s = (hi & 0x1000) !== 0;
    this.dpl = (hi >>> 13) & 3;
    this.present = (hi & 0x8000) !== 0;
    return this;
  }

  get isCode(): boolean {
    return this.s && (this.type & SegType.CODE) !== 0;
  }
  get isData(): boolean {
    return this.s && (this.type & SegType.CODE) === 0;
  }
  get conforming(): boolean {
    return (this.type & SegType.CONFORMING) !== 0;
  }
  /** Code segment readable, or data segment (always readable). */
  get readable(): boolean {
    return this.isData || (this.type & SegType.READABLE) !== 0;
  }
  get writableData(): boolean {
    return this.isData && (this.type & SegType.WRITABLE) !== 0;
  }
  /** A gate's target selector. */
  get gateSelector(): number {
    return this.lo >>> 16;
  }
  /** A gate's target offset (16-bit gates use the low word only). */
  get gateOffset(): number {
    return (this.type & 8) !== 0 ? (this.lo & 0xffff) | (this.hi & 0xffff_0000) | 0 : this.lo & 0xffff;
  }
  /** A call gate's parameter count (dwords for 32-bit gates, words for 16-bit gates). */
  get paramCount(): number {
    return this.hi & 0x1f;
  }
}

/** The GDT/LDT as the CPU's GDTR and LDTR describe them. */
export class DescriptorTables {
  constructor(
    private readonly cpu: Cpu,
    private readonly mem: LinearAccess,
  ) {}

  /**
   * Reads the descriptor for `sel` into `d`. Returns false when the selector's index lies outside
   * its table (or TI = 1 with a null LDT); the caller raises its own fault.
   */
  read(sel: number, d: Descriptor): boolean {
    const cpu = this.cpu;
    const index = sel & 0xfff8;
    let base: number;
    let limit: number;
    if ((sel & 4) !== 0) {
      if ((cpu.ldtrSel & 0xfffc) === 0) return false;
      base = cpu.ldtrBase;
      limit = cpu.ldtrLimit;
    } else {
      base = cpu.gdtrBase;
      limit = cpu.gdtrLimit;
    }
    if (index + 7 > limit >>> 0) return false;
    const addr = (base + index) | 0;
    d.sel = sel & 0xffff;
    d.addr = addr;
    d.decode(this.mem.read32(addr, false), this.mem.read32((addr + 4) | 0, false));
    return true;
  }

  /** Reads the descriptor or raises `vector` with the selector error code (| ext). */
  fetch(sel: number, d: Descriptor, vector: number, ext: number): Descriptor {
    if (!this.read(sel, d)) this.cpu.raise(vector, (sel & 0xfffc) | ext);
    return d;
  }

  /** Sets the accessed bit of a code/data descriptor in its table (a locked write on hardware). */
  setAccessed(d: Descriptor): void {
    if (!d.s || (d.type & SegType.ACCESSED) !== 0) return;
    d.hi |= 0x100;
    d.type |= SegType.ACCESSED;
    d.attr |= 1;
    this.mem.write8((d.addr + 5) | 0, (d.hi >>> 8) & 0xff, false);
  }

  /** Sets the busy bit of an available TSS descriptor (LTR). */
  setBusy(d: Descriptor): void {
    d.hi |= 0x200;
    d.type |= 2;
    d.attr |= 2;
    this.mem.write8((d.addr + 5) | 0, (d.hi >>> 8) & 0xff, false);
  }
}
