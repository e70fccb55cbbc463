import { ConfigError, hex, VirtkitError } from "../../common/errors.js";
import type { GuestMemory } from "../../common/memory.js";
import * as aml from "./aml.js";
import { byteSum, checksumByte, getAscii, putAscii } from "./checksum.js";
import { ACPI_PM_BASE, PM1_CNT_LEN, PM1_EVT_LEN, S5_SLP_TYP } from "./pm.js";

/**
 * Minimal ACPI 1.0 tables for a machine without firmware: RSDP -> RSDT -> FADT -> (FACS,
 * DSDT). The FADT names the PM1a event and control blocks (the `AcpiPm` port handler) and the
 * SCI IRQ; the DSDT holds \_S5 so Linux can power off, and optionally a PCI root bridge
 * (\_SB.PCI0 with _CRS windows and a static _PRT) so Linux can scan PCI and route its
 * interrupts through ACPI when it is not booted with acpi=off / pci=noacpi.
 */
export const ACPI_OEM_ID = "VIRTKT";
export const ACPI_OEM_TABLE_ID = "VIRTKIT";
export const ACPI_CREATOR_ID = "VKIT";
export const ACPI_HEADER_SIZE = 36;
export const RSDP_SIZE_V1 = 20;
export const FADT_SIZE_V1 = 116;
export const FACS_SIZE = 64;
/** RSDP search area (besides the EBDA): 0xE0000-0xFFFFF on 16-byte boundaries. */
export const RSDP_SCAN_START = 0xe_0000;
export const RSDP_SCAN_END = 0x10_0000;

/** FADT flags (ACPI 6.4 table 5.10). */
export const FADT_WBINVD = 1 << 0;
export const FADT_PROC_C1 = 1 << 2;
/** Set: the power button is not a fixed feature (none here). */
export const FADT_PWR_BUTTON = 1 << 4;
/** Set: the sleep button is not a fixed feature (none here). */
export const FADT_SLP_BUTTON = 1 << 5;

/** One static _PRT entry: INTx `pin` (1..4) of slot `device` reaches IRQ `irq` (a GSI in PIC mode). */
export interface PciIrqRoute {
  device: number;
  pin: number;
  irq: number;
}

export interface AcpiPciRoot {
  routes: readonly PciIrqRoute[];
  /** The PCI memory window, end exclusive. */
  mmioBase: number;
  mmioEnd: number;
}

export interface AcpiOptions {
  /** PM1a block base port (default 0x600, as `AcpiPm`). */
  pmBase?: number;
  /** The SCI's IRQ (default 9). Nothing raises it: the PM timer and GPEs are absent. */
  sciIrq?: number;
  /** SLP_TYP of \_S5 (default S5_SLP_TYP, as `AcpiPm`). */
  s5SlpTyp?: number;
  /** Describe PCI bus 0 in the DSDT. */
  pci?: AcpiPciRoot;
  /** Add a MADT ("APIC" table) describing the local APIC and the I/O APIC. */
  apic?: AcpiApicInfo;
}

/** What the MADT describes: one processor with local APIC ID 0, one I/O APIC with GSIs from 0. */
export interface AcpiApicInfo {
  localApicAddress: number;
  ioApicAddress: number;
  ioApicId: number;
}

export interface AcpiLayout {
  rsdp: number;
  rsdt: number;
  fadt: number;
  facs: number;
  dsdt: number;
  /** The MADT (written only with `apic`). */
  madt?: number;
}

/** Where the tables go by default: the RSDP at 0xF0000, the rest from 0xE0000 (64-byte aligned FACS first). */
export const DEFAULT_ACPI_LAYOUT: Readonly<AcpiLayout> = {
  rsdp: 0xf_0000,
  facs: 0xe_0000,
  rsdt: 0xe_0040,
  fadt: 0xe_0080,
  dsdt: 0xe_0100,
  madt: 0xe_1000,
};

/** MADT interrupt source override / NMI flags (ACPI 6.4 table 5.50, MPS INTI flags). */
export const MpsIntiFlags = {
  CONFORMS: 0,
  ACTIVE_HIGH: 1,
  ACTIVE_LOW: 3,
  EDGE: 1 << 2,
  LEVEL: 3 << 2,
} as const;

