/**
 * The Intel 8254 programmable interval timer (ports 0x40-0x43) and the PC's system control
 * port B (0x61: channel 2 gate, speaker enable, refresh toggle, channel 2 OUT).
 *
 * The counters are not ticked. Each running counter remembers the PIT clock tick at which it
 * started counting; its value and OUT are computed from the elapsed ticks of the 1.193182 MHz
 * clock, derived from the machine's `TimerQueue` time. Channel 0 drives IRQ 0: the next change
 * of its OUT is scheduled on the timer queue. When the callback runs late (the host fell
 * behind), the missed periods are coalesced into one rising edge, as a PIC latches only one.
 *
 * Modes 0-5 (6 and 7 alias 2 and 3), LSB/MSB/both access, BCD counting, the counter latch
 * command and the read-back command (count and status). Simplifications (documented, as in
 * QEMU): a count is loaded on the write rather than on the next clock edge, and a new count
 * written to a running mode 2/3 counter restarts it at once instead of at the end of the period.
 */
import { ConfigError } from "../../common/errors.js";
import type { Persist, Resettable } from "../../common/persist.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";
import type { IrqLine } from "../irq.js";
import type { TimerHandle, TimerQueue } from "../timers.js";
import {
  checkBool,
  checkInt,
  checkNumber,
  checkObject,
  fromBcd,
  readBytes,
  toBcd,
  writeBytes,
} from "./util.js";

export const PIT_HZ = 1_193_182;
export const PIT_BASE = 0x40;
export const PORT_B = 0x61;

/** The PIT clock tick in progress at machine time `ns` (exact for any ns below 2^53). */
export function pitTickAt(ns: number): number {
  const t = Math.floor(ns);
  const q = Math.floor(t / 1e9);
  const r = t - q * 1e9;
  return q * PIT_HZ + Math.floor((r * PIT_HZ) / 1e9);
}

/** The first machine time (ns) at which tick `tick` has begun. */
export function pitTickTime(tick: number): number {
  const q = Math.floor(tick / PIT_HZ);
  const r = tick - q * PIT_HZ;
  return q * 1e9 + Math.ceil((r * 1e9) / PIT_HZ);
}

/** Where a counter is in its cycle. */
export const CounterPhase = {
  /** Control word written, no count yet. */
  NO_COUNT: 0,
  /**
   * Count written, waiting for the gate (rising edge in modes 1/5, high level in 2/3); in
   * mode 0, the first byte of a new LSB/MSB count has been written (counting stopped, OUT low).
   */
  WAIT_GATE: 1,
  /** Counting since `loadTick`. */
  RUNNING: 2,
  /** Counting suspended by a low gate at `frozen` elapsed ticks. */
  PAUSED: 3,
} as const;

export interface PitChannelState {
  mode: number;
  /** Access mode from the control word: 1 LSB, 2 MSB, 3 LSB then MSB. */
  rw: number;
  bcd: boolean;
  /** The count register as written (raw 16 bits; BCD digits when `bcd`). */
  countRegister: number;
  /** The initial count in clock ticks: 1..0x10000 (binary) or 1..10000 (BCD). */
  count: number;
  phase: number;
  loadTick: number;
  frozen: number;
  gate: boolean;
  /** The next write is the MSB of an LSB/MSB pair. */
  writeHigh: boolean;
  lowByte: number;
  /** The next (unlatched) read returns the MSB of an LSB/MSB pair. */
  readHigh: boolean;
  latched: boolean;
  latchValue: number;
  latchHigh: boolean;
  statusLatched: boolean;
  status: number;
  nullCount: boolean;
}

export interface PitState {
  channels: PitChannelState[];
  speaker: number;
  irqLevel: boolean;
  lastIrqTick: number;
}

export interface PitOptions {
  clock: TimerQueue;
  /** IRQ 0. */
  irq: IrqLine;
}

