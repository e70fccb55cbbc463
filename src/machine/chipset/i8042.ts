/**
 * A minimal Intel 8042 keyboard controller (data 0x60, status/command 0x64) with no keyboard
 * or mouse attached.
 *
 * Enough for Linux's i8042 driver to probe it without waiting on a timeout: the controller
 * self-test (0xAA -> 0x55), the command byte (0x20/0x60, and the rest of the internal RAM),
 * port enable/disable (0xA7/0xA8, 0xAD/0xAE), the port tests (0xA9/0xAB -> 0), the AUX
 * loopback (0xD3, echoed as AUX data - Linux's loop and AUX IRQ tests), the output port
 * (0xD0/0xD1: A20 and reset), A20 commands (0xDD/0xDF) and the pulse-output commands
 * (0xF0-0xFF: pulsing bit 0, as 0xFE does, resets the machine). A byte written for a device
 * (to 0x60 for the keyboard, after 0xD4 for the mouse) is answered with 0xFE and the timeout
 * status bit, as a controller does when nothing is connected, so atkbd/psmouse give up at once.
 *
 * Output bytes queue in a small FIFO; the head is the output buffer. IRQ 1 (keyboard data and
 * controller replies) and IRQ 12 (AUX data) are raised while a byte waits and the command byte
 * enables that interrupt.
 */
import type { Persist, Resettable } from "../../common/persist.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";
import type { IrqLine } from "../irq.js";
import { checkBool, checkBytes, checkInt, checkObject } from "./util.js";

export const I8042_DATA = 0x60;
export const I8042_STATUS = 0x64;
export const I8042_COMMAND = 0x64;

export const I8042_STR_OBF = 0x01;
export const I8042_STR_IBF = 0x02;
export const I8042_STR_SYS = 0x04;
export const I8042_STR_CMDDAT = 0x08;
export const I8042_STR_KEYLOCK = 0x10;
export const I8042_STR_AUXDATA = 0x20;
export const I8042_STR_TIMEOUT = 0x40;
export const I8042_STR_PARITY = 0x80;

export const I8042_CTR_KBDINT = 0x01;
export const I8042_CTR_AUXINT = 0x02;
export const I8042_CTR_SYS = 0x04;
export const I8042_CTR_KBDDIS = 0x10;
export const I8042_CTR_AUXDIS = 0x20;
export const I8042_CTR_XLATE = 0x40;

/** Reply of a device that is not there. */
const NO_DEVICE = 0xfe;
const QUEUE_MAX = 16;

export interface I8042Options {
  /** IRQ 1. */
  kbdIrq: IrqLine;
  /** IRQ 12. */
  auxIrq: IrqLine;
  /** The CPU reset line was pulsed (command 0xFE, or output port bit 0 written as 0). */
  onReset?: () => void;
  /** The A20 gate of the output port changed. */
  onA20?: (enabled: boolean) => void;
}

/** One queued output byte: the data and the status bits (AUXDATA, TIMEOUT) that come with it. */
interface OutByte {
  data: number;
  flags: number;
}

export interface I8042State {
  /** Internal RAM; byte 0 is the command byte (CTR). */
  ram: number[];
  /** Output queue as [data, flags] pairs flattened. */
  out: number[];
  /** Command waiting for its data byte on port 0x60, or 0. */
  pendingCommand: number;
  lastWasCommand: boolean;
  selfTested: boolean;
  outputPort: number;
  kbdIrq: boolean;
  auxIrq: boolean;
}

export class I8042 implements IoHandler, Persist<I8042State>, Resettable {
  private readonly kbdIrq: IrqLine;
  private readonly auxIrq: IrqLine;
  private readonly onReset: (() => void) | undefined;
  private readonly onA20: ((enabled: boolean) => void) | undefined;
  private ram = new Uint8Array(32);
  private out: OutByte[] = [];
  private pendingCommand = 0;
  private lastWasCommand = false;
  private selfTested = false;
  private outputPort = 0x03; // reset line inactive (1), A20 enabled
  private kbdLevel = false;
  private auxLevel = false;
  /** Commands the controller does not know, for logs. */
  unknownCommands = 0;

