/**
 * The NS16550A UART (COM1 at 0x3F8 on IRQ 4 by default; base and IRQ are parameters).
 *
 * Registers: RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR, and DLL/DLM behind DLAB. 16-byte
 * receive FIFO with the trigger levels 1/4/8/14, the character timeout interrupt (4 character
 * times without FIFO activity, timed on the machine clock from the divisor and LCR), loopback,
 * and the PC's OUT2 gate on the interrupt line (OUT2 low, or loopback mode, keeps IRQ low).
 * Interrupt priority in IIR: line status > received data / timeout > THR empty > modem status.
 *
 * Transmission is immediate: a byte written to THR goes to the backend at once and THRE/TEMT
 * stay set, so the THR-empty interrupt is raised again right after each write. The THRE
 * interrupt is raised when IER.ETBEI goes from 0 to 1 while THR is empty and is cleared by an
 * IIR read that reports it or by a THR write - the behaviour Linux's 8250 driver checks at
 * startup (UART_BUG_THRE / UART_BUG_TXEN tests).
 *
 * Input: `receive(bytes)` accepts bytes into a bounded host-side buffer behind the FIFO and
 * returns how many it took. When it took fewer than offered, the host must hold the rest and
 * wait for `onRxSpace`, which is called once room is available again (back-pressure, no drops).
 */
import { ConfigError } from "../../common/errors.js";
import type { Persist, Resettable } from "../../common/persist.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";
import type { IrqLine } from "../irq.js";
import type { TimerHandle, TimerQueue } from "../timers.js";
import { checkBool, checkBytes, checkInt, checkObject, readBytes, writeBytes } from "./util.js";

/** Where serial output goes. */
export interface SerialBackend {
  write(bytes: Uint8Array): void;
}

// Register offsets
export const UART_RX = 0;
export const UART_TX = 0;
export const UART_DLL = 0;
export const UART_IER = 1;
export const UART_DLM = 1;
export const UART_IIR = 2;
export const UART_FCR = 2;
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_RLSI = 0x04;
export const UART_IER_MSI = 0x08;

export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_MSI = 0x00;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_RLSI = 0x06;
export const UART_IIR_RX_TIMEOUT = 0x0c;
export const UART_IIR_FIFO_ENABLED = 0xc0;

export const UART_FCR_ENABLE_FIFO = 0x01;
export const UART_FCR_CLEAR_RCVR = 0x02;
export const UART_FCR_CLEAR_XMIT = 0x04;

export const UART_LCR_DLAB = 0x80;

export const UART_MCR_DTR = 0x01;
export const UART_MCR_RTS = 0x02;
export const UART_MCR_OUT1 = 0x04;
export const UART_MCR_OUT2 = 0x08;
export const UART_MCR_LOOP = 0x10;

export const UART_LSR_DR = 0x01;
export const UART_LSR_OE = 0x02;
export const UART_LSR_PE = 0x04;
export const UART_LSR_FE = 0x08;
export const UART_LSR_BI = 0x10;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
export const UART_LSR_FIFOE = 0x80;

export const UART_MSR_DCTS = 0x01;
export const UART_MSR_DDSR = 0x02;
export const UART_MSR_TERI = 0x04;
export const UART_MSR_DDCD = 0x08;
export const UART_MSR_CTS = 0x10;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_RI = 0x40;
export const UART_MSR_DCD = 0x80;

const FIFO_SIZE = 16;
const TRIGGER = [1, 4, 8, 14] as const;
/** The UART clock divided by 16: the baud rate with divisor 1. */
const BAUD_BASE = 115_200;

export interface UartOptions {
  clock: TimerQueue;
  irq: IrqLine;
  /** I/O base; 0x3F8 (COM1) by default. */
  base?: number;
  backend?: SerialBackend;
  /** Capacity of the host-side receive buffer behind the FIFO, in bytes (default 4096). */
  rxBufferSize?: number;
  /** Called when the receive buffer has room again after `receive` refused bytes. */
  onRxSpace?: () => void;
  name?: string;
}

