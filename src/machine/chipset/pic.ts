/**
 * The Intel 8259A programmable interrupt controller pair of a PC: the master at 0x20/0x21 and
 * the slave at 0xA0/0xA1 cascaded on the master's IR2, with the PIIX edge/level control
 * registers (ELCR) at 0x4D0/0x4D1.
 *
 * Implemented from the 8259A datasheet: the initialisation sequence ICW1-ICW4 (single/cascade,
 * LTIM, ICW4 needed, auto-EOI, special fully nested mode), OCW1 (mask), OCW2 (non-specific and
 * specific EOI, rotate on EOI, rotate in auto-EOI mode, set priority), OCW3 (IRR/ISR read, poll,
 * special mask mode), rotating priorities, and spurious IRQ7/IRQ15 when a request disappears
 * before the acknowledge.
 *
 * Triggering: an edge-triggered input latches its IRR bit on a low-to-high transition and the
 * bit stays set until acknowledged (as QEMU does; the datasheet asks the device to hold the line
 * until INTA). A level-triggered input (ELCR bit or LTIM) makes IRR follow the line. The
 * cascade input IR2 of the master follows the slave's INT output as a level.
 *
 * ISA IRQ 2 does not exist on a PC (it is the cascade); `setIrq(2)` is routed to IRQ 9, as the
 * ISA bus's IRQ2 pin is wired on AT machines.
 */
import { ConfigError } from "../../common/errors.js";
import type { Persist, Resettable } from "../../common/persist.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";
import type { InterruptController, IrqSink } from "../irq.js";
import { checkBool, checkInt, checkObject, readBytes, writeBytes } from "./util.js";

export const PIC_MASTER_CMD = 0x20;
export const PIC_MASTER_DATA = 0x21;
export const PIC_SLAVE_CMD = 0xa0;
export const PIC_SLAVE_DATA = 0xa1;
export const PIC_ELCR1 = 0x4d0;
export const PIC_ELCR2 = 0x4d1;
/** The master input the slave is cascaded on. */
export const PIC_CASCADE_IR = 2;

/** Writable ELCR bits: IRQ 0, 1, 2, 8 and 13 are always edge-triggered on a PIIX. */
const ELCR_MASK = [0xf8, 0xde] as const;

/** State of one 8259A. */
export interface PicChipState {
  irr: number;
  imr: number;
  isr: number;
  /** Input line levels as last driven (for edge detection). */
  levels: number;
  /** The IR that currently has the highest priority (0 after init; rotation moves it). */
  highestPriority: number;
  vectorBase: number;
  readIsr: boolean;
  poll: boolean;
  specialMask: boolean;
  /** 0: operational; 1, 2, 3: the next data-port write is ICW2, ICW3, ICW4. */
  initStep: number;
  icw4Needed: boolean;
  single: boolean;
  ltim: boolean;
  autoEoi: boolean;
  rotateOnAutoEoi: boolean;
  specialFullyNested: boolean;
  elcr: number;
}

export interface PicState {
  master: PicChipState;
  slave: PicChipState;
}

/** Counters useful in tests and logs. */
export interface PicStats {
  spuriousMaster: number;
  spuriousSlave: number;
  acknowledged: number;
}

/** Priority rank (0 = highest) of the highest-priority bit of `mask`, or 8 when none. */
function priorityOf(mask: number, add: number): number {
  if (mask === 0) return 8;
  let p = 0;
  while ((mask & (1 << ((p + add) & 7))) === 0) p++;
  return p;
}

class Chip {
  s: PicChipState;
  constructor(readonly isMaster: boolean) {
    this.s = Chip.powerOn();
  }

  static powerOn(): PicChipState {
    return {
      irr: 0,
      imr: 0xff,
      isr: 0,
      levels: 0,
      highestPriority: 0,
      vectorBase: 0,
      readIsr: false,
      poll: false,
      specialMask: false,
      initStep: 0,
      icw4Needed: false,
      single: false,
      ltim: false,
      autoEoi: false,
      rotateOnAutoEoi: false,
      specialFullyNested: false,
      elcr: 0,
    };
  }

