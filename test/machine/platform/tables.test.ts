import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VirtkitError } from "../../../src/common/errors.js";
import { FlatMemory } from "../../../src/common/memory.js";
import { type BarHandler, PciFunction } from "../../../src/pci/function.js";
import { IoBus } from "../../../src/machine/io-bus.js";
import { MemoryBus } from "../../../src/machine/memory-bus.js";
import { PciBus } from "../../../src/machine/pci/bus.js";
import { assignPciResources } from "../../../src/machine/pci/firmware.js";
import { buildDsdt, buildDsdtAml, findRsdp, parseAcpiTables } from "../../../src/machine/platform/acpi.js";
import * as aml from "../../../src/machine/platform/aml.js";
import { byteSum } from "../../../src/machine/platform/checksum.js";
import {
  decodePirTable,
  encodePirTable,
  findPirTable,
  pirTableForBus,
} from "../../../src/machine/platform/pir.js";
import { ACPI_PM_BASE, S5_SLP_TYP } from "../../../src/machine/platform/pm.js";
import { DEFAULT_PIR_ADDRESS, writePlatformTables } from "../../../src/machine/platform/tables.js";

const nullHandler: BarHandler = { mmioRead: () => 0, mmioWrite: () => {} };

function machineWithDevices(slots: number[]) {
  const memory = new MemoryBus(new FlatMemory(16 << 20));
  const io = new IoBus();
  const bus = new PciBus({ io, memory, irq: { setIrq: () => {} } });
  const fns = slots.map((slot) => {
    const fn = new PciFunction({
      vendorId: 0x1af4,
      deviceId: 0x1040 + slot,
      classCode: 0xff00,
      interruptPin: 1,
    });
    fn.addBar(4, { kind: "mem64", size: 0x4000, handler: nullHandler });
    bus.add(fn, slot);
    return fn;
  });
  assignPciResources(bus);
  return { memory, io, bus, fns };
}

/** Linux 6.1's pcibios_lookup_irq with the PIIX router, against our $PIR and config space. */
function linuxLookupIrq(bus: PciBus, mem: FlatMemory, fn: PciFunction): number {
  const at = findPirTable(mem);
  if (at < 0) return -1;
  const size = mem.readU16(at + 6);
  const rt = decodePirTable(mem.subarray(at, size));
  const slot = bus.slotOf(fn)!;
  // router: rtr_vendor 8086 / rtr_device 7000 at rtr_devfn -> PIIX router
  const router = bus.functionAt(rt.routerDevfn >> 3, rt.routerDevfn & 7);
  if (!router || router.vendorId !== rt.routerVendor || router.deviceId !== 0x7000) return -1;
  const info =
    rt.slots.find((s) => s.bus === 0 && s.devfn === ((slot.device << 3) | slot.func)) ??
    rt.slots.find((s) => s.bus === 0 && s.devfn >> 3 === slot.device);
  if (!info) return -1;
  const pin = fn.configRead(0x3d, 1);
  const pirq = info.links[pin - 1]!;
  if (!pirq) return -1;
  // pirq_piix_get: pci_read_config_byte(router, pirq) ; (x < 16) ? x : 0
  const x = router.configRead(pirq, 1);
  return x < 16 && x !== 0 ? x : -1;
}

describe("$PIR table", () => {
  it("round-trips, sums to zero and names the PIIX3 router", () => {
    const { bus } = machineWithDevices([2, 3, 4, 5, 6, 7]);
    const t = pirTableForBus(bus);
    const bytes = encodePirTable(t);
    expect(bytes.length).toBe(32 + 16 * 6);
    expect(byteSum(bytes)).toBe(0);
    expect(decodePirTable(bytes)).toEqual(t);
    expect([t.routerBus, t.routerDevfn, t.routerVendor, t.routerDevice]).toEqual([0, 0x08, 0x8086, 0x7000]);
    expect(t.slots[0]).toEqual({
      bus: 0,
      devfn: 0x10,
      links: [0x61, 0x62, 0x63, 0x60],
      bitmaps: [0x0e20, 0x0e20, 0x0e20, 0x0e20],
      slot: 2,
    });
  });

  it("gives Linux's PIIX lookup the IRQ each device's INTx really reaches", () => {
    const { bus, memory, fns } = machineWithDevices([2, 3, 4, 5, 6, 7, 8, 31]);
    writePlatformTables(memory.ram, { bus });
    expect(findPirTable(memory.ram)).toBe(DEFAULT_PIR_ADDRESS);
    for (const fn of fns) {
      const irq = linuxLookupIrq(bus, memory.ram, fn);
      expect(irq).toBe(bus.irqOf(fn));
      expect(irq).toBe(fn.interruptLine);
      expect([10, 11]).toContain(irq);
    }
    // after the guest changes a route, the table still leads to the wired IRQ
    bus.configWrite(1, 0, 0x61, 1, 5);
    for (const fn of fns) expect(linuxLookupIrq(bus, memory.ram, fn)).toBe(bus.irqOf(fn));
  });

  it("refuses a corrupted table", () => {
    const { bus, memory } = machineWithDevices([2]);
    const bytes = encodePirTable(pirTableForBus(bus));
    const bad = bytes.slice();
    bad[40]! ^= 1;
    expect(() => decodePirTable(bad)).toThrow(/checksum/);
    expect(() => decodePirTable(bytes.subarray(0, 20))).toThrow(VirtkitError);
    memory.ram.writeFrom(0xf0200, bad);
    expect(findPirTable(memory.ram)).toBe(-1);
  });
});

