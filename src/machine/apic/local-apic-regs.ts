/**
 * The local APIC's register layout, constants, state shape and power-on state (Intel SDM vol. 3A,
 * chapter 11), shared by `LocalApic` and its tests.
 */
import type { InterruptController } from "../irq.js";
import type { TimerQueue } from "../timers.js";

/** Register offsets in the xAPIC page (SDM table 11-1). */
export const ApicReg = {
  ID: 0x20,
  VERSION: 0x30,
  TPR: 0x80,
  APR: 0x90,
  PPR: 0xa0,
  EOI: 0xb0,
  RRD: 0xc0,
  LDR: 0xd0,
  DFR: 0xe0,
  SVR: 0xf0,
  ISR: 0x100,
  TMR: 0x180,
  IRR: 0x200,
  ESR: 0x280,
  ICR_LO: 0x300,
  ICR_HI: 0x310,
  LVT_TIMER: 0x320,
  LVT_THERMAL: 0x330,
  LVT_PERF: 0x340,
  LVT_LINT0: 0x350,
  LVT_LINT1: 0x360,
  LVT_ERROR: 0x370,
  TIMER_INITIAL: 0x380,
  TIMER_CURRENT: 0x390,
  TIMER_DIVIDE: 0x3e0,
} as const;

/** Interrupt delivery modes (ICR, LVT, MSI data, I/O APIC redirection entries). */
export const DeliveryMode = {
  FIXED: 0,
  LOWEST: 1,
  SMI: 2,
  NMI: 4,
  INIT: 5,
  STARTUP: 6,
  EXTINT: 7,
} as const;

/** The version register: version 0x14 (integrated APIC), max LVT entry 5 (six entries), as QEMU's. */
export const LAPIC_VERSION = 0x0005_0014;
export const LAPIC_DEFAULT_BASE = 0xfee0_0000;
/** IA32_APIC_BASE bits. */
export const APIC_BASE_BSP = 1 << 8;
export const APIC_BASE_EXTD = 1 << 10;
export const APIC_BASE_ENABLE = 1 << 11;

export const LVT_MASKED = 1 << 16;
export const LVT_LEVEL = 1 << 15;
export const LVT_TIMER_PERIODIC = 1 << 17;
export const LVT_TIMER_MODE_MASK = 3 << 17;
/** SVR bit 8: APIC software enable. */
export const SVR_ENABLE = 1 << 8;

/** ESR bits (SDM figure 11-9). */
export const Esr = {
  SEND_ILLEGAL_VECTOR: 1 << 5,
  RECEIVE_ILLEGAL_VECTOR: 1 << 6,
  ILLEGAL_REGISTER: 1 << 7,
} as const;

/** LVT indices in `lvt`. */
export const LVT_TIMER = 0;
export const LVT_LINT0 = 3;
export const LVT_LINT1 = 4;
export const LVT_ERROR = 5;
/** Writable bits of each LVT entry (timer, thermal, perf, LINT0, LINT1, error). */
export const LVT_WRITABLE = [
  0x0006_00ff | LVT_MASKED, // timer: vector, mode (bits 18:17), mask
  0x0001_07ff, // thermal: vector, delivery mode, mask
  0x0001_07ff, // performance counter
  0x0001_a7ff, // LINT0: vector, delivery mode, polarity, trigger, mask
  0x0001_a7ff, // LINT1
  0x0001_00ff, // error: vector, mask
] as const;

export interface LocalApicState {
  apicBase: number;
  id: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  isr: number[];
  tmr: number[];
  irr: number[];
  /** Errors collected since the last ESR write; `esr` is what reads return. */
  esrPending: number;
  esr: number;
  icrLo: number;
  icrHi: number;
  lvt: number[];
  timerInitial: number;
  timerDivide: number;
  /** The count at `timerStart` (ns), counting down from there; 0 when stopped. */
  timerBase: number;
  timerStart: number;
  /** An ExtINT request from the I/O APIC or an MSI, served by the PIC's acknowledge. */
  extIntPending: boolean;
}

export interface LocalApicOptions {
  timers: TimerQueue;
  /** The 8259 pair: its INTR is LINT0, and ExtINT vectors come from its acknowledge. */
  pic: InterruptController;
  /** The CPU's NMI input. */
  nmi: () => void;
  /** Called whenever a request may have become deliverable (the CPU should look). */
  onInterrupt: () => void;
  /** EOI of a level-triggered vector: the broadcast the I/O APIC listens to. */
  onEoi?: (vector: number) => void;
  /** The register page moved or stopped decoding (`base` -1: globally disabled). */
  onBaseChange?: (base: number) => void;
  /** Diagnostics (each kind of odd access is logged once). */
  log?: (message: string) => void;
}

export function bit(words: number[], v: number): boolean {
  return (words[v >>> 5]! & (1 << (v & 31))) !== 0;
}
export function setBit(words: number[], v: number): void {
  words[v >>> 5] = words[v >>> 5]! | (1 << (v & 31));
}
export function clearBit(words: number[], v: number): void {
  words[v >>> 5] = words[v >>> 5]! & ~(1 << (v & 31));
}
/** The highest set vector in a 256-bit register, or -1. */
export function highest(words: number[]): number {
  for (let i = 7; i >= 0; i--) {
    const w = words[i]!;
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

export function powerOn(): LocalApicState {
  return {
    apicBase: (LAPIC_DEFAULT_BASE | APIC_BASE_BSP | APIC_BASE_ENABLE) >>> 0,
    id: 0,
    tpr: 0,
    ldr: 0,
    dfr: 0xffff_ffff,
    svr: SVR_ENABLE | 0xff,
    isr: [0, 0, 0, 0, 0, 0, 0, 0],
    tmr: [0, 0, 0, 0, 0, 0, 0, 0],
    irr: [0, 0, 0, 0, 0, 0, 0, 0],
    esrPending: 0,
    esr: 0,
    icrLo: 0,
    icrHi: 0,
    // timer, thermal, perf masked; LINT0 ExtINT level and LINT1 NMI level, as SeaBIOS leaves them
    lvt: [LVT_MASKED, LVT_MASKED, LVT_MASKED, 0x8700, 0x8400, LVT_MASKED],
    timerInitial: 0,
    timerDivide: 0,
    timerBase: 0,
    timerStart: 0,
    extIntPending: false,
  };
}
