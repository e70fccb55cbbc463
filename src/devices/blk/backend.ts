import { ConfigError, VirtkitError } from "../../common/errors.js";
import { SECTOR_SIZE } from "./constants.js";

/** A value or a promise of it: backends that finish at once return the value itself. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Where a virtio-blk device keeps its bytes. Every method may finish at once (return a value)
 * or later (return a promise); the device treats a throw and a rejection alike (VIRTIO_BLK_S_IOERR).
 * Offsets and lengths are in bytes, multiples of 512, and always inside `capacity`: the device
 * checks every request before a backend sees it.
 */
export interface BlockBackend {
  /** Size in bytes (a multiple of 512). */
  readonly capacity: number;
  /** A read-only disk: the device offers VIRTIO_BLK_F_RO and never calls the write methods. */
  readonly readOnly: boolean;
  /**
   * The `length` bytes at `offset`. The result may be a view of the backend's own storage:
   * the device copies it out as soon as the call (or its promise) finishes.
   */
  read(offset: number, length: number): MaybePromise<Uint8Array>;
  /**
   * Writes the concatenation of `data` at `offset`. The views may point into guest memory:
   * the backend copies what it keeps and must not touch them once its promise has settled.
   */
  write(offset: number, data: readonly Uint8Array[]): MaybePromise<void>;
  /** Makes every completed write durable (fsync for a file). */
  flush(): MaybePromise<void>;
  /** Deallocates a range; afterwards the range reads back as zeroes in every shipped backend. */
  discard(offset: number, length: number): MaybePromise<void>;
  /** Writes zeroes over a range. */
  writeZeroes(offset: number, length: number): MaybePromise<void>;
  /** Releases host resources (closes a file). */
  close?(): MaybePromise<void>;
}

/** A backend operation that cannot be done (a write to a read-only disk, a range outside it). */
export class BlockBackendError extends VirtkitError {
  constructor(message: string) {
    super("BLOCK_BACKEND", message);
  }
}

/** Throws unless [offset, offset+length) is a sector-aligned range inside `capacity`. */
export function checkBackendRange(capacity: number, offset: number, length: number, what: string): void {
  if (
    !(Number.isSafeInteger(offset) && Number.isSafeInteger(length)) ||
    offset < 0 ||
    length < 0 ||
    offset % SECTOR_SIZE !== 0 ||
    length % SECTOR_SIZE !== 0 ||
    offset + length > capacity
  ) {
    throw new BlockBackendError(
      `${what} of ${length} bytes at ${offset} is not a sector-aligned range inside the ${capacity}-byte disk`,
    );
  }
}

/** Checks a capacity given by a user: a non-negative multiple of 512 below 2^53. */
export function checkCapacity(capacity: number): void {
  if (!Number.isSafeInteger(capacity) || capacity < 0 || capacity % SECTOR_SIZE !== 0) {
    throw new ConfigError(`disk size must be a non-negative multiple of 512 bytes, got ${capacity}`);
  }
}

export interface MemoryDiskOptions {
  readOnly?: boolean;
}

/**
 * An in-memory disk: a Uint8Array of `capacity` bytes. Every operation finishes at once (no
 * promise), so requests on it complete inside the notify that submitted them. Discarded
 * ranges read back as zeroes.
 */
export class MemoryDisk implements BlockBackend {
  readonly capacity: number;
  readonly readOnly: boolean;
  /** The disk's bytes (shared, not copied, when the disk was built from an array). */
  readonly bytes: Uint8Array;
  /** Completed flushes, for tests and statistics. */
  flushes = 0;

  /** A zeroed disk of `capacity` bytes, or a disk over `bytes` (used in place, length a multiple of 512). */
  constructor(capacityOrBytes: number | Uint8Array, options: MemoryDiskOptions = {}) {
    if (typeof capacityOrBytes === "number") {
      checkCapacity(capacityOrBytes);
      this.bytes = new Uint8Array(capacityOrBytes);
    } else {
      checkCapacity(capacityOrBytes.length);
      this.bytes = capacityOrBytes;
    }
    this.capacity = this.bytes.length;
    this.readOnly = options.readOnly === true;
  }

  read(offset: number, length: number): Uint8Array {
    checkBackendRange(this.capacity, offset, length, "read");
    return this.bytes.subarray(offset, offset + length);
  }

  write(offset: number, data: readonly Uint8Array[]): void {
    this.writable();
    let total = 0;
    for (const d of data) total += d.length;
    checkBackendRange(this.capacity, offset, total, "write");
    let at = offset;
    for (const d of data) {
      this.bytes.set(d, at);
      at += d.length;
    }
  }

  flush(): void {
    this.flushes++;
  }

  discard(offset: number, length: number): void {
    this.writeZeroes(offset, length);
  }

  writeZeroes(offset: number, length: number): void {
    this.writable();
    checkBackendRange(this.capacity, offset, length, "write zeroes");
    this.bytes.fill(0, offset, offset + length);
  }

  private writable(): void {
    if (this.readOnly) throw new BlockBackendError("write to a read-only disk");
  }
}
