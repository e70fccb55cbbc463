import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { FlatMemory } from "../../common/memory.js";
import { type BarHandler, PciFunction } from "../../pci/function.js";
import {
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
} from "../../pci/regs.js";
import { IoBus } from "../io-bus.js";
import type { IrqSink } from "../irq.js";
import { MemoryBus } from "../memory-bus.js";
import { PciBus } from "./bus.js";
import { assignPciResources } from "./firmware.js";
import { swizzlePirq } from "./intx-router.js";

class RecordingSink implements IrqSink {
  readonly levels = new Array<boolean>(16).fill(false);
  readonly events: [number, boolean][] = [];
  setIrq(irq: number, level: boolean): void {
    this.levels[irq] = level;
    this.events.push([irq, level]);
  }
}

/** A BAR handler that remembers the accesses it sees. */
class Regs implements BarHandler {
  readonly seen: string[] = [];
  mmioRead(offset: number, size: 1 | 2 | 4): number {
    this.seen.push(`r${size}@${offset}`);
    return 0x1234_5678 >>> 0;
  }
  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.seen.push(`w${size}@${offset}=${value.toString(16)}`);
  }
}

function makeDevice(name: string, pin = 1): { fn: PciFunction; io: Regs; mem: Regs } {
  const fn = new PciFunction({
    vendorId: 0x1af4,
    deviceId: 0x1044,
    classCode: 0x00ff00,
    interruptPin: pin,
    name,
  });
  const io = new Regs();
  const mem = new Regs();
  fn.addBar(0, { kind: "io", size: 0x40, handler: io, name: "io" });
  fn.addBar(4, { kind: "mem64", size: 0x4000, prefetchable: true, handler: mem, name: "mem" });
  return { fn, io, mem };
}

function makeMachine(ramSize = 16 << 20) {
  const io = new IoBus();
  const memory = new MemoryBus(new FlatMemory(ramSize));
  const sink = new RecordingSink();
  const resets: boolean[] = [];
  const logs: string[] = [];
  const bus = new PciBus({
    io,
    memory,
    irq: sink,
    onReset: (hard) => resets.push(hard),
    log: (m) => logs.push(m),
  });
  return { io, memory, sink, bus, resets, logs };
}

