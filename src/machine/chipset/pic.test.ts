import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { IoBus } from "../io-bus.js";
import { Pic } from "./pic.js";

/** init_8259A() from arch/x86/kernel/i8259.c: vectors 0x30/0x38, normal EOI, then the masks. */
function linuxInit(io: IoBus, autoEoi = false): void {
  io.write(0x21, 1, 0xff); // mask all of 8259A-1
  io.write(0x20, 1, 0x11); // ICW1: edge, cascade, ICW4 needed
  io.write(0x21, 1, 0x30); // ICW2: vector base
  io.write(0x21, 1, 1 << 2); // ICW3: slave on IR2
  io.write(0x21, 1, autoEoi ? 0x03 : 0x01); // ICW4: 8086 mode (+ AEOI)
  io.write(0xa0, 1, 0x11);
  io.write(0xa1, 1, 0x38);
  io.write(0xa1, 1, 2); // slave identity
  io.write(0xa1, 1, 0x01);
  io.write(0x21, 1, 0xfb); // everything masked but the cascade
  io.write(0xa1, 1, 0xff);
}

function setup(autoEoi = false) {
  const io = new IoBus();
  const intr: boolean[] = [];
  const pic = new Pic({ onIntrChange: (l) => intr.push(l) });
  pic.register(io);
  linuxInit(io, autoEoi);
  return { io, pic, intr };
}

function unmask(io: IoBus, irq: number): void {
  if (irq < 8) io.write(0x21, 1, io.read(0x21, 1) & ~(1 << irq));
  else io.write(0xa1, 1, io.read(0xa1, 1) & ~(1 << (irq - 8)));
}

function pulse(pic: Pic, irq: number): void {
  pic.setIrq(irq, true);
  pic.setIrq(irq, false);
}

/** mask_and_ack_8259A's EOI: specific EOI to the slave then to the master's IR2. */
function eoi(io: IoBus, irq: number): void {
  if (irq >= 8) {
    io.write(0xa0, 1, 0x60 + (irq & 7));
    io.write(0x20, 1, 0x62);
  } else {
    io.write(0x20, 1, 0x60 + irq);
  }
}

function readIsr(io: IoBus, cmd: number): number {
  io.write(cmd, 1, 0x0b);
  const v = io.read(cmd, 1);
  io.write(cmd, 1, 0x0a);
  return v;
}

