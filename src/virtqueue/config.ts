import { hex } from "../common/errors.js";
import type { GuestMemory } from "../common/memory.js";
import type { Persist } from "../common/persist.js";
import {
  AVAIL_ALIGN,
  availRingSize,
  DESC_ALIGN,
  descTableSize,
  isPowerOfTwo,
  USED_ALIGN,
  usedRingSize,
  VIRTQ_MAX_SIZE,
} from "./constants.js";
import { QueueError } from "./errors.js";
import { VirtQueue } from "./queue.js";

/** The features a running queue needs to know about. */
export interface QueueFeatures {
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect: boolean;
}

/** QueueConfig's state as a plain object. */
export interface QueueConfigState {
  maxSize: number;
  size: number;
  descLo: number;
  descHi: number;
  availLo: number;
  availHi: number;
  usedLo: number;
  usedHi: number;
  ready: boolean;
}

/**
 * What a transport writes about one queue before the driver sets DRIVER_OK: size,
 * the three area addresses (as 32-bit halves, the way the PCI common config carries them) and
 * `ready`. Setters validate what can be validated alone (the size); the addresses are checked
 * together, against guest memory, when `activate` turns the config into a running `VirtQueue`.
 */
export class QueueConfig implements Persist<QueueConfigState> {
  readonly maxSize: number;
  private _size: number;
  descLo = 0;
  descHi = 0;
  availLo = 0;
  availHi = 0;
  usedLo = 0;
  usedHi = 0;
  ready = false;

  constructor(maxSize: number) {
    if (!isPowerOfTwo(maxSize) || maxSize > VIRTQ_MAX_SIZE) {
      throw new QueueError(
        "BAD_SIZE",
        `queue maximum size must be a power of two up to 32768, got ${maxSize}`,
      );
    }
    this.maxSize = maxSize;
    this._size = maxSize;
  }

  get size(): number {
    return this._size;
  }

  /** Sets the queue size: a power of two no larger than the maximum, or throws BAD_SIZE. */
  setSize(size: number): void {
    if (!isPowerOfTwo(size) || size > this.maxSize) {
      throw new QueueError(
        "BAD_SIZE",
        `queue size must be a power of two from 1 to ${this.maxSize}, got ${size}`,
      );
    }
    this._size = size;
  }

  /** True when `setSize(size)` would accept it. */
  isValidSize(size: number): boolean {
    return isPowerOfTwo(size) && size <= this.maxSize;
  }

  /** Sets the descriptor table address from a number below 2^32 (or its two halves). */
  setDesc(lo: number, hi = 0): void {
    this.descLo = lo >>> 0;
    this.descHi = hi >>> 0;
  }
  setAvail(lo: number, hi = 0): void {
    this.availLo = lo >>> 0;
    this.availHi = hi >>> 0;
  }
  setUsed(lo: number, hi = 0): void {
    this.usedLo = lo >>> 0;
    this.usedHi = hi >>> 0;
  }

  /** Back to the reset state: maximum size, zero addresses, not ready. */
  reset(): void {
    this._size = this.maxSize;
    this.descLo = this.descHi = this.availLo = this.availHi = this.usedLo = this.usedHi = 0;
    this.ready = false;
  }

  /**
   * Checks the layout against `memory` and returns the reason it cannot run, or null.
   * Addresses must be below 4 GiB, aligned as section 2.7 requires, and each area must lie
   * wholly inside guest memory.
   */
  validate(memory: GuestMemory): QueueError | null {
    const size = this._size;
    if (!isPowerOfTwo(size) || size > this.maxSize) {
      return new QueueError("BAD_SIZE", `queue size ${size} is not a power of two up to ${this.maxSize}`);
    }
    const areas: [string, number, number, number, number][] = [
      ["descriptor table", this.descLo, this.descHi, DESC_ALIGN, descTableSize(size)],
      ["available ring", this.availLo, this.availHi, AVAIL_ALIGN, availRingSize(size)],
      ["used ring", this.usedLo, this.usedHi, USED_ALIGN, usedRingSize(size)],
    ];
    for (const [name, lo, hi, align, len] of areas) {
      if (hi !== 0) {
        return new QueueError("BAD_RING_ADDRESS", `${name} address 0x${hex(hi)}${hex(lo, 8)} is above 4 GiB`);
      }
      if (lo % align !== 0) {
        return new QueueError(
          "BAD_RING_ADDRESS",
          `${name} address 0x${hex(lo)} is not aligned to ${align} bytes`,
        );
      }
      if (!memory.inRange(lo, len)) {
        return new QueueError(
          "BAD_RING_ADDRESS",
          `${name} 0x${hex(lo)}+0x${hex(len)} lies outside guest memory (size 0x${hex(memory.size)})`,
        );
      }
    }
    return null;
  }

  /** Turns the configuration into a running queue, or throws the QueueError `validate` finds. */
  activate(memory: GuestMemory, features: QueueFeatures): VirtQueue {
    if (!this.ready) throw new QueueError("NOT_READY", "queue activated while not ready");
    const err = this.validate(memory);
    if (err) throw err;
    return new VirtQueue(memory, {
      size: this._size,
      desc: this.descLo,
      avail: this.availLo,
      used: this.usedLo,
      eventIdx: features.eventIdx,
      indirect: features.indirect,
    });
  }

  save(): QueueConfigState {
    return {
      maxSize: this.maxSize,
      size: this._size,
      descLo: this.descLo,
      descHi: this.descHi,
      availLo: this.availLo,
      availHi: this.availHi,
      usedLo: this.usedLo,
      usedHi: this.usedHi,
      ready: this.ready,
    };
  }

  restore(s: QueueConfigState): void {
    if (s.maxSize !== this.maxSize) {
      throw new QueueError("BAD_STATE", `saved queue max size ${s.maxSize} differs from ${this.maxSize}`);
    }
    this.setSize(s.size);
    this.setDesc(s.descLo, s.descHi);
    this.setAvail(s.availLo, s.availHi);
    this.setUsed(s.usedLo, s.usedHi);
    this.ready = s.ready === true;
  }
}
