/**
 * The Motorola MC146818 real-time clock and its 128 bytes of CMOS RAM (index port 0x70 with
 * the NMI mask in bit 7, data port 0x71), interrupting on IRQ 8.
 *
 * Time: read once from an injectable wall clock (ms since the epoch) when the RTC is created,
 * then advanced by the machine's `TimerQueue` time, so a virtual-clock machine is reproducible.
 * The clock is kept as a count of seconds plus the machine time at which the current second
 * began; the time registers are computed on read in the format register B selects (BCD or
 * binary, 12 or 24 hour). Registers: A (UIP, divider, periodic rate), B (SET, PIE, AIE, UIE,
 * SQWE, DM, 24/12, DSE), C (IRQF, PF, AF, UF; read clears) and D (VRT).
 *
 * The update cycle: UIP reads 1 during the last 244 us of each second; the time registers
 * change at the second boundary. SET stops updates (the registers then hold what was written)
 * and the divider reset (A bits 6-4 = 11x) stops the chain; leaving the reset puts the first
 * update 500 ms later, as on the chip. Periodic, alarm and update-ended flags are raised on
 * time; the IRQ line is driven (high while IRQF) only when an enabled flag is set, and timers
 * are scheduled only while such an interrupt is enabled - otherwise the flags are computed
 * when register C is read. Daylight-saving (DSE) and square-wave output are stored, not acted
 * on. CMOS bytes 0x15/0x16, 0x17/0x18, 0x30/0x31 and 0x34/0x35 give the memory size; 0x32 is
 * the century (kept with the time); the rest is plain RAM.
 */
import { ConfigError } from "../../common/errors.js";
import type { Persist, Resettable } from "../../common/persist.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";
import type { IrqLine } from "../irq.js";
import type { TimerHandle, TimerQueue } from "../timers.js";
import {
  checkBool,
  checkBytes,
  checkInt,
  checkNumber,
  checkObject,
  fromBcd,
  readBytes,
  toBcd,
  writeBytes,
} from "./util.js";

export const RTC_PORT = 0x70;

export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const CMOS_CENTURY = 0x32;

export const RTC_UIP = 0x80;
export const RTC_DIV_RESET = 0x60;
export const RTC_SET = 0x80;
export const RTC_PIE = 0x40;
export const RTC_AIE = 0x20;
export const RTC_UIE = 0x10;
export const RTC_SQWE = 0x08;
export const RTC_DM_BINARY = 0x04;
export const RTC_24H = 0x02;
export const RTC_DST_EN = 0x01;
export const RTC_IRQF = 0x80;
export const RTC_PF = 0x40;
export const RTC_AF = 0x20;
export const RTC_UF = 0x10;
export const RTC_VRT = 0x80;

const NS_PER_S = 1e9;
/** UIP goes high 244 us (8 cycles of 32.768 kHz) before the update. */
export const RTC_UIP_NS = 244_141;
const ALARM_DONT_CARE = 0xc0;

export interface RtcOptions {
  clock: TimerQueue;
  /** IRQ 8. */
  irq: IrqLine;
  /** Wall clock in ms since the epoch, read once at creation (default `Date.now`). */
  wallClock?: () => number;
  /** Guest RAM size in bytes, for the CMOS memory size bytes. */
  memorySize?: number;
}

export interface RtcState {
  cmos: number[];
  index: number;
  nmiMasked: boolean;
  /** RTC seconds (since 1970, in the RTC's own time zone) at `epochNs`. */
  baseSeconds: number;
  /** Machine time (ns) at which second `baseSeconds` began. */
  epochNs: number;
  /** Time is counting (not SET, divider running). */
  running: boolean;
  /** Day-of-week register offset from the computed weekday (the chip just counts it). */
  dowOffset: number;
  /** Machine time up to which update/alarm/periodic events have been accounted. */
  checkedNs: number;
  irqLevel: boolean;
}

/** Periodic interrupt period for rate select `rs` (32.768 kHz time base): 2^k / 32768 s. */
function periodShift(rs: number): number {
  if (rs === 0) return -1;
  return rs <= 2 ? rs + 6 : rs - 1;
}

