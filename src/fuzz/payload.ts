/** Random payload pieces for the device adapters. */
import type { Prng } from "./prng.js";

export function bytes(rng: Prng, n: number): Uint8Array {
  return rng.bytes(n);
}

/** A length biased to small values and the edges of typical structures. */
export function len(rng: Prng, max = 600): number {
  switch (rng.int(6)) {
    case 0:
      return 0;
    case 1:
      return rng.range(1, 16);
    case 2:
      return rng.pick([1, 2, 7, 8, 10, 12, 16, 20, 512, 513, 511, 1024]);
    default:
      return rng.int(max + 1);
  }
}

export function writables(rng: Prng, n = rng.range(0, 3), max = 600): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(len(rng, max));
  return out;
}

export function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

export function readableTotal(r: readonly Uint8Array[]): number {
  let s = 0;
  for (const b of r) s += b.length;
  return s;
}

/** Splits `data` into 1..3 pieces (buffers of one request). */
export function split(rng: Prng, data: Uint8Array): Uint8Array[] {
  if (data.length < 2 || rng.chance(0.5)) return [data];
  const at = rng.range(1, data.length - 1);
  return [data.subarray(0, at), data.subarray(at)];
}