export interface UartState {
  dll: number;
  dlm: number;
  ier: number;
  lcr: number;
  mcr: number;
  /** LSR error bits (OE, PE, FE, BI) waiting to be read. */
  lsrErrors: number;
  msr: number;
  scr: number;
  fifoEnabled: boolean;
  triggerIndex: number;
  rxFifo: number[];
  /** Non-FIFO mode: the receive buffer register and whether it holds a byte. */
  rbr: number;
  thrPending: boolean;
  timeoutPending: boolean;
  /** Absolute machine time of the character timeout, or -1. */
  timeoutAt: number;
  rxBuffer: number[];
  rxBlocked: boolean;
  /** Host-driven modem inputs (CTS, DSR, RI, DCD in MSR bit positions). */
  modemInputs: number;
}

export class Uart implements IoHandler, Persist<UartState>, Resettable {
  readonly base: number;
  readonly name: string;
  private readonly clock: TimerQueue;
  private readonly irq: IrqLine;
  private backend: SerialBackend | undefined;
  private readonly rxCapacity: number;
  private readonly onRxSpace: (() => void) | undefined;
  private s: UartState;
  /** Host-side receive buffer as a ring (the state's `rxBuffer` is its saved form). */
  private ring: Uint8Array;
  private ringHead = 0;
  private ringLen = 0;
  private irqLevel = false;
  private timer: TimerHandle | null = null;
  /** Bytes sent to the backend (and to the loopback). */
  txBytes = 0;

  constructor(options: UartOptions) {
    const base = options.base ?? 0x3f8;
    if (!Number.isInteger(base) || base < 0 || base > 0xfff8) {
      throw new ConfigError(`UART base 0x${base.toString(16)} is not a valid I/O port for 8 registers`);
    }
    const cap = options.rxBufferSize ?? 4096;
    if (!Number.isInteger(cap) || cap < 1 || cap > 1 << 24) {
      throw new ConfigError(`UART rxBufferSize ${cap} must be an integer from 1 to 16M`);
    }
    this.base = base;
    this.name = options.name ?? `uart@0x${base.toString(16)}`;
    this.clock = options.clock;
    this.irq = options.irq;
    this.backend = options.backend;
    this.rxCapacity = cap;
    this.onRxSpace = options.onRxSpace;
    this.ring = new Uint8Array(cap);
    this.s = Uart.powerOn();
  }

  private static powerOn(): UartState {
    return {
      dll: 0x0c, // 9600 baud
      dlm: 0,
      ier: 0,
      lcr: 0,
      mcr: 0,
      lsrErrors: 0,
      msr: UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS,
      scr: 0,
      fifoEnabled: false,
      triggerIndex: 0,
      rxFifo: [],
      rbr: 0,
      thrPending: false,
      timeoutPending: false,
      timeoutAt: -1,
      rxBuffer: [],
      rxBlocked: false,
      modemInputs: UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS,
    };
  }

  register(io: IoBus): void {
    io.register(this.base, 8, this, this.name);
  }

  setBackend(backend: SerialBackend | undefined): void {
    this.backend = backend;
  }

  // --- host side ------------------------------------------------------------------------------

  /**
   * Offers received bytes. Returns how many were accepted (all of them unless the buffer is
   * full); the rest must be offered again after `onRxSpace` fires.
   */
  receive(bytes: Uint8Array): number {
    this.s.rxBlocked = false; // the host is offering now; no callback from inside this call
    let n = 0;
    while (n < bytes.length) {
      const k = Math.min(this.rxCapacity - this.ringLen, bytes.length - n);
      if (k === 0) break;
      for (let i = 0; i < k; i++) {
        this.ring[(this.ringHead + this.ringLen) % this.rxCapacity] = bytes[n + i]!;
        this.ringLen++;
      }
      n += k;
      this.refill(); // into the FIFO as far as it has room, making room in the buffer
    }
    if (n < bytes.length) this.s.rxBlocked = true;
    this.updateIrq();
    return n;
  }

  /** Bytes the receive path can take now (host buffer room). */
  rxSpace(): number {
    return this.rxCapacity - this.ringLen;
  }