describe("8259A pair", () => {
  it("probe_8259A reads back the mask it wrote", () => {
    const { io } = setup();
    io.write(0xa1, 1, 0xff);
    io.write(0x21, 1, 0xfb);
    expect(io.read(0x21, 1)).toBe(0xfb);
    expect(io.read(0xa1, 1)).toBe(0xff);
  });

  it("delivers a master IRQ with its vector and holds it in service until EOI", () => {
    const { io, pic, intr } = setup();
    pulse(pic, 0);
    expect(pic.hasInterrupt()).toBe(false); // masked: IRR only
    expect(io.read(0x20, 1) & 1).toBe(1);
    unmask(io, 0);
    expect(pic.hasInterrupt()).toBe(true);
    expect(intr).toEqual([true]);
    expect(pic.acknowledge()).toBe(0x30);
    expect(pic.hasInterrupt()).toBe(false);
    expect(readIsr(io, 0x20)).toBe(1);
    expect(io.read(0x20, 1) & 1).toBe(0); // IRR consumed by INTA (edge)
    pulse(pic, 0);
    expect(pic.hasInterrupt()).toBe(false); // same level in service blocks it
    eoi(io, 0);
    expect(readIsr(io, 0x20)).toBe(0);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x30);
  });

  it("cascades the slave through IR2 and needs EOI on both chips", () => {
    const { io, pic } = setup();
    unmask(io, 8);
    unmask(io, 14);
    pulse(pic, 14);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x38 + 6);
    expect(readIsr(io, 0x20)).toBe(1 << 2);
    expect(readIsr(io, 0xa0)).toBe(1 << 6);
    pulse(pic, 8); // higher priority on the slave, but the master's IR2 is in service
    expect(pic.hasInterrupt()).toBe(false);
    eoi(io, 14);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x38);
  });

  it("orders requests by priority: IR0 > IR1 > slave (IR2) > IR3 ... and nests higher ones", () => {
    const { io, pic } = setup();
    for (const irq of [1, 3, 4, 9, 15]) unmask(io, irq);
    for (const irq of [4, 15, 3, 9, 1]) pulse(pic, irq);
    expect(pic.acknowledge()).toBe(0x31); // IRQ1
    // Nested: nothing of lower priority while IRQ1 is in service.
    expect(pic.hasInterrupt()).toBe(false);
    eoi(io, 1);
    expect(pic.acknowledge()).toBe(0x38 + 1); // IRQ9 via cascade
    eoi(io, 9);
    expect(pic.acknowledge()).toBe(0x38 + 7); // IRQ15
    eoi(io, 15);
    expect(pic.acknowledge()).toBe(0x33);
    // IRQ4 pending is lower priority than IRQ3 in service; a non-specific EOI ends IRQ3.
    expect(pic.hasInterrupt()).toBe(false);
    io.write(0x20, 1, 0x20);
    expect(pic.acknowledge()).toBe(0x34);
  });

  it("a request dropped before INTA gives spurious IRQ7 (no ISR bit) and IRQ15 (master IR2 in service)", () => {
    const { io, pic } = setup();
    unmask(io, 9);
    unmask(io, 5);
    io.write(0x4d0, 1, 0x20); // IRQ5 level-triggered
    io.write(0x4d1, 1, 0x02); // IRQ9 level-triggered
    pic.setIrq(5, true);
    expect(pic.hasInterrupt()).toBe(true);
    pic.setIrq(5, false);
    expect(pic.acknowledge()).toBe(0x37);
    expect(readIsr(io, 0x20)).toBe(0);
    expect(pic.stats.spuriousMaster).toBe(1);
    // The slave's request goes away between the master's and the slave's INTA: drive the
    // cascade by raising IRQ9 and dropping it only on the slave (level) after hasInterrupt.
    pic.setIrq(9, true);
    expect(pic.hasInterrupt()).toBe(true);
    pic.setIrq(9, false);
    // The cascade input follows the slave output, so the master now sees nothing: IRQ7.
    expect(pic.acknowledge()).toBe(0x37);
  });

  it("polling the master for a cascaded request puts IR2 in service; the slave still holds its level", () => {
    const { io, pic } = setup();
    unmask(io, 10);
    pulse(pic, 10);
    expect(pic.hasInterrupt()).toBe(true);
    io.write(0x20, 1, 0x0c); // OCW3 poll
    expect(io.read(0x20, 1)).toBe(0x80 | 2);
    expect(readIsr(io, 0x20)).toBe(0x04);
    expect(pic.hasInterrupt()).toBe(false); // IR2 in service blocks the slave's output
    io.write(0xa0, 1, 0x0c); // poll the slave
    expect(io.read(0xa0, 1)).toBe(0x80 | 2);
    expect(readIsr(io, 0xa0)).toBe(0x04);
    eoi(io, 10);
    expect(readIsr(io, 0x20) | readIsr(io, 0xa0)).toBe(0);
  });

  it("level-triggered lines (ELCR) stay requested while high and re-interrupt after EOI", () => {
    const { io, pic } = setup();
    io.write(0x4d1, 1, 0xff);
    expect(io.read(0x4d1, 1)).toBe(0xde); // IRQ8 and IRQ13 stay edge
    io.write(0x4d0, 1, 0xff);
    expect(io.read(0x4d0, 1)).toBe(0xf8);
    expect(io.read(0x4d0, 2)).toBe(0xdef8);
    unmask(io, 11);
    pic.setIrq(11, true);
    expect(pic.acknowledge()).toBe(0x38 + 3);
    eoi(io, 11);
    expect(pic.hasInterrupt()).toBe(true); // still high
    expect(pic.acknowledge()).toBe(0x38 + 3);
    pic.setIrq(11, false);
    eoi(io, 11);
    expect(pic.hasInterrupt()).toBe(false);
  });

  it("an edge line needs a new rising edge; a line switched to level reports its level at once", () => {
    const { io, pic } = setup();
    unmask(io, 5);
    pic.setIrq(5, true);
    expect(pic.acknowledge()).toBe(0x35);
    eoi(io, 5);
    pic.setIrq(5, true); // still high: no new edge
    expect(pic.hasInterrupt()).toBe(false);
    io.write(0x4d0, 1, 0x20);
    expect(pic.hasInterrupt()).toBe(true);
  });

  it("auto-EOI leaves no ISR bit; rotate in auto-EOI moves the priority", () => {
    const { io, pic } = setup(true);
    unmask(io, 0);
    unmask(io, 1);
    pulse(pic, 0);
    expect(pic.acknowledge()).toBe(0x30);
    expect(readIsr(io, 0x20)).toBe(0);
    io.write(0x20, 1, 0x80); // rotate in auto-EOI mode (set)
    pulse(pic, 0);
    expect(pic.acknowledge()).toBe(0x30); // IR0 now lowest priority
    pulse(pic, 0);
    pulse(pic, 1);
    expect(pic.acknowledge()).toBe(0x31);
  });

  it("rotate on non-specific EOI and set-priority command reorder the levels", () => {
    const { io, pic } = setup();
    for (const i of [3, 4, 5]) unmask(io, i);
    pulse(pic, 3);
    expect(pic.acknowledge()).toBe(0x33);
    io.write(0x20, 1, 0xa0); // rotate on non-specific EOI: IR3 becomes lowest
    pulse(pic, 3);
    pulse(pic, 5);
    expect(pic.acknowledge()).toBe(0x35); // IR4.. now highest, IR3 lowest
    io.write(0x20, 1, 0xe5); // rotate on specific EOI 5: IR5 lowest, IR6 highest
    expect(pic.acknowledge()).toBe(0x33);
    io.write(0x20, 1, 0x63);
    io.write(0x20, 1, 0xc7); // set priority: IR7 lowest (back to IR0 highest)
    pulse(pic, 5);
    pulse(pic, 4);
    expect(pic.acknowledge()).toBe(0x34);
  });

  it("special mask mode lets lower levels in while the in-service level is masked", () => {
    const { io, pic } = setup();
    unmask(io, 3);
    unmask(io, 6);
    pulse(pic, 3);
    expect(pic.acknowledge()).toBe(0x33);
    pulse(pic, 6);
    expect(pic.hasInterrupt()).toBe(false);
    io.write(0x21, 1, io.read(0x21, 1) | (1 << 3));
    io.write(0x20, 1, 0x68); // OCW3: set special mask
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x36);
    io.write(0x20, 1, 0x48); // reset special mask
    expect(readIsr(io, 0x20)).toBe((1 << 3) | (1 << 6));
  });

  it("poll mode acknowledges by reading", () => {
    const { io, pic } = setup();
    unmask(io, 4);
    io.write(0x20, 1, 0x0c);
    expect(io.read(0x20, 1)).toBe(0); // nothing pending
    pulse(pic, 4);
    io.write(0x20, 1, 0x0c);
    expect(io.read(0x20, 1)).toBe(0x84);
    expect(readIsr(io, 0x20)).toBe(0x10);
    expect(io.read(0x20, 1)).toBe(0); // back to IRR reads, request consumed
  });

  it("ICW1 clears masks, ISR and edge requests; single mode skips ICW3", () => {
    const { io, pic } = setup();
    unmask(io, 3);
    pulse(pic, 3);
    pic.acknowledge();
    pulse(pic, 4);
    io.write(0x20, 1, 0x13); // ICW1: single, ICW4
    expect(io.read(0x21, 1)).toBe(0);
    io.write(0x21, 1, 0x40); // ICW2
    io.write(0x21, 1, 0x01); // ICW4 straight away
    io.write(0x21, 1, 0xf7); // OCW1
    expect(io.read(0x21, 1)).toBe(0xf7);
    expect(readIsr(io, 0x20)).toBe(0);
    expect(io.read(0x20, 1)).toBe(0);
    pulse(pic, 3);
    expect(pic.acknowledge()).toBe(0x43);
  });

  it("ISA IRQ2 is wired to IRQ9; bad inputs are typed errors", () => {
    const { io, pic } = setup();
    unmask(io, 9);
    pulse(pic, 2);
    expect(pic.acknowledge()).toBe(0x39);
    expect(() => pic.setIrq(16, true)).toThrow(ConfigError);
    expect(() => pic.setIrq(-1, true)).toThrow(/PIC input -1/);
  });

  it("save/restore round-trips and rejects malformed state", () => {
    const { io, pic } = setup();
    unmask(io, 4);
    unmask(io, 12);
    pulse(pic, 12);
    pic.acknowledge();
    pulse(pic, 4);
    const saved = JSON.parse(JSON.stringify(pic.save()));
    const other = new Pic();
    other.restore(saved);
    expect(other.registers()).toEqual(pic.registers());
    expect(other.hasInterrupt()).toBe(pic.hasInterrupt());
    expect(() => other.restore({ ...saved, master: { ...saved.master, imr: 300 } })).toThrow(
      /pic.master.imr/,
    );
    pic.reset();
    expect(pic.registers().imr).toBe(0xffff);
    expect(pic.hasInterrupt()).toBe(false);
  });

  it("property: INTR and vectors match a fully nested reference model (fixed priority, edge, specific EOI)", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("irq" as const), irq: fc.integer({ min: 0, max: 15 }) }),
      fc.record({ k: fc.constant("mask" as const), v: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ k: fc.constant("ack" as const) }),
      fc.record({ k: fc.constant("eoi" as const), irq: fc.integer({ min: 0, max: 15 }) }),
    );
    const lowest = (mask: number): number => (mask === 0 ? 99 : 31 - Math.clz32(mask & -mask));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const { io, pic } = setup();
        let irr = 0;
        let isr = 0;
        let imr = 0xfffb;
        const expected = (): number | undefined => {
          const slaveIsr = (isr >> 8) & 0xff;
          const sbest = lowest((irr >> 8) & ~(imr >> 8) & 0xff);
          const slaveOut = sbest < lowest(slaveIsr);
          const mreq = (irr & ~imr & 0xfb) | (slaveOut ? 4 : 0);
          const misr = (isr & 0xfb) | (slaveIsr !== 0 ? 4 : 0);
          const mbest = lowest(mreq);
          if (mbest === 99 || lowest(misr) <= mbest) return undefined;
          return mbest === 2 ? 8 + sbest : mbest;
        };
        for (const o of ops) {
          if (o.k === "irq") {
            if (o.irq === 2) continue;
            pulse(pic, o.irq);
            irr |= 1 << o.irq;
          } else if (o.k === "mask") {
            imr = o.v & ~4 & 0xffff;
            io.write(0x21, 1, imr & 0xff);
            io.write(0xa1, 1, imr >> 8);
          } else if (o.k === "ack") {
            const e = expected();
            if (e === undefined) continue;
            expect(pic.acknowledge()).toBe(e < 8 ? 0x30 + e : 0x38 + e - 8);
            irr &= ~(1 << e);
            isr |= 1 << e;
          } else if (o.irq !== 2 && (isr & (1 << o.irq)) !== 0) {
            eoi(io, o.irq);
            isr &= ~(1 << o.irq);
          }
          expect(pic.hasInterrupt()).toBe(expected() !== undefined);
        }
      }),
      { numRuns: 300 },
    );
  });
});
