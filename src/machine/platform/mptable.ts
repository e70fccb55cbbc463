import { ConfigError, hex, VirtkitError } from "../../common/errors.js";
import type { GuestMemory } from "../../common/memory.js";
import { byteSum, checksumByte, getAscii, putAscii } from "./checksum.js";

/**
 * The Intel MultiProcessor Specification 1.4 tables (the "MP table"), which Linux reads for
 * its APIC configuration when ACPI is off (arch/x86/kernel/mpparse.c): the MP floating pointer
 * structure, found on a 16-byte boundary in the BIOS ROM area, pointing at the MP
 * configuration table: one processor, the PCI and ISA buses, one I/O APIC, an I/O interrupt
 * entry per ISA IRQ and per PCI slot pin, and the local interrupts (ExtINT on LINT0, NMI on
 * LINT1), as SeaBIOS writes them for QEMU's `pc` machine.
 */
export const MP_FLOATING_SIGNATURE = "_MP_";
export const MP_CONFIG_SIGNATURE = "PCMP";
export const MP_SPEC_REV = 4;
export const MP_FLOATING_SIZE = 16;
export const MP_CONFIG_HEADER_SIZE = 44;
/** Bus IDs in the table (as SeaBIOS numbers them: PCI bus 0 first, then ISA). */
export const MP_BUS_PCI = 0;
export const MP_BUS_ISA = 1;

/** Entry types (MP spec table 4-3). */
export const MpEntry = {
  PROCESSOR: 0,
  BUS: 1,
  IOAPIC: 2,
  IO_INTERRUPT: 3,
  LOCAL_INTERRUPT: 4,
} as const;

/** Interrupt types of interrupt entries (MP spec table 4-8). */
export const MpIntType = { INT: 0, NMI: 1, SMI: 2, EXTINT: 3 } as const;

/** Interrupt entry flags: polarity bits 1:0, trigger bits 3:2 (0 = conforms to the bus). */
export const MpIrqFlags = { CONFORMS: 0, PCI_LEVEL_LOW: 0x0f } as const;

export interface MpPciInterrupt {
  device: number;
  /** 1 = INTA# .. 4 = INTD#. */
  pin: number;
  /** The I/O APIC input it reaches. */
  ioApicPin: number;
}

export interface MpTableInfo {
  localApicAddress: number;
  localApicVersion: number;
  ioApicId: number;
  ioApicVersion: number;
  ioApicAddress: number;
  /** CPUID.1:EAX and EDX of the processor. */
  cpuSignature: number;
  cpuFeatures: number;
  /** ISA IRQ -> I/O APIC pin, for the ISA IRQs that exist (IRQ 2, the cascade, has no entry). */
  isaIrqs: readonly { irq: number; ioApicPin: number }[];
  pci: readonly MpPciInterrupt[];
}

/** The configuration table (header and base entries, checksum set). */
export function buildMpConfigTable(info: MpTableInfo): Uint8Array {
  const entries: number[] = [];
  const u16 = (v: number) => [v & 0xff, (v >> 8) & 0xff];
  const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
  let count = 0;
  const add = (bytes: number[]) => {
    entries.push(...bytes);
    count++;
  };
  // processor: APIC ID 0, version, enabled + bootstrap processor
  add([
    MpEntry.PROCESSOR,
    0,
    info.localApicVersion & 0xff,
    0x03,
    ...u32(info.cpuSignature),
    ...u32(info.cpuFeatures),
    ...u32(0),
    ...u32(0),
  ]);
  add([MpEntry.BUS, MP_BUS_PCI, ...ascii("PCI   ")]);
  add([MpEntry.BUS, MP_BUS_ISA, ...ascii("ISA   ")]);
  add([MpEntry.IOAPIC, info.ioApicId & 0xff, info.ioApicVersion & 0xff, 0x01, ...u32(info.ioApicAddress)]);
  for (const p of info.pci) {
    if (p.device < 0 || p.device > 31 || p.pin < 1 || p.pin > 4 || p.ioApicPin < 0 || p.ioApicPin > 255)
      throw new ConfigError(
        `MP table: PCI interrupt device ${p.device} pin ${p.pin} -> ${p.ioApicPin} is not valid`,
      );
    add([
      MpEntry.IO_INTERRUPT,
      MpIntType.INT,
      ...u16(MpIrqFlags.PCI_LEVEL_LOW),
      MP_BUS_PCI,
      (p.device << 2) | (p.pin - 1),
      info.ioApicId & 0xff,
      p.ioApicPin,
    ]);
  }
  for (const { irq, ioApicPin } of info.isaIrqs) {
    add([
      MpEntry.IO_INTERRUPT,
      MpIntType.INT,
      ...u16(MpIrqFlags.CONFORMS),
      MP_BUS_ISA,
      irq,
      info.ioApicId & 0xff,
      ioApicPin,
    ]);
  }
  // LINT0: the 8259's INTR (ExtINT, virtual wire); LINT1: NMI; to every local APIC (0xFF)
  add([MpEntry.LOCAL_INTERRUPT, MpIntType.EXTINT, ...u16(0), MP_BUS_ISA, 0, 0xff, 0]);
  add([MpEntry.LOCAL_INTERRUPT, MpIntType.NMI, ...u16(0), MP_BUS_ISA, 0, 0xff, 1]);

  const t = new Uint8Array(MP_CONFIG_HEADER_SIZE + entries.length);
  const v = new DataView(t.buffer);
  putAscii(t, 0, MP_CONFIG_SIGNATURE, 4);
  v.setUint16(4, t.length, true);
  t[6] = MP_SPEC_REV;
  putAscii(t, 8, "VIRTKIT", 8);
  putAscii(t, 16, "VIRTKIT PC", 12);
  v.setUint16(34, count, true);
  v.setUint32(36, info.localApicAddress >>> 0, true);
  t.set(entries, MP_CONFIG_HEADER_SIZE);
  t[7] = checksumByte(t);
  return t;
}

