/**
 * Hostile-driver fuzzing of virtio devices through the real virtio-PCI transport. Platform
 * neutral: `runFuzz` runs cases for each device and returns what it found; the `npm run fuzz`
 * script and test/fuzz.test.ts drive it.
 */
import { FUZZ_DEVICES, type FuzzDeviceFactory } from "./devices.js";
import { emptyStats, FUZZ_CHUNK, type FuzzFailure, type FuzzStats, runDeviceCases } from "./world.js";

export type { FuzzDevice, FuzzDeviceFactory, FuzzEnv, RequestShape } from "./devices.js";
export { FUZZ_DEVICES, fuzzDevice } from "./devices.js";
export { GuardedMemory } from "./guarded-memory.js";
export { Prng, mixSeed } from "./prng.js";
export type { FailureKind, FuzzFailure, FuzzStats } from "./world.js";
export { FUZZ_CHUNK, FuzzWorld, runDeviceCases } from "./world.js";

export interface DeviceReport {
  device: string;
  stats: FuzzStats;
  failures: FuzzFailure[];
  ms: number;
}

export interface RunOptions {
  seed: number;
  /** Cases per device (run in chunks of FUZZ_CHUNK). */
  cases?: number;
  /** Or: run until this many milliseconds have passed (devices take turns, a chunk each). */
  millis?: number;
  /** Only these devices (default: all). */
  devices?: readonly FuzzDeviceFactory[];
  /** Stop a device after this many failures (default 20). */
  maxFailures?: number;
  /** Called after each chunk. */
  progress?: (r: DeviceReport) => void;
  now?: () => number;
}

/** Runs the fuzzer; returns one report per device. */
export async function runFuzz(options: RunOptions): Promise<DeviceReport[]> {
  const devices = options.devices ?? FUZZ_DEVICES;
  const now = options.now ?? (() => Date.now());
  const chunk = FUZZ_CHUNK;
  const maxFailures = options.maxFailures ?? 20;
  const reports = devices.map((d) => ({
    device: d.name,
    stats: emptyStats(),
    failures: [] as FuzzFailure[],
    ms: 0,
  }));
  const next = devices.map(() => 0);
  const start = now();
  const limit = options.cases;
  for (;;) {
    let ran = false;
    for (let i = 0; i < devices.length; i++) {
      const d = devices[i]!;
      const r = reports[i]!;
      const from = next[i]!;
      if (limit !== undefined && from >= limit) continue;
      if (r.failures.length >= maxFailures) continue;
      if (options.millis !== undefined && now() - start >= options.millis) return reports;
      const to = limit !== undefined ? Math.min(limit, from + chunk) : from + chunk;
      const t0 = now();
      const deviceIndex = FUZZ_DEVICES.indexOf(d) >= 0 ? FUZZ_DEVICES.indexOf(d) : 100 + i;
      r.failures.push(...(await runDeviceCases(d, deviceIndex, options.seed, from, to, r.stats)));
      r.ms += now() - t0;
      next[i] = to;
      ran = true;
      options.progress?.(r);
    }
    if (!ran) return reports;
  }
}