  levelTriggered(bit: number): boolean {
    const s = this.s;
    return s.ltim || (s.elcr & (1 << bit)) !== 0;
  }

  setInput(bit: number, level: boolean): void {
    const s = this.s;
    const mask = 1 << bit;
    const was = (s.levels & mask) !== 0;
    if (level) s.levels |= mask;
    else s.levels &= ~mask;
    if (this.levelTriggered(bit)) {
      if (level) s.irr |= mask;
      else s.irr &= ~mask;
    } else if (level && !was) {
      s.irr |= mask;
    }
  }

  /** The IR this chip would present to INTA now, or -1. */
  pending(): number {
    const s = this.s;
    const req = s.irr & ~s.imr & 0xff;
    const p = priorityOf(req, s.highestPriority);
    if (p === 8) return -1;
    let inService = s.isr;
    // Special mask mode: a masked in-service level does not block lower levels.
    if (s.specialMask) inService &= ~s.imr;
    // Special fully nested mode: the cascade input may interrupt its own in-service level.
    if (s.specialFullyNested && this.isMaster) inService &= ~(1 << PIC_CASCADE_IR);
    const cur = priorityOf(inService, s.highestPriority);
    return p < cur ? (p + s.highestPriority) & 7 : -1;
  }

  /** The INTA cycle for IR `bit`: ISR set (unless auto-EOI), an edge request consumed. */
  intack(bit: number): void {
    const s = this.s;
    const mask = 1 << bit;
    if (s.autoEoi) {
      if (s.rotateOnAutoEoi) s.highestPriority = (bit + 1) & 7;
    } else {
      s.isr |= mask;
    }
    if (!this.levelTriggered(bit)) s.irr &= ~mask;
  }

  /** ICW1: starts the initialisation sequence. */
  icw1(v: number): void {
    const s = this.s;
    // Edge-sense latches reset: pending edge requests are forgotten; level requests follow the line.
    s.irr &= s.elcr | (v & 0x08 ? 0xff : 0);
    s.imr = 0;
    s.isr = 0;
    s.highestPriority = 0;
    s.readIsr = false;
    s.poll = false;
    s.specialMask = false;
    s.autoEoi = false;
    s.rotateOnAutoEoi = false;
    s.specialFullyNested = false;
    s.icw4Needed = (v & 0x01) !== 0;
    s.single = (v & 0x02) !== 0;
    s.ltim = (v & 0x08) !== 0;
    if (s.ltim) s.irr = s.levels;
    s.initStep = 1;
  }

  writeCommand(v: number): void {
    const s = this.s;
    if (v & 0x10) {
      this.icw1(v);
      return;
    }
    if (v & 0x08) {
      // OCW3
      if (v & 0x04) s.poll = true;
      if (v & 0x02) s.readIsr = (v & 0x01) !== 0;
      if (v & 0x40) s.specialMask = (v & 0x20) !== 0;
      return;
    }
    // OCW2
    const cmd = v >> 5;
    const level = v & 7;
    switch (cmd) {
      case 0: // rotate in auto-EOI mode (clear)
      case 4: // rotate in auto-EOI mode (set)
        s.rotateOnAutoEoi = cmd === 4;
        break;
      case 1: // non-specific EOI
      case 5: {
        // rotate on non-specific EOI
        const p = priorityOf(s.isr, s.highestPriority);
        if (p !== 8) {
          const bit = (p + s.highestPriority) & 7;
          s.isr &= ~(1 << bit);
          if (cmd === 5) s.highestPriority = (bit + 1) & 7;
        }
        break;
      }
      case 3: // specific EOI
        s.isr &= ~(1 << level);
        break;
      case 7: // rotate on specific EOI
        s.isr &= ~(1 << level);
        s.highestPriority = (level + 1) & 7;
        break;
      case 6: // set priority: `level` becomes the lowest
        s.highestPriority = (level + 1) & 7;
        break;
      default: // 2: no operation
        break;
    }
  }

