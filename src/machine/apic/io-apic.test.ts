import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { FlatMemory } from "../../common/memory.js";
import { MemoryBus } from "../memory-bus.js";
import { TimerQueue } from "../timers.js";
import { IOAPIC_DEFAULT_BASE, IOAPIC_VERSION, IOREGSEL, IOWIN, IoApic, Redir } from "./io-apic.js";
import { ApicReg, LAPIC_DEFAULT_BASE } from "./local-apic.js";
import { isaIrqToGsi, PcApic } from "./pc-apic.js";

interface Msg {
  dest: number;
  logical: boolean;
  vector: number;
  mode: number;
  level: boolean;
}

function setup() {
  const msgs: Msg[] = [];
  const logs: string[] = [];
  const io = new IoApic(
    {
      deliverMessage: (dest, logical, vector, mode, level) => {
        msgs.push({ dest, logical, vector, mode, level });
        return true;
      },
    },
    (m) => logs.push(m),
  );
  const reg = (i: number, v?: number): number => {
    io.mmioWrite(IOREGSEL, 4, i);
    if (v !== undefined) io.mmioWrite(IOWIN, 4, v);
    return io.mmioRead(IOWIN, 4);
  };
  return { io, msgs, logs, reg };
}

describe("IoApic", () => {
  it("has ID, version (24 pins) and arbitration registers, and masked entries after reset", () => {
    const { reg, io } = setup();
    expect(reg(0x01)).toBe(IOAPIC_VERSION);
    expect(reg(0x00, 0x0500_0000)).toBe(0x0500_0000);
    expect(reg(0x02)).toBe(0x0500_0000);
    reg(0x01, 0);
    expect(reg(0x01)).toBe(IOAPIC_VERSION);
    for (let pin = 0; pin < 24; pin++) expect(io.entry(pin)).toEqual([Redir.MASKED, 0]);
    expect(reg(0x10 + 48)).toBe(0); // past the last entry: reserved
    expect(io.mmioRead(IOREGSEL, 4)).toBe(0x40);
  });

  it("keeps delivery status and remote IRR read-only and the destination in bits 63:56", () => {
    const { reg } = setup();
    expect(reg(0x10 + 2 * 3, 0xffff_ffff)).toBe(0x0001_afff);
    expect(reg(0x11 + 2 * 3, 0xffff_ffff)).toBe(0xff00_0000);
  });

  it("delivers an edge pin once per rising edge, and an edge seen while masked on unmask", () => {
    const { io, msgs, reg } = setup();
    reg(0x11 + 2 * 4, 0x0100_0000);
    reg(0x10 + 2 * 4, 0x0000_0834); // vector 0x34, logical
    io.setIrq(4, true);
    io.setIrq(4, true);
    io.setIrq(4, false);
    expect(msgs).toEqual([{ dest: 1, logical: true, vector: 0x34, mode: 0, level: false }]);
    reg(0x10 + 2 * 4, Redir.MASKED | 0x34);
    io.setIrq(4, true);
    io.setIrq(4, false);
    expect(msgs).toHaveLength(1);
    reg(0x10 + 2 * 4, 0x34);
    expect(msgs).toHaveLength(2);
  });

  it("level pins: remote IRR holds until the EOI; a pin still asserted is delivered again", () => {
    const { io, msgs, reg } = setup();
    reg(0x10 + 2 * 10, Redir.LEVEL | Redir.POLARITY_LOW | 0x41);
    io.setIrq(10, true);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]!.level).toBe(true);
    expect(reg(0x10 + 2 * 10) & Redir.REMOTE_IRR).toBe(Redir.REMOTE_IRR);
    io.setIrq(10, true);
    expect(msgs).toHaveLength(1);
    io.eoi(0x42); // another vector: nothing
    expect(msgs).toHaveLength(1);
    io.eoi(0x41); // still asserted: again
    expect(msgs).toHaveLength(2);
    io.setIrq(10, false);
    io.eoi(0x41);
    expect(msgs).toHaveLength(2);
    expect(reg(0x10 + 2 * 10) & Redir.REMOTE_IRR).toBe(0);
    // masked while asserted, delivered when unmasked
    reg(0x10 + 2 * 10, Redir.MASKED | Redir.LEVEL | 0x41);
    io.setIrq(10, true);
    expect(msgs).toHaveLength(2);
    reg(0x10 + 2 * 10, Redir.LEVEL | 0x41);
    expect(msgs).toHaveLength(3);
  });

  it("logs odd accesses once and refuses pins that do not exist", () => {
    const { io, logs } = setup();
    expect(io.mmioRead(0x04, 4)).toBe(0);
    expect(io.mmioRead(0x04, 4)).toBe(0);
    io.mmioWrite(IOWIN, 1, 5);
    expect(logs).toHaveLength(2);
    expect(() => io.setIrq(24, true)).toThrow(ConfigError);
  });

  it("never delivers a level pin twice without an EOI (random pin levels, EOIs and masks)", () => {
    type Op = { k: "set"; level: boolean } | { k: "eoi" } | { k: "mask"; masked: boolean };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant("set" as const), level: fc.boolean() }),
      fc.constant({ k: "eoi" as const }),
      fc.record({ k: fc.constant("mask" as const), masked: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 50 }), (ops) => {
        const { io, msgs, reg } = setup();
        reg(0x10 + 2 * 16, Redir.LEVEL | 0x51);
        let outstanding = 0;
        let level = false;
        let masked = false;
        for (const o of ops) {
          const before = msgs.length;
          if (o.k === "set") {
            level = o.level;
            io.setIrq(16, o.level);
          } else if (o.k === "eoi") {
            if (outstanding > 0) outstanding--;
            io.eoi(0x51);
          } else {
            masked = o.masked;
            reg(0x10 + 2 * 16, (o.masked ? Redir.MASKED : 0) | Redir.LEVEL | 0x51);
          }
          outstanding += msgs.length - before;
          expect(outstanding).toBeLessThanOrEqual(1);
          // asserted, unmasked and no EOI owed: a message is outstanding
          if (level && !masked) expect(outstanding).toBe(1);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("survives save and restore", () => {
    const a = setup();
    a.reg(0x10 + 2 * 10, Redir.LEVEL | 0x41);
    a.io.setIrq(10, true);
    const b = setup();
    b.io.restore(JSON.parse(JSON.stringify(a.io.save())));
    expect(b.io.entry(10)[0] & Redir.REMOTE_IRR).toBe(Redir.REMOTE_IRR);
    b.io.eoi(0x41);
    expect(b.msgs).toHaveLength(1);
    expect(() => b.io.restore({ ...a.io.save(), redir: [] })).toThrow(ConfigError);
  });
});

