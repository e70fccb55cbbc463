import { ConfigError, hex } from "../../common/errors.js";
import type { GuestMemory } from "../../common/memory.js";
import type { PciBus } from "../pci/bus.js";
import { DEFAULT_PCI_WINDOWS, type PciWindows } from "../pci/firmware.js";
import { swizzlePirq } from "../pci/intx-router.js";
import {
  type AcpiLayout,
  type AcpiOptions,
  DEFAULT_ACPI_LAYOUT,
  type PciIrqRoute,
  writeAcpiTables,
} from "./acpi.js";
import { type MpTableInfo, writeMpTable } from "./mptable.js";
import { encodePirTable, PIR_SCAN_END, PIR_SCAN_START, pirTableForBus } from "./pir.js";

/** Where the $PIR table goes by default (16-byte aligned in 0xF0000-0xFFFFF, after the RSDP). */
export const DEFAULT_PIR_ADDRESS = 0xf_0100;
/** Where the MP floating pointer goes by default (the configuration table follows it). */
export const DEFAULT_MP_ADDRESS = 0xf_0400;

/** The APIC part of the machine, for the MADT and the MP table. */
export interface PlatformApic {
  localApicAddress: number;
  localApicVersion: number;
  ioApicId: number;
  ioApicVersion: number;
  ioApicAddress: number;
  cpuSignature: number;
  cpuFeatures: number;
  /** The I/O APIC pin of ISA IRQ `irq`. */
  isaIrqToPin: (irq: number) => number;
}

export interface PlatformTablesOptions {
  /** The PCI bus the $PIR and the DSDT's _PRT describe. */
  bus: PciBus;
  /** The PCI windows (as given to assignPciResources). */
  windows?: PciWindows;
  /** Write ACPI tables (default true). */
  acpi?: boolean;
  /** Describe PCI in the DSDT (\_SB.PCI0 with _CRS and _PRT; default true). */
  acpiPci?: boolean;
  /** ACPI PM block and SCI settings (must agree with the `AcpiPm` handler). */
  acpiOptions?: Omit<AcpiOptions, "pci">;
  pirAddress?: number;
  acpiLayout?: AcpiLayout;
  /** The machine has a local APIC and an I/O APIC: write the MADT (with ACPI) and the MP table. */
  apic?: PlatformApic;
  mpAddress?: number;
}

export interface PlatformTables {
  /** Address of the $PIR table. */
  pir: number;
  pirSize: number;
  /** ACPI table addresses (absent when acpi is false). The RSDP address can go in boot_params.acpi_rsdp_addr. */
  acpi?: AcpiLayout;
  /** Address of the MP floating pointer (with `apic`). */
  mp?: number;
}

/** The static _PRT routes for every slot 1-31 and pin, from the PIIX3 routes in force now. */
export function pciIrqRoutes(bus: PciBus): PciIrqRoute[] {
  const routes: PciIrqRoute[] = [];
  for (let device = 1; device < 32; device++) {
    for (let pin = 1; pin <= 4; pin++) {
      const irq = bus.isaBridge.routedIrq(swizzlePirq(device, pin));
      if (irq >= 0) routes.push({ device, pin, irq });
    }
  }
  return routes;
}

/**
 * What firmware leaves in the BIOS area for Linux: the $PIR table (PCI IRQ routing through the
 * PIIX3, used with acpi=off or pci=noacpi) and the ACPI tables (power off through \_S5; PCI
 * scanning and IRQ routing through \_SB.PCI0 when ACPI is on). Call after the PCI functions
 * are on the bus. These regions are reserved in the e820 map from buildE820.
 */
export function writePlatformTables(mem: GuestMemory, options: PlatformTablesOptions): PlatformTables {
  const pirAddress = options.pirAddress ?? DEFAULT_PIR_ADDRESS;
  const pir = encodePirTable(pirTableForBus(options.bus));
  if (pirAddress % 16 !== 0 || pirAddress < PIR_SCAN_START || pirAddress + pir.length > PIR_SCAN_END) {
    throw new ConfigError(
      `the $PIR table must be 16-byte aligned inside 0xF0000-0xFFFFF, got 0x${hex(pirAddress)}`,
    );
  }
  const result: PlatformTables = { pir: pirAddress, pirSize: pir.length };
  if (options.acpi !== false) {
    const windows = options.windows ?? DEFAULT_PCI_WINDOWS;
    const layout = options.acpiLayout ?? DEFAULT_ACPI_LAYOUT;
    if (pirAddress < layout.rsdp + 20 && layout.rsdp < pirAddress + pir.length) {
      throw new ConfigError(
        `the $PIR table at 0x${hex(pirAddress)} overlaps the RSDP at 0x${hex(layout.rsdp)}`,
      );
    }
    result.acpi = writeAcpiTables(
      mem,
      {
        ...options.acpiOptions,
        apic: options.apic
          ? {
              localApicAddress: options.apic.localApicAddress,
              ioApicAddress: options.apic.ioApicAddress,
              ioApicId: options.apic.ioApicId,
            }
          : undefined,
        pci:
          options.acpiPci === false
            ? undefined
            : { routes: pciIrqRoutes(options.bus), mmioBase: windows.mmioBase, mmioEnd: windows.mmioEnd },
      },
      layout,
    );
  }
  mem.writeFrom(pirAddress, pir);
  if (options.apic) {
    const mpAt = options.mpAddress ?? DEFAULT_MP_ADDRESS;
    if (mpAt < pirAddress + pir.length && pirAddress < mpAt + 16)
      throw new ConfigError(`the MP table at 0x${hex(mpAt)} overlaps the $PIR table at 0x${hex(pirAddress)}`);
    writeMpTable(mem, mpAt, mpTableInfo(options.bus, options.apic));
    result.mp = mpAt;
  }
  return result;
}

/**
 * The MP table's view of the machine: each PCI slot's INTA-D on the I/O APIC pin of the IRQ its
 * PIRQ is routed to (the same pins the ACPI _PRT names as GSIs), and every ISA IRQ but the
 * cascade (2) and the PCI ones on its own pin (IRQ 0 on pin 2).
 */
export function mpTableInfo(bus: PciBus, apic: PlatformApic): MpTableInfo {
  const pciIrqs = new Set<number>();
  const pci: MpTableInfo["pci"][number][] = [];
  const devices = [
    ...new Set(
      bus
        .functions()
        .filter((s) => s.fn.interruptPin !== 0)
        .map((s) => s.device),
    ),
  ].sort((a, b) => a - b);
  for (const device of devices) {
    for (let pin = 1; pin <= 4; pin++) {
      const irq = bus.isaBridge.routedIrq(swizzlePirq(device, pin));
      if (irq < 0) continue;
      pciIrqs.add(irq);
      pci.push({ device, pin, ioApicPin: apic.isaIrqToPin(irq) });
    }
  }
  const isaIrqs: { irq: number; ioApicPin: number }[] = [];
  for (let irq = 0; irq < 16; irq++) {
    if (irq === 2 || pciIrqs.has(irq)) continue;
    isaIrqs.push({ irq, ioApicPin: apic.isaIrqToPin(irq) });
  }
  return {
    localApicAddress: apic.localApicAddress,
    localApicVersion: apic.localApicVersion,
    ioApicId: apic.ioApicId,
    ioApicVersion: apic.ioApicVersion,
    ioApicAddress: apic.ioApicAddress,
    cpuSignature: apic.cpuSignature,
    cpuFeatures: apic.cpuFeatures,
    isaIrqs,
    pci,
  };
}