function initialChannel(gate: boolean): PitChannelState {
  return {
    mode: 0,
    rw: 3,
    bcd: false,
    countRegister: 0,
    count: 0x10000,
    phase: CounterPhase.NO_COUNT,
    loadTick: 0,
    frozen: 0,
    gate,
    writeHigh: false,
    lowByte: 0,
    readHigh: false,
    latched: false,
    latchValue: 0,
    latchHigh: false,
    statusLatched: false,
    status: 0,
    nullCount: true,
  };
}

/** OUT of a counter in `mode` after `d` elapsed ticks of a running count of `n`. */
function outRunning(mode: number, n: number, d: number): boolean {
  switch (mode) {
    case 0:
    case 1:
      return d >= n;
    case 2:
      return n < 2 || d % n !== n - 1;
    case 3:
      return n < 2 || d % n < Math.ceil(n / 2);
    default: // 4, 5: low for the one clock when the count reaches zero
      return d !== n;
  }
}

/** The elapsed tick (> d) of the next OUT change of a running counter, or -1 when none. */
function nextChange(mode: number, n: number, d: number): number {
  switch (mode) {
    case 0:
    case 1:
      return d < n ? n : -1;
    case 2: {
      if (n < 2) return -1;
      const k = d % n;
      return k < n - 1 ? d + (n - 1 - k) : d + 1;
    }
    case 3: {
      if (n < 2) return -1;
      const half = Math.ceil(n / 2);
      const k = d % n;
      return k < half ? d + (half - k) : d + (n - k);
    }
    default:
      if (d < n) return n;
      if (d === n) return n + 1;
      return -1;
  }
}

/** True when OUT rose at least once in the elapsed-tick interval (from, to]. */
function roseBetween(mode: number, n: number, from: number, to: number): boolean {
  if (to <= from) return false;
  switch (mode) {
    case 0:
    case 1:
      return from < n && n <= to;
    case 2:
    case 3:
      return n >= 2 && Math.floor(to / n) > Math.floor(from / n);
    default:
      return from < n + 1 && n + 1 <= to;
  }
}

/** The 8254 and port 0x61. */
export class Pit implements IoHandler, Persist<PitState>, Resettable {
  private readonly clock: TimerQueue;
  private readonly irq: IrqLine;
  private ch: PitChannelState[] = [initialChannel(true), initialChannel(true), initialChannel(false)];
  /** Port 0x61 bits 0-3 as written (bit 0 gate 2, bit 1 speaker data enable). */
  private speaker = 0;
  private irqLevel = false;
  /** Elapsed-tick bookkeeping for channel 0's coalesced edges (absolute tick). */
  private lastIrqTick = 0;
  private timer: TimerHandle | null = null;

  constructor(options: PitOptions) {
    this.clock = options.clock;
    this.irq = options.irq;
  }

  register(io: IoBus): void {
    io.register(PIT_BASE, 4, this, "pit");
    io.register(PORT_B, 1, this, "port-b");
  }

  // --- I/O ------------------------------------------------------------------------------------

  ioRead(port: number, size: AccessSize): number {
    if (port === PORT_B) return readBytes(port, size, PORT_B, 1, () => this.readPortB());
    return readBytes(port, size, PIT_BASE, 4, (p) => this.readByte(p));
  }

  ioWrite(port: number, size: AccessSize, value: number): void {
    if (port === PORT_B) {
      writeBytes(port, size, value, PORT_B, 1, (_p, v) => this.writePortB(v));
      return;
    }
    writeBytes(port, size, value, PIT_BASE, 4, (p, v) => this.writeByte(p, v));
  }

  private readPortB(): number {
    const now = this.clock.now();
    // Bit 4 toggles with every DRAM refresh request (15.085 us); bit 5 is channel 2's OUT.
    const refresh = Math.floor(now / 15_085) & 1;
    return (this.speaker & 0x0f) | (refresh << 4) | (this.out(2, pitTickAt(now)) ? 0x20 : 0);
  }

