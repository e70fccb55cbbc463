import type { GuestMemory } from "../common/memory.js";
import {
  availRingSize,
  descTableSize,
  isPowerOfTwo,
  usedRingSize,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from "./constants.js";
import { QueueError } from "./errors.js";

/** One buffer of a request: [addr, addr+len), device-writable when `write`. */
export interface DriverSegment {
  addr: number;
  len: number;
  write: boolean;
}

/** A used buffer given back by the device. */
export interface UsedBuffer {
  /** The head descriptor index (what `add` returned). */
  id: number;
  /** Bytes the device says it wrote. */
  len: number;
}

/** Where a driver queue's areas are. */
export interface DriverQueueLayout {
  size: number;
  desc: number;
  avail: number;
  used: number;
}

export interface DriverQueueOptions {
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx?: boolean;
  /**
   * Room for indirect tables: `maxEntries` descriptors for each head, at
   * addr + head * maxEntries * 16. Without it `add(..., {indirect: true})` is refused.
   */
  indirectArea?: { addr: number; maxEntries: number };
  /**
   * Start avail.idx and used.idx here instead of 0 (as after a restore), to exercise the
   * 16-bit wrap. The device side must start at the same index.
   */
  startIndex?: number;
}

/** Bytes a queue of `size` entries needs from `base` with `layoutQueue` (16-byte aligned start). */
export function queueBytes(size: number): number {
  const availEnd = descTableSize(size) + availRingSize(size);
  const usedStart = (availEnd + 3) & ~3;
  return usedStart + usedRingSize(size);
}

/** Lays out desc, avail and used contiguously from `base` (16-aligned), as Linux's vring_init does with align 4. */
export function layoutQueue(base: number, size: number): DriverQueueLayout {
  if (base % 16 !== 0)
    throw new QueueError("BAD_RING_ADDRESS", `queue base 0x${base.toString(16)} is not 16-aligned`);
  const desc = base;
  const avail = desc + descTableSize(size);
  const used = (avail + availRingSize(size) + 3) & ~3;
  return { size, desc, avail, used };
}

/**
 * The driver side of a split virtqueue: what a guest driver does, for tests and for people
 * testing their own devices. It writes descriptors and the available ring, decides whether to
 * notify the device, and collects used buffers, freeing their descriptors. It trusts nothing
 * the device writes: a used id that is not an outstanding head is a QueueError.
 */
export class DriverQueue {
  readonly memory: GuestMemory;
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly eventIdx: boolean;
  private readonly indirectArea: { addr: number; maxEntries: number } | undefined;
  /** Free descriptor list, linked through `freeNext`. */
  private readonly freeNext: Int32Array;
  private freeHead = 0;
  private _numFree: number;
  /** For each outstanding head: how many table descriptors it holds (0 when not outstanding). */
  private readonly headDescs: Int32Array;
  /** The driver's own copy of each descriptor's `next` within an outstanding chain. */
  private readonly chainNext: Int32Array;
  private interruptsEnabled = true;
  /** Driver's shadow of avail.idx. */
  private availIdx: number;
  /** avail.idx at the last `kick` decision (the `old` of vring_need_event). */
  private kickedIdx: number;
  /** The next used ring index the driver will look at. */
  private lastUsed: number;

  constructor(memory: GuestMemory, layout: DriverQueueLayout, options: DriverQueueOptions = {}) {
    const { size, desc, avail, used } = layout;
    if (!isPowerOfTwo(size) || size > VIRTQ_MAX_SIZE) {
      throw new QueueError("BAD_SIZE", `queue size must be a power of two up to 32768, got ${size}`);
    }
    memory.checkRange(desc, descTableSize(size));
    memory.checkRange(avail, availRingSize(size));
    memory.checkRange(used, usedRingSize(size));
    if (options.indirectArea) {
      const { addr, maxEntries } = options.indirectArea;
      memory.checkRange(addr, size * maxEntries * 16);
    }
    this.memory = memory;
    this.size = size;
    this.desc = desc;
    this.avail = avail;
    this.used = used;
    this.eventIdx = options.eventIdx === true;
    this.indirectArea = options.indirectArea;
    this.freeNext = new Int32Array(size);
    for (let i = 0; i < size; i++) this.freeNext[i] = i + 1;
    this._numFree = size;
    this.headDescs = new Int32Array(size);
    this.chainNext = new Int32Array(size);
    const start = (options.startIndex ?? 0) & 0xffff;
    this.availIdx = start;
    this.kickedIdx = start;
    this.lastUsed = start;
    memory.fill(desc, descTableSize(size), 0);
    memory.fill(avail, availRingSize(size), 0);
    memory.fill(used, usedRingSize(size), 0);
    memory.writeU16(avail + 2, start);
    memory.writeU16(used + 2, start);
    // used_event starts at the current index: interrupt after the first used buffer.
    if (this.eventIdx) memory.writeU16(avail + 4 + 2 * size, start);
  }

  /** Descriptors free in the table. */
  get numFree(): number {
    return this._numFree;
  }

  /** The driver's avail.idx. */
  get availIndex(): number {
    return this.availIdx;
  }

  /** Buffers added and not yet collected. */
  get outstanding(): number {
    return (this.availIdx - this.lastUsed) & 0xffff;
  }

  private allocDesc(): number {
    const d = this.freeHead;
    this.freeHead = this.freeNext[d]!;
    this._numFree--;
    return d;
  }

  private writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const o = table + 16 * i;
    const m = this.memory;
    m.writeU32(o, addr >>> 0);
    m.writeU32(o + 4, 0);
    m.writeU32(o + 8, len >>> 0);
    m.writeU16(o + 12, flags);
    m.writeU16(o + 14, next);
  }

  /**
   * Makes a buffer available: readable segments first, then writable ones. With
   * `indirect`, the segments go into this head's indirect table and use one ring descriptor.
   * Returns the head index (the id the device gives back). Does not notify: ask `kick()`.
   */
  add(segments: readonly DriverSegment[], opts: { indirect?: boolean } = {}): number {
    const n = segments.length;
    if (n === 0) throw new QueueError("DRIVER_BAD_REQUEST", "a buffer needs at least one segment");
    let seenWrite = false;
    for (const s of segments) {
      if (s.write) seenWrite = true;
      else if (seenWrite) {
        throw new QueueError("DRIVER_BAD_REQUEST", "device-readable segments must come before writable ones");
      }
    }
    let head: number;
    if (opts.indirect) {
      const area = this.indirectArea;
      if (!area) throw new QueueError("DRIVER_BAD_REQUEST", "indirect buffers need an indirectArea");
      if (n > area.maxEntries) {
        throw new QueueError(
          "DRIVER_BAD_REQUEST",
          `${n} segments exceed the indirect table of ${area.maxEntries}`,
        );
      }
      if (this._numFree < 1) throw new QueueError("DRIVER_NO_SPACE", "no free descriptor");
      head = this.allocDesc();
      const table = area.addr + head * area.maxEntries * 16;
      for (let i = 0; i < n; i++) {
        const s = segments[i]!;
        const flags = (s.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        this.writeDesc(table, i, s.addr, s.len, flags, i + 1 < n ? i + 1 : 0);
      }
      this.writeDesc(this.desc, head, table, n * 16, VIRTQ_DESC_F_INDIRECT, 0);
      this.headDescs[head] = 1;
    } else {
      if (this._numFree < n) {
        throw new QueueError("DRIVER_NO_SPACE", `${n} descriptors needed, ${this._numFree} free`);
      }
      const ids: number[] = [];
      for (let i = 0; i < n; i++) ids.push(this.allocDesc());
      for (let i = 0; i < n; i++) {
        const s = segments[i]!;
        const flags = (s.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        this.writeDesc(this.desc, ids[i]!, s.addr, s.len, flags, i + 1 < n ? ids[i + 1]! : 0);
        this.chainNext[ids[i]!] = i + 1 < n ? ids[i + 1]! : -1;
      }
      head = ids[0]!;
      this.headDescs[head] = n;
    }
    // Ring entry first, then idx (section 2.7.13).
    this.memory.writeU16(this.avail + 4 + 2 * (this.availIdx & (this.size - 1)), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.memory.writeU16(this.avail + 2, this.availIdx);
    return head;
  }

  /**
   * Whether the device wants to be notified about the buffers added since the last call
   * (section 2.7.10): with VIRTIO_F_EVENT_IDX when avail.idx passed avail_event
   * (vring_need_event), otherwise unless used.flags has VIRTQ_USED_F_NO_NOTIFY.
   */
  kick(): boolean {
    const old = this.kickedIdx;
    const newIdx = this.availIdx;
    this.kickedIdx = newIdx;
    if (this.eventIdx) {
      const availEvent = this.memory.readU16(this.used + 4 + 8 * this.size);
      return vringNeedEvent(availEvent, newIdx, old);
    }
    if (newIdx === old) return false;
    return (this.memory.readU16(this.used) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** True when the device has published used buffers the driver has not collected. */
  hasUsed(): boolean {
    return this.memory.readU16(this.used + 2) !== this.lastUsed;
  }

  /** Collects the next used buffer and frees its descriptors, or null when there is none. */
  getUsed(): UsedBuffer | null {
    const usedIdx = this.memory.readU16(this.used + 2);
    if (usedIdx === this.lastUsed) return null;
    if (((usedIdx - this.lastUsed) & 0xffff) > this.outstanding) {
      throw new QueueError(
        "DRIVER_BAD_USED_ID",
        `used idx ${usedIdx} is ahead of the ${this.outstanding} outstanding buffers (last seen ${this.lastUsed})`,
      );
    }
    const o = this.used + 4 + 8 * (this.lastUsed & (this.size - 1));
    const id = this.memory.readU32(o);
    const len = this.memory.readU32(o + 4);
    if (!(id < this.size && this.headDescs[id]! > 0)) {
      throw new QueueError(
        "DRIVER_BAD_USED_ID",
        `device returned id ${id}, which is not an outstanding head`,
      );
    }
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    this.freeChain(id);
    if (this.eventIdx && this.interruptsEnabled) {
      this.memory.writeU16(this.avail + 4 + 2 * this.size, this.lastUsed);
    }
    return { id, len };
  }

  /** Frees a chain from the driver's own record of it (never from what is in guest memory). */
  private freeChain(head: number): void {
    let d = head;
    let n = this.headDescs[head]!;
    this.headDescs[head] = 0;
    while (n-- > 0) {
      const next = this.chainNext[d]!;
      this.freeNext[d] = this.freeHead;
      this.freeHead = d;
      this._numFree++;
      d = next;
    }
  }

  /**
   * Asks the device not to send used buffer notifications: VIRTQ_AVAIL_F_NO_INTERRUPT, or with
   * VIRTIO_F_EVENT_IDX used_event set far behind (lastUsed - 1 - 0x8000), as Linux does.
   */
  disableInterrupts(): void {
    this.interruptsEnabled = false;
    if (this.eventIdx) {
      this.memory.writeU16(this.avail + 4 + 2 * this.size, (this.lastUsed - 0x8000) & 0xffff);
    } else {
      this.memory.writeU16(this.avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
  }

  /**
   * Asks for a notification at the next used buffer (flags 0 / used_event = last seen) and
   * re-checks: true when used buffers arrived meanwhile, so the caller must collect again.
   */
  enableInterrupts(): boolean {
    this.interruptsEnabled = true;
    if (this.eventIdx) this.memory.writeU16(this.avail + 4 + 2 * this.size, this.lastUsed);
    else this.memory.writeU16(this.avail, 0);
    return this.hasUsed();
  }

  /** Sets used_event directly (VIRTIO_F_EVENT_IDX): interrupt when used.idx passes `idx`. */
  setUsedEvent(idx: number): void {
    this.memory.writeU16(this.avail + 4 + 2 * this.size, idx & 0xffff);
  }

  /** Sets avail.flags directly (0 or VIRTQ_AVAIL_F_NO_INTERRUPT). */
  setAvailFlags(flags: number): void {
    this.memory.writeU16(this.avail, flags & 0xffff);
  }
}
