/**
 * Typed errors. Every error virtkit raises for bad input is a `VirtkitError` with a stable
 * `code`, so callers (and tests) can tell a guest error from a host bug.
 */
export class VirtkitError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An access outside guest memory. Names the address and the length. */
export class GuestMemoryError extends VirtkitError {
  readonly addr: number;
  readonly len: number;
  readonly memorySize: number;
  constructor(addr: number, len: number, memorySize: number) {
    super(
      "GUEST_MEMORY_OUT_OF_RANGE",
      `guest memory access out of range: address 0x${hex(addr)} length ${len} (memory size 0x${hex(memorySize)})`,
    );
    this.addr = addr;
    this.len = len;
    this.memorySize = memorySize;
  }
}

/** A configuration or argument error on the host side (bad option, bad file, bad size). */
export class ConfigError extends VirtkitError {
  constructor(message: string) {
    super("CONFIG", message);
  }
}

export function hex(n: number, width = 0): string {
  const s = (n >>> 0).toString(16);
  return width > 0 ? s.padStart(width, "0") : s;
}