/**
 * The MADT (signature "APIC", revision 1): local APIC address, PCAT_COMPAT (8259s present),
 * then the processor's local APIC (ACPI processor ID 0, APIC ID 0, enabled), the I/O APIC
 * (GSI base 0), the interrupt source overrides ISA IRQ 0 -> GSI 2 (the PIT on pin 2) and the
 * SCI's IRQ level-triggered active-high, and LINT1 as the NMI input of every processor.
 */
export function buildMadt(info: AcpiApicInfo, sciIrq: number): Uint8Array {
  const entries: number[][] = [];
  const u16 = (v: number) => [v & 0xff, (v >> 8) & 0xff];
  const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  entries.push([0, 8, 0, 0, ...u32(1)]); // Processor Local APIC: UID 0, APIC ID 0, enabled
  entries.push([1, 12, info.ioApicId & 0xff, 0, ...u32(info.ioApicAddress), ...u32(0)]); // I/O APIC, GSI base 0
  entries.push([2, 10, 0, 0, ...u32(2), ...u16(MpsIntiFlags.CONFORMS)]); // IRQ 0 -> GSI 2
  entries.push([
    2,
    10,
    0,
    sciIrq & 0xff,
    ...u32(sciIrq),
    ...u16(MpsIntiFlags.ACTIVE_HIGH | MpsIntiFlags.LEVEL),
  ]); // the SCI: level, active high
  entries.push([4, 6, 0xff, ...u16(MpsIntiFlags.CONFORMS), 1]); // Local APIC NMI: all processors, LINT1
  const body = [...u32(info.localApicAddress), ...u32(1 /* PCAT_COMPAT */), ...entries.flat()];
  return sdt("APIC", 1, Uint8Array.from(body));
}

/** A table with its 36-byte header filled in and the checksum set. */
export function sdt(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const t = new Uint8Array(ACPI_HEADER_SIZE + body.length);
  const v = new DataView(t.buffer);
  putAscii(t, 0, signature, 4);
  v.setUint32(4, t.length, true);
  t[8] = revision;
  putAscii(t, 10, ACPI_OEM_ID, 6);
  putAscii(t, 16, ACPI_OEM_TABLE_ID, 8);
  v.setUint32(24, 1, true); // OEM revision
  putAscii(t, 28, ACPI_CREATOR_ID, 4);
  v.setUint32(32, 1, true); // creator revision
  t.set(body, ACPI_HEADER_SIZE);
  t[9] = checksumByte(t);
  return t;
}

/** RSDP revision 0 (ACPI 1.0): "RSD PTR ", checksum over its 20 bytes, the RSDT address. */
export function buildRsdp(rsdtAddress: number): Uint8Array {
  const t = new Uint8Array(RSDP_SIZE_V1);
  putAscii(t, 0, "RSD PTR ", 8);
  putAscii(t, 9, ACPI_OEM_ID, 6);
  t[15] = 0;
  new DataView(t.buffer).setUint32(16, rsdtAddress >>> 0, true);
  t[8] = checksumByte(t);
  return t;
}

export function buildRsdt(entries: readonly number[]): Uint8Array {
  const body = new Uint8Array(4 * entries.length);
  const v = new DataView(body.buffer);
  for (const [i, a] of entries.entries()) v.setUint32(4 * i, a >>> 0, true);
  return sdt("RSDT", 1, body);
}

/** FACS (no checksum): signature, length, hardware signature 0, no waking vector, no global lock owner. */
export function buildFacs(): Uint8Array {
  const t = new Uint8Array(FACS_SIZE);
  putAscii(t, 0, "FACS", 4);
  new DataView(t.buffer).setUint32(4, FACS_SIZE, true);
  return t;
}

/**
 * FADT revision 1 (the ACPI 1.0 layout, 116 bytes, as QEMU's i440FX FADT): no SMI_CMD (always
 * in ACPI mode), PM1a event block at pmBase (4 bytes), PM1a control block at pmBase+4
 * (2 bytes), no PM timer, no GPE blocks, C2/C3 latencies above the "not supported" limits.
 */
