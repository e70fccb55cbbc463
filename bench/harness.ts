/**
 * The benchmark harness. A suite is a file `bench/NAME.bench.ts` exporting `suite`. It reports
 * figures through `report(name, value, unit)`; the runner prints one line per figure as
 * `NAME VALUE UNIT`, or a JSON array of {name, value, unit} with --json.
 */
export interface Figure {
  name: string;
  value: number;
  unit: string;
}

export interface BenchSuite {
  /** The name `npm run bench -- NAME` selects. */
  name: string;
  run(report: (name: string, value: number, unit: string) => void): Promise<void> | void;
}

/**
 * Runs `fn` (which does `opsPerCall` operations) repeatedly for about `ms` milliseconds after a
 * warm-up, and returns operations per second from the best of several rounds.
 */
export function measure(fn: () => void, opsPerCall: number, ms = 300, rounds = 5): number {
  const warmEnd = performance.now() + ms / 2;
  while (performance.now() < warmEnd) fn();
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const start = performance.now();
    let now = start;
    const end = start + ms / rounds;
    while (now < end) {
      fn();
      calls++;
      now = performance.now();
    }
    const rate = (calls * opsPerCall) / ((now - start) / 1000);
    if (rate > best) best = rate;
  }
  return best;
}

/** Rounds to 3 significant digits for printing. */
export function sig3(v: number): number {
  return Number(v.toPrecision(3));
}
