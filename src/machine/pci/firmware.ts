import { ConfigError, hex } from "../../common/errors.js";
import type { BarInfo, PciFunction } from "../../pci/function.js";
import { PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_INTERRUPT_LINE } from "../../pci/regs.js";
import type { PciBus } from "./bus.js";

/** Address windows BARs are placed in (end exclusive). */
export interface PciWindows {
  mmioBase: number;
  mmioEnd: number;
  ioBase: number;
  ioEnd: number;
}

/**
 * The default windows: memory BARs in 0xE0000000-0xFEBFFFFF (below the IOAPIC/LAPIC/BIOS area,
 * above the 3 GiB RAM limit), I/O BARs from 0xC000 (as SeaBIOS does).
 */
export const DEFAULT_PCI_WINDOWS: Readonly<PciWindows> = {
  mmioBase: 0xe000_0000,
  mmioEnd: 0xfec0_0000,
  ioBase: 0xc000,
  ioEnd: 0x1_0000,
};

export interface BarAssignment {
  device: number;
  func: number;
  fn: PciFunction;
  bar: BarInfo;
  address: number;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * What firmware does before the kernel runs: every BAR gets an address (largest first, each
 * aligned to its size) in the windows, avoiding ranges other devices already hold on the
 * buses; I/O and memory decode are turned on for functions that have such BARs (bus mastering
 * stays off: drivers enable it); the Interrupt Line register of every function with an INTx
 * pin is set to the IRQ its pin reaches through the PIIX3 routes (0xFF when not routed).
 * Throws ConfigError naming the BAR when a window is full.
 */
export function assignPciResources(bus: PciBus, windows: PciWindows = DEFAULT_PCI_WINDOWS): BarAssignment[] {
  const slots = bus.functions();
  // firmware starts from decode off, so nothing of ours is on the buses while placing
  for (const { fn } of slots) fn.setCommand(fn.command & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
  const all: BarAssignment[] = [];
  for (const { device, func, fn } of slots)
    for (const bar of fn.bars()) all.push({ device, func, fn, bar, address: 0 });
  const order = (a: BarAssignment, b: BarAssignment) =>
    b.bar.size - a.bar.size || a.device - b.device || a.func - b.func || a.bar.index - b.bar.index;

  const memRanges = bus.memory.mmioRanges().map((r) => [r.base, r.base + r.length] as const);
  let cursor = windows.mmioBase;
  for (const a of all.filter((x) => x.bar.kind !== "io").sort(order)) {
    let addr = alignUp(cursor, a.bar.size);
    for (let moved = true; moved; ) {
      moved = false;
      for (const [lo, hi] of memRanges) {
        if (addr < hi && lo < addr + a.bar.size) {
          addr = alignUp(hi, a.bar.size);
          moved = true;
        }
      }
    }
    if (addr + a.bar.size > windows.mmioEnd) {
      throw new ConfigError(
        `PCI memory window 0x${hex(windows.mmioBase)}-0x${hex(windows.mmioEnd - 1)} is full: no room for ${a.fn.name} ${a.bar.name} (0x${hex(a.bar.size)} bytes)`,
      );
    }
    a.address = addr;
    a.fn.setBarAddress(a.bar.index, addr);
    cursor = addr + a.bar.size;
  }

  cursor = windows.ioBase;
  for (const a of all.filter((x) => x.bar.kind === "io").sort(order)) {
    let addr = alignUp(cursor, a.bar.size);
    for (let p = addr; p < addr + a.bar.size && addr + a.bar.size <= windows.ioEnd; p++) {
      if (bus.io.owner(p) !== undefined) {
        addr = alignUp(p + 1, a.bar.size);
        p = addr - 1;
      }
    }
    if (addr + a.bar.size > windows.ioEnd) {
      throw new ConfigError(
        `PCI I/O window 0x${hex(windows.ioBase)}-0x${hex(windows.ioEnd - 1)} is full: no room for ${a.fn.name} ${a.bar.name} (${a.bar.size} ports)`,
      );
    }
    a.address = addr;
    a.fn.setBarAddress(a.bar.index, addr);
    cursor = addr + a.bar.size;
  }

  for (const { fn } of slots) {
    const bars = fn.bars();
    let cmd = fn.command;
    if (bars.some((b) => b.kind === "io")) cmd |= PCI_COMMAND_IO;
    if (bars.some((b) => b.kind !== "io")) cmd |= PCI_COMMAND_MEMORY;
    fn.setCommand(cmd);
    if (fn.interruptPin !== 0) {
      const irq = bus.irqOf(fn);
      fn.configWrite(PCI_INTERRUPT_LINE, 1, irq >= 0 ? irq : 0xff);
    }
  }
  return all.sort((a, b) => a.device - b.device || a.func - b.func || a.bar.index - b.bar.index);
}
