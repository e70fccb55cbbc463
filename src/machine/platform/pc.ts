import type { GuestMemory } from "../../common/memory.js";
import type { IoBus } from "../io-bus.js";
import type { IrqSink } from "../irq.js";
import type { MemoryBus } from "../memory-bus.js";
import { PciBus } from "../pci/bus.js";
import {
  assignPciResources,
  type BarAssignment,
  DEFAULT_PCI_WINDOWS,
  type PciWindows,
} from "../pci/firmware.js";
import { buildE820, type E820Entry } from "./e820.js";
import { AcpiPm } from "./pm.js";
import { type PlatformApic, type PlatformTables, writePlatformTables } from "./tables.js";

/** The ELCR ports of the PIIX3 (owned by the PIC; written here as a BIOS does). */
const ELCR1 = 0x4d0;
const ELCR2 = 0x4d1;

export interface PcPlatformOptions {
  io: IoBus;
  memory: MemoryBus;
  /** The PIC pair (INTx of PCI functions lands on its inputs). */
  irq: IrqSink;
  /** PIRQRC[A:D] (default 10, 10, 11, 11). */
  pirqRoutes?: readonly number[];
  windows?: PciWindows;
  /** Guest reset through 0xCF9. */
  onReset?: (hard: boolean) => void;
  /** Guest power-off through ACPI S5. */
  onPowerOff: () => void;
  /** Where BAR conflicts are reported. */
  log?: (message: string) => void;
}

export interface FirmwareResult {
  /** The memory map for the boot loader's zero page. */
  e820: E820Entry[];
  /** BAR addresses given out. */
  bars: BarAssignment[];
  /** Where the $PIR and ACPI tables are (tables.acpi.rsdp can go in boot_params.acpi_rsdp_addr). */
  tables: PlatformTables;
  /** IRQs made level-triggered in the ELCR. */
  levelIrqs: number[];
}

/**
 * The PCI side of an i440FX/PIIX3 PC without firmware: the PCI bus with its host bridge, PIIX3
 * and configuration ports, the ACPI PM1a block on ports 0x600-0x605, and `firmware()`, which
 * does what a BIOS does before the kernel starts. Add the machine's PCI functions to `bus`
 * first, then call `firmware()` once (and again after a machine reset).
 */
export class PcPlatform {
  readonly bus: PciBus;
  readonly pm: AcpiPm;
  readonly windows: PciWindows;
  private readonly io: IoBus;
  private readonly memory: MemoryBus;

  constructor(options: PcPlatformOptions) {
    this.io = options.io;
    this.memory = options.memory;
    this.windows = options.windows ?? DEFAULT_PCI_WINDOWS;
    this.bus = new PciBus({
      io: options.io,
      memory: options.memory,
      irq: options.irq,
      pirqRoutes: options.pirqRoutes,
      onReset: options.onReset,
      log: options.log,
    });
    this.pm = new AcpiPm({ onPowerOff: options.onPowerOff });
    this.pm.register(options.io);
  }

  /**
   * Places every BAR and turns decode on, sets Interrupt Line registers, marks the PCI IRQs
   * level-triggered in the ELCR (through ports 0x4D0/0x4D1, as SeaBIOS does), writes the $PIR
   * and ACPI tables into RAM, and returns the e820 map for a RAM of `memory.ram.size` bytes.
   * `acpi: false` leaves the ACPI tables out (the machine then has no ACPI power-off); `apic`
   * adds the MADT and the MP table for a machine with a local APIC and an I/O APIC.
   */
  firmware(options: { acpi?: boolean; acpiPci?: boolean; apic?: PlatformApic } = {}): FirmwareResult {
    const ram: GuestMemory = this.memory.ram;
    const e820 = buildE820(ram.size);
    const bars = assignPciResources(this.bus, this.windows);
    const mask = this.bus.routedIrqMask();
    if (mask & 0xff) this.io.write(ELCR1, 1, (this.io.read(ELCR1, 1) | mask) & 0xff);
    if (mask >> 8) this.io.write(ELCR2, 1, (this.io.read(ELCR2, 1) | (mask >> 8)) & 0xff);
    const tables = writePlatformTables(ram, {
      bus: this.bus,
      windows: this.windows,
      acpi: options.acpi,
      acpiPci: options.acpiPci,
      apic: options.apic,
      acpiOptions: { pmBase: this.pm.base, s5SlpTyp: this.pm.s5SlpTyp },
    });
    const levelIrqs: number[] = [];
    for (let irq = 0; irq < 16; irq++) if (mask & (1 << irq)) levelIrqs.push(irq);
    return { e820, bars, tables, levelIrqs };
  }

  /** Machine reset: PCI functions back to power-on values, PM registers cleared. Run `firmware()` again after. */
  reset(): void {
    this.bus.reset();
    this.pm.reset();
  }
}
