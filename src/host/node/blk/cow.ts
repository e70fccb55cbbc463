/**
 * A copy-on-write overlay over a read-only base disk: the guest reads the base until it
 * writes, and its writes go to an overlay kept in host memory, so the base image file never
 * changes. The overlay is lost when the process ends (a scratch disk over a golden image).
 */
import { ConfigError } from "../../../common/errors.js";
import { type BlockBackend, checkBackendRange } from "../../../devices/blk/backend.js";
import { SECTOR_SIZE } from "../../../devices/blk/constants.js";
import { RawFileDisk } from "./raw.js";

export interface CowDiskOptions {
  /** Overlay granularity in bytes: a power of two, at least 512 (default 64 KiB). */
  clusterSize?: number;
}

/**
 * Copy-on-write over `base` (any backend; only its read method is used). Operations run one at
 * a time, in submission order, so two writes into one cluster never race on its first copy.
 */
export class CowDisk implements BlockBackend {
  readonly capacity: number;
  readonly readOnly = false;
  readonly base: BlockBackend;
  readonly clusterSize: number;
  /** Cluster index -> its bytes, or null for a cluster that reads as zeroes. */
  private readonly overlay = new Map<number, Uint8Array | null>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(base: BlockBackend, options: CowDiskOptions = {}) {
    const cs = options.clusterSize ?? 65536;
    if (!(Number.isInteger(cs) && cs >= SECTOR_SIZE && (cs & (cs - 1)) === 0)) {
      throw new ConfigError(`copy-on-write cluster size must be a power of two of at least 512, got ${cs}`);
    }
    this.base = base;
    this.capacity = base.capacity;
    this.clusterSize = cs;
  }

  /** Opens `basePath` read-only and puts an in-memory overlay over it. */
  static async open(basePath: string, options: CowDiskOptions = {}): Promise<CowDisk> {
    return new CowDisk(await RawFileDisk.open(basePath, { readOnly: true }), options);
  }

  /** Bytes held by the overlay (clusters written with data). */
  get overlayBytes(): number {
    let n = 0;
    for (const v of this.overlay.values()) if (v) n += v.length;
    return n;
  }

  /** Clusters the guest has changed (written, zeroed or discarded). */
  get changedClusters(): number {
    return this.overlay.size;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => undefined);
    return p;
  }

  private clusterLen(c: number): number {
    return Math.min(this.clusterSize, this.capacity - c * this.clusterSize);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    checkBackendRange(this.capacity, offset, length, "read");
    return this.serial(async () => {
      const out = new Uint8Array(length);
      const cs = this.clusterSize;
      let at = offset;
      const end = offset + length;
      while (at < end) {
        const c = Math.floor(at / cs);
        const cStart = c * cs;
        const n = Math.min(end, cStart + cs) - at;
        if (this.overlay.has(c)) {
          const data = this.overlay.get(c);
          if (data) out.set(data.subarray(at - cStart, at - cStart + n), at - offset);
          at += n;
          continue;
        }
        // A run of clusters the overlay does not hold: one read of the base.
        let runEnd = at + n;
        while (runEnd < end && !this.overlay.has(Math.floor(runEnd / cs)))
          runEnd = Math.min(end, runEnd + cs);
        out.set(await this.base.read(at, runEnd - at), at - offset);
        at = runEnd;
      }
      return out;
    });
  }

  /** The overlay copy of cluster c, made from the base (or zeroes) on first use. */
  private async materialize(c: number): Promise<Uint8Array> {
    const have = this.overlay.get(c);
    if (have) return have;
    const len = this.clusterLen(c);
    const data =
      have === null ? new Uint8Array(len) : (await this.base.read(c * this.clusterSize, len)).slice();
    this.overlay.set(c, data);
    return data;
  }

  write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    let total = 0;
    for (const d of data) total += d.length;
    checkBackendRange(this.capacity, offset, total, "write");
    return this.serial(async () => {
      // Gather now: the views may point into guest memory, valid until this promise settles.
      const src = new Uint8Array(total);
      let p = 0;
      for (const d of data) {
        src.set(d, p);
        p += d.length;
      }
      const cs = this.clusterSize;
      let at = offset;
      const end = offset + total;
      while (at < end) {
        const c = Math.floor(at / cs);
        const cStart = c * cs;
        const n = Math.min(end, cStart + cs) - at;
        let dst: Uint8Array;
        if (n === this.clusterLen(c) && !this.overlay.get(c)) {
          dst = new Uint8Array(n);
          this.overlay.set(c, dst);
        } else {
          dst = await this.materialize(c);
        }
        dst.set(src.subarray(at - offset, at - offset + n), at - cStart);
        at += n;
      }
    });
  }

  /** Nothing to make durable: the overlay lives in host memory (the base is never written). */
  flush(): Promise<void> {
    return this.serial(async () => undefined);
  }

  discard(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    checkBackendRange(this.capacity, offset, length, "write zeroes");
    return this.serial(async () => {
      const cs = this.clusterSize;
      let at = offset;
      const end = offset + length;
      while (at < end) {
        const c = Math.floor(at / cs);
        const cStart = c * cs;
        const n = Math.min(end, cStart + cs) - at;
        if (n === this.clusterLen(c)) this.overlay.set(c, null);
        else (await this.materialize(c)).fill(0, at - cStart, at - cStart + n);
        at += n;
      }
    });
  }

  /** Drops the overlay and closes the base. */
  async close(): Promise<void> {
    await this.tail;
    this.overlay.clear();
    await this.base.close?.();
  }
}
