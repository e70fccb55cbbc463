import { describe, expect, it } from "vitest";
import { FlatMemory } from "../../common/memory.js";
import { PciFunction } from "../../pci/function.js";
import { Pic } from "../chipset/pic.js";
import { IoBus } from "../io-bus.js";
import { MemoryBus } from "../memory-bus.js";
import { PciBus } from "./bus.js";
import { assignPciResources } from "./firmware.js";

describe("PCI INTx through the PIIX3 routes into the 8259 pair", () => {
  it("delivers a shared level-triggered interrupt as Linux sets it up", () => {
    const io = new IoBus();
    const pic = new Pic();
    pic.register(io);
    const bus = new PciBus({ io, memory: new MemoryBus(new FlatMemory(1 << 20)), irq: pic });
    const fns = [2, 5].map((slot) => {
      const fn = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1044, classCode: 0xff00, interruptPin: 1 });
      bus.add(fn, slot);
      return fn;
    });
    assignPciResources(bus);
    // slot 2 INTA -> PIRQB and slot 5 INTA -> PIRQA: both on IRQ 10
    expect(fns.map((f) => f.interruptLine)).toEqual([10, 10]);
    // init_8259A: ICW1-4, vectors 0x30/0x38, then unmask everything
    for (const [port, v] of [
      [0x20, 0x11],
      [0x21, 0x30],
      [0x21, 0x04],
      [0x21, 0x01],
      [0xa0, 0x11],
      [0xa1, 0x38],
      [0xa1, 0x02],
      [0xa1, 0x01],
      [0x21, 0x00],
      [0xa1, 0x00],
    ] as const) {
      io.write(port, 1, v);
    }
    // elcr_set_level_irq(10) for each routed IRQ, as the BIOS (routedIrqMask) or Linux does
    io.write(0x4d1, 1, io.read(0x4d1, 1) | (bus.routedIrqMask() >> 8));
    expect(io.read(0x4d1, 1) & 0x04).toBe(0x04);

    fns[0]!.setIntx(true);
    fns[1]!.setIntx(true);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x3a);
    // EOI to slave and master while the line is still high: level-triggered, it comes back
    io.write(0xa0, 1, 0x20);
    io.write(0x20, 1, 0x20);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x3a);
    io.write(0xa0, 1, 0x20);
    io.write(0x20, 1, 0x20);
    // one device done: the other still holds the shared line
    fns[0]!.setIntx(false);
    expect(pic.hasInterrupt()).toBe(true);
    fns[1]!.setIntx(false);
    expect(pic.hasInterrupt()).toBe(false);
  });
});