/** Configuration read through ports 0xCF8/0xCFC as Linux's pci_conf1_read does it. */
function conf1Read(io: IoBus, dev: number, fn: number, reg: number, size: 1 | 2 | 4): number {
  io.write(0xcf8, 4, (0x8000_0000 | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
  return io.read(0xcfc + (reg & 3), size);
}

function conf1Write(io: IoBus, dev: number, fn: number, reg: number, size: 1 | 2 | 4, value: number): void {
  io.write(0xcf8, 4, (0x8000_0000 | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
  io.write(0xcfc + (reg & 3), size, value);
}

describe("configuration mechanism #1", () => {
  it("passes Linux's pci_check_type1 and enumerates bus 0", () => {
    const { io, bus } = makeMachine();
    bus.add(makeDevice("rng").fn, 2);
    // pci_check_type1: outb(0x01, 0xCFB); tmp = inl(0xCF8); outl(0x80000000, 0xCF8); inl(0xCF8) == 0x80000000
    io.write(0xcfb, 1, 0x01);
    const tmp = io.read(0xcf8, 4);
    io.write(0xcf8, 4, 0x8000_0000);
    expect(io.read(0xcf8, 4)).toBe(0x8000_0000);
    io.write(0xcf8, 4, tmp);
    const found: string[] = [];
    for (let dev = 0; dev < 32; dev++) {
      const id = conf1Read(io, dev, 0, 0, 4);
      if (id !== 0xffff_ffff)
        found.push(`${dev}:${id.toString(16)}:${conf1Read(io, dev, 0, 8, 4).toString(16)}`);
    }
    expect(found).toEqual(["0:12378086:6000002", "1:70008086:6010000", "2:10441af4:ff0000"]);
    expect(bus.strayAccesses).toBe(1);
  });

  it("adds the low port bits to the register and supports every width", () => {
    const { io, bus } = makeMachine();
    bus.add(makeDevice("d").fn, 3);
    expect(conf1Read(io, 3, 0, 0, 1)).toBe(0xf4);
    expect(conf1Read(io, 3, 0, 1, 1)).toBe(0x1a);
    expect(conf1Read(io, 3, 0, 2, 2)).toBe(0x1044);
    expect(conf1Read(io, 3, 0, 3, 1)).toBe(0x10);
    conf1Write(io, 3, 0, PCI_INTERRUPT_LINE, 1, 9);
    expect(bus.functionAt(3)!.interruptLine).toBe(9);
  });

  it("reads all ones for absent functions, other buses and with the enable bit clear", () => {
    const { io, bus } = makeMachine();
    bus.add(makeDevice("d").fn, 3);
    expect(conf1Read(io, 4, 0, 0, 4)).toBe(0xffff_ffff);
    expect(conf1Read(io, 3, 1, 0, 2)).toBe(0xffff);
    io.write(0xcf8, 4, 0x8001_1800); // bus 1, device 3
    expect(io.read(0xcfc, 4)).toBe(0xffff_ffff);
    io.write(0xcf8, 4, 0x0000_1800); // enable bit clear
    expect(io.read(0xcfc, 4)).toBe(0xffff_ffff);
    io.write(0xcfc, 4, 0); // ignored
    expect(bus.functionAt(3)!.vendorId).toBe(0x1af4);
  });

  it("treats a byte write to 0xCF9 as the PIIX3 reset control register", () => {
    const { io, resets } = makeMachine();
    // Linux's BOOT_CF9: cf9 = inb(0xcf9) & ~6; outb(cf9|2); outb(cf9|6)
    const cf9 = io.read(0xcf9, 1) & ~6;
    io.write(0xcf9, 1, cf9 | 2);
    expect(resets).toEqual([]);
    expect(io.read(0xcf9, 1)).toBe(2);
    io.write(0xcf9, 1, cf9 | 6);
    expect(resets).toEqual([true]);
    io.write(0xcf9, 1, 0x04);
    expect(resets).toEqual([true, false]);
    // the dword at 0xCF8 is still CONFIG_ADDRESS
    io.write(0xcf8, 4, 0x8000_0800);
    expect(io.read(0xcf8, 4)).toBe(0x8000_0800);
    expect(io.read(0xcfc, 2)).toBe(0x8086);
  });

  it("survives any port traffic on 0xCF8-0xCFF and still works afterwards (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            port: fc.integer({ min: 0xcf8, max: 0xcff }),
            size: fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>,
            write: fc.boolean(),
            value: fc.oneof(
              fc.integer({ min: 0, max: 0xffff_ffff }),
              fc.constantFrom(0x8000_0000, 0x8000_1010, 0x8000_0860),
            ),
          }),
          { maxLength: 80 },
        ),
        (ops) => {
          const { io, bus, resets } = makeMachine(1 << 20);
          bus.add(makeDevice("d").fn, 2);
          for (const op of ops) {
            if (op.write) io.write(op.port, op.size, op.value);
            else {
              const v = io.read(op.port, op.size);
              expect(v >= 0 && v <= 0xffff_ffff).toBe(true);
            }
          }
          // whatever happened (resets included), the identity registers are intact and reachable
          expect(resets.every((r) => typeof r === "boolean")).toBe(true);
          expect(conf1Read(io, 0, 0, 0, 4)).toBe(0x1237_8086);
          expect(conf1Read(io, 2, 0, 0, 4)).toBe(0x1044_1af4);
          expect(conf1Read(io, 1, 0, 0x0a, 2)).toBe(0x0601);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("sets the multi-function bit of function 0 when a slot holds several functions", () => {
    const { io, bus } = makeMachine();
    bus.add(makeDevice("f0").fn, 5, 0);
    expect(conf1Read(io, 5, 0, PCI_HEADER_TYPE, 1)).toBe(0);
    bus.add(makeDevice("f1", 2).fn, 5, 1);
    expect(conf1Read(io, 5, 0, PCI_HEADER_TYPE, 1)).toBe(0x80);
    expect(() => bus.add(makeDevice("again").fn, 5, 1)).toThrow(ConfigError);
    expect(() => bus.add(makeDevice("bad").fn, 32)).toThrow(ConfigError);
  });
});

describe("BAR placement and moves", () => {
  it("assigns BARs like firmware and maps them on the buses", () => {
    const { io, memory, bus, sink } = makeMachine();
    const a = makeDevice("a");
    const b = makeDevice("b");
    bus.add(a.fn, 2);
    bus.add(b.fn, 3);
    const placed = assignPciResources(bus);
    expect(placed.map((p) => [p.device, p.bar.name, p.address])).toEqual([
      [2, "io", 0xc000],
      [2, "mem", 0xe000_0000],
      [3, "io", 0xc040],
      [3, "mem", 0xe000_4000],
    ]);
    expect(a.fn.command & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)).toBe(3);
    expect(io.owner(0xc000)).toMatch(/a io/);
    expect(io.owner(0xc07f)).toMatch(/b io/);
    expect(memory.mmioRanges().map((r) => [r.base, r.length])).toEqual([
      [0xe000_0000, 0x4000],
      [0xe000_4000, 0x4000],
    ]);
    // the handler sees offsets from the BAR base, for ports and memory
    io.write(0xc042, 2, 0xbeef);
    expect(b.io.seen).toEqual(["w2@2=beef"]);
    expect(memory.read(0xe000_4010, 4)).toBe(0x1234_5678);
    expect(b.mem.seen).toEqual(["r4@16"]);
    // Interrupt Line: slot 2 INTA -> PIRQB -> 10; slot 3 INTA -> PIRQC -> 11
    expect(conf1Read(io, 2, 0, PCI_INTERRUPT_LINE, 1)).toBe(10);
    expect(conf1Read(io, 3, 0, PCI_INTERRUPT_LINE, 1)).toBe(11);
    expect(sink.events).toEqual([]);
  });

  it("moves the range when the guest reprograms a BAR or toggles decode", () => {
    const { io, memory, bus } = makeMachine();
    const a = makeDevice("a");
    bus.add(a.fn, 2);
    assignPciResources(bus);
    // Linux sizing: decode off, write ones, read, restore, decode on
    conf1Write(io, 2, 0, PCI_COMMAND, 2, 0);
    expect(memory.mmioRanges()).toHaveLength(0);
    expect(io.owner(0xc000)).toBeUndefined();
    conf1Write(io, 2, 0, PCI_BASE_ADDRESS_0 + 16, 4, 0xffff_ffff);
    expect(conf1Read(io, 2, 0, PCI_BASE_ADDRESS_0 + 16, 4)).toBe(0xffff_c00c);
    conf1Write(io, 2, 0, PCI_BASE_ADDRESS_0 + 16, 4, 0xfebf_0000);
    conf1Write(io, 2, 0, PCI_BASE_ADDRESS_0, 4, 0xd000);
    conf1Write(io, 2, 0, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    expect(memory.mmioRanges().map((r) => r.base)).toEqual([0xfebf_0000]);
    expect(io.owner(0xd000)).toMatch(/a io/);
    expect(io.owner(0xc000)).toBeUndefined();
    // a move while decoding
    conf1Write(io, 2, 0, PCI_BASE_ADDRESS_0 + 16, 4, 0xfebe_c000);
    expect(memory.mmioRanges().map((r) => r.base)).toEqual([0xfebe_c000]);
    expect(memory.read(0xfebf_0000, 4)).toBe(0xffff_ffff);
    expect(bus.barConflicts).toBe(0);
  });

  it("leaves a BAR moved onto another range unmapped, counts it, and maps it once freed", () => {
    const { io, memory, bus, logs } = makeMachine();
    const a = makeDevice("a");
    const b = makeDevice("b");
    bus.add(a.fn, 2);
    bus.add(b.fn, 3);
    assignPciResources(bus);
    const aMem = a.fn.bar(4)!;
    conf1Write(io, 2, 0, PCI_BASE_ADDRESS_0 + 16, 4, 0xe000_4000); // onto b's BAR
    expect(bus.barConflicts).toBe(1);
    expect(logs[0]).toMatch(/00:02\.0 a mem not mapped at 0xe0004000: .*overlaps b mem/);
    expect(bus.mappedAddress(aMem)).toBeNull();
    expect(memory.read(0xe000_4000, 4)).toBe(0x1234_5678);
    expect(b.mem.seen).toHaveLength(1);
    // b moves away: a takes its place
    conf1Write(io, 3, 0, PCI_BASE_ADDRESS_0 + 16, 4, 0xe001_0000);
    expect(bus.mappedAddress(aMem)).toBe(0xe000_4000);
    expect(
      memory
        .mmioRanges()
        .map((r) => r.base)
        .sort(),
    ).toEqual([0xe000_4000, 0xe001_0000]);
    // an I/O BAR onto the conf1 ports, a memory BAR inside RAM
    conf1Write(io, 2, 0, PCI_BASE_ADDRESS_0, 4, 0x0cc0);
    expect(bus.barConflicts).toBe(2);
    expect(io.owner(0xcf8)).toMatch(/CONFIG_ADDRESS/);
    conf1Write(io, 3, 0, PCI_BASE_ADDRESS_0 + 16, 4, 0x0010_0000);
    expect(bus.barConflicts).toBe(3);
    expect(logs[2]).toMatch(/overlaps RAM/);
    expect(memory.read(0x0010_0000, 4)).toBe(0);
    // a guest that keeps at it is counted, not logged forever
    for (let i = 0; i < 40; i++)
      conf1Write(io, 3, 0, PCI_BASE_ADDRESS_0 + 16, 4, i % 2 ? 0x0020_0000 : 0x0030_0000);
    expect(bus.barConflicts).toBe(43);
    expect(logs).toHaveLength(17);
    expect(logs[16]).toMatch(/counted, not logged/);
    expect(bus.conflictLog).toHaveLength(16);
  });

  it("refuses to place BARs in a full window", () => {
    const { bus } = makeMachine();
    bus.add(makeDevice("a").fn, 2);
    bus.add(makeDevice("b").fn, 3);
    expect(() =>
      assignPciResources(bus, {
        mmioBase: 0xe000_0000,
        mmioEnd: 0xe000_4000,
        ioBase: 0xc000,
        ioEnd: 0x10000,
      }),
    ).toThrow(/memory window .* is full: no room for b mem/);
  });

  it("places BARs around ranges other devices hold", () => {
    const { io, memory, bus } = makeMachine();
    const other = { ioRead: () => 0, ioWrite: () => {} };
    io.register(0xc000, 0x10, other, "someone");
    memory.addMmio(0xe000_0000, 0x1000, { mmioRead: () => 0, mmioWrite: () => {} }, "fixed");
    bus.add(makeDevice("a").fn, 2);
    const placed = assignPciResources(bus);
    expect(placed.map((p) => p.address)).toEqual([0xc040, 0xe000_4000]);
    expect(bus.barConflicts).toBe(0);
  });

  it("keeps the bus mappings equal to the decoded BARs under random guest writes (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dev: fc.constantFrom(2, 3, 4),
            reg: fc.constantFrom(PCI_COMMAND, 0x10, 0x20, 0x24),
            value: fc.oneof(
              fc.constantFrom(0, 1, 2, 3, 0xffff_ffff, 0xc000, 0xc040, 0xe000_0000, 0xe000_4000, 0xe000_8000),
              fc.integer({ min: 0, max: 0xffff_ffff }),
            ),
          }),
          { maxLength: 60 },
        ),
        (writes) => {
          const { io, memory, bus } = makeMachine(1 << 20);
          const devs = [makeDevice("a"), makeDevice("b"), makeDevice("c")];
          for (const [i, d] of devs.entries()) bus.add(d.fn, i + 2);
          assignPciResources(bus);
          for (const w of writes) conf1Write(io, w.dev, 0, w.reg, 4, w.value);
          let mappedCount = 0;
          for (const d of devs) {
            for (const bar of d.fn.bars()) {
              const m = bus.mappedAddress(bar);
              const want = d.fn.barMapping(bar.index);
              if (m !== null) {
                mappedCount += bar.kind === "io" ? 0 : 1;
                expect(m).toBe(want);
                if (bar.kind === "io") expect(io.owner(m)).toMatch(new RegExp(`${d.fn.name} io`));
              } else if (want !== null) {
                // decoded but not mapped: only because something else holds (part of) the range
                const blocked =
                  bar.kind === "io"
                    ? Array.from({ length: bar.size }, (_, i) => io.owner(want + i)).some(
                        (o) => o !== undefined,
                      )
                    : want < memory.ram.size ||
                      memory.mmioRanges().some((r) => want < r.base + r.length && r.base < want + bar.size);
                expect(blocked).toBe(true);
              }
            }
          }
          expect(memory.mmioRanges()).toHaveLength(mappedCount);
          // after a reset and fresh firmware placement everything maps again
          bus.reset();
          expect(memory.mmioRanges()).toHaveLength(0);
          assignPciResources(bus);
          expect(memory.mmioRanges()).toHaveLength(3);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("INTx routing", () => {
  it("swizzles by slot as QEMU's PIIX board does", () => {
    expect([1, 2, 3, 4].map((pin) => swizzlePirq(1, pin))).toEqual([0, 1, 2, 3]);
    expect([1, 2, 3, 4].map((pin) => swizzlePirq(2, pin))).toEqual([1, 2, 3, 0]);
    expect(swizzlePirq(0, 1)).toBe(3);
  });

  it("routes INTx through the PIIX3 registers to the sink, OR-ing shared lines", () => {
    const { io, bus, sink } = makeMachine();
    const d = [2, 3, 4, 5].map((slot) => {
      const dev = makeDevice(`s${slot}`);
      bus.add(dev.fn, slot);
      return dev.fn;
    });
    // Linux's pirq_piix_get reads the route registers of 00:01.0
    expect([0x60, 0x61, 0x62, 0x63].map((r) => conf1Read(io, 1, 0, r, 1))).toEqual([10, 10, 11, 11]);
    expect(d.map((f) => bus.irqOf(f))).toEqual([10, 11, 11, 10]);
    expect(bus.routedIrqMask()).toBe((1 << 10) | (1 << 11));
    d[1]!.setIntx(true); // slot 3 -> PIRQC -> 11
    expect(sink.events).toEqual([[11, true]]);
    d[2]!.setIntx(true); // slot 4 -> PIRQD -> 11: shared, already high
    expect(sink.events).toHaveLength(1);
    d[1]!.setIntx(false);
    expect(sink.levels[11]).toBe(true);
    d[2]!.setIntx(false);
    expect(sink.events).toEqual([
      [11, true],
      [11, false],
    ]);
    // PIRQB and PIRQA both on 10
    d[0]!.setIntx(true);
    d[3]!.setIntx(true);
    d[0]!.setIntx(false);
    expect(sink.levels[10]).toBe(true);
    // the guest steers PIRQA (slot 5) to IRQ 5: 10 stays low only if PIRQB is low
    conf1Write(io, 1, 0, 0x60, 1, 5);
    expect(sink.levels[10]).toBe(false);
    expect(sink.levels[5]).toBe(true);
    // routing disabled (bit 7): the line goes nowhere
    conf1Write(io, 1, 0, 0x60, 1, 0x85);
    expect(sink.levels[5]).toBe(false);
    expect(bus.irqOf(d[3]!)).toBe(-1);
    // reserved IRQ values route nowhere either (0, 1, 2, 8, 13)
    conf1Write(io, 1, 0, 0x60, 1, 2);
    expect(sink.levels[2]).toBe(false);
    conf1Write(io, 1, 0, 0x60, 1, 9);
    expect(sink.levels[9]).toBe(true);
    d[3]!.setIntx(false);
    expect(sink.levels.every((l) => !l)).toBe(true);
  });

  it("honours the function's Interrupt Disable bit", () => {
    const { io, bus, sink } = makeMachine();
    const dev = makeDevice("a");
    bus.add(dev.fn, 2);
    dev.fn.setIntx(true);
    expect(sink.levels[10]).toBe(true);
    conf1Write(io, 2, 0, PCI_COMMAND, 2, 0x400);
    expect(sink.levels[10]).toBe(false);
  });

  it("saves and restores the chipset state", () => {
    const { io, bus } = makeMachine();
    conf1Write(io, 1, 0, 0x61, 1, 5);
    io.write(0xcf8, 4, 0x8000_0860);
    const state = JSON.parse(JSON.stringify(bus.save()));
    const m2 = makeMachine();
    m2.bus.restore(state);
    expect(m2.io.read(0xcf8, 4)).toBe(0x8000_0860);
    expect(m2.io.read(0xcfd, 1)).toBe(5);
    expect(m2.bus.isaBridge.routedIrq(1)).toBe(5);
  });

  it("rejects impossible PIRQ routes at construction", () => {
    const io = new IoBus();
    const memory = new MemoryBus(new FlatMemory(1 << 20));
    expect(() => new PciBus({ io, memory, irq: new RecordingSink(), pirqRoutes: [10, 10, 2, 11] })).toThrow(
      /PIRQC route 2/,
    );
  });
});
