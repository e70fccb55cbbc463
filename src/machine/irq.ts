/**
 * Interrupt wiring. A device drives a line; an interrupt controller (the 8259 pair, later an
 * IOAPIC/LAPIC) turns lines into vectors; the CPU asks the controller at instruction
 * boundaries when IF is set.
 */

/** One interrupt request line as a device sees it. Level-triggered lines stay high until lowered. */
export interface IrqLine {
  set(level: boolean): void;
}

/** Where numbered lines go (the PIC pair's inputs 0-15, or an IOAPIC's). */
export interface IrqSink {
  setIrq(irq: number, level: boolean): void;
}

/** What the CPU sees of the interrupt controller. */
export interface InterruptController {
  /** True when an unmasked request is pending for the CPU (the INTR pin). */
  hasInterrupt(): boolean;
  /** The INTA cycle: returns the vector and moves the request to in-service. */
  acknowledge(): number;
}

/** A line bound to one input of a sink. */
export function irqLine(sink: IrqSink, irq: number): IrqLine {
  return { set: (level) => sink.setIrq(irq, level) };
}