  private writePortB(v: number): void {
    this.speaker = v & 0x0f;
    this.setGate(2, (v & 1) !== 0);
  }

  private readByte(port: number): number {
    const i = port - PIT_BASE;
    if (i === 3) return 0xff; // the control word register is write-only
    const c = this.ch[i]!;
    if (c.statusLatched) {
      c.statusLatched = false;
      return c.status;
    }
    if (c.latched) {
      if (c.rw === 3 && !c.latchHigh) {
        c.latchHigh = true;
        return c.latchValue & 0xff;
      }
      c.latched = false;
      c.latchHigh = false;
      return c.rw === 1 ? c.latchValue & 0xff : (c.latchValue >> 8) & 0xff;
    }
    const v = this.counterValue(i, pitTickAt(this.clock.now()));
    if (c.rw === 1) return v & 0xff;
    if (c.rw === 2) return (v >> 8) & 0xff;
    c.readHigh = !c.readHigh;
    return c.readHigh ? v & 0xff : (v >> 8) & 0xff;
  }

  private writeByte(port: number, v: number): void {
    const i = port - PIT_BASE;
    if (i === 3) {
      this.writeControl(v);
      return;
    }
    const c = this.ch[i]!;
    if (c.rw === 1) this.loadCount(i, v);
    else if (c.rw === 2) this.loadCount(i, v << 8);
    else if (!c.writeHigh) {
      c.writeHigh = true;
      c.lowByte = v;
      // Mode 0: writing the first byte stops the count and sets OUT low at once.
      if (c.mode === 0 && c.phase !== CounterPhase.NO_COUNT) {
        c.phase = CounterPhase.WAIT_GATE;
        if (i === 0) this.irqUpdate(pitTickAt(this.clock.now()));
      }
    } else {
      c.writeHigh = false;
      this.loadCount(i, c.lowByte | (v << 8));
    }
  }

  private writeControl(v: number): void {
    const sc = v >> 6;
    const now = pitTickAt(this.clock.now());
    if (sc === 3) {
      // Read-back: bit 5 clear latches the count, bit 4 clear the status; bits 1-3 select.
      for (let i = 0; i < 3; i++) {
        if ((v & (2 << i)) === 0) continue;
        const c = this.ch[i]!;
        if ((v & 0x10) === 0 && !c.statusLatched) {
          c.statusLatched = true;
          c.status =
            (this.out(i, now) ? 0x80 : 0) |
            (c.nullCount ? 0x40 : 0) |
            (c.rw << 4) |
            (c.mode << 1) |
            (c.bcd ? 1 : 0);
        }
        if ((v & 0x20) === 0) this.latch(i, now);
      }
      return;
    }
    const c = this.ch[sc]!;
    const rw = (v >> 4) & 3;
    if (rw === 0) {
      this.latch(sc, now);
      return;
    }
    let mode = (v >> 1) & 7;
    if (mode > 5) mode -= 4;
    c.rw = rw;
    c.mode = mode;
    c.bcd = (v & 1) !== 0;
    c.phase = CounterPhase.NO_COUNT;
    c.nullCount = true;
    c.writeHigh = false;
    c.readHigh = false;
    c.latched = false;
    c.latchHigh = false;
    c.statusLatched = false;
    if (sc === 0) this.irqUpdate(now);
  }

  private latch(i: number, now: number): void {
    const c = this.ch[i]!;
    if (c.latched) return; // a second latch before the first is read is ignored
    c.latched = true;
    c.latchHigh = false;
    c.latchValue = this.counterValue(i, now);
  }

