import { describe, expect, it } from "vitest";
import { FlatMemory } from "../../common/memory.js";
import { PciFunction } from "../../pci/function.js";
import { Pic } from "../chipset/pic.js";
import { IoBus } from "../io-bus.js";
import { MemoryBus } from "../memory-bus.js";
import { parseAcpiTables } from "./acpi.js";
import { formatE820 } from "./e820.js";
import { findPirTable } from "./pir.js";
import { PcPlatform } from "./pc.js";

function setup() {
  const io = new IoBus();
  const memory = new MemoryBus(new FlatMemory(64 << 20));
  const pic = new Pic();
  pic.register(io);
  const events: string[] = [];
  const pc = new PcPlatform({
    io,
    memory,
    irq: pic,
    onPowerOff: () => events.push("poweroff"),
    onReset: (hard) => events.push(hard ? "hard reset" : "soft reset"),
  });
  const fn = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1044, classCode: 0xff00, interruptPin: 1 });
  fn.addBar(4, {
    kind: "mem64",
    size: 0x4000,
    prefetchable: true,
    handler: { mmioRead: () => 7, mmioWrite: () => {} },
  });
  pc.bus.add(fn, 2);
  return { io, memory, pc, fn, events };
}

describe("PcPlatform firmware step", () => {
  it("leaves the machine as a BIOS would for Linux", () => {
    const { io, memory, pc, fn } = setup();
    const fw = pc.firmware();
    expect(fw.e820.map(formatE820)[2]).toBe("BIOS-e820: [mem 0x0000000000100000-0x0000000003ffffff] usable");
    expect(fw.bars.map((b) => b.address)).toEqual([0xe000_0000]);
    expect(memory.read(0xe000_0000, 4)).toBe(7);
    expect(fn.interruptLine).toBe(10);
    expect(fw.levelIrqs).toEqual([10, 11]);
    expect(io.read(0x4d1, 1)).toBe(0x0c);
    expect(findPirTable(memory.ram)).toBe(fw.tables.pir);
    expect(parseAcpiTables(memory.ram).rsdp).toBe(fw.tables.acpi!.rsdp);
  });

  it("powers off the way Linux's acpi_power_off does, from what the tables say", () => {
    const { io, memory, pc, events } = setup();
    pc.firmware();
    const acpi = parseAcpiTables(memory.ram);
    // \_S5 is the first term of the DSDT: Name(\_S5, Package(4) {BytePrefix n, ...})
    const a = acpi.dsdtAml;
    expect(Array.from(a.subarray(0, 9))).toEqual([0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04]);
    const slpTypA = a[9] === 0x0a ? a[10]! : a[9]!;
    const cntPort = acpi.fadt.pm1aCnt;
    const cnt = io.read(cntPort, 2) & ~0x3c00;
    io.write(cntPort, 2, cnt | (slpTypA << 10));
    expect(events).toEqual([]);
    io.write(cntPort, 2, cnt | (slpTypA << 10) | 0x2000);
    expect(events).toEqual(["poweroff"]);
  });

  it("resets through 0xCF9 and comes back after reset + firmware", () => {
    const { io, memory, pc, fn, events } = setup();
    pc.firmware();
    io.write(0xcf9, 1, 0x0e);
    expect(events).toEqual(["hard reset"]);
    pc.reset();
    expect(memory.mmioRanges()).toHaveLength(0);
    expect(fn.command).toBe(0);
    pc.firmware();
    expect(memory.read(0xe000_0000, 4)).toBe(7);
  });
});