  /** Sets the modem status inputs (CTS, DSR, RI, DCD) as seen outside loopback. */
  setModemInputs(inputs: { cts?: boolean; dsr?: boolean; ri?: boolean; dcd?: boolean }): void {
    let m = this.s.modemInputs;
    const bit = (v: boolean | undefined, b: number) => {
      if (v !== undefined) m = v ? m | b : m & ~b;
    };
    bit(inputs.cts, UART_MSR_CTS);
    bit(inputs.dsr, UART_MSR_DSR);
    bit(inputs.ri, UART_MSR_RI);
    bit(inputs.dcd, UART_MSR_DCD);
    this.s.modemInputs = m;
    if ((this.s.mcr & UART_MCR_LOOP) === 0) this.setModemStatus(m);
    this.updateIrq();
  }

  // --- registers ------------------------------------------------------------------------------

  ioRead(port: number, size: AccessSize): number {
    return readBytes(port, size, this.base, 8, (p) => this.readReg(p - this.base));
  }

  ioWrite(port: number, size: AccessSize, value: number): void {
    writeBytes(port, size, value, this.base, 8, (p, v) => this.writeReg(p - this.base, v));
  }

  private readReg(off: number): number {
    const v = this.readRegRaw(off);
    this.updateIrq();
    return v;
  }

  private readRegRaw(off: number): number {
    const s = this.s;
    const dlab = (s.lcr & UART_LCR_DLAB) !== 0;
    switch (off) {
      case 0:
        return dlab ? s.dll : this.readRbr();
      case 1:
        return dlab ? s.dlm : s.ier;
      case 2: {
        const iir = this.iir();
        // Reading IIR while it reports THR empty clears that interrupt.
        if ((iir & 0x0f) === UART_IIR_THRI) s.thrPending = false;
        return iir;
      }
      case 3:
        return s.lcr;
      case 4:
        return s.mcr;
      case 5: {
        const v = this.lsr();
        s.lsrErrors = 0;
        return v;
      }
      case 6: {
        const v = s.msr;
        s.msr &= 0xf0;
        return v;
      }
      default:
        return s.scr;
    }
  }

  private writeReg(off: number, v: number): void {
    const s = this.s;
    const dlab = (s.lcr & UART_LCR_DLAB) !== 0;
    switch (off) {
      case 0:
        if (dlab) s.dll = v;
        else this.transmit(v);
        break;
      case 1:
        if (dlab) {
          s.dlm = v;
        } else {
          const was = s.ier;
          s.ier = v & 0x0f;
          // Enabling the THRE interrupt while THR is empty raises it (THR is always empty here).
          if ((s.ier & UART_IER_THRI) !== 0 && (was & UART_IER_THRI) === 0) s.thrPending = true;
        }
        break;
      case 2:
        this.writeFcr(v);
        break;
      case 3:
        s.lcr = v;
        break;
      case 4:
        this.writeMcr(v & 0x1f);
        break;
      case 5:
      case 6:
        break; // LSR and MSR are read-only (factory test writes ignored)
      default:
        s.scr = v;
        break;
    }
    this.updateIrq();
  }

  private lsr(): number {
    const s = this.s;
    let v = UART_LSR_THRE | UART_LSR_TEMT | s.lsrErrors;
    if (this.rxCount() > 0) v |= UART_LSR_DR;
    return v;
  }

  private rxCount(): number {
    return this.s.fifoEnabled ? this.s.rxFifo.length : this.s.rxFifo.length > 0 ? 1 : 0;
  }

  private iir(): number {
    const s = this.s;
    const fifo = s.fifoEnabled ? UART_IIR_FIFO_ENABLED : 0;
    const ier = s.ier;
    if (ier & UART_IER_RLSI && s.lsrErrors !== 0) return fifo | UART_IIR_RLSI;
    if (ier & UART_IER_RDI) {
      if (s.timeoutPending) return fifo | UART_IIR_RX_TIMEOUT;
      const n = this.rxCount();
      if (n > 0 && (!s.fifoEnabled || n >= TRIGGER[s.triggerIndex]!)) return fifo | UART_IIR_RDI;
    }
    if (ier & UART_IER_THRI && s.thrPending) return fifo | UART_IIR_THRI;
    if (ier & UART_IER_MSI && (s.msr & 0x0f) !== 0) return fifo | UART_IIR_MSI;
    return fifo | UART_IIR_NO_INT;
  }

  private readRbr(): number {
    const s = this.s;
    s.timeoutPending = false;
    let v: number;
    if (s.rxFifo.length === 0) {
      v = s.rbr;
    } else {
      v = s.rxFifo.shift()!;
      s.rbr = v;
    }
    this.refill();
    this.armTimeout();
    return v;
  }

