import type { GuestMemory } from "../common/memory.js";
import type { U64 } from "../common/u64.js";
import { QueueError } from "./errors.js";

/**
 * The shared walk of a byte cursor over segments [from, to) of a chain. The segments were
 * validated when the chain was popped, so each lies inside guest memory; the cursor only has
 * to refuse going past the end of its part.
 */
abstract class SegmentCursor {
  protected readonly memory: GuestMemory;
  protected readonly addrs: number[];
  protected readonly lens: number[];
  protected readonly end: number;
  /** Current segment index. */
  protected seg: number;
  /** Offset inside the current segment. */
  protected off = 0;
  /** Bytes left in this part. */
  protected left: number;
  /** Total bytes of this part. */
  readonly total: number;

  constructor(memory: GuestMemory, addrs: number[], lens: number[], from: number, to: number, total: number) {
    this.memory = memory;
    this.addrs = addrs;
    this.lens = lens;
    this.seg = from;
    this.end = to;
    this.left = total;
    this.total = total;
    this.skipEmpty();
  }

  /** Bytes left before the end of this part. */
  get remaining(): number {
    return this.left;
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.total - this.left;
  }

  protected skipEmpty(): void {
    while (this.seg < this.end && this.off >= this.lens[this.seg]!) {
      this.seg++;
      this.off = 0;
    }
  }

  protected abstract pastEnd(n: number): QueueError;

  /** Moves the cursor n bytes forward. */
  skip(n: number): void {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.left)) throw this.pastEnd(n);
    this.left -= n;
    while (n > 0) {
      const avail = this.lens[this.seg]! - this.off;
      if (n < avail) {
        this.off += n;
        return;
      }
      n -= avail;
      this.seg++;
      this.off = 0;
    }
    this.skipEmpty();
  }

  /**
   * Takes the next n bytes as zero-copy views of guest memory (one per segment touched) and
   * advances. n must not exceed `remaining`.
   */
  protected take(n: number, each: (view: Uint8Array, at: number) => void): void {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.left)) throw this.pastEnd(n);
    this.left -= n;
    let at = 0;
    while (n > 0) {
      const segLen = this.lens[this.seg]!;
      const chunk = Math.min(n, segLen - this.off);
      each(this.memory.subarray(this.addrs[this.seg]! + this.off, chunk), at);
      at += chunk;
      n -= chunk;
      this.off += chunk;
      if (this.off >= segLen) {
        this.seg++;
        this.off = 0;
      }
    }
    this.skipEmpty();
  }

  /** The address of the next byte, when `width` bytes remain in the current segment; else -1. */
  protected contiguous(width: number): number {
    if (this.seg < this.end && this.lens[this.seg]! - this.off >= width)
      return this.addrs[this.seg]! + this.off;
    return -1;
  }

  protected advanceContiguous(width: number): void {
    this.off += width;
    this.left -= width;
    if (this.off >= this.lens[this.seg]!) {
      this.seg++;
      this.off = 0;
      this.skipEmpty();
    }
  }
}

/** A byte cursor over the device-readable part of a chain. Reading past the end is a QueueError. */
export class ChainReader extends SegmentCursor {
  protected pastEnd(n: number): QueueError {
    return new QueueError(
      "READ_PAST_END",
      `read of ${n} bytes at offset ${this.position} runs past the end of the ${this.total}-byte readable part`,
    );
  }

  /** Copies dst.length bytes into dst and advances. */
  readInto(dst: Uint8Array): void {
    const n = dst.length;
    if (n <= this.left) {
      const a = this.contiguous(n);
      if (a >= 0) {
        dst.set(this.memory.subarray(a, n));
        this.advanceContiguous(n);
        return;
      }
    }
    if (!(n <= this.left)) throw this.pastEnd(n);
    // Segment by segment, without a callback per chunk.
    const mem = this.memory;
    const addrs = this.addrs;
    const lens = this.lens;
    this.left -= n;
    let at = 0;
    let seg = this.seg;
    let off = this.off;
    while (at < n) {
      const segLen = lens[seg]!;
      const chunk = Math.min(n - at, segLen - off);
      dst.set(mem.subarray(addrs[seg]! + off, chunk), at);
      at += chunk;
      off += chunk;
      if (off >= segLen) {
        seg++;
        off = 0;
      }
    }
    this.seg = seg;
    this.off = off;
    this.skipEmpty();
  }

