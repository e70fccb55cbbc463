import { ConfigError } from "../../common/errors.js";

/** Where random bytes come from. `fill` fills the whole view. */
export interface EntropySource {
  fill(view: Uint8Array): void;
}

/**
 * The platform's cryptographic random source (globalThis.crypto.getRandomValues, available in
 * browsers and Node 20), in the 65536-byte pieces it accepts.
 */
export function cryptoEntropy(): EntropySource {
  const c = (globalThis as { crypto?: { getRandomValues?: <T extends ArrayBufferView>(a: T) => T } }).crypto;
  if (!c?.getRandomValues) throw new ConfigError("no globalThis.crypto.getRandomValues on this platform");
  const get = c.getRandomValues.bind(c);
  return {
    fill(view) {
      for (let at = 0; at < view.length; at += 65536)
        get(view.subarray(at, Math.min(view.length, at + 65536)));
    },
  };
}

/**
 * A deterministic source for tests (xoshiro128** seeded by splitmix32): the same seed gives the
 * same bytes. Not for real entropy.
 */
export function seededEntropy(seed: number): EntropySource & { state(): number[] } {
  let x = seed >>> 0;
  const sm = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = [sm(), sm(), sm(), sm()];
  const next = () => {
    const r = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r;
  };
  return {
    fill(view) {
      let i = 0;
      for (; i + 4 <= view.length; i += 4) {
        const r = next();
        view[i] = r;
        view[i + 1] = r >>> 8;
        view[i + 2] = r >>> 16;
        view[i + 3] = r >>> 24;
      }
      if (i < view.length) {
        let r = next();
        for (; i < view.length; i++, r >>>= 8) view[i] = r;
      }
    },
    state: () => s.slice(),
  };
}

function rotl(v: number, k: number): number {
  return ((v << k) | (v >>> (32 - k))) >>> 0;
}