  private transmit(v: number): void {
    const s = this.s;
    this.txBytes++;
    if (s.mcr & UART_MCR_LOOP) {
      this.pushRx(v);
      this.armTimeout();
    } else {
      this.backend?.write(Uint8Array.of(v));
    }
    // The byte leaves THR at once; THR is empty again and the interrupt condition re-arms.
    s.thrPending = true;
  }

  /** A byte arriving at the receiver shift register (from the line or the loopback). */
  private pushRx(v: number): void {
    const s = this.s;
    if (!s.fifoEnabled && s.rxFifo.length > 0) {
      s.lsrErrors |= UART_LSR_OE; // 16450 mode: the new character overwrites RBR
      s.rxFifo[0] = v;
      return;
    }
    if (s.rxFifo.length >= FIFO_SIZE) {
      s.lsrErrors |= UART_LSR_OE; // FIFO mode: the new character is lost, the FIFO is kept
      return;
    }
    s.rxFifo.push(v);
  }

  /** Moves bytes from the host buffer into the FIFO (one in non-FIFO mode); not in loopback. */
  private refill(): void {
    const s = this.s;
    if (s.mcr & UART_MCR_LOOP) return;
    const limit = s.fifoEnabled ? FIFO_SIZE : 1;
    let moved = false;
    while (this.ringLen > 0 && s.rxFifo.length < limit) {
      s.rxFifo.push(this.ring[this.ringHead]!);
      this.ringHead = (this.ringHead + 1) % this.rxCapacity;
      this.ringLen--;
      moved = true;
    }
    if (moved) this.armTimeout();
    if (s.rxBlocked && this.ringLen < this.rxCapacity) {
      s.rxBlocked = false;
      this.onRxSpace?.();
    }
  }

  private writeFcr(v: number): void {
    const s = this.s;
    const enable = (v & UART_FCR_ENABLE_FIFO) !== 0;
    if (enable !== s.fifoEnabled) {
      // Changing the FIFO enable clears both FIFOs.
      s.rxFifo.length = 0;
      s.fifoEnabled = enable;
      s.timeoutPending = false;
    }
    if (!enable) {
      this.refill();
      return;
    }
    if (v & UART_FCR_CLEAR_RCVR) {
      s.rxFifo.length = 0;
      s.timeoutPending = false;
    }
    s.triggerIndex = (v >> 6) & 3;
    this.refill();
    this.armTimeout();
  }

  private writeMcr(v: number): void {
    const s = this.s;
    const wasLoop = (s.mcr & UART_MCR_LOOP) !== 0;
    s.mcr = v;
    const loop = (v & UART_MCR_LOOP) !== 0;
    if (loop) {
      // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
      let m = 0;
      if (v & UART_MCR_DTR) m |= UART_MSR_DSR;
      if (v & UART_MCR_RTS) m |= UART_MSR_CTS;
      if (v & UART_MCR_OUT1) m |= UART_MSR_RI;
      if (v & UART_MCR_OUT2) m |= UART_MSR_DCD;
      this.setModemStatus(m);
    } else {
      if (wasLoop) this.setModemStatus(s.modemInputs);
      this.refill();
    }
  }

  /** Sets MSR bits 4-7 and the delta bits for what changed. */
  private setModemStatus(m: number): void {
    const s = this.s;
    const old = s.msr & 0xf0;
    const changed = old ^ m;
    let delta = s.msr & 0x0f;
    if (changed & UART_MSR_CTS) delta |= UART_MSR_DCTS;
    if (changed & UART_MSR_DSR) delta |= UART_MSR_DDSR;
    if (changed & UART_MSR_DCD) delta |= UART_MSR_DDCD;
    if (old & UART_MSR_RI && !(m & UART_MSR_RI)) delta |= UART_MSR_TERI; // trailing edge only
    s.msr = m | delta;
  }

  // --- character timeout ----------------------------------------------------------------------

  /** One character time in ns from the divisor and LCR (start + data + parity + stop bits). */
  charTimeNs(): number {
    const s = this.s;
    const divisor = s.dll | (s.dlm << 8) || 1;
    const data = 5 + (s.lcr & 3);
    const parity = s.lcr & 0x08 ? 1 : 0;
    const stop = s.lcr & 0x04 ? (data === 5 ? 1.5 : 2) : 1;
    return ((1 + data + parity + stop) * divisor * 1e9) / BAUD_BASE;
  }

