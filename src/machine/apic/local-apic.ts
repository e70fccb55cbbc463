/**
 * The local APIC of a uniprocessor PC, in xAPIC mode (Intel SDM vol. 3A, chapter 11 "Advanced
 * Programmable Interrupt Controller"): the 4 KiB register page at IA32_APIC_BASE (default
 * 0xFEE00000), the IRR/ISR/TMR vectors with the TPR/PPR priority rules, EOI (with the EOI
 * broadcast to the I/O APIC for level-triggered vectors), the ICR for IPIs to this CPU, the six
 * local vector table entries (timer, thermal, performance counter, LINT0, LINT1, error), the
 * error status register and the timer (one-shot and periodic; no TSC-deadline mode).
 *
 * LINT0 is wired to the 8259 pair's INTR: in ExtINT mode (virtual wire) the PIC's requests reach
 * the CPU through this APIC and are acknowledged by the PIC. LINT1 is the NMI input. With the
 * APIC globally disabled (IA32_APIC_BASE bit 11 clear) the register page stops decoding and the
 * PIC drives the CPU's INTR directly, as on a PC.
 *
 * The APIC timer counts at 1 GHz divided by the divide configuration register (QEMU's choice: one
 * count per nanosecond at divide-by-1), driven by the machine's TimerQueue.
 *
 * The initial state is what a PC BIOS leaves (SeaBIOS smp.c): software-enabled with spurious
 * vector 0xFF, LINT0 ExtINT and LINT1 NMI (both level, unmasked), so the PIC works before the OS
 * touches the APIC.
 */
import { ConfigError } from "../../common/errors.js";
import type { Persist, Resettable } from "../../common/persist.js";
import type { MsiTarget } from "../../pci/msi.js";
import { isMsiAddress } from "../../pci/msi.js";
import { checkBool, checkInt, checkObject } from "../chipset/util.js";
import type { AccessSize } from "../io-bus.js";
import type { InterruptController } from "../irq.js";
import type { MmioHandler } from "../memory-bus.js";
import type { TimerHandle } from "../timers.js";
import {
  APIC_BASE_BSP,
  APIC_BASE_ENABLE,
  APIC_BASE_EXTD,
  ApicReg,
  bit,
  clearBit,
  DeliveryMode,
  Esr,
  highest,
  LAPIC_VERSION,
  type LocalApicOptions,
  type LocalApicState,
  LVT_ERROR,
  LVT_LEVEL,
  LVT_LINT0,
  LVT_LINT1,
  LVT_MASKED,
  LVT_TIMER,
  LVT_TIMER_MODE_MASK,
  LVT_TIMER_PERIODIC,
  LVT_WRITABLE,
  powerOn,
  SVR_ENABLE,
  setBit,
} from "./local-apic-regs.js";

export * from "./local-apic-regs.js";

/** Counters for tests and diagnostics. */
export interface LocalApicStats {
  delivered: number;
  timerFired: number;
  spurious: number;
  eoi: number;
  ignoredIpis: number;
}