  writeData(v: number): void {
    const s = this.s;
    switch (s.initStep) {
      case 0: // OCW1
        s.imr = v;
        break;
      case 1: // ICW2
        s.vectorBase = v & 0xf8;
        s.initStep = s.single ? (s.icw4Needed ? 3 : 0) : 2;
        break;
      case 2: // ICW3 (cascade wiring; the PC's is fixed)
        s.initStep = s.icw4Needed ? 3 : 0;
        break;
      default: // ICW4
        s.autoEoi = (v & 0x02) !== 0;
        s.specialFullyNested = (v & 0x10) !== 0;
        s.initStep = 0;
        break;
    }
  }

  setElcr(v: number, writable: number): void {
    const s = this.s;
    s.elcr = v & writable;
    // A line switched to level triggering reports its current level at once.
    s.irr = (s.irr & ~s.elcr) | (s.levels & s.elcr);
  }
}

export interface PicOptions {
  /** Called whenever the INTR output (what `hasInterrupt()` returns) changes. */
  onIntrChange?: (level: boolean) => void;
}

/**
 * The master/slave 8259A pair. An `IoHandler` for 0x20-0x21, 0xA0-0xA1 and 0x4D0-0x4D1; an
 * `IrqSink` for ISA IRQs 0-15; the CPU's `InterruptController`.
 */
export class Pic implements IoHandler, IrqSink, InterruptController, Persist<PicState>, Resettable {
  private readonly master = new Chip(true);
  private readonly slave = new Chip(false);
  private intr = false;
  private readonly onIntrChange: ((level: boolean) => void) | undefined;
  readonly stats: PicStats = { spuriousMaster: 0, spuriousSlave: 0, acknowledged: 0 };

  constructor(options: PicOptions = {}) {
    this.onIntrChange = options.onIntrChange;
  }

  register(io: IoBus): void {
    io.register(PIC_MASTER_CMD, 2, this, "pic-master");
    io.register(PIC_SLAVE_CMD, 2, this, "pic-slave");
    io.register(PIC_ELCR1, 2, this, "elcr");
  }

  // --- IrqSink -------------------------------------------------------------------------------

  setIrq(irq: number, level: boolean): void {
    if (!Number.isInteger(irq) || irq < 0 || irq > 15) {
      throw new ConfigError(`PIC input ${irq} does not exist (ISA IRQs are 0-15)`);
    }
    if (irq === PIC_CASCADE_IR) irq = 9;
    if (irq < 8) this.master.setInput(irq, level);
    else this.slave.setInput(irq - 8, level);
    this.update();
  }

  // --- InterruptController -------------------------------------------------------------------

  hasInterrupt(): boolean {
    return this.intr;
  }

  acknowledge(): number {
    const m = this.master;
    const irq = m.pending();
    let vector: number;
    if (irq < 0) {
      // The request went away before INTA: the 8259A answers with IR7 and sets no ISR bit.
      this.stats.spuriousMaster++;
      vector = m.s.vectorBase + 7;
    } else if (irq === PIC_CASCADE_IR && !m.s.single) {
      m.intack(irq);
      const sirq = this.slave.pending();
      if (sirq < 0) {
        // Spurious IRQ15: the master's ISR bit 2 is set, the slave's is not.
        this.stats.spuriousSlave++;
        vector = this.slave.s.vectorBase + 7;
      } else {
        this.slave.intack(sirq);
        vector = this.slave.s.vectorBase + sirq;
      }
    } else {
      m.intack(irq);
      vector = m.s.vectorBase + irq;
    }
    this.stats.acknowledged++;
    this.update();
    return vector;
  }

  // --- I/O ports -----------------------------------------------------------------------------

  ioRead(port: number, size: AccessSize): number {
    if (port >= PIC_ELCR1) return readBytes(port, size, PIC_ELCR1, 2, (p) => this.readByte(p));
    const base = port & ~1;
    return readBytes(port, size, base, 2, (p) => this.readByte(p));
  }

  ioWrite(port: number, size: AccessSize, value: number): void {
    const base = port >= PIC_ELCR1 ? PIC_ELCR1 : port & ~1;
    writeBytes(port, size, value, base, 2, (p, v) => this.writeByte(p, v));
  }

  private chipFor(port: number): Chip {
    return port < PIC_SLAVE_CMD ? this.master : this.slave;
  }

