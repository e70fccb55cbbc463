import { describe, expect, it } from "vitest";
import { VirtioRng } from "../../devices/rng/rng.js";
import { VirtioNet } from "../../devices/net/net.js";
import { NetSwitch } from "../../devices/net/switch.js";
import { Feature, Msr } from "../../cpu/cpuid.js";
import { fakeBzImage } from "../boot/fake-bzimage.js";
import { Machine, type MachineConfig } from "../machine.js";
import { parseAcpiTables, readAcpiTable } from "../platform/acpi.js";
import { MpEntry, parseMpTable } from "../platform/mptable.js";
import { IOAPIC_DEFAULT_BASE, IOREGSEL, IOWIN, Redir } from "./io-apic.js";
import { ApicReg, LAPIC_DEFAULT_BASE } from "./local-apic.js";

function machine(extra: Partial<MachineConfig> = {}): Machine {
  const hub = new NetSwitch();
  return new Machine({
    memory: 64 << 20,
    kernel: fakeBzImage({ code: Uint8Array.of(0xf4) }),
    cmdline: "console=ttyS0",
    clock: "virtual",
    devices: [new VirtioRng(), new VirtioNet({ backend: hub.port("guest") })],
    ...extra,
  });
}

describe("a machine with an APIC", () => {
  it("is the default: CPUID has the APIC bit, IA32_APIC_BASE reads 0xFEE00900, both pages decode", () => {
    const m = machine();
    expect(m.apic).not.toBeNull();
    expect(m.interrupts).toBe(m.apic!.lapic);
    expect(m.cpu.cpuid.features & Feature.APIC).toBe(Feature.APIC);
    const out = new Uint32Array(2);
    expect(m.cpu.cpuid.readMsr(Msr.APIC_BASE, out)).toBe(true);
    expect([...out]).toEqual([0xfee0_0900, 0]);
    expect(m.memory.read(LAPIC_DEFAULT_BASE + ApicReg.VERSION, 4)).toBe(0x50014);
    m.memory.write(IOAPIC_DEFAULT_BASE + IOREGSEL, 4, 1);
    expect(m.memory.read(IOAPIC_DEFAULT_BASE + IOWIN, 4)).toBe(0x170011);
  });

  it("gives virtio functions queue count + 1 MSI-X vectors aimed at the local APIC", () => {
    const m = machine();
    expect(m.transports.map((t) => t.msix?.vectors)).toEqual([2, 4]); // rng: 1 queue; net: rx, tx and control
  });

  it("writes an MP table and a MADT describing the same wiring", () => {
    const m = machine();
    const mp = parseMpTable(m.ram);
    expect(mp.localApicAddress).toBe(LAPIC_DEFAULT_BASE);
    const of = (t: number) => mp.entries.filter((e) => e.type === t).map((e) => [...e.bytes]);
    expect(of(MpEntry.PROCESSOR)).toHaveLength(1);
    expect(of(MpEntry.PROCESSOR)[0]!.slice(0, 4)).toEqual([0, 0, 0x14, 3]);
    expect(of(MpEntry.IOAPIC)).toEqual([[2, 0, 0x11, 1, 0x00, 0x00, 0xc0, 0xfe]]);
    const ints = of(MpEntry.IO_INTERRUPT);
    // ISA (bus 1): IRQ 0 on pin 2, IRQ 4 on pin 4; no IRQ 2; none for the PCI IRQs 10 and 11
    expect(ints).toContainEqual([3, 0, 0, 0, 1, 0, 0, 2]);
    expect(ints).toContainEqual([3, 0, 0, 0, 1, 4, 0, 4]);
    expect(ints.some((e) => e[4] === 1 && (e[5] === 2 || e[5] === 10 || e[5] === 11))).toBe(false);
    // PCI (bus 0): each slot's INTA-D, level/active low, on the pin of its routed IRQ
    for (const t of m.transports) {
      const slot = m.pci.functions().find((s) => s.fn === t)!.device;
      const irq = m.pci.irqOf(t);
      expect(ints).toContainEqual([3, 0, 0x0f, 0, 0, slot << 2, 0, irq]);
    }
    expect(of(MpEntry.LOCAL_INTERRUPT)).toEqual([
      [4, 3, 0, 0, 1, 0, 0xff, 0],
      [4, 1, 0, 0, 1, 0, 0xff, 1],
    ]);
    const acpi = parseAcpiTables(m.ram);
    const madtAt = acpi.tables.find((t) => t.signature === "APIC")!.address;
    const madt = readAcpiTable(m.ram, madtAt, "APIC");
    const v = new DataView(madt.buffer, madt.byteOffset, madt.byteLength);
    expect(v.getUint32(36, true)).toBe(LAPIC_DEFAULT_BASE);
    expect(v.getUint32(40, true)).toBe(1); // PCAT_COMPAT
    expect([...madt.subarray(44)]).toEqual([
      ...[0, 8, 0, 0, 1, 0, 0, 0],
      ...[1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0],
      ...[2, 10, 0, 0, 2, 0, 0, 0, 0, 0],
      ...[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0],
      ...[4, 6, 0xff, 0, 0, 1],
    ]);
  });

  it("fans ISA IRQs out to the I/O APIC (IRQ 0 on pin 2) and the local APIC takes them", () => {
    const m = machine();
    const ioreg = (i: number, val: number) => {
      m.memory.write(IOAPIC_DEFAULT_BASE + IOREGSEL, 4, i);
      m.memory.write(IOAPIC_DEFAULT_BASE + IOWIN, 4, val);
    };
    ioreg(0x10 + 2 * 4, 0x34);
    m.chipset.isaIrqs.setIrq(4, true);
    expect(m.interrupts.hasInterrupt()).toBe(true);
    expect(m.interrupts.acknowledge()).toBe(0x34);
    m.chipset.isaIrqs.setIrq(4, false);
    m.memory.write(LAPIC_DEFAULT_BASE + ApicReg.EOI, 4, 0);
    // the 8259 saw the same edge (its IRR latches it; its mask decides whether it goes on)
    expect(m.pic.registers().irr & (1 << 4)).toBe(1 << 4);
    ioreg(0x10 + 2 * 2, Redir.LEVEL | 0x30);
    m.chipset.isaIrqs.setIrq(0, true);
    expect(m.apic!.ioapic.entry(2)[0] & Redir.REMOTE_IRR).toBe(Redir.REMOTE_IRR);
    expect(m.interrupts.acknowledge()).toBe(0x30);
  });
});

describe("a machine without an APIC", () => {
  it("has the PIC as its interrupt controller, no APIC bit or MSR, INTx only, no MP table", () => {
    const m = machine({ apic: false });
    expect(m.apic).toBeNull();
    expect(m.interrupts).toBe(m.pic);
    expect(m.cpu.cpuid.features & Feature.APIC).toBe(0);
    expect(m.cpu.cpuid.readMsr(Msr.APIC_BASE, new Uint32Array(2))).toBe(false);
    expect(m.transports.every((t) => t.msix === null)).toBe(true);
    expect(m.memory.read(LAPIC_DEFAULT_BASE + ApicReg.VERSION, 4)).toBe(0xffff_ffff);
    expect(() => parseMpTable(m.ram)).toThrow(/no floating pointer/);
    expect(parseAcpiTables(m.ram).tables.some((t) => t.signature === "APIC")).toBe(false);
  });
});