export class LocalApic
  implements MmioHandler, InterruptController, MsiTarget, Persist<LocalApicState>, Resettable
{
  private s: LocalApicState = powerOn();
  private timer: TimerHandle | null = null;
  private readonly logged = new Set<string>();
  readonly stats: LocalApicStats = { delivered: 0, timerFired: 0, spurious: 0, eoi: 0, ignoredIpis: 0 };

  constructor(private readonly o: LocalApicOptions) {}

  // ---- IA32_APIC_BASE ------------------------------------------------------------------------

  /** IA32_APIC_BASE (MSR 0x1B), low half. */
  get apicBase(): number {
    return this.s.apicBase >>> 0;
  }

  /** The register page's physical address, or -1 while the APIC is globally disabled. */
  get mmioBase(): number {
    return (this.s.apicBase & APIC_BASE_ENABLE) !== 0 ? (this.s.apicBase & 0xffff_f000) >>> 0 : -1;
  }

  /** True while the APIC is globally enabled (MSR bit 11). */
  get hardwareEnabled(): boolean {
    return (this.s.apicBase & APIC_BASE_ENABLE) !== 0;
  }

  /** True while the APIC is enabled both globally and in the SVR. */
  get enabled(): boolean {
    return this.hardwareEnabled && (this.s.svr & SVR_ENABLE) !== 0;
  }

  /**
   * WRMSR IA32_APIC_BASE. Returns false (the CPU raises #GP) for reserved bits: the high half,
   * bits 7:0 and 9, and x2APIC mode (bit 10), which this APIC does not have. The BSP bit is read-only.
   */
  writeApicBase(lo: number, hi: number): boolean {
    if (hi !== 0 || (lo & 0x2ff) !== 0 || (lo & APIC_BASE_EXTD) !== 0) return false;
    const before = this.mmioBase;
    const wasEnabled = this.hardwareEnabled;
    this.s.apicBase = ((lo & (0xffff_f000 | APIC_BASE_ENABLE)) | APIC_BASE_BSP) >>> 0;
    if (wasEnabled && !this.hardwareEnabled) {
      // SDM 11.4.3: a globally disabled APIC is as after power-up, apart from the base MSR.
      const base = this.s.apicBase;
      this.stopTimer();
      this.s = powerOn();
      this.s.apicBase = base;
      this.s.svr = 0xff;
      for (let i = 0; i < 6; i++) this.s.lvt[i] = LVT_MASKED;
    }
    if (this.mmioBase !== before) this.o.onBaseChange?.(this.mmioBase);
    this.o.onInterrupt();
    return true;
  }

  // ---- what the CPU sees ---------------------------------------------------------------------

  /** True when the PIC's INTR reaches the CPU: APIC globally off, LINT0 in ExtINT unmasked, or an ExtINT message. */
  private picRoutedToCpu(): boolean {
    const s = this.s;
    if (!this.hardwareEnabled) return true;
    if (s.extIntPending) return true;
    const lint0 = s.lvt[LVT_LINT0]!;
    return (
      (s.svr & SVR_ENABLE) !== 0 && (lint0 & LVT_MASKED) === 0 && ((lint0 >> 8) & 7) === DeliveryMode.EXTINT
    );
  }

  /** The processor priority (SDM 11.8.3.1). */
  private ppr(): number {
    const s = this.s;
    const isrv = Math.max(0, highest(s.isr));
    return (s.tpr & 0xf0) >= (isrv & 0xf0) ? s.tpr & 0xff : isrv & 0xf0;
  }

  /** The vector the APIC would deliver now, or -1. */
  private deliverable(): number {
    if (!this.enabled) return -1;
    const v = highest(this.s.irr);
    if (v < 0) return -1;
    return (v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  hasInterrupt(): boolean {
    if (this.deliverable() >= 0) return true;
    return this.picRoutedToCpu() && this.o.pic.hasInterrupt();
  }

  /** The INTA cycle: the highest deliverable vector moves from IRR to ISR; else the PIC's vector. */
  acknowledge(): number {
    const v = this.deliverable();
    if (v >= 0) {
      clearBit(this.s.irr, v);
      setBit(this.s.isr, v);
      this.stats.delivered++;
      return v;
    }
    if (this.picRoutedToCpu() && this.o.pic.hasInterrupt()) {
      this.s.extIntPending = false;
      return this.o.pic.acknowledge();
    }
    // The request went away between the CPU's look and the acknowledge: the spurious vector.
    this.stats.spurious++;
    return this.s.svr & 0xff;
  }

  // ---- accepting interrupts ------------------------------------------------------------------

  /** True when a message for `dest` (physical or logical) is for this APIC. */
  matchesDestination(dest: number, logical: boolean): boolean {
    dest &= 0xff;
    if (!logical) return dest === 0xff || dest === (this.s.id & 0xff);
    if (dest === 0xff) return true;
    const ldr = (this.s.ldr >>> 24) & 0xff;
    if (((this.s.dfr >>> 28) & 0xf) === 0xf) return (ldr & dest) !== 0; // flat model
    // cluster model: high nibble is the cluster, low nibble a bit mask within it
    return (ldr & 0xf0) === (dest & 0xf0) && (ldr & dest & 0x0f) !== 0;
  }

  /**
   * An interrupt message for this APIC (from the I/O APIC, an MSI or an IPI to self):
   * fixed/lowest-priority set the vector's IRR bit (and its TMR bit when level-triggered),
   * NMI goes to the CPU's NMI input, ExtINT asks the PIC for the vector; SMI, INIT and STARTUP
   * are ignored (a uniprocessor with no SMM). Returns false when the message was dropped.
   */
  deliver(vector: number, mode: number, level: boolean): boolean {
    switch (mode) {
      case DeliveryMode.FIXED:
      case DeliveryMode.LOWEST:
        return this.accept(vector & 0xff, level);
      case DeliveryMode.NMI:
        this.o.nmi();
        return true;
      case DeliveryMode.EXTINT:
        this.s.extIntPending = true;
        this.o.onInterrupt();
        return true;
      default:
        this.stats.ignoredIpis++;
        this.logOnce(`mode${mode}`, `lapic: delivery mode ${mode} ignored (uniprocessor, no SMM)`);
        return false;
    }
  }

  /** Sets IRR for `vector` (TMR for level); vectors 0-15 are illegal (ESR bit 6). */
  private accept(vector: number, level: boolean): boolean {
    if (!this.hardwareEnabled) return false;
    if (vector < 16) {
      this.error(Esr.RECEIVE_ILLEGAL_VECTOR);
      return false;
    }
    // SDM 11.4.7.2: a software-disabled APIC still accepts into IRR but delivers nothing
    setBit(this.s.irr, vector);
    if (level) setBit(this.s.tmr, vector);
    else clearBit(this.s.tmr, vector);
    this.o.onInterrupt();
    return true;
  }

  /** MsiTarget: a message written to 0xFEExxxxx (SDM 11.11: address and data layout). */
  sendMsi(addressLo: number, addressHi: number, data: number): void {
    if (!isMsiAddress(addressLo, addressHi)) {
      this.logOnce(
        "msi-addr",
        `lapic: MSI to 0x${addressHi.toString(16)}:${(addressLo >>> 0).toString(16)} outside 0xFEExxxxx dropped`,
      );
      return;
    }
    const dest = (addressLo >>> 12) & 0xff;
    const logical = (addressLo & (1 << 2)) !== 0;
    if (!this.matchesDestination(dest, logical)) return;
    const mode = (data >>> 8) & 7;
    const levelTriggered = (data & (1 << 15)) !== 0;
    this.deliver(data & 0xff, mode, levelTriggered);
  }

  /** The 8259's INTR changed (LINT0): with LINT0 in ExtINT mode the CPU looks again. */
  picIntrChanged(): void {
    this.o.onInterrupt();
  }

  /** The LINT1 pin: an NMI when LINT1 is unmasked in NMI mode (or a vector in fixed mode). */
  lint1(): void {
    this.localInterrupt(LVT_LINT1);
  }

  private localInterrupt(index: number): void {
    const lvt = this.s.lvt[index]!;
    if ((lvt & LVT_MASKED) !== 0 || !this.enabled) return;
    const mode = index === LVT_TIMER || index === LVT_ERROR ? DeliveryMode.FIXED : (lvt >> 8) & 7;
    this.deliver(lvt & 0xff, mode, index !== LVT_TIMER && index !== LVT_ERROR && (lvt & LVT_LEVEL) !== 0);
  }

  private error(bits: number): void {
    this.s.esrPending |= bits;
    const lvt = this.s.lvt[LVT_ERROR]!;
    if ((lvt & LVT_MASKED) === 0 && this.enabled && (lvt & 0xff) >= 16) this.accept(lvt & 0xff, false);
  }

  // ---- EOI and IPIs --------------------------------------------------------------------------

  private eoi(): void {
    const v = highest(this.s.isr);
    if (v < 0) return;
    clearBit(this.s.isr, v);
    this.stats.eoi++;
    if (bit(this.s.tmr, v)) {
      clearBit(this.s.tmr, v);
      this.o.onEoi?.(v);
    }
    this.o.onInterrupt();
  }

  /** An ICR low write sends the IPI: only this CPU exists, so only "self" destinations land. */
  private sendIpi(lo: number): void {
    const vector = lo & 0xff;
    const mode = (lo >>> 8) & 7;
    const logical = (lo & (1 << 11)) !== 0;
    const shorthand = (lo >>> 18) & 3;
    let self: boolean;
    if (shorthand === 1 || shorthand === 2) self = true;
    else if (shorthand === 3) self = false;
    else self = this.matchesDestination(this.s.icrHi >>> 24, logical);
    if (mode === DeliveryMode.INIT || mode === DeliveryMode.STARTUP) {
      // INIT level de-assert, or INIT/SIPI to application processors that do not exist
      this.stats.ignoredIpis++;
      return;
    }
    if (!self) return;
    if ((mode === DeliveryMode.FIXED || mode === DeliveryMode.LOWEST) && vector < 16) {
      this.error(Esr.SEND_ILLEGAL_VECTOR);
      return;
    }
    this.deliver(vector, mode, false); // IPIs are edge-triggered (level only for INIT de-assert)
  }

  // ---- timer ---------------------------------------------------------------------------------

  /** Nanoseconds per count: the 1 GHz bus clock through the divide configuration (SDM figure 11-10). */
  private nsPerCount(): number {
    const d = this.s.timerDivide;
    const v = (d & 3) | ((d & 8) >> 1);
    return v === 7 ? 1 : 2 << v;
  }

  private stopTimer(): void {
    this.o.timers.cancel(this.timer);
    this.timer = null;
  }

  /** The current count (SDM 11.5.4). */
  private currentCount(): number {
    const s = this.s;
    if (s.timerBase === 0) return 0;
    const elapsed = Math.floor((this.o.timers.now() - s.timerStart) / this.nsPerCount());
    return Math.max(0, s.timerBase - elapsed);
  }

  /** Starts counting down from `count` now (or from `start`) and schedules the expiry. */
  private armTimer(count: number, start: number): void {
    this.stopTimer();
    const s = this.s;
    s.timerBase = count >>> 0;
    s.timerStart = start;
    if (s.timerBase === 0) return;
    const at = start + s.timerBase * this.nsPerCount();
    this.timer = this.o.timers.schedule(at, () => this.timerExpired(at));
  }

  private timerExpired(at: number): void {
    this.timer = null;
    this.stats.timerFired++;
    const s = this.s;
    if ((s.lvt[LVT_TIMER]! & LVT_TIMER_MODE_MASK) === LVT_TIMER_PERIODIC && s.timerInitial !== 0) {
      this.armTimer(s.timerInitial, at);
    } else {
      s.timerBase = 0;
    }
    this.localInterrupt(LVT_TIMER);
  }

  // ---- the register page ---------------------------------------------------------------------

  mmioRead(offset: number, size: AccessSize): number {
    if (size !== 4 || (offset & 0xf) !== 0) {
      this.logOnce(
        `r${size}`,
        `lapic: ${size}-byte read at +0x${offset.toString(16)} (only aligned 32-bit accesses): 0`,
      );
      return 0;
    }
    return this.readRegister(offset) >>> 0;
  }

  mmioWrite(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || (offset & 0xf) !== 0) {
      this.logOnce(
        `w${size}`,
        `lapic: ${size}-byte write at +0x${offset.toString(16)} ignored (only aligned 32-bit accesses)`,
      );
      return;
    }
    this.writeRegister(offset, value >>> 0);
  }

  readRegister(offset: number): number {
    const s = this.s;
    if (offset >= ApicReg.ISR && offset < ApicReg.ESR) {
      const i = (offset >> 4) & 7;
      if (offset < ApicReg.TMR) return s.isr[i]!;
      if (offset < ApicReg.IRR) return s.tmr[i]!;
      return s.irr[i]!;
    }
    if (offset >= ApicReg.LVT_TIMER && offset <= ApicReg.LVT_ERROR)
      return s.lvt[(offset - ApicReg.LVT_TIMER) >> 4]!;
    switch (offset) {
      case ApicReg.ID:
        return (s.id & 0xff) << 24;
      case ApicReg.VERSION:
        return LAPIC_VERSION;
      case ApicReg.TPR:
        return s.tpr;
      case ApicReg.APR:
        return 0; // arbitration priority: meaningful only with several APICs on a bus
      case ApicReg.PPR:
        return this.ppr();
      case ApicReg.EOI:
        return 0;
      case ApicReg.LDR:
        return s.ldr;
      case ApicReg.DFR:
        return s.dfr;
      case ApicReg.SVR:
        return s.svr;
      case ApicReg.ESR:
        return s.esr;
      case ApicReg.ICR_LO:
        return s.icrLo & ~(1 << 12); // delivery status: always idle
      case ApicReg.ICR_HI:
        return s.icrHi;
      case ApicReg.TIMER_INITIAL:
        return s.timerInitial;
      case ApicReg.TIMER_CURRENT:
        return this.currentCount();
      case ApicReg.TIMER_DIVIDE:
        return s.timerDivide;
      default:
        this.illegalRegister(offset, "read");
        return 0;
    }
  }

  writeRegister(offset: number, value: number): void {
    const s = this.s;
    if (offset >= ApicReg.LVT_TIMER && offset <= ApicReg.LVT_ERROR) {
      const i = (offset - ApicReg.LVT_TIMER) >> 4;
      let v = value & LVT_WRITABLE[i]!;
      if ((s.svr & SVR_ENABLE) === 0) v |= LVT_MASKED; // SDM 11.4.7.2: masks stay set while disabled
      const old = s.lvt[i]!;
      s.lvt[i] = v >>> 0;
      if (i === LVT_TIMER && (old & LVT_TIMER_MODE_MASK) !== (v & LVT_TIMER_MODE_MASK)) {
        if ((v & LVT_TIMER_MODE_MASK) === 2 << 17)
          this.logOnce("tscdl", "lapic: TSC-deadline mode is not offered; timer treated as one-shot");
      }
      if (i === LVT_LINT0) this.o.onInterrupt();
      return;
    }
    switch (offset) {
      case ApicReg.ID:
        s.id = (value >>> 24) & 0xff;
        return;
      case ApicReg.TPR:
        s.tpr = value & 0xff;
        this.o.onInterrupt();
        return;
      case ApicReg.EOI:
        this.eoi();
        return;
      case ApicReg.LDR:
        s.ldr = (value & 0xff00_0000) >>> 0;
        return;
      case ApicReg.DFR:
        s.dfr = (value | 0x0fff_ffff) >>> 0;
        return;
      case ApicReg.SVR: {
        s.svr = value & 0x3ff; // vector, software enable, focus processor checking (stored)
        if ((s.svr & SVR_ENABLE) === 0) for (let i = 0; i < 6; i++) s.lvt[i] = (s.lvt[i]! | LVT_MASKED) >>> 0;
        this.o.onInterrupt();
        return;
      }
      case ApicReg.ESR:
        // Write-before-read: a write latches the errors collected since the last write.
        s.esr = s.esrPending;
        s.esrPending = 0;
        return;
      case ApicReg.ICR_LO:
        s.icrLo = value & 0x000c_cfff;
        this.sendIpi(value);
        return;
      case ApicReg.ICR_HI:
        s.icrHi = (value & 0xff00_0000) >>> 0;
        return;
      case ApicReg.TIMER_INITIAL:
        s.timerInitial = value >>> 0;
        this.armTimer(s.timerInitial, this.o.timers.now());
        return;
      case ApicReg.TIMER_DIVIDE: {
        const remaining = this.currentCount();
        s.timerDivide = value & 0xb;
        // keep counting from where the count is now, at the new rate
        if (s.timerBase !== 0) this.armTimer(remaining, this.o.timers.now());
        return;
      }
      case ApicReg.VERSION:
      case ApicReg.APR:
      case ApicReg.PPR:
      case ApicReg.RRD:
      case ApicReg.TIMER_CURRENT:
        return; // read-only
      default:
        if (offset >= ApicReg.ISR && offset < ApicReg.ESR) return; // ISR/TMR/IRR are read-only
        this.illegalRegister(offset, "write");
    }
  }

  private illegalRegister(offset: number, what: string): void {
    this.error(Esr.ILLEGAL_REGISTER);
    this.logOnce(`reg${offset}`, `lapic: ${what} of reserved register +0x${offset.toString(16)}`);
  }

  private logOnce(key: string, message: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.o.log?.(message);
  }

  /** IRR, ISR and TMR bits of `vector` (tests). */
  vectorState(vector: number): { irr: boolean; isr: boolean; tmr: boolean } {
    return { irr: bit(this.s.irr, vector), isr: bit(this.s.isr, vector), tmr: bit(this.s.tmr, vector) };
  }

  // ---- reset and snapshots -------------------------------------------------------------------

  reset(): void {
    const before = this.mmioBase;
    this.stopTimer();
    this.s = powerOn();
    if (this.mmioBase !== before) this.o.onBaseChange?.(this.mmioBase);
  }

  save(): LocalApicState {
    const s = this.s;
    return { ...s, isr: [...s.isr], tmr: [...s.tmr], irr: [...s.irr], lvt: [...s.lvt] };
  }

  restore(state: LocalApicState): void {
    const o = checkObject(state, "lapic");
    const words = (k: string, n: number): number[] => {
      const a = o[k];
      if (!Array.isArray(a) || a.length !== n)
        throw new ConfigError(`bad saved state: lapic.${k} is not ${n} words`);
      return a.map((w, i) => checkInt(w, `lapic.${k}[${i}]`, 0, 0xffff_ffff));
    };
    const u32 = (k: string): number => checkInt(o[k], `lapic.${k}`, 0, 0xffff_ffff);
    const before = this.mmioBase;
    this.stopTimer();
    this.s = {
      apicBase: u32("apicBase"),
      id: checkInt(o.id, "lapic.id", 0, 255),
      tpr: checkInt(o.tpr, "lapic.tpr", 0, 255),
      ldr: u32("ldr"),
      dfr: u32("dfr"),
      svr: checkInt(o.svr, "lapic.svr", 0, 0x3ff),
      isr: words("isr", 8),
      tmr: words("tmr", 8),
      irr: words("irr", 8),
      esrPending: u32("esrPending"),
      esr: u32("esr"),
      icrLo: u32("icrLo"),
      icrHi: u32("icrHi"),
      lvt: words("lvt", 6),
      timerInitial: u32("timerInitial"),
      timerDivide: checkInt(o.timerDivide, "lapic.timerDivide", 0, 0xb),
      timerBase: u32("timerBase"),
      timerStart: checkInt(o.timerStart, "lapic.timerStart", 0, Number.MAX_SAFE_INTEGER),
      extIntPending: checkBool(o.extIntPending, "lapic.extIntPending"),
    };
    if (this.s.timerBase !== 0) this.armTimer(this.s.timerBase, this.s.timerStart);
    if (this.mmioBase !== before) this.o.onBaseChange?.(this.mmioBase);
    this.o.onInterrupt();
  }
}
