/**
 * The machine's clock and timer queue. Time is a number of nanoseconds since the machine
 * started (exact as an integer up to 2^53 ns, about 104 days). The run loop decides how time
 * advances (`realtime`: the host clock; `virtual`: derived from the instruction count) and
 * calls `runDue` between CPU slices; devices schedule callbacks and never read a host clock.
 */
export interface Clock {
  /** Nanoseconds since the machine started. */
  now(): number;
}

export interface TimerHandle {
  readonly id: number;
}

interface Entry {
  at: number;
  id: number;
  fn: () => void;
}

export class TimerQueue implements Clock {
  private entries: Entry[] = [];
  private nextId = 1;
  private time = 0;
  private source: (() => number) | null = null;

  /**
   * Makes `now()` follow a live time source (the host clock, or the CPU's instruction count)
   * between `runDue` calls, so a device read mid-slice sees time move. Time never goes back.
   */
  setSource(source: (() => number) | null): void {
    this.source = source;
  }

  now(): number {
    if (this.source !== null) {
      const t = this.source();
      if (t > this.time) this.time = t;
    }
    return this.time;
  }

  /** Moves time forward (never backward) without running anything. */
  advanceTo(t: number): void {
    if (t > this.time) this.time = t;
  }

  /** Calls `fn` once the clock reaches `at` (ns). */
  schedule(at: number, fn: () => void): TimerHandle {
    const e = { at, id: this.nextId++, fn };
    // keep sorted by time, then by insertion order; the queue is short (a handful of devices)
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1]!.at > at) i--;
    this.entries.splice(i, 0, e);
    return { id: e.id };
  }

  cancel(h: TimerHandle | null | undefined): void {
    if (!h) return;
    const i = this.entries.findIndex((e) => e.id === h.id);
    if (i >= 0) this.entries.splice(i, 1);
  }

  /** The earliest scheduled time, or Infinity. */
  nextDeadline(): number {
    return this.entries.length > 0 ? this.entries[0]!.at : Number.POSITIVE_INFINITY;
  }

  /** Advances the clock to `t` and runs every callback due by then, in time order. */
  runDue(t: number): number {
    this.advanceTo(t);
    let ran = 0;
    while (this.entries.length > 0 && this.entries[0]!.at <= this.time) {
      const e = this.entries.shift()!;
      e.fn();
      ran++;
    }
    return ran;
  }
}