export function buildFadt(facs: number, dsdt: number, pmBase: number, sciIrq: number): Uint8Array {
  const body = new Uint8Array(FADT_SIZE_V1 - ACPI_HEADER_SIZE);
  const v = new DataView(body.buffer);
  const at = (off: number) => off - ACPI_HEADER_SIZE;
  v.setUint32(at(36), facs >>> 0, true); // FIRMWARE_CTRL
  v.setUint32(at(40), dsdt >>> 0, true); // DSDT
  body[at(45)] = 0; // Preferred_PM_Profile: unspecified
  v.setUint16(at(46), sciIrq, true); // SCI_INT
  v.setUint32(at(48), 0, true); // SMI_CMD: none
  v.setUint32(at(56), pmBase, true); // PM1a_EVT_BLK
  v.setUint32(at(64), pmBase + PM1_EVT_LEN, true); // PM1a_CNT_BLK
  body[at(88)] = PM1_EVT_LEN; // PM1_EVT_LEN
  body[at(89)] = PM1_CNT_LEN; // PM1_CNT_LEN
  v.setUint16(at(96), 0x65, true); // P_LVL2_LAT > 100: C2 not supported
  v.setUint16(at(98), 0x3e9, true); // P_LVL3_LAT > 1000: C3 not supported
  body[at(108)] = 0x32; // CENTURY: CMOS register of the century byte
  v.setUint32(at(112), FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON, true);
  return sdt("FACP", 1, body);
}

/**
 * The DSDT's AML. The ASL it encodes (DefinitionBlock ("", "DSDT", 1, "VIRTKT", "VIRTKIT", 1)):
 *
 *   Name (\_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })     // SLP_TYPa, SLP_TYPb
 *   // only with options.pci:
 *   Scope (\_SB) {
 *     Device (PCI0) {
 *       Name (_HID, EisaId ("PNP0A03"))
 *       Name (_UID, Zero)
 *       Name (_CRS, ResourceTemplate () {
 *         WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
 *                        0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
 *         IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
 *         WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
 *                 0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
 *         WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
 *                 0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
 *         DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
 *                      0x00000000, 0x000A0000, 0x000BFFFF, 0x00000000, 0x00020000)
 *         DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
 *                      0x00000000, mmioBase, mmioEnd - 1, 0x00000000, mmioEnd - mmioBase)
 *       })
 *       Name (_PRT, Package () {                              // one per slot and pin
 *         Package () { 0x0002FFFF, Zero, Zero, 0x0A },       // slot 2 INTA# -> IRQ 10
 *         ...
 *       })
 *     }
 *   }
 *
 * Hand-assembled: `08 5C 5F 53 35 5F 12 08 04 0A 05 0A 05 00 00` is the \_S5 line
 * (NameOp, "\_S5_", PackageOp, PkgLength 8, 4 elements, BytePrefix 5, BytePrefix 5, Zero, Zero).
 */
export function buildDsdtAml(options: AcpiOptions = {}): Uint8Array {
  const slpTyp = options.s5SlpTyp ?? S5_SLP_TYP;
  if (!Number.isInteger(slpTyp) || slpTyp < 0 || slpTyp > 7)
    throw new ConfigError(`\\_S5 SLP_TYP must be 0..7, got ${slpTyp}`);
  const terms = [
    aml.name("\\_S5", aml.pkg([aml.integer(slpTyp), aml.integer(slpTyp), aml.integer(0), aml.integer(0)])),
  ];
  const pci = options.pci;
  if (pci) {
    if (pci.mmioBase % 4096 !== 0 || pci.mmioEnd <= pci.mmioBase || pci.mmioEnd > 0x1_0000_0000) {
      throw new ConfigError(`PCI memory window 0x${hex(pci.mmioBase)}-0x${hex(pci.mmioEnd)} is not valid`);
    }
    const crs = aml.resourceTemplate([
      aml.wordAddressSpace(aml.ResourceType.BUS_NUMBER, 0, 0x00, 0xff),
      aml.ioPort(0xcf8, 0xcf8, 1, 8),
      aml.wordAddressSpace(aml.ResourceType.IO, 0x03, 0x0000, 0x0cf7),
      aml.wordAddressSpace(aml.ResourceType.IO, 0x03, 0x0d00, 0xffff),
      aml.dwordMemory(0xa_0000, 0xb_ffff, true),
      aml.dwordMemory(pci.mmioBase, pci.mmioEnd - 1, false),
    ]);
    const prt = pci.routes.map((r) => {
      if (r.device < 0 || r.device > 31 || r.pin < 1 || r.pin > 4 || r.irq < 0 || r.irq > 15) {
        throw new ConfigError(`_PRT entry device ${r.device} pin ${r.pin} irq ${r.irq} is not valid`);
      }
      // Address: high word = device, low word 0xFFFF = any function; Pin 0..3; Source Zero = static GSI
      return aml.pkg([
        aml.integer(((r.device << 16) | 0xffff) >>> 0),
        aml.integer(r.pin - 1),
        aml.integer(0),
        aml.integer(r.irq),
      ]);
    });
    terms.push(
      aml.scope("\\_SB", [
        aml.device("PCI0", [
          aml.name("_HID", aml.eisaId("PNP0A03")),
          aml.name("_UID", aml.integer(0)),
          aml.name("_CRS", crs),
          aml.name("_PRT", aml.pkg(prt)),
        ]),
      ]),
    );
  }
  return aml.concat(terms);
}

