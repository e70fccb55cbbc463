/**
 * Small PC ports: the POST code sink at 0x80 and system control port A at 0x92 (fast A20 gate
 * and fast reset).
 */
import type { Persist, Resettable } from "../../common/persist.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";
import { checkBool, checkInt, checkObject } from "./util.js";

export const POST_PORT = 0x80;
export const PORT_A = 0x92;

export interface PostPortOptions {
  /** Called with each POST code written. */
  onCode?: (code: number) => void;
}

export interface PostPortState {
  last: number;
  writes: number;
}

/**
 * Port 0x80: firmware writes POST codes here and Linux uses it as an I/O delay. Writes are
 * counted and the last value is kept; a read returns the last value written.
 */
export class PostPort implements IoHandler, Persist<PostPortState>, Resettable {
  private s: PostPortState = { last: 0, writes: 0 };
  private readonly onCode: ((code: number) => void) | undefined;

  constructor(options: PostPortOptions = {}) {
    this.onCode = options.onCode;
  }

  register(io: IoBus): void {
    io.register(POST_PORT, 1, this, "post");
  }

  get lastCode(): number {
    return this.s.last;
  }

  get writes(): number {
    return this.s.writes;
  }

  ioRead(_port: number, size: AccessSize): number {
    // Only the first byte belongs to this port; the rest of a wider read floats high.
    return size === 1 ? this.s.last : (this.s.last | (size === 2 ? 0xff00 : 0xffffff00)) >>> 0;
  }

  ioWrite(_port: number, _size: AccessSize, value: number): void {
    this.s.last = value & 0xff;
    this.s.writes++;
    this.onCode?.(this.s.last);
  }

  reset(): void {
    this.s = { last: 0, writes: this.s.writes };
  }

  save(): PostPortState {
    return { ...this.s };
  }

  restore(state: PostPortState): void {
    const o = checkObject(state, "post");
    this.s = {
      last: checkInt(o.last, "post.last", 0, 0xff),
      writes: checkInt(o.writes, "post.writes", 0, Number.MAX_SAFE_INTEGER),
    };
  }
}

export interface PortAOptions {
  /** Bit 0 written as 1: the fast reset pulse. */
  onReset?: () => void;
  /** The A20 gate changed (bit 1). */
  onA20?: (enabled: boolean) => void;
}

export interface PortAState {
  a20: boolean;
}

/**
 * System control port A (0x92). Bit 1 gates A20, bit 0 written as 1 pulses the CPU reset
 * (it reads back as 0, the pulse being over).
 */
export class PortA implements IoHandler, Persist<PortAState>, Resettable {
  private s: PortAState = { a20: true };
  private readonly onReset: (() => void) | undefined;
  private readonly onA20: ((enabled: boolean) => void) | undefined;

  constructor(options: PortAOptions = {}) {
    this.onReset = options.onReset;
    this.onA20 = options.onA20;
  }

  register(io: IoBus): void {
    io.register(PORT_A, 1, this, "port-a");
  }

  get a20(): boolean {
    return this.s.a20;
  }

  ioRead(_port: number, size: AccessSize): number {
    const v = this.s.a20 ? 0x02 : 0x00;
    return size === 1 ? v : (v | (size === 2 ? 0xff00 : 0xffffff00)) >>> 0;
  }

  ioWrite(_port: number, _size: AccessSize, value: number): void {
    const a20 = (value & 0x02) !== 0;
    if (a20 !== this.s.a20) {
      this.s.a20 = a20;
      this.onA20?.(a20);
    }
    if (value & 0x01) this.onReset?.();
  }

  reset(): void {
    this.s = { a20: true };
  }

  save(): PortAState {
    return { ...this.s };
  }

  restore(state: PortAState): void {
    const o = checkObject(state, "portA");
    this.s = { a20: checkBool(o.a20, "portA.a20") };
  }
}