export class Rtc implements IoHandler, Persist<RtcState>, Resettable {
  private readonly clock: TimerQueue;
  private readonly irq: IrqLine;
  private s: RtcState;
  private timer: TimerHandle | null = null;

  constructor(options: RtcOptions) {
    this.clock = options.clock;
    this.irq = options.irq;
    const ms = (options.wallClock ?? Date.now)();
    if (!Number.isFinite(ms)) throw new ConfigError(`RTC wall clock returned ${ms}, not a time`);
    const now = this.clock.now();
    const cmos = new Array<number>(128).fill(0);
    cmos[RTC_REG_A] = 0x26; // 32.768 kHz divider, 1024 Hz periodic rate
    cmos[RTC_REG_B] = RTC_24H; // 24-hour BCD, as a PC BIOS leaves it
    cmos[RTC_REG_D] = RTC_VRT;
    const baseMs = Math.floor(ms);
    this.s = {
      cmos,
      index: 0,
      nmiMasked: false,
      baseSeconds: Math.floor(baseMs / 1000),
      epochNs: now - (((baseMs % 1000) + 1000) % 1000) * 1e6,
      running: true,
      dowOffset: 0,
      checkedNs: now,
      irqLevel: false,
    };
    if (options.memorySize !== undefined) this.setMemorySize(options.memorySize);
  }

  register(io: IoBus): void {
    io.register(RTC_PORT, 2, this, "rtc");
  }

  /** True while the last index write had bit 7 set (NMI disabled). */
  get nmiMasked(): boolean {
    return this.s.nmiMasked;
  }

  /** Fills the CMOS memory size bytes (and their checksum) for `bytes` of RAM. */
  setMemorySize(bytes: number): void {
    if (!Number.isInteger(bytes) || bytes < 1 << 20 || bytes > 0x1_0000_0000) {
      throw new ConfigError(`memory size ${bytes} is out of range for the CMOS (1 MiB to 4 GiB)`);
    }
    const c = this.s.cmos;
    const base = 640;
    c[0x15] = base & 0xff;
    c[0x16] = base >> 8;
    const extKb = Math.min(bytes / 1024 - 1024, 0xffff);
    c[0x17] = c[0x30] = extKb & 0xff;
    c[0x18] = c[0x31] = extKb >> 8;
    const above16 = bytes > 16 << 20 ? Math.min(Math.floor((bytes - (16 << 20)) / 65536), 0xffff) : 0;
    c[0x34] = above16 & 0xff;
    c[0x35] = above16 >> 8;
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += c[i]!;
    c[0x2e] = (sum >> 8) & 0xff;
    c[0x2f] = sum & 0xff;
  }

  // --- ports ----------------------------------------------------------------------------------

  ioRead(port: number, size: AccessSize): number {
    return readBytes(port, size, RTC_PORT, 2, (p) => (p === RTC_PORT ? 0xff : this.readReg(this.s.index)));
  }

  ioWrite(port: number, size: AccessSize, value: number): void {
    writeBytes(port, size, value, RTC_PORT, 2, (p, v) => {
      if (p === RTC_PORT) {
        this.s.index = v & 0x7f;
        this.s.nmiMasked = (v & 0x80) !== 0;
      } else {
        this.writeReg(this.s.index, v);
      }
    });
  }

  /** Reads CMOS register `i` as the guest does (time registers computed). */
  readReg(i: number): number {
    const s = this.s;
    const now = this.clock.now();
    switch (i) {
      case RTC_REG_A:
        return (s.cmos[RTC_REG_A]! & 0x7f) | (this.uip(now) ? RTC_UIP : 0);
      case RTC_REG_C: {
        this.catchUp(now);
        const v = s.cmos[RTC_REG_C]!;
        s.cmos[RTC_REG_C] = 0;
        this.updateIrq();
        this.schedule();
        return v;
      }
      case RTC_REG_D:
        return RTC_VRT;
      default:
        if (s.running && this.isTimeReg(i)) return this.timeBytes(this.secondsAt(now)).get(i)!;
        return s.cmos[i]!;
    }
  }