export function buildDsdt(options: AcpiOptions = {}): Uint8Array {
  return sdt("DSDT", 1, buildDsdtAml(options));
}

/**
 * Writes RSDP, RSDT, FADT, FACS and DSDT into guest memory at `layout` and returns the layout.
 * The tables must not overlap: the DSDT grows with the _PRT, up to the next table above it.
 */
export function writeAcpiTables(
  mem: GuestMemory,
  options: AcpiOptions = {},
  layout: AcpiLayout = DEFAULT_ACPI_LAYOUT,
): AcpiLayout {
  const pmBase = options.pmBase ?? ACPI_PM_BASE;
  const sci = options.sciIrq ?? 9;
  if (layout.facs % 64 !== 0)
    throw new ConfigError(`the FACS must be 64-byte aligned, got 0x${hex(layout.facs)}`);
  if (layout.rsdp % 16 !== 0 || layout.rsdp < RSDP_SCAN_START || layout.rsdp + RSDP_SIZE_V1 > RSDP_SCAN_END) {
    throw new ConfigError(`the RSDP must be 16-byte aligned in 0xE0000-0xFFFFF, got 0x${hex(layout.rsdp)}`);
  }
  const madtAt = layout.madt ?? DEFAULT_ACPI_LAYOUT.madt!;
  const madt = options.apic ? buildMadt(options.apic, sci) : null;
  const tables: [string, number, Uint8Array][] = [
    ["RSDP", layout.rsdp, buildRsdp(layout.rsdt)],
    ["RSDT", layout.rsdt, buildRsdt(madt ? [layout.fadt, madtAt] : [layout.fadt])],
    ["FACP", layout.fadt, buildFadt(layout.facs, layout.dsdt, pmBase, sci)],
    ["FACS", layout.facs, buildFacs()],
    ["DSDT", layout.dsdt, buildDsdt(options)],
  ];
  if (madt) tables.push(["APIC", madtAt, madt]);
  for (const [a, aAt, aBytes] of tables) {
    for (const [b, bAt, bBytes] of tables) {
      if (a !== b && aAt < bAt + bBytes.length && bAt < aAt + aBytes.length) {
        throw new ConfigError(`ACPI table ${a} at 0x${hex(aAt)} overlaps ${b} at 0x${hex(bAt)}`);
      }
    }
  }
  for (const [, at, bytes] of tables) mem.writeFrom(at, bytes);
  return madt ? { ...layout, madt: madtAt } : { ...layout, madt: undefined };
}

// ---- reading tables back (tests, and a machine's self-check) ------------------------------

export interface AcpiTableHeader {
  signature: string;
  address: number;
  length: number;
  revision: number;
  oemId: string;
}

function acpiError(why: string): VirtkitError {
  return new VirtkitError("ACPI_INVALID", `ACPI tables invalid: ${why}`);
}

