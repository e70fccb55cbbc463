import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { TimerQueue } from "../timers.js";
import {
  APIC_BASE_BSP,
  APIC_BASE_ENABLE,
  ApicReg,
  Esr,
  LAPIC_DEFAULT_BASE,
  LAPIC_VERSION,
  LocalApic,
  LVT_MASKED,
} from "./local-apic.js";

/** A stand-in 8259: a settable pending vector. */
class FakePic {
  pending = -1;
  acks = 0;
  hasInterrupt(): boolean {
    return this.pending >= 0;
  }
  acknowledge(): number {
    this.acks++;
    const v = this.pending;
    this.pending = -1;
    return v;
  }
}

function setup() {
  const timers = new TimerQueue();
  const pic = new FakePic();
  const eois: number[] = [];
  const bases: number[] = [];
  const logs: string[] = [];
  let nmis = 0;
  let notified = 0;
  const apic = new LocalApic({
    timers,
    pic,
    nmi: () => nmis++,
    onInterrupt: () => notified++,
    onEoi: (v) => eois.push(v),
    onBaseChange: (b) => bases.push(b),
    log: (m) => logs.push(m),
  });
  return {
    timers,
    pic,
    apic,
    eois,
    bases,
    logs,
    nmis: () => nmis,
    notified: () => notified,
    r: (off: number) => apic.mmioRead(off, 4),
    w: (off: number, v: number) => apic.mmioWrite(off, 4, v),
  };
}

describe("LocalApic registers", () => {
  it("has the version, ID, SVR and LVT values a BIOS leaves", () => {
    const { r, apic } = setup();
    expect(r(ApicReg.VERSION)).toBe(LAPIC_VERSION);
    expect(r(ApicReg.ID)).toBe(0);
    expect(r(ApicReg.SVR)).toBe(0x1ff);
    expect(r(ApicReg.LVT_LINT0)).toBe(0x8700);
    expect(r(ApicReg.LVT_LINT1)).toBe(0x8400);
    expect(r(ApicReg.LVT_TIMER)).toBe(LVT_MASKED);
    expect(r(ApicReg.DFR)).toBe(0xffff_ffff);
    expect(apic.apicBase).toBe((LAPIC_DEFAULT_BASE | APIC_BASE_BSP | APIC_BASE_ENABLE) >>> 0);
  });

  it("reads 0 and ignores writes for unaligned or narrow accesses, logging once", () => {
    const { apic, r, logs } = setup();
    apic.mmioWrite(ApicReg.TPR, 1, 0x20);
    apic.mmioWrite(ApicReg.TPR, 1, 0x30);
    expect(r(ApicReg.TPR)).toBe(0);
    expect(apic.mmioRead(ApicReg.TPR + 4, 4)).toBe(0);
    expect(apic.mmioRead(ApicReg.VERSION, 2)).toBe(0);
    expect(logs.filter((l) => l.includes("1-byte write"))).toHaveLength(1);
  });

  it("ESR is write-before-read: errors show after the next ESR write", () => {
    const { r, w } = setup();
    expect(r(0x40)).toBe(0); // reserved
    expect(r(ApicReg.ESR)).toBe(0);
    w(ApicReg.ESR, 0);
    expect(r(ApicReg.ESR)).toBe(Esr.ILLEGAL_REGISTER);
    w(ApicReg.ESR, 0);
    expect(r(ApicReg.ESR)).toBe(0);
  });

  it("masks writable bits: LDR top byte, DFR model nibble, read-only IRR and version", () => {
    const { r, w } = setup();
    w(ApicReg.LDR, 0x1234_5678);
    expect(r(ApicReg.LDR)).toBe(0x1200_0000);
    w(ApicReg.DFR, 0);
    expect(r(ApicReg.DFR)).toBe(0x0fff_ffff);
    w(ApicReg.IRR + 0x10, 0xffff_ffff);
    expect(r(ApicReg.IRR + 0x10)).toBe(0);
    w(ApicReg.VERSION, 0);
    expect(r(ApicReg.VERSION)).toBe(LAPIC_VERSION);
  });

  it("a software-disabled APIC masks its LVTs and delivers nothing", () => {
    const { r, w, apic } = setup();
    w(ApicReg.SVR, 0xff);
    expect(r(ApicReg.LVT_LINT0) & LVT_MASKED).toBe(LVT_MASKED);
    w(ApicReg.LVT_TIMER, 0x40);
    expect(r(ApicReg.LVT_TIMER)).toBe(LVT_MASKED | 0x40);
    apic.deliver(0x50, 0, false);
    expect(apic.hasInterrupt()).toBe(false);
    w(ApicReg.SVR, 0x1ff);
    expect(apic.hasInterrupt()).toBe(true);
  });
});

