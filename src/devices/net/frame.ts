/**
 * Ethernet frame helpers: MAC addresses, the Internet checksum (RFC 1071) and completing a
 * partial checksum as VIRTIO_NET_HDR_F_NEEDS_CSUM describes it, and a symmetric flow hash.
 */
import { VirtkitError } from "../../common/errors.js";
import { ETH_ALEN, ETH_HLEN, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6 } from "./constants.js";

/** A network error: a bad argument from the host side, or a guest breaking section 5.1. */
export class NetError extends VirtkitError {}

/**
 * A checksum the sender left partial (VIRTIO_NET_HDR_F_NEEDS_CSUM): the ones' complement sum
 * from `start` to the end of the frame goes at `start + offset`; the field holds the
 * pseudo-header sum meanwhile.
 */
export interface PartialChecksum {
  start: number;
  offset: number;
}

/** A MAC address as 6 bytes from "52:54:00:12:34:56" (also '-' separated), or a copy of 6 bytes. */
export function parseMac(mac: string | Uint8Array): Uint8Array {
  if (typeof mac !== "string") {
    if (mac.length !== ETH_ALEN)
      throw new NetError("BAD_MAC", `a MAC address has 6 bytes, got ${mac.length}`);
    return Uint8Array.from(mac);
  }
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new NetError("BAD_MAC", `"${mac}" is not a MAC address like 52:54:00:12:34:56`);
  }
  return Uint8Array.from(parts.map((p) => Number.parseInt(p, 16)));
}

export function formatMac(mac: Uint8Array, at = 0): string {
  const out: string[] = [];
  for (let i = 0; i < ETH_ALEN; i++) out.push(mac[at + i]!.toString(16).padStart(2, "0"));
  return out.join(":");
}

/** A random locally administered unicast MAC (52:54:00 is QEMU's; we use 0x02-prefixed). */
export function randomMac(): Uint8Array {
  const m = new Uint8Array(6);
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(m);
  else for (let i = 0; i < 6; i++) m[i] = Math.floor(Math.random() * 256);
  m[0] = (m[0]! & 0xfe) | 0x02;
  return m;
}

/** The destination MAC of a frame as a 48-bit number (for maps). */
export function macKey(frame: Uint8Array, at: number): number {
  const hi = (frame[at]! << 8) | frame[at + 1]!;
  const lo = ((frame[at + 2]! << 24) | (frame[at + 3]! << 16) | (frame[at + 4]! << 8) | frame[at + 5]!) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}

/** True for a group (multicast or broadcast) address: the I/G bit of the first byte. */
export function isMulticast(frame: Uint8Array, at = 0): boolean {
  return (frame[at]! & 1) === 1;
}

export function isBroadcast(frame: Uint8Array, at = 0): boolean {
  return (
    frame[at] === 0xff &&
    frame[at + 1] === 0xff &&
    frame[at + 2] === 0xff &&
    frame[at + 3] === 0xff &&
    frame[at + 4] === 0xff &&
    frame[at + 5] === 0xff
  );
}

/** The 32-bit running ones' complement sum of data[from, to) (not folded). */
export function onesSum(data: Uint8Array, from: number, to: number, initial = 0): number {
  let sum = initial;
  let i = from;
  for (; i + 1 < to; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < to) sum += data[i]! << 8;
  // Fold often enough that the sum stays a small integer.
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Folds a running sum to 16 bits. */
export function foldSum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** True when a partial checksum can be completed in a frame of `length` bytes. */
export function partialChecksumFits(csum: PartialChecksum, length: number): boolean {
  return csum.start >= 0 && csum.offset >= 0 && csum.start + csum.offset + 2 <= length;
}

/**
 * Completes a partial checksum in place: stores the ones' complement of the sum from
 * csum.start to the end at csum.start + csum.offset (a result of 0 is sent as 0xffff, the same
 * value in ones' complement, so that UDP does not read it as "no checksum").
 */
export function completeChecksum(frame: Uint8Array, csum: PartialChecksum): void {
  if (!partialChecksumFits(csum, frame.length)) {
    throw new NetError(
      "BAD_CSUM_OFFSETS",
      `csum_start ${csum.start} + csum_offset ${csum.offset} does not fit a ${frame.length}-byte frame`,
    );
  }
  const at = csum.start + csum.offset;
  const v = ~foldSum(onesSum(frame, csum.start, frame.length)) & 0xffff;
  const out = v === 0 ? 0xffff : v;
  frame[at] = out >>> 8;
  frame[at + 1] = out & 0xff;
}

/** The EtherType after any 802.1Q tags, and where the L3 header starts (-1 when the frame is too short). */
export function l3Start(frame: Uint8Array): { type: number; at: number } {
  let at = 12;
  if (frame.length < ETH_HLEN) return { type: 0, at: -1 };
  let type = (frame[at]! << 8) | frame[at + 1]!;
  at += 2;
  while (type === ETH_P_8021Q && at + 4 <= frame.length) {
    type = (frame[at + 2]! << 8) | frame[at + 3]!;
    at += 4;
  }
  return { type, at };
}

/**
 * A flow hash that is the same in both directions (so a reply hashes like its request): the
 * IPv4/IPv6 addresses and TCP/UDP ports when present, else the two MAC addresses.
 */
export function flowHash(frame: Uint8Array): number {
  const { type, at } = l3Start(frame);
  let a = 0;
  let b = 0;
  if (type === ETH_P_IP && at + 20 <= frame.length) {
    a = word(frame, at + 12);
    b = word(frame, at + 16);
    const ihl = (frame[at]! & 0xf) * 4;
    const proto = frame[at + 9]!;
    const l4 = at + ihl;
    if ((proto === 6 || proto === 17) && l4 + 4 <= frame.length) {
      a = mix(a, (frame[l4]! << 8) | frame[l4 + 1]!);
      b = mix(b, (frame[l4 + 2]! << 8) | frame[l4 + 3]!);
    }
  } else if (type === ETH_P_IPV6 && at + 40 <= frame.length) {
    for (let i = 0; i < 16; i += 4) {
      a = mix(a, word(frame, at + 8 + i));
      b = mix(b, word(frame, at + 24 + i));
    }
  } else {
    a = word(frame, 6) ^ (frame[10]! << 8) ^ frame[11]!;
    b = word(frame, 0) ^ (frame[4]! << 8) ^ frame[5]!;
  }
  // Order-independent combination of the two endpoints.
  const lo = Math.min(a >>> 0, b >>> 0);
  const hi = Math.max(a >>> 0, b >>> 0);
  return mix(mix(0x9e3779b9, lo), hi) >>> 0;
}

function word(f: Uint8Array, at: number): number {
  return ((f[at]! << 24) | (f[at + 1]! << 16) | (f[at + 2]! << 8) | f[at + 3]!) >>> 0;
}

function mix(h: number, v: number): number {
  let x = (h ^ v) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