  writeReg(i: number, v: number): void {
    const s = this.s;
    const now = this.clock.now();
    switch (i) {
      case RTC_REG_A: {
        this.catchUp(now);
        const wasReset = (s.cmos[RTC_REG_A]! & RTC_DIV_RESET) === RTC_DIV_RESET;
        const isReset = (v & RTC_DIV_RESET) === RTC_DIV_RESET;
        if (!wasReset && isReset) this.freeze(now);
        s.cmos[RTC_REG_A] = v & 0x7f;
        // Leaving the divider reset: the first update comes 500 ms later.
        if (wasReset && !isReset && (s.cmos[RTC_REG_B]! & RTC_SET) === 0) this.resume(now, now - 5e8);
        break;
      }
      case RTC_REG_B: {
        this.catchUp(now);
        const old = s.cmos[RTC_REG_B]!;
        if (v & RTC_SET) v &= ~RTC_UIE; // SET going high clears UIE
        if (!(old & RTC_SET) && v & RTC_SET) this.freeze(now);
        s.cmos[RTC_REG_B] = v;
        if (old & RTC_SET && !(v & RTC_SET) && !this.dividerReset()) this.resume(now, s.epochNs);
        break;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        if (this.isTimeReg(i)) {
          if (s.running) {
            this.freeze(now);
            s.cmos[i] = v;
            this.resume(now, s.epochNs);
          } else {
            s.cmos[i] = v;
          }
        } else {
          s.cmos[i] = v;
        }
        return;
    }
    this.updateIrq();
    this.schedule();
  }

  private isTimeReg(i: number): boolean {
    return (
      i === RTC_SECONDS ||
      i === RTC_MINUTES ||
      i === RTC_HOURS ||
      (i >= RTC_DAY_OF_WEEK && i <= RTC_YEAR) ||
      i === CMOS_CENTURY
    );
  }

  private dividerReset(): boolean {
    return (this.s.cmos[RTC_REG_A]! & RTC_DIV_RESET) === RTC_DIV_RESET;
  }

  // --- time keeping ---------------------------------------------------------------------------

  /** The RTC seconds count at machine time `now` (frozen when not running). */
  private secondsAt(now: number): number {
    const s = this.s;
    return s.baseSeconds + Math.floor((now - s.epochNs) / NS_PER_S);
  }

  private uip(now: number): boolean {
    const s = this.s;
    if (!s.running) return false;
    const into = (((now - s.epochNs) % NS_PER_S) + NS_PER_S) % NS_PER_S;
    return into >= NS_PER_S - RTC_UIP_NS;
  }

  /** Stops counting: the time registers take the current time and become plain bytes. */
  private freeze(now: number): void {
    const s = this.s;
    if (!s.running) return;
    const bytes = this.timeBytes(this.secondsAt(now));
    for (const [i, b] of bytes) s.cmos[i] = b;
    s.running = false;
  }

  /** Starts counting from the time registers; the second in progress began at `epochNs`. */
  private resume(now: number, epochNs: number): void {
    const s = this.s;
    const secs = this.parseTime();
    const elapsed = Math.floor((now - epochNs) / NS_PER_S);
    s.epochNs = epochNs;
    s.baseSeconds = secs - elapsed;
    s.running = true;
    s.checkedNs = now;
  }

  private binary(): boolean {
    return (this.s.cmos[RTC_REG_B]! & RTC_DM_BINARY) !== 0;
  }

  private enc(v: number): number {
    return this.binary() ? v : toBcd(v);
  }

  private dec(v: number): number {
    return this.binary() ? v : fromBcd(v);
  }

  /** The time registers (and the century byte) for RTC seconds `secs`. */
  private timeBytes(secs: number): Map<number, number> {
    const d = new Date(secs * 1000);
    const h = d.getUTCHours();
    let hours: number;
    if (this.s.cmos[RTC_REG_B]! & RTC_24H) hours = this.enc(h);
    else hours = this.enc(h % 12 || 12) | (h >= 12 ? 0x80 : 0);
    const year = d.getUTCFullYear();
    const dow = ((((d.getUTCDay() + this.s.dowOffset) % 7) + 7) % 7) + 1;
    return new Map([
      [RTC_SECONDS, this.enc(d.getUTCSeconds())],
      [RTC_MINUTES, this.enc(d.getUTCMinutes())],
      [RTC_HOURS, hours],
      [RTC_DAY_OF_WEEK, this.enc(dow)],
      [RTC_DAY_OF_MONTH, this.enc(d.getUTCDate())],
      [RTC_MONTH, this.enc(d.getUTCMonth() + 1)],
      [RTC_YEAR, this.enc(year % 100)],
      [CMOS_CENTURY, this.enc(Math.floor(year / 100) % 100)],
    ]);
  }

  /** RTC seconds from the time registers as they are stored (Date.UTC normalises odd values). */
  private parseTime(): number {
    const c = this.s.cmos;
    const hr = c[RTC_HOURS]!;
    let h: number;
    if (c[RTC_REG_B]! & RTC_24H) h = this.dec(hr);
    else h = (this.dec(hr & 0x7f) % 12) + (hr & 0x80 ? 12 : 0);
    const yy = this.dec(c[RTC_YEAR]!);
    let century = this.dec(c[CMOS_CENTURY]!);
    if (century < 19 || century > 99) century = yy < 70 ? 20 : 19;
    const ms = Date.UTC(
      century * 100 + yy,
      this.dec(c[RTC_MONTH]!) - 1,
      this.dec(c[RTC_DAY_OF_MONTH]!),
      h,
      this.dec(c[RTC_MINUTES]!),
      this.dec(c[RTC_SECONDS]!),
    );
    const secs = Math.floor(ms / 1000);
    const computed = new Date(secs * 1000).getUTCDay() + 1;
    this.s.dowOffset = (((this.dec(c[RTC_DAY_OF_WEEK]!) - computed) % 7) + 7) % 7;
    return secs;
  }

  // --- interrupts -----------------------------------------------------------------------------

  /** Raises the flags for every update, alarm and periodic event in (checkedNs, now]. */
  private catchUp(now: number): void {
    const s = this.s;
    const from = s.checkedNs;
    if (now <= from) return;
    s.checkedNs = now;
    if (!s.running) return;
    let flags = s.cmos[RTC_REG_C]!;
    const s0 = Math.floor((from - s.epochNs) / NS_PER_S);
    const s1 = Math.floor((now - s.epochNs) / NS_PER_S);
    if (s1 > s0) {
      flags |= RTC_UF;
      if (!(flags & RTC_AF) && this.alarmBetween(s.baseSeconds + s0, s.baseSeconds + s1)) flags |= RTC_AF;
    }
    const k = periodShift(s.cmos[RTC_REG_A]! & 0x0f);
    if (k >= 0 && this.periodIndex(now, k) > this.periodIndex(from, k)) flags |= RTC_PF;
    s.cmos[RTC_REG_C] = flags;
  }

  /** Whether an update to any RTC second in (a, b] matches the alarm registers. */
  private alarmBetween(a: number, b: number): boolean {
    const c = this.s.cmos;
    const as = c[RTC_SECONDS_ALARM]!;
    const am = c[RTC_MINUTES_ALARM]!;
    const ah = c[RTC_HOURS_ALARM]!;
    // A time-of-day pattern repeats every day: looking at the last day of the range is enough.
    const h24 = (this.s.cmos[RTC_REG_B]! & RTC_24H) !== 0;
    const start = Math.max(a + 1, b - 86_399);
    for (let t = start; t <= b; t++) {
      const tod = ((t % 86_400) + 86_400) % 86_400;
      const h = Math.floor(tod / 3600);
      const hours = h24 ? this.enc(h) : this.enc(h % 12 || 12) | (h >= 12 ? 0x80 : 0);
      if (
        (as >= ALARM_DONT_CARE || as === this.enc(tod % 60)) &&
        (am >= ALARM_DONT_CARE || am === this.enc(Math.floor(tod / 60) % 60)) &&
        (ah >= ALARM_DONT_CARE || ah === hours)
      ) {
        return true;
      }
    }
    return false;
  }

  /** Number of whole periods of 2^k/32768 s since the divider chain's second boundary. */
  private periodIndex(t: number, k: number): number {
    const d = t - this.s.epochNs;
    const secs = Math.floor(d / NS_PER_S);
    const rem = d - secs * NS_PER_S;
    const perSec = 32768 / 2 ** k;
    return secs * perSec + Math.floor((rem * perSec) / NS_PER_S);
  }

  private periodStart(n: number, k: number): number {
    const perSec = 32768 / 2 ** k;
    const secs = Math.floor(n / perSec);
    const r = n - secs * perSec;
    return this.s.epochNs + secs * NS_PER_S + Math.ceil((r * NS_PER_S) / perSec);
  }

  private updateIrq(): void {
    const s = this.s;
    const b = s.cmos[RTC_REG_B]!;
    let c = s.cmos[RTC_REG_C]! & 0x70;
    if (c & b & (RTC_PIE | RTC_AIE | RTC_UIE)) c |= RTC_IRQF;
    s.cmos[RTC_REG_C] = c;
    const level = (c & RTC_IRQF) !== 0;
    if (level !== s.irqLevel) {
      s.irqLevel = level;
      this.irq.set(level);
    }
  }

  /** Schedules the next event that could raise an enabled interrupt, if any. */
  private schedule(): void {
    this.clock.cancel(this.timer);
    this.timer = null;
    const s = this.s;
    if (!s.running || s.irqLevel) return; // the line stays high until C is read anyway
    const b = s.cmos[RTC_REG_B]!;
    const now = this.clock.now();
    let next = Number.POSITIVE_INFINITY;
    if (b & (RTC_UIE | RTC_AIE)) {
      next = s.epochNs + (Math.floor((now - s.epochNs) / NS_PER_S) + 1) * NS_PER_S;
    }
    const k = periodShift(s.cmos[RTC_REG_A]! & 0x0f);
    if (b & RTC_PIE && k >= 0) next = Math.min(next, this.periodStart(this.periodIndex(now, k) + 1, k));
    if (next === Number.POSITIVE_INFINITY) return;
    this.timer = this.clock.schedule(next, () => this.onTimer());
  }

  private onTimer(): void {
    this.timer = null;
    this.catchUp(this.clock.now());
    this.updateIrq();
    this.schedule();
  }

  // --- reset and snapshots --------------------------------------------------------------------

  /** The RESET pin: clears PIE, AIE, UIE, SQWE and the flags; time and CMOS RAM are kept. */
  reset(): void {
    const s = this.s;
    this.catchUp(this.clock.now());
    s.cmos[RTC_REG_B] = s.cmos[RTC_REG_B]! & ~(RTC_PIE | RTC_AIE | RTC_UIE | RTC_SQWE);
    s.cmos[RTC_REG_C] = 0;
    s.index = 0;
    s.nmiMasked = false;
    this.updateIrq();
    this.schedule();
  }

  save(): RtcState {
    return { ...this.s, cmos: [...this.s.cmos] };
  }

  restore(state: RtcState): void {
    const o = checkObject(state, "rtc");
    const cmos = checkBytes(o.cmos, "rtc.cmos", 128);
    if (cmos.length !== 128) throw new ConfigError("bad saved state: rtc.cmos must hold 128 bytes");
    const s: RtcState = {
      cmos: [...cmos],
      index: checkInt(o.index, "rtc.index", 0, 0x7f),
      nmiMasked: checkBool(o.nmiMasked, "rtc.nmiMasked"),
      baseSeconds: checkInt(o.baseSeconds, "rtc.baseSeconds", -8.64e12, 8.64e12),
      epochNs: checkNumber(o.epochNs, "rtc.epochNs"),
      running: checkBool(o.running, "rtc.running"),
      dowOffset: checkInt(o.dowOffset, "rtc.dowOffset", 0, 6),
      checkedNs: checkNumber(o.checkedNs, "rtc.checkedNs"),
      irqLevel: checkBool(o.irqLevel, "rtc.irqLevel"),
    };
    this.clock.cancel(this.timer);
    this.timer = null;
    this.s = s;
    this.irq.set(s.irqLevel);
    this.updateIrq();
    this.schedule();
  }
}
