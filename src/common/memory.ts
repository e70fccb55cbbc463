import { GuestMemoryError } from "./errors.js";
import type { U64 } from "./u64.js";

/**
 * Guest physical memory as the devices see it. Every access is bounds-checked: an access that
 * does not lie wholly inside the memory throws `GuestMemoryError` before any byte is read or
 * written (never a silent wrap, never a partial copy). Multi-byte values are little-endian.
 */
export interface GuestMemory {
  /** Size in bytes. Valid addresses are 0 .. size-1. */
  readonly size: number;
  /** True when [addr, addr+len) lies inside the memory (len 0 is in range for addr <= size). */
  inRange(addr: number, len: number): boolean;
  /** Throws `GuestMemoryError` unless [addr, addr+len) lies inside the memory. */
  checkRange(addr: number, len: number): void;
  readU8(addr: number): number;
  readU16(addr: number): number;
  readU32(addr: number): number;
  readU64(addr: number): U64;
  writeU8(addr: number, value: number): void;
  writeU16(addr: number, value: number): void;
  writeU32(addr: number, value: number): void;
  writeU64(addr: number, value: U64): void;
  /** Copies dst.length bytes from guest memory at addr into dst. */
  readInto(addr: number, dst: Uint8Array): void;
  /** Copies src into guest memory at addr. */
  writeFrom(addr: number, src: Uint8Array): void;
  /** A zero-copy view of [addr, addr+len). Writes through it reach guest memory. */
  subarray(addr: number, len: number): Uint8Array;
  /** Sets [addr, addr+len) to value. */
  fill(addr: number, len: number, value: number): void;
}

function rangeOk(addr: number, len: number, size: number): boolean {
  return (
    Number.isInteger(addr) &&
    Number.isInteger(len) &&
    addr >= 0 &&
    len >= 0 &&
    addr <= size &&
    len <= size - addr
  );
}

/** Guest memory backed by one ArrayBuffer (or SharedArrayBuffer), views made once. */
export class FlatMemory implements GuestMemory {
  readonly size: number;
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly u8: Uint8Array;
  readonly view: DataView;

  constructor(sizeOrBuffer: number | ArrayBuffer | SharedArrayBuffer, options: { shared?: boolean } = {}) {
    if (typeof sizeOrBuffer === "number") {
      if (!Number.isSafeInteger(sizeOrBuffer) || sizeOrBuffer < 0 || sizeOrBuffer > 0x1_0000_0000) {
        throw new RangeError(`guest memory size must be an integer from 0 to 4 GiB, got ${sizeOrBuffer}`);
      }
      this.buffer = options.shared ? new SharedArrayBuffer(sizeOrBuffer) : new ArrayBuffer(sizeOrBuffer);
    } else {
      this.buffer = sizeOrBuffer;
    }
    this.size = this.buffer.byteLength;
    this.u8 = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
  }

  inRange(addr: number, len: number): boolean {
    return rangeOk(addr, len, this.size);
  }

  checkRange(addr: number, len: number): void {
    if (!rangeOk(addr, len, this.size)) throw new GuestMemoryError(addr, len, this.size);
  }

  readU8(addr: number): number {
    if (!(addr >= 0 && addr < this.size)) throw new GuestMemoryError(addr, 1, this.size);
    return this.u8[addr]!;
  }

  readU16(addr: number): number {
    if (!(addr >= 0 && addr + 2 <= this.size)) throw new GuestMemoryError(addr, 2, this.size);
    return this.view.getUint16(addr, true);
  }

  readU32(addr: number): number {
    if (!(addr >= 0 && addr + 4 <= this.size)) throw new GuestMemoryError(addr, 4, this.size);
    return this.view.getUint32(addr, true);
  }

  readU64(addr: number): U64 {
    if (!(addr >= 0 && addr + 8 <= this.size)) throw new GuestMemoryError(addr, 8, this.size);
    return { lo: this.view.getUint32(addr, true), hi: this.view.getUint32(addr + 4, true) };
  }

  writeU8(addr: number, value: number): void {
    if (!(addr >= 0 && addr < this.size)) throw new GuestMemoryError(addr, 1, this.size);
    this.u8[addr] = value;
  }

