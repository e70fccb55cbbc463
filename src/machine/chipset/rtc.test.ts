import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../common/errors.js";
import { IoBus } from "../io-bus.js";
import { TimerQueue } from "../timers.js";
import { RTC_UIP_NS, Rtc } from "./rtc.js";
import { fromBcd } from "./util.js";

const WALL = Date.UTC(2026, 10, 23, 12, 34, 56, 250); // Monday 23 Nov 2026 12:34:56.250

function setup(wall = WALL, memorySize?: number) {
  const clock = new TimerQueue();
  const irq: boolean[] = [];
  const rtc = new Rtc({ clock, irq: { set: (l) => irq.push(l) }, wallClock: () => wall, memorySize });
  const io = new IoBus();
  rtc.register(io);
  const read = (i: number) => {
    io.write(0x70, 1, i);
    return io.read(0x71, 1);
  };
  const write = (i: number, v: number) => {
    io.write(0x70, 1, i);
    io.write(0x71, 1, v);
  };
  return { clock, rtc, io, irq, read, write };
}

/** mc146818_get_time as Linux 6.1 does it: avoid UIP, read, convert from BCD. */
function linuxGetTime(read: (i: number) => number) {
  for (let i = 0; i < 10; i++) {
    const sec = read(0);
    if (read(0x0a) & 0x80) continue;
    if (sec !== read(0)) continue;
    const b = read(0x0b);
    const raw = [read(0), read(2), read(4), read(7), read(8), read(9), read(0x32)];
    if (read(0x0a) & 0x80) continue;
    const conv = b & 0x04 ? raw : raw.map(fromBcd);
    return {
      sec: conv[0],
      min: conv[1],
      hour: conv[2],
      mday: conv[3],
      mon: conv[4],
      year: conv[5],
      century: conv[6],
    };
  }
  return undefined;
}