  constructor(options: I8042Options) {
    this.kbdIrq = options.kbdIrq;
    this.auxIrq = options.auxIrq;
    this.onReset = options.onReset;
    this.onA20 = options.onA20;
    this.ram[0] = I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_XLATE;
  }

  register(io: IoBus): void {
    io.register(I8042_DATA, 1, this, "i8042-data");
    io.register(I8042_STATUS, 1, this, "i8042-status");
  }

  ioRead(port: number, size: AccessSize): number {
    const v = port === I8042_DATA ? this.readData() : this.status();
    return size === 1 ? v : (v | (size === 2 ? 0xff00 : 0xffffff00)) >>> 0;
  }

  ioWrite(port: number, _size: AccessSize, value: number): void {
    value &= 0xff;
    if (port === I8042_COMMAND) this.command(value);
    else this.data(value);
  }

  status(): number {
    const head = this.out[0];
    let v = I8042_STR_KEYLOCK; // not locked
    if (head) v |= I8042_STR_OBF | head.flags;
    if (this.selfTested || this.ram[0]! & I8042_CTR_SYS) v |= I8042_STR_SYS;
    if (this.lastWasCommand) v |= I8042_STR_CMDDAT;
    return v;
  }

  private readData(): number {
    const head = this.out.shift();
    this.updateIrq();
    return head ? head.data : 0x00;
  }

  private queue(data: number, flags = 0): void {
    if (this.out.length < QUEUE_MAX) this.out.push({ data: data & 0xff, flags });
    this.updateIrq();
  }

  private command(c: number): void {
    this.lastWasCommand = true;
    this.pendingCommand = 0;
    const ctr = this.ram[0]!;
    if (c >= 0x20 && c <= 0x3f) {
      this.queue(this.ram[c - 0x20]!);
      return;
    }
    if (c >= 0x60 && c <= 0x7f) {
      this.pendingCommand = c;
      return;
    }
    switch (c) {
      case 0xa7: // disable AUX
        this.ram[0] = ctr | I8042_CTR_AUXDIS;
        break;
      case 0xa8: // enable AUX
        this.ram[0] = ctr & ~I8042_CTR_AUXDIS;
        break;
      case 0xa9: // test AUX port: no error
      case 0xab: // test keyboard port: no error
        this.queue(0x00);
        break;
      case 0xaa: // controller self-test
        this.selfTested = true;
        this.queue(0x55);
        break;
      case 0xad: // disable keyboard
        this.ram[0] = ctr | I8042_CTR_KBDDIS;
        break;
      case 0xae: // enable keyboard
        this.ram[0] = ctr & ~I8042_CTR_KBDDIS;
        break;
      case 0xc0: // read input port: keyboard not inhibited
        this.queue(0x80);
        break;
      case 0xd0: // read output port
        this.queue(this.outputPortValue());
        break;
      case 0xd1: // write output port
      case 0xd2: // write keyboard output buffer
      case 0xd3: // write AUX output buffer (loop)
      case 0xd4: // write to the AUX device
        this.pendingCommand = c;
        break;
      case 0xdd:
        this.setOutputPort(this.outputPort & ~0x02);
        break;
      case 0xdf:
        this.setOutputPort(this.outputPort | 0x02);
        break;
      default:
        if (c >= 0xf0) {
          // Pulse output lines: bits 0-3 low select the lines; line 0 is the CPU reset.
          if ((c & 0x01) === 0) this.onReset?.();
        } else {
          this.unknownCommands++;
        }
        break;
    }
    this.updateIrq();
  }