  /** (Re)starts the 4-character timeout after FIFO activity; stops it when the FIFO is empty. */
  private armTimeout(): void {
    const s = this.s;
    this.clock.cancel(this.timer);
    this.timer = null;
    if (!s.fifoEnabled || s.rxFifo.length === 0 || s.timeoutPending) {
      s.timeoutAt = -1;
      return;
    }
    s.timeoutAt = this.clock.now() + 4 * this.charTimeNs();
    this.timer = this.clock.schedule(s.timeoutAt, () => this.onTimeout());
  }

  private onTimeout(): void {
    this.timer = null;
    const s = this.s;
    s.timeoutAt = -1;
    if (s.fifoEnabled && s.rxFifo.length > 0) {
      s.timeoutPending = true;
      this.updateIrq();
    }
  }

  // --- interrupt line -------------------------------------------------------------------------

  private updateIrq(): void {
    const s = this.s;
    const pending = (this.iir() & UART_IIR_NO_INT) === 0;
    // On a PC the IRQ driver is enabled by OUT2; loopback forces OUT2 inactive.
    const level = pending && (s.mcr & UART_MCR_OUT2) !== 0 && (s.mcr & UART_MCR_LOOP) === 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  /** Whether the interrupt output is asserted (after the OUT2 gate). */
  irqAsserted(): boolean {
    return this.irqLevel;
  }

  // --- reset and snapshots --------------------------------------------------------------------

  reset(): void {
    this.clock.cancel(this.timer);
    this.timer = null;
    // Registers and FIFOs reset; bytes the host already handed over stay in the host-side
    // buffer and reach the guest after the reset.
    const { modemInputs, rxBlocked } = this.s;
    this.s = { ...Uart.powerOn(), modemInputs, msr: modemInputs, rxBlocked };
    this.refill();
    this.updateIrq();
  }

  save(): UartState {
    const rx: number[] = [];
    for (let i = 0; i < this.ringLen; i++) rx.push(this.ring[(this.ringHead + i) % this.rxCapacity]!);
    return { ...this.s, rxFifo: [...this.s.rxFifo], rxBuffer: rx };
  }

  restore(state: UartState): void {
    const o = checkObject(state, "uart");
    const byte = (k: string) => checkInt(o[k], `uart.${k}`, 0, 0xff);
    const bool = (k: string) => checkBool(o[k], `uart.${k}`);
    const rxBuffer = checkBytes(o.rxBuffer, "uart.rxBuffer", this.rxCapacity);
    const timeoutAt = o.timeoutAt;
    if (typeof timeoutAt !== "number" || !Number.isFinite(timeoutAt)) {
      throw new ConfigError(`bad saved state: uart.timeoutAt = ${String(timeoutAt)}`);
    }
    const s: UartState = {
      dll: byte("dll"),
      dlm: byte("dlm"),
      ier: byte("ier") & 0x0f,
      lcr: byte("lcr"),
      mcr: byte("mcr") & 0x1f,
      lsrErrors: byte("lsrErrors") & 0x1e,
      msr: byte("msr"),
      scr: byte("scr"),
      fifoEnabled: bool("fifoEnabled"),
      triggerIndex: checkInt(o.triggerIndex, "uart.triggerIndex", 0, 3),
      rxFifo: [...checkBytes(o.rxFifo, "uart.rxFifo", FIFO_SIZE)],
      rbr: byte("rbr"),
      thrPending: bool("thrPending"),
      timeoutPending: bool("timeoutPending"),
      timeoutAt,
      rxBuffer: [],
      rxBlocked: bool("rxBlocked"),
      modemInputs: byte("modemInputs") & 0xf0,
    };
    this.clock.cancel(this.timer);
    this.timer = null;
    this.s = s;
    this.ringHead = 0;
    this.ringLen = rxBuffer.length;
    this.ring.set(rxBuffer, 0);
    if (s.timeoutAt >= 0) this.timer = this.clock.schedule(s.timeoutAt, () => this.onTimeout());
    this.irqLevel = false;
    this.irq.set(false);
    this.updateIrq();
  }
}