/** The floating pointer: signature, the configuration table's address, length 1 (16 bytes), rev 1.4, no default configuration, IMCR absent (virtual wire mode). */
export function buildMpFloatingPointer(configAddress: number): Uint8Array {
  const t = new Uint8Array(MP_FLOATING_SIZE);
  putAscii(t, 0, MP_FLOATING_SIGNATURE, 4);
  new DataView(t.buffer).setUint32(4, configAddress >>> 0, true);
  t[8] = 1;
  t[9] = MP_SPEC_REV;
  t[10] = checksumByte(t);
  return t;
}

/** Writes both structures: the floating pointer at `at` (16-byte aligned), the configuration table right after it. Returns the bytes used. */
export function writeMpTable(mem: GuestMemory, at: number, info: MpTableInfo): number {
  if (at % 16 !== 0 || at < 0xf_0000 || at >= 0x10_0000)
    throw new ConfigError(
      `the MP floating pointer must be 16-byte aligned in 0xF0000-0xFFFFF, got 0x${hex(at)}`,
    );
  const config = buildMpConfigTable(info);
  const configAt = at + MP_FLOATING_SIZE;
  if (configAt + config.length > 0x10_0000)
    throw new ConfigError(
      `the MP configuration table (${config.length} bytes) does not fit below 1 MiB at 0x${hex(configAt)}`,
    );
  mem.writeFrom(at, buildMpFloatingPointer(configAt));
  mem.writeFrom(configAt, config);
  return MP_FLOATING_SIZE + config.length;
}

// ---- reading back (tests) ------------------------------------------------------------------

export interface ParsedMpEntry {
  type: number;
  bytes: Uint8Array;
}

export interface ParsedMpTable {
  floating: number;
  config: number;
  localApicAddress: number;
  oemId: string;
  entries: ParsedMpEntry[];
}

const ENTRY_SIZE: Record<number, number> = { 0: 20, 1: 8, 2: 8, 3: 8, 4: 8 };

/** Finds and checks the tables as Linux's smp_scan_config and smp_check_mpc do. */
export function parseMpTable(mem: GuestMemory): ParsedMpTable {
  const fail = (why: string) => new VirtkitError("MPTABLE_INVALID", `MP table invalid: ${why}`);
  let floating = -1;
  for (let a = 0xf_0000; a + MP_FLOATING_SIZE <= Math.min(0x10_0000, mem.size); a += 16) {
    if (mem.readU32(a) !== 0x5f50_4d5f) continue; // "_MP_"
    if (mem.readU8(a + 8) === 1 && byteSum(mem.subarray(a, MP_FLOATING_SIZE)) === 0) {
      floating = a;
      break;
    }
  }
  if (floating < 0) throw fail("no floating pointer in 0xF0000-0xFFFFF");
  const config = mem.readU32(floating + 4);
  if (!mem.inRange(config, MP_CONFIG_HEADER_SIZE))
    throw fail(`configuration table at 0x${hex(config)} outside memory`);
  const length = mem.readU16(config + 4);
  if (!mem.inRange(config, length) || length < MP_CONFIG_HEADER_SIZE) throw fail(`length ${length}`);
  const t = mem.subarray(config, length);
  if (getAscii(t, 0, 4) !== MP_CONFIG_SIGNATURE) throw fail("no PCMP signature");
  if (byteSum(t) !== 0) throw fail("checksum");
  if (t[6] !== 1 && t[6] !== 4) throw fail(`spec revision ${t[6]}`);
  const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
  const localApicAddress = v.getUint32(36, true);
  if (localApicAddress === 0) throw fail("null local APIC address");
  const count = v.getUint16(34, true);
  const entries: ParsedMpEntry[] = [];
  let o = MP_CONFIG_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const size = ENTRY_SIZE[t[o]!];
    if (size === undefined || o + size > length) throw fail(`entry ${i} of type ${t[o]} at +${o}`);
    entries.push({ type: t[o]!, bytes: t.slice(o, o + size) });
    o += size;
  }
  return { floating, config, localApicAddress, oemId: getAscii(t, 8, 8), entries };
}