  private loadCount(i: number, raw: number): void {
    const c = this.ch[i]!;
    const now = pitTickAt(this.clock.now());
    raw &= 0xffff;
    c.countRegister = raw;
    const n = c.bcd ? fromBcd(raw & 0xff) + 100 * fromBcd(raw >> 8) : raw;
    c.count = n === 0 ? (c.bcd ? 10000 : 0x10000) : n;
    c.nullCount = false;
    switch (c.mode) {
      case 0:
      case 4:
        if (c.gate) {
          c.phase = CounterPhase.RUNNING;
          c.loadTick = now;
        } else {
          c.phase = CounterPhase.PAUSED;
          c.frozen = 0;
        }
        break;
      case 2:
      case 3:
        if (c.gate) {
          c.phase = CounterPhase.RUNNING;
          c.loadTick = now;
        } else {
          c.phase = CounterPhase.WAIT_GATE;
        }
        break;
      default: // 1, 5: the gate's rising edge starts the count
        if (c.phase === CounterPhase.NO_COUNT) c.phase = CounterPhase.WAIT_GATE;
        break;
    }
    if (i === 0) this.irqUpdate(now);
  }

  /** Drives a channel's GATE input (channel 2's is port 0x61 bit 0; 0 and 1 are tied high). */
  setGate(i: number, gate: boolean): void {
    const c = this.ch[i]!;
    if (c.gate === gate) return;
    c.gate = gate;
    const now = pitTickAt(this.clock.now());
    switch (c.mode) {
      case 0:
      case 4:
        if (!gate && c.phase === CounterPhase.RUNNING) {
          c.frozen = now - c.loadTick;
          c.phase = CounterPhase.PAUSED;
        } else if (gate && c.phase === CounterPhase.PAUSED) {
          c.loadTick = now - c.frozen;
          c.phase = CounterPhase.RUNNING;
        }
        break;
      case 2:
      case 3:
        if (!gate && c.phase === CounterPhase.RUNNING) {
          c.frozen = now - c.loadTick;
          c.phase = CounterPhase.PAUSED;
        } else if (gate && c.phase !== CounterPhase.NO_COUNT) {
          c.loadTick = now;
          c.phase = CounterPhase.RUNNING;
        }
        break;
      default:
        if (gate && c.phase !== CounterPhase.NO_COUNT) {
          c.loadTick = now;
          c.phase = CounterPhase.RUNNING;
        }
        break;
    }
    if (i === 0) this.irqUpdate(now);
  }

  // --- counter arithmetic ---------------------------------------------------------------------

  /** Elapsed ticks of channel `i`'s count at absolute tick `now`, or -1 when not counting. */
  private elapsed(i: number, now: number): number {
    const c = this.ch[i]!;
    if (c.phase === CounterPhase.RUNNING) return now - c.loadTick;
    if (c.phase === CounterPhase.PAUSED) return c.frozen;
    return -1;
  }

  /** OUT of channel `i` at absolute tick `now`. */
  out(i: number, now: number = pitTickAt(this.clock.now())): boolean {
    const c = this.ch[i]!;
    if (c.phase === CounterPhase.NO_COUNT || c.phase === CounterPhase.WAIT_GATE) return c.mode !== 0;
    if (c.phase === CounterPhase.PAUSED && (c.mode === 2 || c.mode === 3)) return true;
    return outRunning(c.mode, c.count, this.elapsed(i, now));
  }

  /** The counting element's value as the guest reads it (BCD-encoded in BCD mode). */
  private counterValue(i: number, now: number): number {
    const c = this.ch[i]!;
    const d = this.elapsed(i, now);
    if (d < 0) return c.countRegister;
    const n = c.count;
    const wrap = c.bcd ? 10000 : 0x10000;
    let v: number;
    switch (c.mode) {
      case 2:
        v = n - (d % n);
        break;
      case 3:
        v = n - ((2 * d) % n);
        break;
      default:
        v = (((n - d) % wrap) + wrap) % wrap;
        break;
    }
    v %= wrap;
    if (!c.bcd) return v & 0xffff;
    return toBcd(v % 100) | (toBcd(Math.floor(v / 100) % 100) << 8);
  }

  // --- IRQ 0 ----------------------------------------------------------------------------------

  private setLine(level: boolean): void {
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    this.irq.set(level);
  }

