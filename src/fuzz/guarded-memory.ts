import type { GuestMemory, MemoryAccess } from "../common/memory.js";
import type { U64 } from "../common/u64.js";

/**
 * Guest memory for the fuzzer: every access is checked against the memory's bounds before it
 * is passed on, and any access that does not lie wholly inside guest memory is recorded (the
 * inner memory then refuses it with GuestMemoryError as usual). Unlike RecordingMemory it keeps
 * only the offending accesses, so millions of in-range accesses cost nothing to remember.
 */
export class GuardedMemory implements GuestMemory {
  /** Out-of-range accesses seen (the first `keep` of them). */
  readonly violations: MemoryAccess[] = [];
  /** Out-of-range accesses seen in all. */
  violationCount = 0;
  /** Accesses of any kind (for statistics). */
  accesses = 0;

  constructor(
    readonly inner: GuestMemory,
    private readonly keep = 16,
  ) {}

  get size(): number {
    return this.inner.size;
  }

  private check(kind: MemoryAccess["kind"], addr: number, len: number): void {
    this.accesses++;
    if (this.inner.inRange(addr, len)) return;
    this.violationCount++;
    if (this.violations.length < this.keep) this.violations.push({ kind, addr, len });
  }

  /** Forgets the recorded violations. */
  clear(): void {
    this.violations.length = 0;
    this.violationCount = 0;
  }

  inRange(addr: number, len: number): boolean {
    return this.inner.inRange(addr, len);
  }
  checkRange(addr: number, len: number): void {
    this.inner.checkRange(addr, len);
  }
  readU8(addr: number): number {
    this.check("read", addr, 1);
    return this.inner.readU8(addr);
  }
  readU16(addr: number): number {
    this.check("read", addr, 2);
    return this.inner.readU16(addr);
  }
  readU32(addr: number): number {
    this.check("read", addr, 4);
    return this.inner.readU32(addr);
  }
  readU64(addr: number): U64 {
    this.check("read", addr, 8);
    return this.inner.readU64(addr);
  }
  writeU8(addr: number, value: number): void {
    this.check("write", addr, 1);
    this.inner.writeU8(addr, value);
  }
  writeU16(addr: number, value: number): void {
    this.check("write", addr, 2);
    this.inner.writeU16(addr, value);
  }
  writeU32(addr: number, value: number): void {
    this.check("write", addr, 4);
    this.inner.writeU32(addr, value);
  }
  writeU64(addr: number, value: U64): void {
    this.check("write", addr, 8);
    this.inner.writeU64(addr, value);
  }
  readInto(addr: number, dst: Uint8Array): void {
    this.check("read", addr, dst.length);
    this.inner.readInto(addr, dst);
  }
  writeFrom(addr: number, src: Uint8Array): void {
    this.check("write", addr, src.length);
    this.inner.writeFrom(addr, src);
  }
  subarray(addr: number, len: number): Uint8Array {
    this.check("view", addr, len);
    return this.inner.subarray(addr, len);
  }
  fill(addr: number, len: number, value: number): void {
    this.check("write", addr, len);
    this.inner.fill(addr, len, value);
  }
}
