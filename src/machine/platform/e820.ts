import { ConfigError, hex } from "../../common/errors.js";
import { type E820Entry, E820Type } from "../boot/zero-page.js";

export type { E820Entry };

/** Conventional memory ends here: 0x9F000-0x9FFFF is the EBDA a BIOS would keep. */
export const LOW_RAM_END = 0x9_f000;
/** Start of RAM above the legacy hole (VGA window, option ROMs, BIOS: 0xA0000-0xFFFFF). */
export const HIGH_RAM_START = 0x10_0000;
export const MIN_RAM_SIZE = 16 * 1024 * 1024;
/** Above this the PCI MMIO window (0xE0000000 up) and the chipset ranges would collide with RAM. */
export const MAX_RAM_SIZE = 3 * 1024 * 1024 * 1024;

/**
 * The e820 memory map for a machine with `ramSize` bytes of RAM from address 0:
 * - 0 - 0x9EFFF usable (conventional memory; the real-mode IVT and BDA live in it),
 * - 0x9F000 - 0xFFFFF reserved (EBDA, VGA window, ROM area, and the $PIR and ACPI tables
 *   this machine writes in 0xE0000-0xFFFFF),
 * - 1 MiB - ramSize usable,
 * and nothing above: the PCI window and everything up to 4 GiB is not RAM, so the kernel sees
 * the gap after RAM as "available for PCI devices".
 * `ramSize` must be 16 MiB to 3 GiB, a multiple of 4 KiB.
 */
export function buildE820(ramSize: number): E820Entry[] {
  if (
    !Number.isSafeInteger(ramSize) ||
    ramSize < MIN_RAM_SIZE ||
    ramSize > MAX_RAM_SIZE ||
    ramSize % 4096 !== 0
  ) {
    throw new ConfigError(
      `memory size must be a multiple of 4 KiB from 16 MiB to 3 GiB, got ${ramSize} (0x${hex(Math.max(0, ramSize))}) bytes`,
    );
  }
  return [
    { addr: 0, size: LOW_RAM_END, type: E820Type.RAM },
    { addr: LOW_RAM_END, size: HIGH_RAM_START - LOW_RAM_END, type: E820Type.RESERVED },
    { addr: HIGH_RAM_START, size: ramSize - HIGH_RAM_START, type: E820Type.RAM },
  ];
}

/** The kernel's way of printing an entry ("BIOS-e820: [mem 0x...-0x...] usable"), for logs and tests. */
export function formatE820(e: E820Entry): string {
  const names: Record<number, string> = {
    1: "usable",
    2: "reserved",
    3: "ACPI data",
    4: "ACPI NVS",
    5: "unusable",
  };
  const end = e.addr + e.size - 1;
  const h = (n: number) =>
    `0x${Math.floor(n / 0x1_0000_0000)
      .toString(16)
      .padStart(8, "0")}${(n >>> 0).toString(16).padStart(8, "0")}`;
  return `BIOS-e820: [mem ${h(e.addr)}-${h(end)}] ${names[e.type] ?? `type ${e.type}`}`;
}