describe("LocalApic priorities", () => {
  it("takes the highest IRR vector above the PPR class; EOI clears the highest ISR bit", () => {
    const { apic, r, w } = setup();
    apic.deliver(0x31, 0, false);
    apic.deliver(0x45, 0, false);
    expect(apic.acknowledge()).toBe(0x45);
    expect(r(ApicReg.PPR)).toBe(0x40);
    expect(apic.hasInterrupt()).toBe(false); // 0x31's class is below the in-service 0x45
    apic.deliver(0x52, 0, false);
    expect(apic.acknowledge()).toBe(0x52);
    w(ApicReg.EOI, 0);
    expect(apic.vectorState(0x52).isr).toBe(false);
    expect(apic.vectorState(0x45).isr).toBe(true);
    w(ApicReg.EOI, 0);
    expect(apic.acknowledge()).toBe(0x31);
  });

  it("TPR holds back lower classes", () => {
    const { apic, w, r } = setup();
    w(ApicReg.TPR, 0x50);
    apic.deliver(0x55, 0, false);
    expect(apic.hasInterrupt()).toBe(false);
    expect(r(ApicReg.PPR)).toBe(0x50);
    w(ApicReg.TPR, 0x40);
    expect(apic.hasInterrupt()).toBe(true);
  });

  it("rejects vectors 0-15 with a receive-illegal-vector error", () => {
    const { apic, r, w } = setup();
    expect(apic.deliver(3, 0, false)).toBe(false);
    expect(apic.hasInterrupt()).toBe(false);
    w(ApicReg.ESR, 0);
    expect(r(ApicReg.ESR)).toBe(Esr.RECEIVE_ILLEGAL_VECTOR);
  });

  it("EOI of a level-triggered vector is broadcast; of an edge vector it is not", () => {
    const { apic, w, eois } = setup();
    apic.deliver(0x61, 0, true);
    apic.deliver(0x62, 0, false);
    expect(apic.vectorState(0x61).tmr).toBe(true);
    expect(apic.acknowledge()).toBe(0x62);
    w(ApicReg.EOI, 0);
    expect(apic.acknowledge()).toBe(0x61);
    w(ApicReg.EOI, 0);
    expect(eois).toEqual([0x61]);
    expect(apic.vectorState(0x61).tmr).toBe(false);
  });

  it("matches a model of IRR, ISR, TPR and PPR over random operations", () => {
    type Op = { k: "raise"; v: number } | { k: "tpr"; v: number } | { k: "ack" } | { k: "eoi" };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant("raise" as const), v: fc.integer({ min: 16, max: 255 }) }),
      fc.record({ k: fc.constant("tpr" as const), v: fc.integer({ min: 0, max: 255 }) }),
      fc.constant({ k: "ack" as const }),
      fc.constant({ k: "eoi" as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const { apic, r, w } = setup();
        const irr = new Set<number>();
        const isr = new Set<number>();
        let tpr = 0;
        const max = (s: Set<number>) => (s.size ? Math.max(...s) : -1);
        const ppr = () => {
          const i = Math.max(0, max(isr));
          return (tpr & 0xf0) >= (i & 0xf0) ? tpr : i & 0xf0;
        };
        const next = () => {
          const v = max(irr);
          return v >= 0 && (v & 0xf0) > (ppr() & 0xf0) ? v : -1;
        };
        for (const o of ops) {
          if (o.k === "raise") {
            irr.add(o.v);
            apic.deliver(o.v, 0, false);
          } else if (o.k === "tpr") {
            tpr = o.v;
            w(ApicReg.TPR, o.v);
          } else if (o.k === "ack") {
            const want = next();
            expect(apic.hasInterrupt()).toBe(want >= 0);
            if (want >= 0) {
              expect(apic.acknowledge()).toBe(want);
              irr.delete(want);
              isr.add(want);
            }
          } else {
            const top = max(isr);
            if (top >= 0) isr.delete(top);
            w(ApicReg.EOI, 0);
          }
          expect(r(ApicReg.PPR)).toBe(ppr());
          expect(apic.hasInterrupt()).toBe(next() >= 0);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("LocalApic messages", () => {
  it("accepts MSIs for APIC ID 0, broadcast and matching logical destinations", () => {
    const { apic, w, nmis } = setup();
    apic.sendMsi(0xfee0_0000, 0, 0x41);
    expect(apic.vectorState(0x41).irr).toBe(true);
    apic.sendMsi(0xfee0_1000, 0, 0x42); // physical ID 1: not us
    expect(apic.vectorState(0x42).irr).toBe(false);
    apic.sendMsi(0xfeef_f000, 0, 0x43); // broadcast
    expect(apic.vectorState(0x43).irr).toBe(true);
    w(ApicReg.LDR, 0x0100_0000);
    apic.sendMsi(0xfee0_1004, 0, 0x44); // logical, flat, bit 0
    expect(apic.vectorState(0x44).irr).toBe(true);
    apic.sendMsi(0xfee0_2004, 0, 0x45); // logical, bit 1: not us
    expect(apic.vectorState(0x45).irr).toBe(false);
    apic.sendMsi(0xfee0_0000, 0, 0x8046); // level-triggered
    expect(apic.vectorState(0x46).tmr).toBe(true);
    apic.sendMsi(0xfee0_0000, 0, 0x400); // NMI
    expect(nmis()).toBe(1);
    apic.sendMsi(0xfed0_0000, 0, 0x47); // not an MSI address
    apic.sendMsi(0xfee0_0000, 1, 0x48); // high half set
    expect(apic.vectorState(0x47).irr || apic.vectorState(0x48).irr).toBe(false);
  });

  it("sends IPIs to itself: fixed and NMI; INIT and SIPI are ignored; illegal vectors set ESR", () => {
    const { apic, r, w, nmis } = setup();
    w(ApicReg.ICR_LO, (1 << 18) | 0x51); // self, fixed
    expect(apic.vectorState(0x51).irr).toBe(true);
    w(ApicReg.ICR_HI, 0);
    w(ApicReg.ICR_LO, 0x400); // NMI to APIC 0
    expect(nmis()).toBe(1);
    w(ApicReg.ICR_LO, (3 << 18) | 0x500); // INIT all excluding self
    w(ApicReg.ICR_LO, (3 << 18) | 0x610); // SIPI all excluding self
    expect(apic.stats.ignoredIpis).toBe(2);
    w(ApicReg.ICR_LO, (3 << 18) | 0x52); // fixed, all excluding self: nobody
    expect(apic.vectorState(0x52).irr).toBe(false);
    w(ApicReg.ICR_LO, (1 << 18) | 0x05); // self, vector 5
    w(ApicReg.ESR, 0);
    expect(r(ApicReg.ESR)).toBe(Esr.SEND_ILLEGAL_VECTOR);
    expect(r(ApicReg.ICR_LO) & (1 << 12)).toBe(0); // delivery status idle
  });

  it("passes the 8259 through LINT0 in ExtINT mode, and directly when globally disabled", () => {
    const { apic, pic, w, bases } = setup();
    pic.pending = 0x28;
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x28);
    w(ApicReg.LVT_LINT0, 0x10700); // masked (Linux with an I/O APIC)
    pic.pending = 0x29;
    expect(apic.hasInterrupt()).toBe(false);
    apic.deliver(0, 7, false); // an ExtINT message (I/O APIC pin in ExtINT mode)
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x29);
    // local vectors go first
    pic.pending = 0x2a;
    w(ApicReg.LVT_LINT0, 0x700);
    apic.deliver(0x70, 0, false);
    expect(apic.acknowledge()).toBe(0x70);
    expect(apic.acknowledge()).toBe(0x2a);
    // IA32_APIC_BASE: clearing EN stops decoding; the PIC then drives INTR alone
    expect(apic.writeApicBase(LAPIC_DEFAULT_BASE, 0)).toBe(true);
    expect(bases).toEqual([-1]);
    expect(apic.mmioBase).toBe(-1);
    w(ApicReg.LVT_LINT0, 0x10700); // nobody hears this: the page is off the bus in a machine
    pic.pending = 0x2b;
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.writeApicBase(LAPIC_DEFAULT_BASE | APIC_BASE_ENABLE, 0)).toBe(true);
    expect(bases).toEqual([-1, LAPIC_DEFAULT_BASE]);
    // reserved bits and x2APIC mode: #GP
    expect(apic.writeApicBase(LAPIC_DEFAULT_BASE | APIC_BASE_ENABLE | (1 << 10), 0)).toBe(false);
    expect(apic.writeApicBase(LAPIC_DEFAULT_BASE | APIC_BASE_ENABLE, 1)).toBe(false);
    expect(apic.writeApicBase(LAPIC_DEFAULT_BASE | APIC_BASE_ENABLE | 1, 0)).toBe(false);
  });
});

describe("LocalApic timer", () => {
  it("one-shot: counts down at 1 GHz / divide and raises its vector once", () => {
    const { apic, timers, r, w } = setup();
    w(ApicReg.TIMER_DIVIDE, 0x3); // divide by 16
    w(ApicReg.LVT_TIMER, 0xef);
    w(ApicReg.TIMER_INITIAL, 1000);
    expect(r(ApicReg.TIMER_CURRENT)).toBe(1000);
    timers.runDue(16 * 400);
    expect(r(ApicReg.TIMER_CURRENT)).toBe(600);
    expect(apic.hasInterrupt()).toBe(false);
    timers.runDue(16 * 1000);
    expect(r(ApicReg.TIMER_CURRENT)).toBe(0);
    expect(apic.acknowledge()).toBe(0xef);
    w(ApicReg.EOI, 0);
    timers.runDue(16 * 5000);
    expect(apic.hasInterrupt()).toBe(false);
    expect(apic.stats.timerFired).toBe(1);
  });

  it("periodic: reloads from the initial count; a masked timer counts without interrupting", () => {
    const { apic, timers, r, w } = setup();
    w(ApicReg.TIMER_DIVIDE, 0xb); // divide by 1
    w(ApicReg.LVT_TIMER, (1 << 17) | 0xec);
    w(ApicReg.TIMER_INITIAL, 100);
    for (let k = 1; k <= 5; k++) {
      timers.runDue(100 * k);
      expect(apic.acknowledge()).toBe(0xec);
      w(ApicReg.EOI, 0);
    }
    timers.runDue(530);
    expect(r(ApicReg.TIMER_CURRENT)).toBe(70);
    w(ApicReg.LVT_TIMER, LVT_MASKED | (1 << 17) | 0xec);
    timers.runDue(1000);
    expect(apic.hasInterrupt()).toBe(false);
    expect(apic.stats.timerFired).toBe(10);
    w(ApicReg.TIMER_INITIAL, 0); // stops it
    timers.runDue(5000);
    expect(apic.stats.timerFired).toBe(10);
    expect(timers.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
  });

  it("survives save and restore, timer included", () => {
    const a = setup();
    a.w(ApicReg.TIMER_DIVIDE, 0xb);
    a.w(ApicReg.LVT_TIMER, 0xe0);
    a.w(ApicReg.TIMER_INITIAL, 500);
    a.w(ApicReg.TPR, 0x20);
    a.apic.deliver(0x77, 0, true);
    const saved = JSON.parse(JSON.stringify(a.apic.save()));
    const b = setup();
    b.apic.restore(saved);
    expect(b.r(ApicReg.TPR)).toBe(0x20);
    expect(b.apic.vectorState(0x77)).toEqual({ irr: true, isr: false, tmr: true });
    b.timers.runDue(500);
    expect(b.apic.stats.timerFired).toBe(1);
    expect(() => b.apic.restore({ ...saved, irr: [1] })).toThrow(ConfigError);
  });
});