describe("PcApic", () => {
  function machine() {
    const memory = new MemoryBus(new FlatMemory(16 << 20));
    const timers = new TimerQueue();
    let notified = 0;
    const apic = new PcApic({
      memory,
      timers,
      pic: { hasInterrupt: () => false, acknowledge: () => 0 },
      nmi: () => {},
      onInterrupt: () => notified++,
    });
    return { memory, apic, notified: () => notified };
  }

  it("maps ISA IRQ 0 to pin 2 and the others to their own pin", () => {
    expect(isaIrqToGsi(0)).toBe(2);
    expect(isaIrqToGsi(4)).toBe(4);
    expect(isaIrqToGsi(11)).toBe(11);
  });

  it("routes an I/O APIC pin to a local APIC vector, with the EOI broadcast back", () => {
    const { memory, apic } = machine();
    const ioreg = (i: number, v: number) => {
      memory.write(IOAPIC_DEFAULT_BASE + IOREGSEL, 4, i);
      memory.write(IOAPIC_DEFAULT_BASE + IOWIN, 4, v);
    };
    ioreg(0x10 + 2 * 2, 0x30); // pin 2 (ISA IRQ 0): vector 0x30, edge
    ioreg(0x10 + 2 * 11, Redir.LEVEL | Redir.POLARITY_LOW | 0x61);
    apic.setIrq(0, true);
    apic.setIrq(11, true);
    expect(apic.lapic.acknowledge()).toBe(0x61);
    memory.write(LAPIC_DEFAULT_BASE + ApicReg.EOI, 4, 0); // level: remote IRR cleared, pin still high
    expect(apic.lapic.acknowledge()).toBe(0x61);
    apic.setIrq(11, false);
    memory.write(LAPIC_DEFAULT_BASE + ApicReg.EOI, 4, 0);
    expect(apic.lapic.acknowledge()).toBe(0x30);
    memory.write(LAPIC_DEFAULT_BASE + ApicReg.EOI, 4, 0);
    expect(apic.lapic.hasInterrupt()).toBe(false);
    expect(apic.ioapic.entry(11)[0] & Redir.REMOTE_IRR).toBe(0);
  });

  it("moves and unmaps the local APIC page through IA32_APIC_BASE", () => {
    const { memory, apic } = machine();
    const msr = apic.apicBaseMsr();
    const out = new Uint32Array(2);
    msr.read(out);
    expect(out[0]).toBe(0xfee0_0900);
    expect(memory.read(LAPIC_DEFAULT_BASE + ApicReg.VERSION, 4)).toBe(0x50014);
    expect(msr.write(0xfed0_0800, 0)).toBe(true);
    expect(memory.read(0xfed0_0000 + ApicReg.VERSION, 4)).toBe(0x50014);
    expect(memory.read(LAPIC_DEFAULT_BASE + ApicReg.VERSION, 4)).toBe(0xffff_ffff);
    expect(msr.write(0xfed0_0000, 0)).toBe(true); // globally disabled: off the bus
    expect(memory.read(0xfed0_0000 + ApicReg.VERSION, 4)).toBe(0xffff_ffff);
    expect(memory.mmioRanges().some((r) => r.name === "lapic")).toBe(false);
  });
});
