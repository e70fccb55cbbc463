/**
 * Builds descriptor chains the way a hostile driver would: a request's buffers laid out in
 * guest memory, then optionally broken in one of the ways section 2.7 forbids (loops, `next`
 * past the table, buffers outside memory, readable after writable, nested or odd indirect
 * tables, heads past the queue, avail.idx jumps) or bent in ways it allows but devices may
 * not expect (zero-length buffers, buffers on top of the rings). Says whether the result is
 * certainly a guest error, so the harness can require DEVICE_NEEDS_RESET.
 */
import type { FlatMemory } from "../common/memory.js";
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "../virtqueue/constants.js";
import type { RequestShape } from "./devices.js";
import type { Prng } from "./prng.js";

/** A running queue's layout, as the device uses it. */
export interface RingLayout {
  size: number;
  desc: number;
  avail: number;
  used: number;
  /** The device's next_avail cursor. */
  nextAvail: number;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect: boolean;
}

/** Ways of breaking a chain that section 2.7 makes a guest error. */
export const FATAL_MUTATIONS = [
  "loop",
  "next-out-of-range",
  "addr-out-of-range",
  "addr-high-half",
  "len-huge",
  "readable-after-writable",
  "head-out-of-range",
  "avail-idx-jump",
  "indirect-nested",
  "indirect-bad-length",
  "indirect-with-next",
  "indirect-out-of-range",
  "indirect-loop",
  "indirect-too-large",
  "indirect-not-negotiated",
] as const;
/** Odd but legal shapes (or illegal ones the device may meet in any order). */
export const ODD_MUTATIONS = ["zero-length", "on-the-rings", "random-flags", "random-next"] as const;
export type ChainMutation = (typeof FATAL_MUTATIONS)[number] | (typeof ODD_MUTATIONS)[number] | "none";

export interface BuiltChain {
  head: number;
  mutation: ChainMutation;
  /** True when walking this chain must fail (a guest error by section 2.7). */
  fatal: boolean;
  /** True when the chain carries the request exactly as given (no mutation, nothing cut). */
  exact: boolean;
}

