/**
 * A raw disk image file as a virtio-blk backend: positional reads and writes, FLUSH as fsync.
 */
import { constants as fsConstants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { ConfigError } from "../../../common/errors.js";
import { BlockBackendError, type BlockBackend, checkBackendRange } from "../../../devices/blk/backend.js";
import { SECTOR_SIZE } from "../../../devices/blk/constants.js";

export interface RawFileDiskOptions {
  /** Open the file read-only: the device offers VIRTIO_BLK_F_RO. */
  readOnly?: boolean;
  /**
   * An image whose size is not a multiple of 512: "truncate" presents the whole sectors only
   * (as QEMU does); "error" (default) refuses it.
   */
  partialSector?: "error" | "truncate";
}

/** Bytes of zeroes written per call by writeZeroes/discard. */
const ZERO_CHUNK = 1 << 20;
let zeroChunk: Uint8Array | null = null;

/** Turns a Node error from opening a disk image into a sentence naming the file. */
function describeOpenError(path: string, e: unknown): ConfigError {
  const code = (e as { code?: string }).code;
  const what =
    code === "ENOENT"
      ? "no such file"
      : code === "EACCES" || code === "EPERM"
        ? "permission denied"
        : code === "EISDIR"
          ? "is a directory"
          : code === "EROFS"
            ? "read-only file system (open it read-only)"
            : (e as Error).message;
  return new ConfigError(`disk image ${path}: cannot open: ${what}`);
}

/**
 * A raw image file. Open it with `RawFileDisk.open`: a missing, unreadable or non-regular file
 * is a ConfigError naming the file at start-up, not a failure of the guest's first request.
 */
export class RawFileDisk implements BlockBackend {
  readonly capacity: number;
  readonly readOnly: boolean;
  readonly path: string;
  private fh: FileHandle | null;
  /** Completed fsyncs. */
  syncs = 0;

  private constructor(path: string, fh: FileHandle, capacity: number, readOnly: boolean) {
    this.path = path;
    this.fh = fh;
    this.capacity = capacity;
    this.readOnly = readOnly;
  }

  static async open(path: string, options: RawFileDiskOptions = {}): Promise<RawFileDisk> {
    const readOnly = options.readOnly === true;
    let fh: FileHandle;
    try {
      fh = await open(path, readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR);
    } catch (e) {
      throw describeOpenError(path, e);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() && !st.isBlockDevice()) {
        throw new ConfigError(`disk image ${path}: not a regular file`);
      }
      const size = st.size;
      if (size % SECTOR_SIZE !== 0 && options.partialSector !== "truncate") {
        throw new ConfigError(
          `disk image ${path}: size ${size} is not a multiple of 512 (use partialSector: "truncate" to drop the tail)`,
        );
      }
      // Read the first sector now: an unreadable image fails here, not at the guest's first read.
      if (size >= SECTOR_SIZE) await fh.read(new Uint8Array(SECTOR_SIZE), 0, SECTOR_SIZE, 0);
      return new RawFileDisk(path, fh, size - (size % SECTOR_SIZE), readOnly);
    } catch (e) {
      await fh.close();
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(`disk image ${path}: cannot read: ${(e as Error).message}`);
    }
  }

  /**
   * Creates (or truncates) a raw image of `capacity` bytes, sparse where the file system allows,
   * and opens it read-write.
   */
  static async create(path: string, capacity: number): Promise<RawFileDisk> {
    if (!Number.isSafeInteger(capacity) || capacity < 0 || capacity % SECTOR_SIZE !== 0) {
      throw new ConfigError(`disk image ${path}: size ${capacity} is not a multiple of 512`);
    }
    let fh: FileHandle;
    try {
      fh = await open(path, "w+");
      await fh.truncate(capacity);
      await fh.close();
    } catch (e) {
      throw describeOpenError(path, e);
    }
    return RawFileDisk.open(path);
  }

  private handle(): FileHandle {
    if (!this.fh) throw new BlockBackendError(`disk image ${this.path} is closed`);
    return this.fh;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkBackendRange(this.capacity, offset, length, "read");
    const fh = this.handle();
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new BlockBackendError(
          `disk image ${this.path}: end of file at ${offset + done}, inside the ${this.capacity}-byte disk (file shrank?)`,
        );
      }
      done += bytesRead;
    }
    return out;
  }

  async write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    if (this.readOnly) throw new BlockBackendError(`disk image ${this.path} is read-only`);
    let total = 0;
    for (const d of data) total += d.length;
    checkBackendRange(this.capacity, offset, total, "write");
    const fh = this.handle();
    let bufs = data.filter((d) => d.length > 0);
    let pos = offset;
    while (bufs.length > 0) {
      const { bytesWritten } = await fh.writev(bufs, pos);
      if (bytesWritten === 0) throw new BlockBackendError(`disk image ${this.path}: write made no progress`);
      pos += bytesWritten;
      // Drop what was written (a short writev leaves a tail).
      let n = bytesWritten;
      const rest: Uint8Array[] = [];
      for (const b of bufs) {
        if (n >= b.length) {
          n -= b.length;
          continue;
        }
        rest.push(n > 0 ? b.subarray(n) : b);
        n = 0;
      }
      bufs = rest;
    }
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.handle().sync();
    this.syncs++;
  }

  /** Raw files cannot punch holes portably from Node: a discarded range is written with zeroes. */
  discard(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    if (this.readOnly) throw new BlockBackendError(`disk image ${this.path} is read-only`);
    checkBackendRange(this.capacity, offset, length, "write zeroes");
    zeroChunk ??= new Uint8Array(ZERO_CHUNK);
    for (let at = 0; at < length; at += ZERO_CHUNK) {
      await this.write(offset + at, [zeroChunk.subarray(0, Math.min(ZERO_CHUNK, length - at))]);
    }
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }
}