  private readByte(port: number): number {
    if (port === PIC_ELCR1) return this.master.s.elcr;
    if (port === PIC_ELCR2) return this.slave.s.elcr;
    const chip = this.chipFor(port);
    if (chip.s.poll) return this.pollRead(chip);
    if ((port & 1) === 1) return chip.s.imr;
    return chip.s.readIsr ? chip.s.isr : chip.s.irr;
  }

  private writeByte(port: number, v: number): void {
    if (port === PIC_ELCR1) this.master.setElcr(v, ELCR_MASK[0]);
    else if (port === PIC_ELCR2) this.slave.setElcr(v, ELCR_MASK[1]);
    else if ((port & 1) === 0) this.chipFor(port).writeCommand(v);
    else this.chipFor(port).writeData(v);
    this.update();
  }

  /** Poll mode (OCW3 P=1): the next read is an acknowledge that returns 0x80 | level, or 0. */
  private pollRead(chip: Chip): number {
    chip.s.poll = false;
    const irq = chip.pending();
    let ret = 0;
    if (irq >= 0) {
      chip.intack(irq);
      ret = 0x80 | irq;
    }
    this.update();
    return ret;
  }

  /** Recomputes the cascade line and the INTR output. */
  private update(): void {
    const slaveOut = this.slave.pending() >= 0;
    const m = this.master.s;
    const mask = 1 << PIC_CASCADE_IR;
    if (slaveOut) {
      m.irr |= mask;
      m.levels |= mask;
    } else {
      m.irr &= ~mask;
      m.levels &= ~mask;
    }
    const intr = this.master.pending() >= 0;
    if (intr !== this.intr) {
      this.intr = intr;
      this.onIntrChange?.(intr);
    }
  }

  // --- inspection, reset and snapshots --------------------------------------------------------

  /** IRR, ISR and IMR of both chips as 16-bit values (slave in the high byte). */
  registers(): { irr: number; isr: number; imr: number; elcr: number } {
    const m = this.master.s;
    const s = this.slave.s;
    return {
      irr: m.irr | (s.irr << 8),
      isr: m.isr | (s.isr << 8),
      imr: m.imr | (s.imr << 8),
      elcr: m.elcr | (s.elcr << 8),
    };
  }

  /** Machine reset: both chips back to power-on state (all masked, no vectors); ELCR cleared. */
  reset(): void {
    const ml = this.master.s.levels;
    const sl = this.slave.s.levels;
    this.master.s = { ...Chip.powerOn(), levels: ml & ~(1 << PIC_CASCADE_IR) };
    this.slave.s = { ...Chip.powerOn(), levels: sl };
    this.update();
  }

  save(): PicState {
    return { master: { ...this.master.s }, slave: { ...this.slave.s } };
  }

  restore(state: PicState): void {
    const st = checkObject(state, "pic");
    this.master.s = restoreChip(st.master, "pic.master");
    this.slave.s = restoreChip(st.slave, "pic.slave");
    this.update();
  }
}

function restoreChip(v: unknown, name: string): PicChipState {
  const o = checkObject(v, name);
  const byte = (k: string) => checkInt(o[k], `${name}.${k}`, 0, 0xff);
  const bool = (k: string) => checkBool(o[k], `${name}.${k}`);
  return {
    irr: byte("irr"),
    imr: byte("imr"),
    isr: byte("isr"),
    levels: byte("levels"),
    highestPriority: checkInt(o.highestPriority, `${name}.highestPriority`, 0, 7),
    vectorBase: byte("vectorBase") & 0xf8,
    readIsr: bool("readIsr"),
    poll: bool("poll"),
    specialMask: bool("specialMask"),
    initStep: checkInt(o.initStep, `${name}.initStep`, 0, 3),
    icw4Needed: bool("icw4Needed"),
    single: bool("single"),
    ltim: bool("ltim"),
    autoEoi: bool("autoEoi"),
    rotateOnAutoEoi: bool("rotateOnAutoEoi"),
    specialFullyNested: bool("specialFullyNested"),
    elcr: byte("elcr"),
  };
}