interface Seg {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

/** Where the hostile driver puts buffers: a region it owns, handed out round-robin. */
export class BufferArena {
  private at: number;
  constructor(
    readonly base: number,
    readonly end: number,
  ) {
    this.at = base;
  }
  alloc(len: number, rng: Prng): number {
    const n = Math.max(len, 1);
    if (n > this.end - this.base) return this.base;
    let a = this.at + rng.int(16);
    if (a + n > this.end) a = this.base;
    this.at = a + n;
    return a;
  }
}

/**
 * Writes the request as a chain into `ring` (directly or through an indirect table), puts its
 * head in the available ring and publishes avail.idx, applying `mutation`. Returns the head.
 */
export function buildChain(
  mem: FlatMemory,
  ring: RingLayout,
  req: RequestShape,
  arena: BufferArena,
  rng: Prng,
  mutation: ChainMutation,
): BuiltChain {
  const memSize = mem.size;
  const segs: Seg[] = [];
  for (const r of req.readable) {
    const addr = arena.alloc(r.length, rng);
    mem.writeFrom(addr, r);
    segs.push({ addr, len: r.length, flags: 0, next: 0 });
  }
  for (const w of req.writable) {
    const addr = arena.alloc(w, rng);
    if (rng.chance(0.5)) mem.fill(addr, Math.max(w, 1), 0xa5);
    segs.push({ addr, len: w, flags: VIRTQ_DESC_F_WRITE, next: 0 });
  }
  if (segs.length === 0) segs.push({ addr: arena.alloc(1, rng), len: 0, flags: 0, next: 0 });
  let fatal = false;
  const victim = rng.int(segs.length);
  const v = segs[victim]!;
  let addrHi = 0;
  let addrHiAt = -1;
  switch (mutation) {
    case "addr-out-of-range":
      v.addr = rng.chance(0.5)
        ? memSize - rng.int(Math.max(1, Math.min(v.len, 8)))
        : memSize + rng.int(1 << 20);
      if (v.addr + v.len <= memSize) v.len = memSize - v.addr + 1 + rng.int(64);
      fatal = true;
      break;
    case "addr-high-half":
      addrHi = 1 + rng.int(0xffff);
      addrHiAt = victim;
      fatal = true;
      break;
    case "len-huge":
      v.len = 0xffff_ffff - rng.int(16);
      fatal = true;
      break;
    case "readable-after-writable": {
      const w = segs.findIndex((s) => s.flags & VIRTQ_DESC_F_WRITE);
      if (w >= 0 && w < segs.length - 1) {
        segs[segs.length - 1]!.flags &= ~VIRTQ_DESC_F_WRITE;
      } else {
        segs.unshift({ addr: arena.alloc(8, rng), len: 8, flags: VIRTQ_DESC_F_WRITE, next: 0 });
        segs.push({ addr: arena.alloc(8, rng), len: 8, flags: 0, next: 0 });
      }
      fatal = true;
      break;
    }
    case "zero-length":
      v.len = 0;
      break;
    case "on-the-rings": {
      const areas = [
        [ring.desc, 16 * ring.size],
        [ring.avail, 6 + 2 * ring.size],
        [ring.used, 6 + 8 * ring.size],
      ] as const;
      const [a, l] = rng.pick(areas);
      v.addr = a + rng.int(l);
      v.len = Math.min(v.len, memSize - v.addr);
      break;
    }
    case "random-flags":
      v.flags = rng.int(8);
      break;
    default:
      break;
  }

  const indirectWanted =
    mutation.startsWith("indirect") || (ring.indirect && (segs.length > ring.size || rng.chance(0.25)));
  let head: number;
  let truncated = false;
  if (indirectWanted) {
    head = rng.int(ring.size);
    const n = segs.length;
    let tableLen = 16 * n;
    let table = arena.alloc(tableLen, rng);
    writeSegs(mem, table, segs, (i) => i + 1, addrHi, addrHiAt);
    let headFlags = VIRTQ_DESC_F_INDIRECT;
    switch (mutation) {
      case "indirect-nested":
        setFlags(mem, table, rng.int(n), VIRTQ_DESC_F_INDIRECT, true);
        fatal = true;
        break;
      case "indirect-bad-length":
        tableLen = rng.chance(0.3) ? 0 : tableLen + rng.range(1, 15);
        fatal = true;
        break;
      case "indirect-with-next":
        headFlags |= VIRTQ_DESC_F_NEXT;
        fatal = true;
        break;
      case "indirect-out-of-range":
        table = memSize - rng.int(tableLen);
        if (table + tableLen <= memSize) table = memSize + 16 * rng.int(1024);
        fatal = true;
        break;
      case "indirect-loop": {
        const last = n - 1;
        mem.writeU16(table + 16 * last + 12, mem.readU16(table + 16 * last + 12) | VIRTQ_DESC_F_NEXT);
        mem.writeU16(table + 16 * last + 14, rng.int(n));
        fatal = true;
        break;
      }
      case "indirect-too-large":
        tableLen = 16 * (65537 + rng.int(1000));
        fatal = true;
        break;
      case "indirect-not-negotiated":
        fatal = !ring.indirect;
        break;
      default:
        if (!ring.indirect) fatal = true;
    }
    if (mutation === "loop" || mutation === "next-out-of-range" || mutation === "random-next") {
      // The same breakage, inside the table.
      const i = rng.int(n);
      mem.writeU16(table + 16 * i + 12, mem.readU16(table + 16 * i + 12) | VIRTQ_DESC_F_NEXT);
      const nx =
        mutation === "loop"
          ? rng.int(i + 1)
          : mutation === "next-out-of-range"
            ? n + rng.int(0xffff - n)
            : rng.int(0x10000);
      mem.writeU16(table + 16 * i + 14, nx);
      if (mutation !== "random-next") fatal = true;
    }
    writeDesc(mem, ring.desc, head, table, 0, tableLen, headFlags, rng.int(0x10000));
  } else {
    // Direct: distinct descriptor indices in the table.
    const n = Math.min(segs.length, ring.size);
    // Buffers past the queue size are cut: what was broken in them is not seen.
    if (n < segs.length) {
      fatal = false;
      truncated = true;
    }
    const ids = pickDistinct(rng, ring.size, n);
    head = ids[0]!;
    for (let i = 0; i < n; i++) {
      const s = segs[i]!;
      const last = i === n - 1;
      let flags = s.flags | (last ? 0 : VIRTQ_DESC_F_NEXT);
      let next = last ? rng.int(ring.size) : ids[i + 1]!;
      if (last && mutation === "loop") {
        flags |= VIRTQ_DESC_F_NEXT;
        next = ids[rng.int(n)]!;
        fatal = true;
      } else if (last && mutation === "next-out-of-range") {
        flags |= VIRTQ_DESC_F_NEXT;
        next = ring.size + rng.int(0x10000 - ring.size);
        fatal = true;
      } else if (last && mutation === "random-next") {
        flags |= VIRTQ_DESC_F_NEXT;
        next = rng.int(0x10000);
      }
      writeDesc(mem, ring.desc, ids[i]!, s.addr, i === addrHiAt ? addrHi : 0, s.len, flags, next);
    }
    if (mutation === "random-flags" || mutation === "zero-length" || mutation === "on-the-rings")
      fatal = false;
  }
  if (mutation === "random-flags") fatal = false;

  // The available ring: entry first, then idx (2.7.13).
  const mask = ring.size - 1;
  const idx = mem.readU16(ring.avail + 2);
  let entry = head;
  if (mutation === "head-out-of-range") {
    entry = ring.size + rng.int(0x10000 - ring.size);
    fatal = true;
  }
  mem.writeU16(ring.avail + 4 + 2 * (idx & mask), entry);
  let newIdx = (idx + 1) & 0xffff;
  if (mutation === "avail-idx-jump") {
    newIdx = (ring.nextAvail + ring.size + 1 + rng.int(0xffff - ring.size)) & 0xffff;
    fatal = true;
  }
  mem.writeU16(ring.avail + 2, newIdx);
  return { head, mutation, fatal, exact: mutation === "none" && !truncated && fatal === false };
}

function writeDesc(
  mem: FlatMemory,
  table: number,
  i: number,
  addr: number,
  addrHi: number,
  len: number,
  flags: number,
  next: number,
): void {
  const o = table + 16 * i;
  mem.writeU32(o, addr >>> 0);
  mem.writeU32(o + 4, addrHi >>> 0);
  mem.writeU32(o + 8, len >>> 0);
  mem.writeU16(o + 12, flags & 0xffff);
  mem.writeU16(o + 14, next & 0xffff);
}

function writeSegs(
  mem: FlatMemory,
  table: number,
  segs: readonly Seg[],
  next: (i: number) => number,
  addrHi: number,
  addrHiAt: number,
): void {
  segs.forEach((s, i) => {
    const last = i === segs.length - 1;
    writeDesc(
      mem,
      table,
      i,
      s.addr,
      i === addrHiAt ? addrHi : 0,
      s.len,
      s.flags | (last ? 0 : VIRTQ_DESC_F_NEXT),
      last ? 0 : next(i),
    );
  });
}

function setFlags(mem: FlatMemory, table: number, i: number, bit: number, on: boolean): void {
  const o = table + 16 * i + 12;
  const f = mem.readU16(o);
  mem.writeU16(o, on ? f | bit : f & ~bit);
}

function pickDistinct(rng: Prng, size: number, n: number): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  while (out.length < n) {
    const i = rng.int(size);
    if (seen.has(i)) continue;
    seen.add(i);
    out.push(i);
  }
  return out;
}