/** Finds the RSDP as Linux does in 0xE0000-0xFFFFF: signature and 20-byte checksum. Returns -1 if none. */
export function findRsdp(mem: GuestMemory): number {
  const end = Math.min(RSDP_SCAN_END, mem.size);
  for (let a = RSDP_SCAN_START; a + RSDP_SIZE_V1 <= end; a += 16) {
    if (mem.readU32(a) !== 0x2044_5352 || mem.readU32(a + 4) !== 0x2052_5450) continue; // "RSD PTR "
    if (byteSum(mem.subarray(a, RSDP_SIZE_V1)) === 0) return a;
  }
  return -1;
}

/** Reads and checks one table (signature, length, checksum). */
export function readAcpiTable(mem: GuestMemory, address: number, signature: string): Uint8Array {
  if (!mem.inRange(address, ACPI_HEADER_SIZE))
    throw acpiError(`${signature} at 0x${hex(address)} is outside memory`);
  const sig = getAscii(mem.subarray(address, 4), 0, 4);
  if (sig !== signature) throw acpiError(`expected ${signature} at 0x${hex(address)}, found "${sig}"`);
  const length = mem.readU32(address + 4);
  if (length < (signature === "FACS" ? FACS_SIZE : ACPI_HEADER_SIZE) || !mem.inRange(address, length)) {
    throw acpiError(`${signature} length ${length}`);
  }
  const bytes = mem.subarray(address, length);
  if (signature !== "FACS" && byteSum(bytes) !== 0) throw acpiError(`${signature} checksum`);
  return bytes;
}

export interface ParsedAcpi {
  rsdp: number;
  rsdt: number;
  tables: AcpiTableHeader[];
  fadt: {
    facs: number;
    dsdt: number;
    sciIrq: number;
    smiCmd: number;
    pm1aEvt: number;
    pm1aCnt: number;
    pm1EvtLen: number;
    pm1CntLen: number;
    pmTmr: number;
    flags: number;
  };
  /** The DSDT's AML (after its header). */
  dsdtAml: Uint8Array;
}

/** Walks RSDP -> RSDT -> FADT -> FACS, DSDT, checking every signature, length and checksum. */
export function parseAcpiTables(mem: GuestMemory): ParsedAcpi {
  const rsdp = findRsdp(mem);
  if (rsdp < 0) throw acpiError("no RSDP in 0xE0000-0xFFFFF");
  const rsdtAddr = mem.readU32(rsdp + 16);
  const rsdt = readAcpiTable(mem, rsdtAddr, "RSDT");
  const rv = new DataView(rsdt.buffer, rsdt.byteOffset, rsdt.byteLength);
  const tables: AcpiTableHeader[] = [];
  let fadtAt = -1;
  for (let o = ACPI_HEADER_SIZE; o + 4 <= rsdt.length; o += 4) {
    const at = rv.getUint32(o, true);
    const sig = getAscii(mem.subarray(at, 4), 0, 4);
    const t = readAcpiTable(mem, at, sig);
    tables.push({
      signature: sig,
      address: at,
      length: t.length,
      revision: t[8]!,
      oemId: getAscii(t, 10, 6),
    });
    if (sig === "FACP") fadtAt = at;
  }
  if (fadtAt < 0) throw acpiError("the RSDT lists no FADT");
  const f = readAcpiTable(mem, fadtAt, "FACP");
  const fv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const fadt = {
    facs: fv.getUint32(36, true),
    dsdt: fv.getUint32(40, true),
    sciIrq: fv.getUint16(46, true),
    smiCmd: fv.getUint32(48, true),
    pm1aEvt: fv.getUint32(56, true),
    pm1aCnt: fv.getUint32(64, true),
    pm1EvtLen: f[88]!,
    pm1CntLen: f[89]!,
    pmTmr: fv.getUint32(76, true),
    flags: fv.getUint32(112, true),
  };
  const facs = readAcpiTable(mem, fadt.facs, "FACS");
  tables.push({ signature: "FACS", address: fadt.facs, length: facs.length, revision: 0, oemId: "" });
  const dsdt = readAcpiTable(mem, fadt.dsdt, "DSDT");
  tables.push({
    signature: "DSDT",
    address: fadt.dsdt,
    length: dsdt.length,
    revision: dsdt[8]!,
    oemId: getAscii(dsdt, 10, 6),
  });
  return { rsdp, rsdt: rsdtAddr, tables, fadt, dsdtAml: dsdt.slice(ACPI_HEADER_SIZE) };
}