describe("AML encoder", () => {
  it("encodes PkgLength at every size boundary", () => {
    expect(Array.from(aml.pkgLength(0))).toEqual([0x01]);
    expect(Array.from(aml.pkgLength(62))).toEqual([0x3f]);
    expect(Array.from(aml.pkgLength(63))).toEqual([0x41, 0x04]); // 65 = 0x41
    expect(Array.from(aml.pkgLength(0xffd))).toEqual([0x4f, 0xff]);
    expect(Array.from(aml.pkgLength(0xffe))).toEqual([0x80 | 0x01, 0x00, 0x01]); // 0x1001
  });

  it("encodes names, integers and EISA IDs", () => {
    expect(Array.from(aml.nameString("\\_SB.PCI0"))).toEqual([
      0x5c, 0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30,
    ]);
    expect(Array.from(aml.nameString("A.B.C"))).toEqual([
      0x2f, 3, 65, 95, 95, 95, 66, 95, 95, 95, 67, 95, 95, 95,
    ]);
    expect(Array.from(aml.integer(0))).toEqual([0x00]);
    expect(Array.from(aml.integer(1))).toEqual([0x01]);
    expect(Array.from(aml.integer(10))).toEqual([0x0a, 10]);
    expect(Array.from(aml.integer(0x1234))).toEqual([0x0b, 0x34, 0x12]);
    expect(Array.from(aml.integer(0x0002ffff))).toEqual([0x0c, 0xff, 0xff, 0x02, 0x00]);
    expect(Array.from(aml.eisaId("PNP0A03"))).toEqual([0x0c, 0x41, 0xd0, 0x0a, 0x03]);
    expect(() => aml.nameSeg("1ABC")).toThrow(/not valid/);
    expect(() => aml.integer(-1)).toThrow(/out of range/);
  });

  it("hand-assembled \\_S5 matches the encoder", () => {
    const bytes = buildDsdtAml();
    expect(Array.from(bytes)).toEqual([
      0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00,
    ]);
    expect(S5_SLP_TYP).toBe(5);
  });
});

