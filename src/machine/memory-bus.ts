import { ConfigError, hex } from "../common/errors.js";
import type { FlatMemory } from "../common/memory.js";
import type { AccessSize } from "./io-bus.js";

/** A device's MMIO range. `offset` is relative to the range's base. */
export interface MmioHandler {
  mmioRead(offset: number, size: AccessSize): number;
  mmioWrite(offset: number, size: AccessSize, value: number): void;
}

export interface MmioRange {
  base: number;
  length: number;
  handler: MmioHandler;
  name: string;
}

/** What a 4 KiB page of the physical address space is. */
export const PageKind = { RAM: 0, MMIO: 1, NONE: 2 } as const;

const ONES = [0, 0xff, 0xffff, 0, 0xffff_ffff] as const;

/**
 * The physical address space: RAM from 0 up to its size, plus MMIO ranges (4 KiB aligned and
 * sized, overlaps with each other refused) that take precedence over RAM where they cover it
 * (the legacy hole 0xA0000-0xFFFFF, for instance). Unassigned addresses read all ones and
 * ignore writes, counted. `pageKind` lets the CPU take a direct RAM fast path.
 */
export class MemoryBus {
  readonly ram: FlatMemory;
  /** One entry per 4 KiB page of the 4 GiB space (PageKind). */
  readonly pageKind = new Uint8Array(0x10_0000);
  private readonly pageRange = new Map<number, MmioRange>();
  private readonly ranges: MmioRange[] = [];
  unassignedReads = 0;
  unassignedWrites = 0;

  constructor(ram: FlatMemory) {
    this.ram = ram;
    this.pageKind.fill(PageKind.NONE);
    this.pageKind.fill(PageKind.RAM, 0, Math.ceil(ram.size / 4096));
    if (ram.size % 4096 !== 0) throw new ConfigError(`RAM size must be a multiple of 4 KiB, got ${ram.size}`);
  }

  addMmio(base: number, length: number, handler: MmioHandler, name: string): void {
    if (base % 4096 !== 0 || length <= 0 || length % 4096 !== 0 || base + length > 0x1_0000_0000) {
      throw new ConfigError(
        `MMIO range for ${name} must be 4 KiB aligned and inside 4 GiB: 0x${hex(base)}+0x${hex(length)}`,
      );
    }
    for (const r of this.ranges) {
      if (base < r.base + r.length && r.base < base + length) {
        throw new ConfigError(
          `MMIO range for ${name} (0x${hex(base)}+0x${hex(length)}) overlaps ${r.name} (0x${hex(r.base)}+0x${hex(r.length)})`,
        );
      }
    }
    const range = { base, length, handler, name };
    this.ranges.push(range);
    for (let p = base / 4096; p < (base + length) / 4096; p++) {
      this.pageKind[p] = PageKind.MMIO;
      this.pageRange.set(p, range);
    }
  }

  /** Removes the range that starts at `base`. Returns false when none does. */
  removeMmio(base: number): boolean {
    const i = this.ranges.findIndex((r) => r.base === base);
    if (i < 0) return false;
    const r = this.ranges[i]!;
    this.ranges.splice(i, 1);
    const ramPages = this.ram.size / 4096;
    for (let p = r.base / 4096; p < (r.base + r.length) / 4096; p++) {
      this.pageKind[p] = p < ramPages ? PageKind.RAM : PageKind.NONE;
      this.pageRange.delete(p);
    }
    return true;
  }

  mmioRanges(): readonly MmioRange[] {
    return this.ranges;
  }

  /** True when [addr, addr+len) is plain RAM (no MMIO, nothing unassigned). */
  isRam(addr: number, len: number): boolean {
    if (addr < 0 || len <= 0 || addr + len > this.ram.size) return false;
    for (let p = addr >>> 12; p <= (addr + len - 1) >>> 12; p++)
      if (this.pageKind[p] !== PageKind.RAM) return false;
    return true;
  }

  /** Reads `size` bytes at a physical address. Accesses crossing a page boundary go byte by byte. */
  read(addr: number, size: AccessSize): number {
    addr >>>= 0;
    if ((addr & 0xfff) + size > 0x1000) {
      let v = 0;
      for (let i = 0; i < size; i++) v |= this.read((addr + i) >>> 0, 1) << (8 * i);
      return v >>> 0;
    }
    const page = addr >>> 12;
    const kind = this.pageKind[page];
    if (kind === PageKind.RAM) {
      const u8 = this.ram.u8;
      if (size === 1) return u8[addr]!;
      if (size === 2) return u8[addr]! | (u8[addr + 1]! << 8);
      return (u8[addr]! | (u8[addr + 1]! << 8) | (u8[addr + 2]! << 16) | (u8[addr + 3]! << 24)) >>> 0;
    }
    if (kind === PageKind.MMIO) {
      const r = this.pageRange.get(page)!;
      return r.handler.mmioRead(addr - r.base, size) >>> 0;
    }
    this.unassignedReads++;
    return ONES[size];
  }

  write(addr: number, size: AccessSize, value: number): void {
    addr >>>= 0;
    if ((addr & 0xfff) + size > 0x1000) {
      for (let i = 0; i < size; i++) this.write((addr + i) >>> 0, 1, (value >>> (8 * i)) & 0xff);
      return;
    }
    const page = addr >>> 12;
    const kind = this.pageKind[page];
    if (kind === PageKind.RAM) {
      const u8 = this.ram.u8;
      u8[addr] = value;
      if (size >= 2) u8[addr + 1] = value >>> 8;
      if (size === 4) {
        u8[addr + 2] = value >>> 16;
        u8[addr + 3] = value >>> 24;
      }
      return;
    }
    if (kind === PageKind.MMIO) {
      const r = this.pageRange.get(page)!;
      r.handler.mmioWrite(addr - r.base, size, value >>> 0);
      return;
    }
    this.unassignedWrites++;
  }
}
