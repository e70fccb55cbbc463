/**
 * The zero page (struct boot_params, Documentation/arch/x86/zero-page.rst): 4 KiB that the boot
 * loader zeroes, copies the setup header into at 0x1F1, and fills with the memory map and the
 * other fields the 32-bit boot protocol needs.
 */
import type { GuestMemory } from "../../common/memory.js";
import { BootImageError, BootImageProblem } from "./setup-header.js";

export const ZERO_PAGE_SIZE = 0x1000;

/** boot_params offsets outside the setup header. */
export const BP = {
  /** struct screen_info (0x40 bytes). */
  screen_info: 0x000,
  orig_x: 0x00,
  orig_y: 0x01,
  orig_video_mode: 0x06,
  orig_video_cols: 0x07,
  orig_video_ega_bx: 0x0a,
  orig_video_lines: 0x0e,
  orig_video_isVGA: 0x0f,
  orig_video_points: 0x10,
  acpi_rsdp_addr: 0x070,
  ext_ramdisk_image: 0x0c0,
  ext_ramdisk_size: 0x0c4,
  ext_cmd_line_ptr: 0x0c8,
  alt_mem_k: 0x1e0,
  e820_entries: 0x1e8,
  sentinel: 0x1ef,
  e820_table: 0x2d0,
} as const;

/** Slots in the zero page's e820 table (E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;
export const E820_ENTRY_SIZE = 20;

/** e820 region types (ACPI's address range types). */
export const E820Type = {
  RAM: 1,
  RESERVED: 2,
  ACPI: 3,
  NVS: 4,
  UNUSABLE: 5,
  PMEM: 7,
} as const;

/** One memory map entry. `addr` and `size` are byte counts below 2^53. */
export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** Checks an e820 table: at most 128 entries, integer non-negative ranges, no RAM overlaps. */
export function checkE820(entries: readonly E820Entry[]): void {
  if (entries.length === 0) {
    throw new BootImageError(
      BootImageProblem.BAD_ARGUMENT,
      "the e820 table is empty: the kernel needs a memory map",
    );
  }
  if (entries.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new BootImageError(
      BootImageProblem.BAD_ARGUMENT,
      `the e820 table has ${entries.length} entries; the zero page holds at most ${E820_MAX_ENTRIES_ZEROPAGE}`,
    );
  }
  entries.forEach((e, i) => {
    if (
      !Number.isSafeInteger(e.addr) ||
      !Number.isSafeInteger(e.size) ||
      e.addr < 0 ||
      e.size <= 0 ||
      !Number.isSafeInteger(e.addr + e.size) ||
      !Number.isInteger(e.type) ||
      e.type < 1 ||
      e.type > 0xffff_ffff
    ) {
      throw new BootImageError(
        BootImageProblem.BAD_ARGUMENT,
        `e820 entry ${i} is not valid: addr ${e.addr}, size ${e.size}, type ${e.type}`,
      );
    }
  });
  const ram = entries.filter((e) => e.type === E820Type.RAM).sort((a, b) => a.addr - b.addr);
  for (let i = 1; i < ram.length; i++) {
    const p = ram[i - 1]!;
    if (ram[i]!.addr < p.addr + p.size) {
      throw new BootImageError(
        BootImageProblem.BAD_ARGUMENT,
        `e820 RAM entries overlap: 0x${p.addr.toString(16)}+0x${p.size.toString(16)} and 0x${ram[i]!.addr.toString(16)}`,
      );
    }
  }
}

/** Writes the e820 table and its entry count into the zero page at `zp`. */
export function writeE820(mem: GuestMemory, zp: number, entries: readonly E820Entry[]): void {
  checkE820(entries);
  mem.writeU8(zp + BP.e820_entries, entries.length);
  entries.forEach((e, i) => {
    const o = zp + BP.e820_table + i * E820_ENTRY_SIZE;
    mem.writeU32(o, e.addr >>> 0);
    mem.writeU32(o + 4, Math.floor(e.addr / 0x1_0000_0000));
    mem.writeU32(o + 8, e.size >>> 0);
    mem.writeU32(o + 12, Math.floor(e.size / 0x1_0000_0000));
    mem.writeU32(o + 16, e.type);
  });
}

/** Reads the e820 table back from a zero page (for tests and diagnostics). */
export function readE820(mem: GuestMemory, zp: number): E820Entry[] {
  const n = mem.readU8(zp + BP.e820_entries);
  const out: E820Entry[] = [];
  for (let i = 0; i < Math.min(n, E820_MAX_ENTRIES_ZEROPAGE); i++) {
    const o = zp + BP.e820_table + i * E820_ENTRY_SIZE;
    out.push({
      addr: mem.readU32(o + 4) * 0x1_0000_0000 + mem.readU32(o),
      size: mem.readU32(o + 12) * 0x1_0000_0000 + mem.readU32(o + 8),
      type: mem.readU32(o + 16),
    });
  }
  return out;
}

/**
 * The usual PC memory map for `ramSize` bytes of RAM: conventional memory below the EBDA
 * (0x9FC00), the EBDA and the BIOS area reserved, and RAM from 1 MiB up to the end (below
 * `holeStart`, 3.5 GiB by default, where the PCI MMIO hole begins).
 */
export function defaultE820(ramSize: number, holeStart = 0xe000_0000): E820Entry[] {
  const top = Math.min(ramSize, holeStart);
  const map: E820Entry[] = [
    { addr: 0, size: 0x9fc00, type: E820Type.RAM },
    { addr: 0x9fc00, size: 0x400, type: E820Type.RESERVED },
    { addr: 0xf0000, size: 0x10000, type: E820Type.RESERVED },
  ];
  if (top > 0x100000) map.push({ addr: 0x100000, size: top - 0x100000, type: E820Type.RAM });
  return map;
}