describe("ACPI tables", () => {
  it("are found from the RSDP, with every checksum right, and point at the PM block", () => {
    const { bus, memory } = machineWithDevices([2, 3]);
    const out = writePlatformTables(memory.ram, { bus });
    expect(findRsdp(memory.ram)).toBe(out.acpi!.rsdp);
    const p = parseAcpiTables(memory.ram);
    expect(p.tables.map((t) => t.signature)).toEqual(["FACP", "FACS", "DSDT"]);
    expect(p.tables[0]).toMatchObject({ length: 116, revision: 1, oemId: "VIRTKT" });
    expect(p.fadt).toMatchObject({
      sciIrq: 9,
      smiCmd: 0,
      pm1aEvt: ACPI_PM_BASE,
      pm1aCnt: ACPI_PM_BASE + 4,
      pm1EvtLen: 4,
      pm1CntLen: 2,
      pmTmr: 0,
    });
    expect(p.fadt.facs % 64).toBe(0);
    // the DSDT starts with \_S5 and describes PCI0
    expect(Array.from(p.dsdtAml.subarray(0, 15))).toEqual(Array.from(buildDsdtAml()));
    const text = String.fromCharCode(...p.dsdtAml);
    expect(text).toContain("PCI0");
    expect(text).toContain("_PRT");
    // all of it in the reserved BIOS area
    for (const t of p.tables) expect(t.address >= 0xe0000 && t.address + t.length <= 0x100000).toBe(true);
  });

  it("detects a broken checksum", () => {
    const { bus, memory } = machineWithDevices([2]);
    const out = writePlatformTables(memory.ram, { bus });
    const at = out.acpi!.dsdt + 40;
    memory.ram.writeU8(at, memory.ram.readU8(at) ^ 0xff);
    expect(() => parseAcpiTables(memory.ram)).toThrow(/DSDT checksum/);
  });

  it("can leave ACPI out", () => {
    const { bus, memory } = machineWithDevices([2]);
    const out = writePlatformTables(memory.ram, { bus, acpi: false });
    expect(out.acpi).toBeUndefined();
    expect(findRsdp(memory.ram)).toBe(-1);
    expect(findPirTable(memory.ram)).toBe(out.pir);
  });

  const iasl = (() => {
    try {
      execFileSync("iasl", ["-v"], { stdio: "pipe" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!iasl)(
    "the DSDT disassembles with ACPICA's iasl and recompiles to the same AML (skipped without acpica-tools)",
    () => {
      const { bus } = machineWithDevices([2, 3, 4]);
      const dir = mkdtempSync(join(tmpdir(), "virtkit-dsdt-"));
      try {
        const dsdt = buildDsdt({
          pci: {
            routes: [
              { device: 2, pin: 1, irq: 10 },
              { device: 3, pin: 1, irq: 11 },
            ],
            mmioBase: 0xe000_0000,
            mmioEnd: 0xfec0_0000,
          },
        });
        writeFileSync(join(dir, "dsdt.dat"), dsdt);
        const log = execFileSync("iasl", ["-d", "dsdt.dat"], { cwd: dir, stdio: "pipe" }).toString();
        expect(log).not.toMatch(/error/i);
        // iasl annotates predefined names with // comments; drop them before matching
        const dsl = readFileSync(join(dir, "dsdt.dsl"), "utf8").replace(/\/\/[^\n]*/g, "");
        expect(dsl).toMatch(/Name \(\\_S5, Package \(0x04\)\s*\{\s*0x05,\s*0x05,\s*Zero,\s*Zero\s*\}\)/);
        expect(dsl).toMatch(/Name \(_HID, EisaId \("PNP0A03"\)/);
        expect(dsl).toMatch(
          /WordBusNumber \(ResourceProducer, MinFixed, MaxFixed, PosDecode,\s*0x0000,\s*0x0000,\s*0x00FF/,
        );
        expect(dsl).toMatch(
          /DWordMemory \(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,\s*0x00000000,\s*0xE0000000,\s*0xFEBFFFFF/,
        );
        expect(dsl).toMatch(/Package \(0x04\)\s*\{\s*0x0002FFFF,\s*Zero,\s*Zero,\s*0x0A\s*\}/);
        // compiled back without optimizations, iasl produces exactly our AML
        const out = execFileSync("iasl", ["-oa", "-tc", "dsdt.dsl"], { cwd: dir, stdio: "pipe" }).toString();
        expect(out).toMatch(/0 Errors, 0 Warnings/);
        const compiled = readFileSync(join(dir, "dsdt.aml"));
        expect(Buffer.from(compiled.subarray(36)).equals(Buffer.from(dsdt.subarray(36)))).toBe(true);
        expect(bus.functions()).toHaveLength(5);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
  const acpiexec = (() => {
    try {
      execFileSync("acpiexec", ["-v"], { stdio: "pipe" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!acpiexec)(
    "ACPICA's interpreter loads the DSDT and evaluates \\_S5, _PRT and _CRS (skipped without acpica-tools)",
    () => {
      const { bus, memory } = machineWithDevices([2, 3]);
      const out = writePlatformTables(memory.ram, { bus });
      const dir = mkdtempSync(join(tmpdir(), "virtkit-acpiexec-"));
      try {
        const dsdt = memory.ram.subarray(out.acpi!.dsdt, memory.ram.readU32(out.acpi!.dsdt + 4));
        writeFileSync(join(dir, "dsdt.dat"), dsdt);
        const log = execFileSync(
          "acpiexec",
          [
            "-b",
            "evaluate \\_S5; evaluate \\_SB.PCI0._PRT; evaluate \\_SB.PCI0._CRS; evaluate \\_SB.PCI0._HID",
            "dsdt.dat",
          ],
          { cwd: dir, stdio: "pipe", timeout: 20_000 },
        ).toString();
        expect(log).not.toMatch(/error|exception/i);
        expect(log).toMatch(/1 ACPI AML tables successfully acquired and loaded/);
        expect(log).toMatch(
          /Evaluation of \\_S5 returned[^\n]*\n\s*\[Package\] Contains 4 Elements:\s*\[Integer\] = 0+5\s*\[Integer\] = 0+5/,
        );
        // slots 1-31, four pins each, all routed by the default PIRQ routes
        expect(log).toMatch(
          /Evaluation of \\_SB.PCI0._PRT returned[^\n]*\n\s*\[Package\] Contains 124 Elements/,
        );
        expect(log).toMatch(
          /\[Integer\] = 000000000002FFFF\s*\[Integer\] = 0+\s*\[Integer\] = 0+\s*\[Integer\] = 0+A/,
        );
        expect(log).toMatch(/\[Integer\] = 00000000030AD041/);
        expect(log).toMatch(/No outstanding allocations/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
