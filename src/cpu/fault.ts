import { VirtkitError } from "../common/errors.js";

/** Exception vectors (Intel SDM vol. 3, 6.3.1). */
export const Vector = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
} as const;

/** How an interrupt or exception arrived; protected-mode delivery needs it (DPL checks, error codes). */
export const InterruptKind = {
  /** INTR from the interrupt controller. */
  EXTERNAL: 0,
  /** INT n (CD): IP points past the instruction, gate DPL is checked in protected mode. */
  SOFTWARE: 1,
  /** A fault or trap raised by the processor. */
  EXCEPTION: 2,
  /** INT3 (CC) and INTO (CE): software, but #BP/#OF semantics. */
  SOFTWARE_EXCEPTION: 3,
} as const;
export type InterruptKind = (typeof InterruptKind)[keyof typeof InterruptKind];

/** Why `Cpu.run` returned. */
export const ExitReason = {
  /** The instruction budget is spent. */
  BUDGET: 0,
  /** HLT executed and no interrupt can wake the CPU right now. */
  HLT: 1,
  /** Triple fault (or a fault while delivering a double fault): the machine should reset. */
  SHUTDOWN: 2,
} as const;
export type ExitReason = (typeof ExitReason)[keyof typeof ExitReason];

/** No error code is pushed. */
export const NO_ERROR_CODE = -1;

/**
 * A processor exception. One instance per CPU is preallocated and thrown (no allocation on the
 * fault path); the run loop catches it once, rewinds EIP to the faulting instruction and
 * delivers the vector through `Cpu.deliverInterrupt`.
 */
export class CpuFault extends VirtkitError {
  vector = 0;
  /** The error code, or NO_ERROR_CODE. */
  errorCode: number = NO_ERROR_CODE;
  constructor() {
    super("CPU_FAULT", "x86 processor exception");
  }
  set(vector: number, errorCode: number): this {
    this.vector = vector;
    this.errorCode = errorCode;
    return this;
  }
}

/** A guest state the core cannot handle yet (e.g. protected mode without its module). Host-side. */
export class CpuStateError extends VirtkitError {
  constructor(message: string) {
    super("CPU_STATE", message);
  }
}
