import { ConfigError, hex, VirtkitError } from "../../common/errors.js";
import type { GuestMemory } from "../../common/memory.js";
import { PCI_VENDOR_ID_INTEL } from "../../pci/regs.js";
import type { PciBus } from "../pci/bus.js";
import { ISA_BRIDGE_DEVICE } from "../pci/bus.js";
import { PIIX3_ISA_DEVICE_ID, PIIX3_PIRQRC } from "../pci/chipset.js";
import { swizzlePirq } from "../pci/intx-router.js";
import { byteSum, checksumByte, getAscii, putAscii } from "./checksum.js";

/**
 * The PCI IRQ Routing Table ($PIR, Microsoft's "PCI IRQ Routing Table Specification" 1.0), as
 * Linux's arch/x86/pci/irq.c finds it: scanned on 16-byte boundaries in 0xF0000-0xFFFFF,
 * version 1.0, size a multiple of 16, 8-bit sum zero. It names the interrupt router (the
 * PIIX3 at 00:01.0, 8086:7000: Linux picks its PIIX router, whose link values are the
 * PIRQRC register offsets 0x60-0x63) and, per slot, which link each INTx pin is wired to and
 * which IRQs that link may take.
 */
export const PIR_SIGNATURE = "$PIR";
export const PIR_VERSION = 0x0100;
export const PIR_HEADER_SIZE = 32;
export const PIR_SLOT_SIZE = 16;
/** The BIOS area Linux scans for the table. */
export const PIR_SCAN_START = 0xf_0000;
export const PIR_SCAN_END = 0x10_0000;

export interface PirSlot {
  bus: number;
  /** device << 3 | function (function 0 for a slot entry). */
  devfn: number;
  /** Link value for INTA#..INTD# (0 = not connected; for the PIIX3, 0x60-0x63). */
  links: number[];
  /** IRQ bitmap for INTA#..INTD# (bit n = IRQ n may be used). */
  bitmaps: number[];
  /** Physical slot number (0 = on board). */
  slot: number;
}

export interface PirTable {
  routerBus: number;
  routerDevfn: number;
  exclusiveIrqs: number;
  routerVendor: number;
  routerDevice: number;
  miniportData: number;
  slots: PirSlot[];
}

/** IRQs offered for PCI links by default: 5, 9, 10, 11 (plus whatever the routes name). */
export const DEFAULT_PIR_IRQ_BITMAP = (1 << 5) | (1 << 9) | (1 << 10) | (1 << 11);

/**
 * The $PIR contents for `bus`: the PIIX3 router at 00:01.0, and one entry per slot holding a
 * function with an INTx pin, its links following the bus's swizzle (the same function the
 * router uses, so table and wiring agree).
 */
export function pirTableForBus(bus: PciBus, irqBitmap = DEFAULT_PIR_IRQ_BITMAP): PirTable {
  let bitmap = irqBitmap & 0xffff;
  for (let p = 0; p < 4; p++) {
    const irq = bus.isaBridge.routedIrq(p);
    if (irq >= 0) bitmap |= 1 << irq;
  }
  const devices = [
    ...new Set(
      bus
        .functions()
        .filter((s) => s.fn.interruptPin !== 0)
        .map((s) => s.device),
    ),
  ].sort((a, b) => a - b);
  return {
    routerBus: 0,
    routerDevfn: ISA_BRIDGE_DEVICE << 3,
    exclusiveIrqs: 0,
    routerVendor: PCI_VENDOR_ID_INTEL,
    routerDevice: PIIX3_ISA_DEVICE_ID,
    miniportData: 0,
    slots: devices.map((device) => ({
      bus: 0,
      devfn: device << 3,
      links: [1, 2, 3, 4].map((pin) => PIIX3_PIRQRC + swizzlePirq(device, pin)),
      bitmaps: [bitmap, bitmap, bitmap, bitmap],
      slot: device,
    })),
  };
}