  /**
   * The next n bytes. When they lie in one segment this is a zero-copy view of guest memory
   * (writes through it would reach the guest: do not write); otherwise a fresh copy.
   */
  read(n: number): Uint8Array {
    if (n <= this.left && Number.isInteger(n) && n >= 0) {
      const a = this.contiguous(n);
      if (a >= 0) {
        const v = this.memory.subarray(a, n);
        this.advanceContiguous(n);
        return v;
      }
    }
    const out = new Uint8Array(n >= 0 && Number.isInteger(n) ? Math.min(n, this.left) : 0);
    if (n !== out.length) throw this.pastEnd(n);
    this.take(n, (v, at) => out.set(v, at));
    return out;
  }

  /** Everything left in the readable part, as a copy. */
  readAll(): Uint8Array {
    const out = new Uint8Array(this.left);
    this.readInto(out);
    return out;
  }

  private small(width: number): number {
    const a = this.contiguous(width);
    if (a >= 0) {
      const m = this.memory;
      const v = width === 1 ? m.readU8(a) : width === 2 ? m.readU16(a) : m.readU32(a);
      this.advanceContiguous(width);
      return v;
    }
    const b = new Uint8Array(width);
    this.take(width, (v, at) => b.set(v, at));
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + b[i]!;
    return v;
  }

  readU8(): number {
    if (this.left < 1) throw this.pastEnd(1);
    return this.small(1);
  }
  readU16(): number {
    if (this.left < 2) throw this.pastEnd(2);
    return this.small(2);
  }
  readU32(): number {
    if (this.left < 4) throw this.pastEnd(4);
    return this.small(4);
  }
  readU64(): U64 {
    if (this.left < 8) throw this.pastEnd(8);
    const lo = this.small(4);
    const hi = this.small(4);
    return { lo, hi };
  }
}

/**
 * A byte cursor over the device-writable part of a chain. Writing past the end is a
 * QueueError (and writes nothing). `bytesWritten` is the `len` to give `addUsed`.
 */
export class ChainWriter extends SegmentCursor {
  protected pastEnd(n: number): QueueError {
    return new QueueError(
      "WRITE_PAST_END",
      `write of ${n} bytes at offset ${this.position} runs past the end of the ${this.total}-byte writable part`,
    );
  }

  /** Bytes written (or skipped) so far. */
  get bytesWritten(): number {
    return this.total - this.left;
  }

  /** Copies `src` into the chain and advances. */
  write(src: Uint8Array): void {
    const n = src.length;
    if (n <= this.left) {
      const a = this.contiguous(n);
      if (a >= 0) {
        this.memory.writeFrom(a, src);
        this.advanceContiguous(n);
        return;
      }
    }
    this.take(n, (v, at) => v.set(src.subarray(at, at + v.length)));
  }

  /**
   * Hands out the next n writable bytes as zero-copy views of guest memory, one per segment,
   * for a producer to fill in place (`fill(view)` must fill all of it), and advances.
   */
  writeWith(n: number, fill: (view: Uint8Array) => void): void {
    this.take(n, (v) => fill(v));
  }

  /** Writes n copies of `value`. */
  fill(n: number, value: number): void {
    this.take(n, (v) => v.fill(value));
  }

  private small(width: number, value: number): void {
    if (this.left < width) throw this.pastEnd(width);
    const a = this.contiguous(width);
    if (a >= 0) {
      const m = this.memory;
      if (width === 1) m.writeU8(a, value);
      else if (width === 2) m.writeU16(a, value);
      else m.writeU32(a, value);
      this.advanceContiguous(width);
      return;
    }
    const b = new Uint8Array(width);
    let v = value >>> 0;
    for (let i = 0; i < width; i++) {
      b[i] = v & 0xff;
      v >>>= 8;
    }
    this.take(width, (view, at) => view.set(b.subarray(at, at + view.length)));
  }

  writeU8(value: number): void {
    this.small(1, value & 0xff);
  }
  writeU16(value: number): void {
    this.small(2, value & 0xffff);
  }
  writeU32(value: number): void {
    this.small(4, value >>> 0);
  }
  writeU64(value: U64): void {
    if (this.left < 8) throw this.pastEnd(8);
    this.small(4, value.lo >>> 0);
    this.small(4, value.hi >>> 0);
  }
}
