import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IoBus } from "../io-bus.js";
import { TimerQueue } from "../timers.js";
import { PIT_HZ, Pit, pitTickAt, pitTickTime } from "./pit.js";

/** An IRQ line that records its transitions with the machine time. */
function recorder(clock: TimerQueue) {
  const events: { t: number; level: boolean }[] = [];
  return {
    events,
    line: { set: (level: boolean) => events.push({ t: clock.now(), level }) },
    rises: () => events.filter((e) => e.level).length,
  };
}

function setup() {
  const clock = new TimerQueue();
  const rec = recorder(clock);
  const pit = new Pit({ clock, irq: rec.line });
  const io = new IoBus();
  pit.register(io);
  return { clock, rec, pit, io };
}

const ns = (ticks: number) => pitTickTime(ticks);

describe("8254 timing helpers", () => {
  it("tick/time conversions are inverse and exact far beyond 2^53 / PIT_HZ ns", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (tick) => {
        const t = pitTickTime(tick);
        expect(pitTickAt(t)).toBe(tick);
        expect(pitTickAt(t - 1)).toBe(tick - 1);
      }),
    );
    expect(pitTickAt(1e9)).toBe(PIT_HZ);
    expect(pitTickAt(3600e9)).toBe(3600 * PIT_HZ);
  });
});