describe("MC146818 RTC", () => {
  it("starts at the wall clock in 24-hour BCD, as a PC BIOS leaves it", () => {
    const { read } = setup();
    expect(read(0x0a)).toBe(0x26);
    expect(read(0x0b)).toBe(0x02);
    expect(read(0x0d)).toBe(0x80);
    expect(linuxGetTime(read)).toEqual({
      sec: 56,
      min: 34,
      hour: 12,
      mday: 23,
      mon: 11,
      year: 26,
      century: 20,
    });
    expect(read(0x06)).toBe(new Date(WALL).getUTCDay() + 1);
  });

  it("advances with machine time; the registers change at the second boundary", () => {
    const { read, clock } = setup();
    clock.advanceTo(750e6 - 1);
    expect(read(0)).toBe(0x56);
    clock.advanceTo(750e6);
    expect(read(0)).toBe(0x57);
    clock.advanceTo(750e6 + 3600e9);
    expect(read(4)).toBe(0x13);
    expect(read(2)).toBe(0x34);
    clock.advanceTo(750e6 + 12 * 3600e9);
    expect(read(7)).toBe(0x24); // next day
  });

  it("UIP is set during the last 244 us before each update", () => {
    const { read, clock } = setup();
    const boundary = 750e6;
    clock.advanceTo(boundary - RTC_UIP_NS - 1);
    expect(read(0x0a) & 0x80).toBe(0);
    clock.advanceTo(boundary - RTC_UIP_NS);
    expect(read(0x0a) & 0x80).toBe(0x80);
    expect(read(0)).toBe(0x56); // still the old second
    clock.advanceTo(boundary);
    expect(read(0x0a) & 0x80).toBe(0);
    expect(read(0)).toBe(0x57);
  });

  it("binary and 12-hour formats", () => {
    const { read, write } = setup();
    write(0x0b, 0x04); // binary, 12-hour
    expect(read(0)).toBe(56);
    expect(read(4)).toBe(0x80 | 12); // 12 PM
    expect(read(9)).toBe(26);
    write(0x0b, 0x00); // BCD, 12-hour
    expect(read(4)).toBe(0x80 | 0x12);
  });

  it("setting the time as mc146818_set_time does: SET, divider reset, first update 500 ms after", () => {
    const { read, write, clock } = setup();
    clock.advanceTo(100e6);
    const ctl = read(0x0b);
    write(0x0b, ctl | 0x80);
    const freq = read(0x0a);
    write(0x0a, freq | 0x70);
    write(0, 0x00);
    write(2, 0x00);
    write(4, 0x08);
    write(7, 0x01);
    write(8, 0x01);
    write(9, 0x30);
    write(0x32, 0x20);
    clock.advanceTo(5e9); // frozen meanwhile
    expect(read(0)).toBe(0x00);
    write(0x0b, ctl);
    write(0x0a, freq);
    expect(linuxGetTime(read)).toEqual({ sec: 0, min: 0, hour: 8, mday: 1, mon: 1, year: 30, century: 20 });
    clock.advanceTo(5e9 + 5e8 - 1);
    expect(read(0)).toBe(0x00);
    clock.advanceTo(5e9 + 5e8);
    expect(read(0)).toBe(0x01);
    // Linux does not write the day of week; the chip keeps counting its own (Monday = 2).
    expect(read(6)).toBe(2);
    write(6, 3);
    expect(read(6)).toBe(3);
    clock.advanceTo(5e9 + 5e8 + 86_400e9);
    expect(read(6)).toBe(4);
  });

  it("a time register written while running keeps the phase of the divider chain", () => {
    const { read, write, clock } = setup();
    write(2, 0x00); // minutes
    expect(read(2)).toBe(0x00);
    expect(read(0)).toBe(0x56);
    clock.advanceTo(750e6);
    expect(read(0)).toBe(0x57);
  });

  it("update-ended interrupt every second on IRQ 8; reading C clears it", () => {
    const { read, write, clock, irq } = setup();
    write(0x0b, 0x02 | 0x10);
    clock.runDue(749e6);
    expect(irq).toEqual([]);
    clock.runDue(750e6);
    expect(irq).toEqual([true]);
    expect(read(0x0c)).toBe(0xd0); // IRQF, UF, and PF (set at 1024 Hz even with PIE off)
    expect(irq).toEqual([true, false]);
    expect(read(0x0c)).toBe(0);
    clock.runDue(1750e6);
    expect(irq).toEqual([true, false, true]);
  });

  it("periodic interrupt at 1024 Hz: 1024 per second", () => {
    const { read, write, clock, irq } = setup();
    write(0x0b, 0x02 | 0x40);
    let n = 0;
    while (clock.nextDeadline() <= 1e9) {
      clock.runDue(clock.nextDeadline());
      if (irq[irq.length - 1]) {
        n++;
        expect(read(0x0c) & 0xc0).toBe(0xc0);
      }
    }
    expect(n).toBe(1024);
    write(0x0a, 0x2f); // 2 Hz
    expect(clock.nextDeadline() - clock.now()).toBeLessThanOrEqual(5e8);
    write(0x0b, 0x02);
    expect(clock.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
  });

  it("alarm interrupt when h:m:s match, with don't-care bytes", () => {
    const { read, write, clock, irq } = setup();
    write(1, 0x59);
    write(3, 0xc0); // any minute
    write(5, 0x12);
    write(0x0b, 0x02 | 0x20);
    clock.runDue(1750e6); // 12:34:58
    expect(irq).toEqual([]);
    clock.runDue(2750e6); // 12:34:59
    expect(irq).toEqual([true]);
    expect(read(0x0c)).toBe(0x80 | 0x40 | 0x20 | 0x10);
  });

  it("with interrupts off, reading C reports the events since the last read, without IRQ", () => {
    const { read, write, clock, irq } = setup();
    write(1, 0x00);
    write(3, 0x35);
    write(5, 0x12);
    clock.advanceTo(70e9); // past 12:35:00
    expect(read(0x0c)).toBe(0x70); // PF (1024 Hz), AF, UF - no IRQF
    expect(read(0x0c)).toBe(0);
    expect(irq).toEqual([]);
    expect(clock.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
    // enabling an interrupt whose flag is already set raises IRQ at once
    clock.advanceTo(71e9);
    write(0x0b, 0x02 | 0x10);
    expect(irq).toEqual([true]);
  });

  it("CMOS memory size bytes, NMI mask, plain RAM and read-only registers", () => {
    const { read, write, rtc, io } = setup(WALL, 256 << 20);
    expect(read(0x15) | (read(0x16) << 8)).toBe(640);
    expect(read(0x17) | (read(0x18) << 8)).toBe(0xffff);
    expect(read(0x30) | (read(0x31) << 8)).toBe(0xffff);
    expect(read(0x34) | (read(0x35) << 8)).toBe((240 << 20) >> 16);
    rtc.setMemorySize(15 << 20);
    expect(read(0x17) | (read(0x18) << 8)).toBe(14 * 1024);
    expect(read(0x34) | (read(0x35) << 8)).toBe(0);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += read(i);
    expect((read(0x2e) << 8) | read(0x2f)).toBe(sum);
    expect(() => rtc.setMemorySize(1000)).toThrow(ConfigError);
    io.write(0x70, 1, 0x80 | 0x40);
    expect(rtc.nmiMasked).toBe(true);
    io.write(0x71, 1, 0x5a);
    expect(read(0x40)).toBe(0x5a);
    expect(rtc.nmiMasked).toBe(false);
    expect(io.read(0x70, 1)).toBe(0xff);
    write(0x0d, 0);
    expect(read(0x0d)).toBe(0x80);
    write(0x0a, 0xff);
    expect(read(0x0a) & 0x80).toBe(0); // UIP is read-only
  });

  it("save/restore keeps the time and the interrupt schedule; reset clears enables only", () => {
    const { read, write, clock, rtc } = setup();
    write(0x0b, 0x02 | 0x10);
    write(0x50, 0x77);
    clock.runDue(300e6);
    const st = JSON.parse(JSON.stringify(rtc.save()));
    const b = setup(0); // a different wall clock: the snapshot wins
    b.clock.advanceTo(300e6);
    b.rtc.restore(st);
    b.irq.length = 0;
    expect(linuxGetTime(b.read)).toEqual(linuxGetTime(read));
    expect(b.read(0x50)).toBe(0x77);
    b.clock.runDue(750e6);
    expect(b.irq).toEqual([true]);
    expect(() => b.rtc.restore({ ...st, cmos: [1, 2] })).toThrow(/rtc.cmos/);
    rtc.reset();
    expect(read(0x0b)).toBe(0x02);
    expect(read(0x50)).toBe(0x77);
  });

  it("property: the registers always show wall clock + elapsed machine time", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2090, 0, 1) }),
        fc.integer({ min: 0, max: 400 * 86_400 }),
        fc.boolean(),
        (wall, elapsedS, binary) => {
          const { read, write, clock } = setup(wall);
          if (binary) write(0x0b, 0x06);
          clock.advanceTo(elapsedS * 1e9 + 1e6);
          const t = linuxGetTime(read)!;
          const exp = new Date(wall + elapsedS * 1000 + 1);
          expect(t).toEqual({
            sec: exp.getUTCSeconds(),
            min: exp.getUTCMinutes(),
            hour: exp.getUTCHours(),
            mday: exp.getUTCDate(),
            mon: exp.getUTCMonth() + 1,
            year: exp.getUTCFullYear() % 100,
            century: Math.floor(exp.getUTCFullYear() / 100),
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});
