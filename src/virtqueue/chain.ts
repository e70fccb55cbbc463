import type { GuestMemory } from "../common/memory.js";
import { ChainReader, ChainWriter } from "./cursor.js";

/**
 * One descriptor chain popped from the available ring, already walked and validated: every
 * segment lies inside guest memory, readable segments come before writable ones, and the chain
 * has no loop. Segment i is [addrs[i], addrs[i] + lens[i]); the first `readableCount` segments
 * are device-readable, the rest device-writable. Indirect tables are flattened into the list.
 */
export class DescriptorChain {
  /** The head descriptor index: the `id` to give back with `addUsed`. */
  readonly head: number;
  /** Guest-physical addresses of the segments (all below 2^32). */
  readonly addrs: number[];
  /** Lengths of the segments in bytes. */
  readonly lens: number[];
  /** Number of device-readable segments (they come first). */
  readonly readableCount: number;
  /** Total bytes of the device-readable segments. */
  readonly readableLength: number;
  /** Total bytes of the device-writable segments. */
  readonly writableLength: number;
  /** Number of descriptors walked, counting the one that refers to an indirect table. */
  readonly descriptorCount: number;
  readonly memory: GuestMemory;

  constructor(
    memory: GuestMemory,
    head: number,
    addrs: number[],
    lens: number[],
    readableCount: number,
    readableLength: number,
    writableLength: number,
    descriptorCount: number,
  ) {
    this.memory = memory;
    this.head = head;
    this.addrs = addrs;
    this.lens = lens;
    this.readableCount = readableCount;
    this.readableLength = readableLength;
    this.writableLength = writableLength;
    this.descriptorCount = descriptorCount;
  }

  /** Number of segments. */
  get length(): number {
    return this.addrs.length;
  }

  /** True when segment `i` is device-writable. */
  isWritable(i: number): boolean {
    return i >= this.readableCount;
  }

  /** A byte cursor over the device-readable segments. */
  reader(): ChainReader {
    return new ChainReader(this.memory, this.addrs, this.lens, 0, this.readableCount, this.readableLength);
  }

  /** A byte cursor over the device-writable segments. */
  writer(): ChainWriter {
    return new ChainWriter(
      this.memory,
      this.addrs,
      this.lens,
      this.readableCount,
      this.addrs.length,
      this.writableLength,
    );
  }
}
