/**
 * Backends for tests of virtio-blk (shipped so other people's device tests can use them too):
 * one whose operations finish only when the test releases them, in any order, and one that
 * fails chosen operations.
 */
import { BlockBackendError, type BlockBackend, type MaybePromise } from "./backend.js";

/** The kind of a backend operation. */
export type BlockOpKind = "read" | "write" | "flush" | "discard" | "write-zeroes";

/** One operation waiting in a `ManualBackend`. */
export interface PendingBlockOp {
  kind: BlockOpKind;
  offset: number;
  length: number;
  /** Runs the operation on the inner backend and settles its promise. */
  release(): void;
  /** Settles its promise with an error (the device answers VIRTIO_BLK_S_IOERR). */
  fail(): void;
}

/**
 * Wraps a backend so that every operation waits until the test releases it: the operation
 * runs on the inner backend at release time, so releasing in some order is the order the
 * "hardware" finished in. A read's bytes are copied at release time.
 */
export class ManualBackend implements BlockBackend {
  readonly pending: PendingBlockOp[] = [];

  constructor(readonly inner: BlockBackend) {}

  get capacity(): number {
    return this.inner.capacity;
  }

  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  private wait<T>(kind: BlockOpKind, offset: number, length: number, run: () => MaybePromise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({
        kind,
        offset,
        length,
        release: () => {
          try {
            Promise.resolve(run()).then(resolve, reject);
          } catch (e) {
            reject(e);
          }
        },
        fail: () => reject(new BlockBackendError(`injected failure of ${kind} at ${offset}`)),
      });
    });
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.wait("read", offset, length, () => {
      const r = this.inner.read(offset, length);
      return r instanceof Uint8Array ? r.slice() : r.then((b) => b.slice());
    });
  }

  write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    let length = 0;
    for (const d of data) length += d.length;
    return this.wait("write", offset, length, () => this.inner.write(offset, data));
  }

  flush(): Promise<void> {
    return this.wait("flush", 0, 0, () => this.inner.flush());
  }

  discard(offset: number, length: number): Promise<void> {
    return this.wait("discard", offset, length, () => this.inner.discard(offset, length));
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.wait("write-zeroes", offset, length, () => this.inner.writeZeroes(offset, length));
  }

  /** Takes the waiting operation at `index` out of the list and releases it. */
  releaseAt(index: number): PendingBlockOp {
    const [op] = this.pending.splice(index, 1);
    if (!op) throw new BlockBackendError(`no pending operation ${index}`);
    op.release();
    return op;
  }
}

/** Wraps a backend and makes the operations `shouldFail` picks throw (synchronously). */
export class FailingBackend implements BlockBackend {
  failures = 0;
  constructor(
    readonly inner: BlockBackend,
    readonly shouldFail: (kind: BlockOpKind, offset: number, length: number) => boolean,
  ) {}

  get capacity(): number {
    return this.inner.capacity;
  }

  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  private check(kind: BlockOpKind, offset: number, length: number): void {
    if (this.shouldFail(kind, offset, length)) {
      this.failures++;
      throw new BlockBackendError(`injected failure of ${kind} at ${offset}`);
    }
  }

  read(offset: number, length: number): MaybePromise<Uint8Array> {
    this.check("read", offset, length);
    return this.inner.read(offset, length);
  }

  write(offset: number, data: readonly Uint8Array[]): MaybePromise<void> {
    let length = 0;
    for (const d of data) length += d.length;
    this.check("write", offset, length);
    return this.inner.write(offset, data);
  }

  flush(): MaybePromise<void> {
    this.check("flush", 0, 0);
    return this.inner.flush();
  }

  discard(offset: number, length: number): MaybePromise<void> {
    this.check("discard", offset, length);
    return this.inner.discard(offset, length);
  }

  writeZeroes(offset: number, length: number): MaybePromise<void> {
    this.check("write-zeroes", offset, length);
    return this.inner.writeZeroes(offset, length);
  }
}