/** Serialises a table, checksum included. */
export function encodePirTable(t: PirTable): Uint8Array {
  if (t.slots.length > 255) throw new ConfigError(`$PIR: too many slot entries (${t.slots.length})`);
  const size = PIR_HEADER_SIZE + PIR_SLOT_SIZE * t.slots.length;
  const buf = new Uint8Array(size);
  const v = new DataView(buf.buffer);
  putAscii(buf, 0, PIR_SIGNATURE, 4);
  v.setUint16(4, PIR_VERSION, true);
  v.setUint16(6, size, true);
  buf[8] = t.routerBus;
  buf[9] = t.routerDevfn;
  v.setUint16(10, t.exclusiveIrqs, true);
  v.setUint16(12, t.routerVendor, true);
  v.setUint16(14, t.routerDevice, true);
  v.setUint32(16, t.miniportData >>> 0, true);
  t.slots.forEach((s, i) => {
    const o = PIR_HEADER_SIZE + PIR_SLOT_SIZE * i;
    buf[o] = s.bus;
    buf[o + 1] = s.devfn;
    for (let pin = 0; pin < 4; pin++) {
      buf[o + 2 + 3 * pin] = s.links[pin] ?? 0;
      v.setUint16(o + 3 + 3 * pin, s.bitmaps[pin] ?? 0, true);
    }
    buf[o + 14] = s.slot;
  });
  buf[31] = checksumByte(buf);
  return buf;
}

/** Reads a table back, with the checks Linux's pirq_check_routing_table makes. */
export function decodePirTable(buf: Uint8Array): PirTable {
  const fail = (why: string) => new VirtkitError("PIR_INVALID", `$PIR table invalid: ${why}`);
  if (buf.length < PIR_HEADER_SIZE) throw fail(`only ${buf.length} bytes`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (getAscii(buf, 0, 4) !== PIR_SIGNATURE) throw fail("no $PIR signature");
  if (v.getUint16(4, true) !== PIR_VERSION) throw fail(`version 0x${hex(v.getUint16(4, true))}`);
  const size = v.getUint16(6, true);
  if (size % 16 !== 0 || size < PIR_HEADER_SIZE || size > buf.length) throw fail(`size ${size}`);
  if (byteSum(buf.subarray(0, size)) !== 0) throw fail("checksum");
  const slots: PirSlot[] = [];
  for (let o = PIR_HEADER_SIZE; o < size; o += PIR_SLOT_SIZE) {
    slots.push({
      bus: buf[o]!,
      devfn: buf[o + 1]!,
      links: [0, 1, 2, 3].map((p) => buf[o + 2 + 3 * p]!),
      bitmaps: [0, 1, 2, 3].map((p) => v.getUint16(o + 3 + 3 * p, true)),
      slot: buf[o + 14]!,
    });
  }
  return {
    routerBus: buf[8]!,
    routerDevfn: buf[9]!,
    exclusiveIrqs: v.getUint16(10, true),
    routerVendor: v.getUint16(12, true),
    routerDevice: v.getUint16(14, true),
    miniportData: v.getUint32(16, true),
    slots,
  };
}

/**
 * Finds the table as Linux's pirq_find_routing_table does: the first 16-byte aligned address in
 * 0xF0000-0xFFFFF holding a valid table. Returns its address, or -1.
 */
export function findPirTable(mem: GuestMemory): number {
  for (let a = PIR_SCAN_START; a + PIR_HEADER_SIZE <= Math.min(PIR_SCAN_END, mem.size); a += 16) {
    if (mem.readU32(a) !== 0x5249_5024) continue; // "$PIR"
    const size = mem.readU16(a + 6);
    if (size % 16 !== 0 || size < PIR_HEADER_SIZE || a + size > PIR_SCAN_END) continue;
    if (byteSum(mem.subarray(a, size)) === 0 && mem.readU16(a + 4) === PIR_VERSION) return a;
  }
  return -1;
}
