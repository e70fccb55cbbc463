/**
 * The legacy PC chipset wired as on an AT-compatible machine: the 8259A pair, the 8254 and
 * port 0x61 on IRQ 0, the i8042 on IRQ 1 and 12, COM1 on IRQ 4, the RTC on IRQ 8, port 0x80
 * and port 0x92. One object to build, register, reset and snapshot them together.
 */
import type { Persist, Resettable } from "../../common/persist.js";
import type { IoBus } from "../io-bus.js";
import { type IrqSink, irqLine } from "../irq.js";
import type { TimerQueue } from "../timers.js";
import { I8042, type I8042State } from "./i8042.js";
import { Pic, type PicState } from "./pic.js";
import { Pit, type PitState } from "./pit.js";
import { PortA, type PortAState, PostPort, type PostPortState } from "./ports.js";
import { Rtc, type RtcState } from "./rtc.js";
import { type SerialBackend, Uart, type UartState } from "./uart.js";
import { checkObject } from "./util.js";

export const ISA_IRQ = {
  PIT: 0,
  KEYBOARD: 1,
  COM1: 4,
  RTC: 8,
  MOUSE: 12,
} as const;

export interface PcChipsetOptions {
  clock: TimerQueue;
  /** Guest RAM size in bytes (CMOS memory size bytes). */
  memorySize: number;
  /** COM1 output. */
  serial?: SerialBackend;
  /** Called when COM1's receive buffer has room again after refusing input. */
  onSerialRxSpace?: () => void;
  /** Wall clock for the RTC, ms since the epoch (default `Date.now`). */
  wallClock?: () => number;
  /** A guest reset request (i8042 pulse, port 0x92 bit 0). */
  onReset?: () => void;
  /** A20 gate changes (port 0x92 or the i8042 output port). */
  onA20?: (enabled: boolean) => void;
  /** The CPU's INTR pin changed. */
  onIntrChange?: (level: boolean) => void;
  /**
   * A second receiver of every ISA IRQ besides the PIC pair (the I/O APIC, which maps IRQs
   * to its pins itself). Absent: the PIC alone.
   */
  isaIrqTap?: IrqSink;
}

export interface PcChipsetState {
  pic: PicState;
  pit: PitState;
  rtc: RtcState;
  com1: UartState;
  i8042: I8042State;
  post: PostPortState;
  portA: PortAState;
}

export class PcChipset implements Persist<PcChipsetState>, Resettable {
  readonly pic: Pic;
  readonly pit: Pit;
  readonly rtc: Rtc;
  readonly com1: Uart;
  readonly i8042: I8042;
  readonly post: PostPort;
  readonly portA: PortA;
  /** The ISA IRQ lines 0-15: the PIC pair, and `isaIrqTap` when given. PCI INTx routes land here too. */
  readonly isaIrqs: IrqSink;

  constructor(o: PcChipsetOptions) {
    const pic = new Pic({ onIntrChange: o.onIntrChange });
    this.pic = pic;
    const tap = o.isaIrqTap;
    this.isaIrqs =
      tap === undefined
        ? pic
        : {
            setIrq: (irq, level) => {
              pic.setIrq(irq, level);
              tap.setIrq(irq, level);
            },
          };
    this.pit = new Pit({ clock: o.clock, irq: irqLine(this.isaIrqs, ISA_IRQ.PIT) });
    this.rtc = new Rtc({
      clock: o.clock,
      irq: irqLine(this.isaIrqs, ISA_IRQ.RTC),
      wallClock: o.wallClock,
      memorySize: o.memorySize,
    });
    this.com1 = new Uart({
      clock: o.clock,
      irq: irqLine(this.isaIrqs, ISA_IRQ.COM1),
      base: 0x3f8,
      backend: o.serial,
      onRxSpace: o.onSerialRxSpace,
      name: "com1",
    });
    this.i8042 = new I8042({
      kbdIrq: irqLine(this.isaIrqs, ISA_IRQ.KEYBOARD),
      auxIrq: irqLine(this.isaIrqs, ISA_IRQ.MOUSE),
      onReset: o.onReset,
      onA20: o.onA20,
    });
    this.post = new PostPort();
    this.portA = new PortA({ onReset: o.onReset, onA20: o.onA20 });
  }

  /** Claims every port of the chipset on `io`. */
  register(io: IoBus): void {
    this.pic.register(io);
    this.pit.register(io);
    this.rtc.register(io);
    this.com1.register(io);
    this.i8042.register(io);
    this.post.register(io);
    this.portA.register(io);
  }

  /** Machine reset. The RTC keeps its time and CMOS RAM (battery-backed). */
  reset(): void {
    this.pit.reset();
    this.rtc.reset();
    this.com1.reset();
    this.i8042.reset();
    this.post.reset();
    this.portA.reset();
    this.pic.reset();
  }

  save(): PcChipsetState {
    return {
      pic: this.pic.save(),
      pit: this.pit.save(),
      rtc: this.rtc.save(),
      com1: this.com1.save(),
      i8042: this.i8042.save(),
      post: this.post.save(),
      portA: this.portA.save(),
    };
  }

  /** Restores every part; the PIC last, so it ends with the restored latches. */
  restore(state: PcChipsetState): void {
    const o = checkObject(state, "chipset");
    this.pit.restore(o.pit as PitState);
    this.rtc.restore(o.rtc as RtcState);
    this.com1.restore(o.com1 as UartState);
    this.i8042.restore(o.i8042 as I8042State);
    this.post.restore(o.post as PostPortState);
    this.portA.restore(o.portA as PortAState);
    this.pic.restore(o.pic as PicState);
  }
}