  private data(v: number): void {
    this.lastWasCommand = false;
    const c = this.pendingCommand;
    this.pendingCommand = 0;
    if (c >= 0x60 && c <= 0x7f) {
      this.ram[c - 0x60] = v;
      this.updateIrq();
      return;
    }
    switch (c) {
      case 0xd1:
        this.setOutputPort(v);
        break;
      case 0xd2:
        this.queue(v);
        break;
      case 0xd3:
        this.queue(v, I8042_STR_AUXDATA);
        break;
      case 0xd4: // to the mouse: nothing is connected
        this.queue(NO_DEVICE, I8042_STR_AUXDATA | I8042_STR_TIMEOUT);
        break;
      default: // to the keyboard: nothing is connected
        this.queue(NO_DEVICE, I8042_STR_TIMEOUT);
        break;
    }
  }

  private outputPortValue(): number {
    const head = this.out[0];
    let v = this.outputPort & 0x0f;
    if (head && !(head.flags & I8042_STR_AUXDATA)) v |= 0x10;
    if (head && head.flags & I8042_STR_AUXDATA) v |= 0x20;
    return v;
  }

  private setOutputPort(v: number): void {
    const old = this.outputPort;
    this.outputPort = (v & 0x0f) | 0x01; // the reset line returns high after the pulse
    if ((old ^ v) & 0x02) this.onA20?.((v & 0x02) !== 0);
    if ((v & 0x01) === 0) this.onReset?.();
  }

  private updateIrq(): void {
    const head = this.out[0];
    const ctr = this.ram[0]!;
    const aux = head !== undefined && (head.flags & I8042_STR_AUXDATA) !== 0;
    const kbd = head !== undefined && !aux && (ctr & I8042_CTR_KBDINT) !== 0;
    const auxLine = aux && (ctr & I8042_CTR_AUXINT) !== 0;
    if (kbd !== this.kbdLevel) {
      this.kbdLevel = kbd;
      this.kbdIrq.set(kbd);
    }
    if (auxLine !== this.auxLevel) {
      this.auxLevel = auxLine;
      this.auxIrq.set(auxLine);
    }
  }

  reset(): void {
    this.ram.fill(0);
    this.ram[0] = I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_XLATE;
    this.out = [];
    this.pendingCommand = 0;
    this.lastWasCommand = false;
    this.selfTested = false;
    this.outputPort = 0x03;
    this.updateIrq();
  }

  save(): I8042State {
    return {
      ram: [...this.ram],
      out: this.out.flatMap((b) => [b.data, b.flags]),
      pendingCommand: this.pendingCommand,
      lastWasCommand: this.lastWasCommand,
      selfTested: this.selfTested,
      outputPort: this.outputPort,
      kbdIrq: this.kbdLevel,
      auxIrq: this.auxLevel,
    };
  }

  restore(state: I8042State): void {
    const o = checkObject(state, "i8042");
    const ram = checkBytes(o.ram, "i8042.ram", 32);
    const out = checkBytes(o.out, "i8042.out", QUEUE_MAX * 2);
    const pendingCommand = checkInt(o.pendingCommand, "i8042.pendingCommand", 0, 0xff);
    const lastWasCommand = checkBool(o.lastWasCommand, "i8042.lastWasCommand");
    const selfTested = checkBool(o.selfTested, "i8042.selfTested");
    const outputPort = checkInt(o.outputPort, "i8042.outputPort", 0, 0xff);
    this.ram = new Uint8Array(32);
    this.ram.set(ram);
    this.out = [];
    for (let i = 0; i + 1 < out.length; i += 2) this.out.push({ data: out[i]!, flags: out[i + 1]! & 0x60 });
    this.pendingCommand = pendingCommand;
    this.lastWasCommand = lastWasCommand;
    this.selfTested = selfTested;
    this.outputPort = outputPort & 0x0f;
    this.kbdLevel = checkBool(o.kbdIrq, "i8042.kbdIrq");
    this.auxLevel = checkBool(o.auxIrq, "i8042.auxIrq");
    this.kbdIrq.set(this.kbdLevel);
    this.auxIrq.set(this.auxLevel);
    this.updateIrq();
  }
}