describe("8254 PIT", () => {
  it("mode 2 at Linux's HZ=250 LATCH raises IRQ0 250 times a second", () => {
    const { clock, rec, io } = setup();
    const latch = Math.floor((PIT_HZ + 125) / 250); // 4773
    io.write(0x43, 1, 0x34); // channel 0, LSB/MSB, mode 2, binary
    io.write(0x40, 1, latch & 0xff);
    io.write(0x40, 1, latch >> 8);
    // The control word sets OUT high at once (the PIC sees that edge too).
    expect(rec.events).toEqual([{ t: 0, level: true }]);
    // Run each timer at its deadline (TimerQueue.runDue runs callbacks at the target time).
    while (clock.nextDeadline() <= 1e9) clock.runDue(clock.nextDeadline());
    // Rising edges at ticks k*latch: 249 of them in the first second (250*4773 > PIT_HZ).
    const rises = rec.events.filter((e) => e.level).map((e) => pitTickAt(e.t));
    expect(rises.length - 1).toBe(Math.floor(PIT_HZ / latch));
    for (let k = 1; k < rises.length; k++) expect(rises[k]).toBe(k * latch);
    // OUT is low for exactly one clock before each edge.
    const falls = rec.events.filter((e) => !e.level).map((e) => pitTickAt(e.t));
    for (let k = 0; k < falls.length; k++) expect(rises[k + 1]! - falls[k]!).toBe(1);
  });

  it("mode 0 (the oneshot clockevent) gives one rising edge after the count", () => {
    const { clock, rec, io } = setup();
    io.write(0x43, 1, 0x30);
    io.write(0x40, 1, 1000 & 0xff);
    io.write(0x40, 1, 1000 >> 8);
    expect(clock.nextDeadline()).toBe(ns(1000));
    clock.runDue(ns(1000) - 1);
    expect(rec.rises()).toBe(0);
    clock.runDue(ns(1000));
    expect(rec.rises()).toBe(1);
    clock.runDue(1e9);
    expect(rec.rises()).toBe(1);
    expect(clock.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
  });

  it("pit_next_event: rewriting the mode 0 count without a control word gives one edge per event", () => {
    const { clock, rec, io } = setup();
    io.write(0x43, 1, 0x30);
    let at = 0;
    for (const delta of [500, 1200, 80]) {
      io.write(0x40, 1, delta & 0xff);
      expect(rec.events[rec.events.length - 1]?.level ?? false).toBe(false); // OUT low after the LSB
      io.write(0x40, 1, delta >> 8);
      at = pitTickAt(clock.now()) + delta;
      const before = rec.rises();
      clock.runDue(ns(at) - 1);
      expect(rec.rises()).toBe(before);
      clock.runDue(ns(at));
      expect(rec.rises()).toBe(before + 1);
    }
  });

  it("a late timer coalesces missed periods into one edge and keeps the phase", () => {
    const { clock, rec, io } = setup();
    io.write(0x43, 1, 0x36); // mode 3
    io.write(0x40, 1, 0x00);
    io.write(0x40, 1, 0x10); // 4096
    expect(rec.rises()).toBe(1); // OUT high after the control word
    clock.runDue(5e8); // half a second (145 periods) in one step
    expect(rec.rises()).toBe(2);
    const before = rec.rises();
    const nextEdge = ns(Math.ceil(pitTickAt(5e8) / 4096) * 4096);
    clock.runDue(nextEdge);
    expect(rec.rises()).toBe(before + 1);
  });

  it("quick_pit_calibrate: channel 2 mode 0 from 0xffff, MSB steps down every 256 ticks", () => {
    const { clock, io } = setup();
    io.write(0x61, 1, (io.read(0x61, 1) & ~0x02) | 0x01); // gate high, speaker off
    io.write(0x43, 1, 0xb0);
    io.write(0x42, 1, 0xff);
    io.write(0x42, 1, 0xff);
    const t0 = clock.now();
    const readMsb = () => {
      io.read(0x42, 1); // LSB
      return io.read(0x42, 1);
    };
    let last = readMsb();
    expect(last).toBe(0xff);
    const seen: number[] = [last];
    for (let tick = 1; tick < 256 * 20; tick += 7) {
      clock.advanceTo(t0 + ns(tick));
      const msb = readMsb();
      if (msb !== last) {
        expect(msb).toBe(last - 1);
        expect(tick - (0xffff - (msb * 256 + 255))).toBeLessThan(8);
        seen.push(msb);
        last = msb;
      }
    }
    expect(seen.length).toBe(20);
    expect(io.read(0x61, 1) & 0x20).toBe(0); // OUT still low
  });

  it("pit_calibrate_tsc: channel 2 OUT (port 0x61 bit 5) rises after the 50 ms count", () => {
    const { clock, io } = setup();
    const latch = Math.floor(PIT_HZ / 20); // 59659
    io.write(0x61, 1, (io.read(0x61, 1) & ~0x02) | 0x01);
    io.write(0x43, 1, 0xb0);
    io.write(0x42, 1, latch & 0xff);
    io.write(0x42, 1, latch >> 8);
    clock.advanceTo(ns(latch - 1));
    expect(io.read(0x61, 1) & 0x20).toBe(0);
    clock.advanceTo(ns(latch));
    expect(io.read(0x61, 1) & 0x20).toBe(0x20);
    expect(io.read(0x61, 1) & 0x01).toBe(1);
  });

  it("a low gate suspends channel 2 in mode 0 and holds OUT high in mode 3", () => {
    const { clock, io, pit } = setup();
    io.write(0x61, 1, 0x01);
    io.write(0x43, 1, 0xb0);
    io.write(0x42, 1, 0x10);
    io.write(0x42, 1, 0x27); // 10000
    clock.advanceTo(ns(100));
    io.write(0x61, 1, 0x00);
    clock.advanceTo(ns(5000));
    expect(pit.readCounter(2)).toBe(9900);
    io.write(0x61, 1, 0x01);
    clock.advanceTo(ns(5100));
    expect(pit.readCounter(2)).toBe(9800);
    // Mode 3: gate low forces OUT high; gate high restarts the count.
    io.write(0x43, 1, 0xb6);
    io.write(0x42, 1, 100);
    io.write(0x42, 1, 0);
    clock.advanceTo(ns(5100 + 60));
    expect(io.read(0x61, 1) & 0x20).toBe(0); // second half of the period: low
    io.write(0x61, 1, 0x00);
    expect(io.read(0x61, 1) & 0x20).toBe(0x20);
    io.write(0x61, 1, 0x01);
    expect(pit.readCounter(2)).toBe(100);
  });

  it("mode 3 square wave: high for ceil(n/2), low for floor(n/2)", () => {
    const { clock, io } = setup();
    io.write(0x61, 1, 0x01);
    io.write(0x43, 1, 0xb6);
    io.write(0x42, 1, 5);
    io.write(0x42, 1, 0);
    const t0 = pitTickAt(clock.now());
    const outs: number[] = [];
    for (let d = 0; d < 10; d++) {
      clock.advanceTo(ns(t0 + d));
      outs.push((io.read(0x61, 1) >> 5) & 1);
    }
    expect(outs).toEqual([1, 1, 1, 0, 0, 1, 1, 1, 0, 0]);
  });

  it("modes 1 and 5 wait for a gate trigger; mode 4 strobes low for one clock", () => {
    const { clock, io } = setup();
    io.write(0x43, 1, 0xb2); // channel 2, mode 1
    io.write(0x42, 1, 10);
    io.write(0x42, 1, 0);
    clock.advanceTo(ns(50));
    expect(io.read(0x61, 1) & 0x20).toBe(0x20); // not triggered
    io.write(0x61, 1, 0x01); // rising gate triggers
    clock.advanceTo(ns(55));
    expect(io.read(0x61, 1) & 0x20).toBe(0);
    clock.advanceTo(ns(60));
    expect(io.read(0x61, 1) & 0x20).toBe(0x20);
    io.write(0x43, 1, 0xb8); // mode 4
    io.write(0x42, 1, 3);
    io.write(0x42, 1, 0);
    const outs: number[] = [];
    for (let d = 0; d < 6; d++) {
      clock.advanceTo(ns(60 + d));
      outs.push((io.read(0x61, 1) >> 5) & 1);
    }
    expect(outs).toEqual([1, 1, 1, 0, 1, 1]);
  });

  it("latch command freezes the value for an LSB/MSB read; read-back latches status", () => {
    const { clock, io } = setup();
    io.write(0x43, 1, 0x30);
    io.write(0x40, 1, 0x00);
    io.write(0x40, 1, 0x80); // 0x8000
    clock.advanceTo(ns(0x100));
    io.write(0x43, 1, 0x00); // latch channel 0
    clock.advanceTo(ns(0x300));
    io.write(0x43, 1, 0x00); // ignored: already latched
    expect(io.read(0x40, 1)).toBe(0x00);
    expect(io.read(0x40, 1)).toBe(0x7f);
    // live again
    expect(io.read(0x40, 1) | (io.read(0x40, 1) << 8)).toBe(0x8000 - 0x300);
    // read-back: status and count of channel 0
    io.write(0x43, 1, 0xc2);
    expect(io.read(0x40, 1)).toBe(0x30); // OUT low, count loaded, LSB/MSB, mode 0, binary
    expect(io.read(0x40, 1) | (io.read(0x40, 1) << 8)).toBe(0x8000 - 0x300);
    // status right after a control word shows null count
    io.write(0x43, 1, 0x34);
    io.write(0x43, 1, 0xe2); // read-back status only
    expect(io.read(0x40, 1)).toBe(0x80 | 0x40 | 0x34);
  });

  it("LSB-only and MSB-only access, and BCD counting", () => {
    const { clock, io, pit } = setup();
    io.write(0x43, 1, 0x90); // channel 2, LSB only, mode 0
    io.write(0x42, 1, 0x50);
    io.write(0x61, 1, 1);
    expect(pit.readCounter(2)).toBe(0x50);
    io.write(0x43, 1, 0xa0); // MSB only
    io.write(0x42, 1, 0x12);
    clock.advanceTo(clock.now() + ns(1));
    expect(io.read(0x42, 1)).toBe(0x11);
    io.write(0x43, 1, 0xb1); // LSB/MSB, mode 0, BCD
    io.write(0x42, 1, 0x00);
    io.write(0x42, 1, 0x10); // 1000 decimal
    const t = pitTickAt(clock.now());
    clock.advanceTo(ns(t + 1));
    expect(io.read(0x42, 1)).toBe(0x99);
    expect(io.read(0x42, 1)).toBe(0x09);
    clock.advanceTo(ns(t + 1001));
    expect(io.read(0x42, 1) | (io.read(0x42, 1) << 8)).toBe(0x9999); // wraps to 9999
  });

  it("port 0x61: refresh bit toggles with time; bits 0-3 read back", () => {
    const { clock, io } = setup();
    io.write(0x61, 1, 0x0e);
    const a = io.read(0x61, 1);
    clock.advanceTo(15_085);
    const b = io.read(0x61, 1);
    expect(a & 0x0f).toBe(0x0e);
    expect((a ^ b) & 0x10).toBe(0x10);
  });

  it("save/restore continues the same counting and the IRQ schedule", () => {
    const { clock, io, pit, rec } = setup();
    io.write(0x43, 1, 0x34);
    io.write(0x40, 1, 0x9d);
    io.write(0x40, 1, 0x12);
    clock.runDue(3e6);
    const state = JSON.parse(JSON.stringify(pit.save()));
    const clock2 = new TimerQueue();
    clock2.advanceTo(3e6);
    const rec2 = recorder(clock2);
    const pit2 = new Pit({ clock: clock2, irq: rec2.line });
    pit2.restore(state);
    rec2.events.length = 0;
    expect(pit2.readCounter(0)).toBe(pit.readCounter(0));
    const r1 = rec.rises();
    clock.runDue(1e9);
    clock2.runDue(1e9);
    expect(rec2.rises()).toBe(rec.rises() - r1);
    expect(() => pit2.restore({ ...state, channels: [] })).toThrow(/pit.channels/);
    pit.reset();
    expect(clock.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
  });

  it("property: mode 0 reads (n - elapsed) mod 2^16 at any time", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xffff }),
        fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 10 }),
        (n, steps) => {
          const { clock, io } = setup();
          io.write(0x43, 1, 0x30);
          io.write(0x40, 1, n & 0xff);
          io.write(0x40, 1, n >> 8);
          const start = pitTickAt(clock.now());
          let t = 0;
          for (const s of steps) {
            t += s;
            clock.advanceTo(t);
            io.write(0x43, 1, 0x00);
            const v = io.read(0x40, 1) | (io.read(0x40, 1) << 8);
            const d = pitTickAt(t) - start;
            expect(v).toBe((((n - d) % 0x10000) + 0x10000) % 0x10000);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