  writeU16(addr: number, value: number): void {
    if (!(addr >= 0 && addr + 2 <= this.size)) throw new GuestMemoryError(addr, 2, this.size);
    this.view.setUint16(addr, value, true);
  }

  writeU32(addr: number, value: number): void {
    if (!(addr >= 0 && addr + 4 <= this.size)) throw new GuestMemoryError(addr, 4, this.size);
    this.view.setUint32(addr, value >>> 0, true);
  }

  writeU64(addr: number, value: U64): void {
    if (!(addr >= 0 && addr + 8 <= this.size)) throw new GuestMemoryError(addr, 8, this.size);
    this.view.setUint32(addr, value.lo >>> 0, true);
    this.view.setUint32(addr + 4, value.hi >>> 0, true);
  }

  readInto(addr: number, dst: Uint8Array): void {
    this.checkRange(addr, dst.length);
    dst.set(this.u8.subarray(addr, addr + dst.length));
  }

  writeFrom(addr: number, src: Uint8Array): void {
    this.checkRange(addr, src.length);
    this.u8.set(src, addr);
  }

  subarray(addr: number, len: number): Uint8Array {
    this.checkRange(addr, len);
    return this.u8.subarray(addr, addr + len);
  }

  fill(addr: number, len: number, value: number): void {
    this.checkRange(addr, len);
    this.u8.fill(value, addr, addr + len);
  }
}

/** One access seen by `RecordingMemory`. */
export interface MemoryAccess {
  kind: "read" | "write" | "view";
  addr: number;
  len: number;
}

/**
 * A GuestMemory wrapper that records every access it is asked for (in range or not) before
 * passing it on. Tests use it to prove that code under test never reaches outside the guest.
 */
export class RecordingMemory implements GuestMemory {
  readonly accesses: MemoryAccess[] = [];
  constructor(readonly inner: GuestMemory) {}
  get size(): number {
    return this.inner.size;
  }
  /** Accesses that did not lie wholly inside the memory. */
  outOfRange(): MemoryAccess[] {
    return this.accesses.filter((a) => !this.inner.inRange(a.addr, a.len));
  }
  private rec(kind: MemoryAccess["kind"], addr: number, len: number): void {
    this.accesses.push({ kind, addr, len });
  }
  inRange(addr: number, len: number): boolean {
    return this.inner.inRange(addr, len);
  }
  checkRange(addr: number, len: number): void {
    this.inner.checkRange(addr, len);
  }
  readU8(addr: number): number {
    this.rec("read", addr, 1);
    return this.inner.readU8(addr);
  }
  readU16(addr: number): number {
    this.rec("read", addr, 2);
    return this.inner.readU16(addr);
  }
  readU32(addr: number): number {
    this.rec("read", addr, 4);
    return this.inner.readU32(addr);
  }
  readU64(addr: number): U64 {
    this.rec("read", addr, 8);
    return this.inner.readU64(addr);
  }
  writeU8(addr: number, value: number): void {
    this.rec("write", addr, 1);
    this.inner.writeU8(addr, value);
  }
  writeU16(addr: number, value: number): void {
    this.rec("write", addr, 2);
    this.inner.writeU16(addr, value);
  }
  writeU32(addr: number, value: number): void {
    this.rec("write", addr, 4);
    this.inner.writeU32(addr, value);
  }
  writeU64(addr: number, value: U64): void {
    this.rec("write", addr, 8);
    this.inner.writeU64(addr, value);
  }
  readInto(addr: number, dst: Uint8Array): void {
    this.rec("read", addr, dst.length);
    this.inner.readInto(addr, dst);
  }
  writeFrom(addr: number, src: Uint8Array): void {
    this.rec("write", addr, src.length);
    this.inner.writeFrom(addr, src);
  }
  subarray(addr: number, len: number): Uint8Array {
    this.rec("view", addr, len);
    return this.inner.subarray(addr, len);
  }
  fill(addr: number, len: number, value: number): void {
    this.rec("write", addr, len);
    this.inner.fill(addr, len, value);
  }
}