  /** After reprogramming channel 0: drive OUT as it is now and schedule its next change. */
  private irqUpdate(now: number): void {
    this.lastIrqTick = now;
    this.setLine(this.out(0, now));
    this.schedule(now);
  }

  private schedule(now: number): void {
    this.clock.cancel(this.timer);
    this.timer = null;
    const c = this.ch[0]!;
    if (c.phase !== CounterPhase.RUNNING) return;
    const d = now - c.loadTick;
    const next = nextChange(c.mode, c.count, d);
    if (next < 0) return;
    this.timer = this.clock.schedule(pitTickTime(c.loadTick + next), () => this.onTimer());
  }

  private onTimer(): void {
    this.timer = null;
    const now = pitTickAt(this.clock.now());
    const c = this.ch[0]!;
    if (c.phase === CounterPhase.RUNNING) {
      const from = Math.max(this.lastIrqTick - c.loadTick, 0);
      const to = now - c.loadTick;
      if (roseBetween(c.mode, c.count, from, to)) {
        if (this.irqLevel) this.setLine(false);
        this.setLine(true);
      }
    }
    this.lastIrqTick = now;
    this.setLine(this.out(0, now));
    this.schedule(now);
  }

  // --- inspection, reset and snapshots --------------------------------------------------------

  /** The channel's current count (binary, before BCD encoding), for tests and debugging. */
  readCounter(i: number): number {
    return this.counterValue(i, pitTickAt(this.clock.now()));
  }

  reset(): void {
    this.clock.cancel(this.timer);
    this.timer = null;
    this.ch = [initialChannel(true), initialChannel(true), initialChannel(false)];
    this.speaker = 0;
    this.lastIrqTick = pitTickAt(this.clock.now());
    this.setLine(false);
  }

  save(): PitState {
    return {
      channels: this.ch.map((c) => ({ ...c })),
      speaker: this.speaker,
      irqLevel: this.irqLevel,
      lastIrqTick: this.lastIrqTick,
    };
  }

  restore(state: PitState): void {
    const st = checkObject(state, "pit");
    if (!Array.isArray(st.channels) || st.channels.length !== 3) {
      throw new ConfigError("bad saved state: pit.channels must hold 3 channels");
    }
    const channels = st.channels.map((v, i) => restoreChannel(v, `pit.channels[${i}]`));
    const speaker = checkInt(st.speaker, "pit.speaker", 0, 0x0f);
    const irqLevel = checkBool(st.irqLevel, "pit.irqLevel");
    const lastIrqTick = checkNumber(st.lastIrqTick, "pit.lastIrqTick");
    this.clock.cancel(this.timer);
    this.timer = null;
    this.ch = channels;
    this.speaker = speaker;
    this.lastIrqTick = lastIrqTick;
    this.setLine(irqLevel);
    this.schedule(pitTickAt(this.clock.now()));
  }
}

function restoreChannel(v: unknown, name: string): PitChannelState {
  const o = checkObject(v, name);
  const int = (k: string, min: number, max: number) => checkInt(o[k], `${name}.${k}`, min, max);
  const bool = (k: string) => checkBool(o[k], `${name}.${k}`);
  return {
    mode: int("mode", 0, 5),
    rw: int("rw", 1, 3),
    bcd: bool("bcd"),
    countRegister: int("countRegister", 0, 0xffff),
    count: int("count", 1, 0x10000),
    phase: int("phase", 0, 3),
    loadTick: checkNumber(o.loadTick, `${name}.loadTick`),
    frozen: int("frozen", 0, Number.MAX_SAFE_INTEGER),
    gate: bool("gate"),
    writeHigh: bool("writeHigh"),
    lowByte: int("lowByte", 0, 0xff),
    readHigh: bool("readHigh"),
    latched: bool("latched"),
    latchValue: int("latchValue", 0, 0xffff),
    latchHigh: bool("latchHigh"),
    statusLatched: bool("statusLatched"),
    status: int("status", 0, 0xff),
    nullCount: bool("nullCount"),
  };
}
