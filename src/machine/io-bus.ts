import { ConfigError, hex } from "../common/errors.js";

export type AccessSize = 1 | 2 | 4;

/** A device's port range. `port` is the absolute port number. */
export interface IoHandler {
  ioRead(port: number, size: AccessSize): number;
  ioWrite(port: number, size: AccessSize, value: number): void;
}

interface IoRange {
  base: number;
  length: number;
  handler: IoHandler;
  name: string;
}

const ONES = [0, 0xff, 0xffff, 0, 0xffff_ffff] as const;

/**
 * The x86 I/O port space: a flat table of 64K ports, each naming the range that claims it.
 * An unclaimed port reads all ones and ignores writes; both are counted. Overlapping claims are
 * refused. An access is handed to the range that holds its first port.
 */
export class IoBus {
  private readonly table = new Uint16Array(0x10000); // 0 = unclaimed, else index+1 into ranges
  private readonly ranges: (IoRange | undefined)[] = [];
  unclaimedReads = 0;
  unclaimedWrites = 0;

  register(base: number, length: number, handler: IoHandler, name: string): void {
    if (
      !Number.isInteger(base) ||
      !Number.isInteger(length) ||
      base < 0 ||
      length <= 0 ||
      base + length > 0x10000
    ) {
      throw new ConfigError(`I/O range for ${name} is invalid: base 0x${hex(base)} length ${length}`);
    }
    for (let p = base; p < base + length; p++) {
      const owner = this.table[p]!;
      if (owner !== 0) {
        throw new ConfigError(
          `I/O range for ${name} (0x${hex(base)}+${length}) overlaps ${this.ranges[owner - 1]!.name} at port 0x${hex(p)}`,
        );
      }
    }
    let slot = this.ranges.indexOf(undefined);
    if (slot < 0) slot = this.ranges.push(undefined) - 1;
    if (slot >= 0xffff) throw new ConfigError("too many I/O ranges");
    this.ranges[slot] = { base, length, handler, name };
    this.table.fill(slot + 1, base, base + length);
  }

  /** Removes the range that starts at `base`. Returns false when none does. */
  unregister(base: number): boolean {
    const owner = this.table[base] ?? 0;
    if (owner === 0) return false;
    const r = this.ranges[owner - 1]!;
    if (r.base !== base) return false;
    this.table.fill(0, r.base, r.base + r.length);
    this.ranges[owner - 1] = undefined;
    return true;
  }

  /** Name of the range holding `port`, or undefined. */
  owner(port: number): string | undefined {
    const o = this.table[port & 0xffff]!;
    return o === 0 ? undefined : this.ranges[o - 1]!.name;
  }

  read(port: number, size: AccessSize): number {
    port &= 0xffff;
    const o = this.table[port]!;
    if (o === 0) {
      this.unclaimedReads++;
      return ONES[size];
    }
    return this.ranges[o - 1]!.handler.ioRead(port, size);
  }

  write(port: number, size: AccessSize, value: number): void {
    port &= 0xffff;
    const o = this.table[port]!;
    if (o === 0) {
      this.unclaimedWrites++;
      return;
    }
    this.ranges[o - 1]!.handler.ioWrite(port, size, value);
  }
}
