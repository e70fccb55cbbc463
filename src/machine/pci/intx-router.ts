import { ConfigError } from "../../common/errors.js";
import type { IntxLine } from "../../pci/function.js";
import type { IrqSink } from "../irq.js";

/**
 * The PIRQ line (0 = PIRQA .. 3 = PIRQD) that INTx pin `pin` (1 = INTA# .. 4 = INTD#) of a
 * function in slot `device` is wired to on bus 0: the usual rotation by slot, as QEMU's PIIX
 * board wires it (slot 1 INTA# -> PIRQA, slot 2 INTA# -> PIRQB, ...). The $PIR table is built
 * from the same function, so what the kernel reads matches the wiring.
 */
export function swizzlePirq(device: number, pin: number): number {
  return (pin - 1 + device - 1) & 3;
}

/** Where a PIRQ line goes: an IRQ number 0..15, or -1 (not routed). */
export type PirqRouteSource = (pirq: number) => number;

/**
 * PCI INTx routing: each function's INTx pin drives one of the four PIRQ lines (swizzled by
 * slot); the PIIX3 route registers steer each PIRQ line to a PIC input. Lines are
 * level-triggered and shared: a PIRQ is high while any function on it asserts, and a PIC input
 * is high while any PIRQ routed to it is high. The sink only hears about changes.
 */
export class PciIntxRouter {
  private readonly pirqCount = [0, 0, 0, 0];
  private readonly out = new Array<boolean>(16).fill(false);

  constructor(
    private readonly sink: IrqSink,
    private readonly routeOf: PirqRouteSource,
  ) {}

  /** A line for INTx pin `pin` of a function in slot `device`. */
  lineFor(device: number, pin: number): IntxLine {
    if (!Number.isInteger(pin) || pin < 1 || pin > 4)
      throw new ConfigError(`INTx pin must be 1..4, got ${pin}`);
    const pirq = swizzlePirq(device, pin);
    let level = false;
    return {
      set: (l: boolean) => {
        if (l === level) return;
        level = l;
        this.pirqCount[pirq]! += l ? 1 : -1;
        this.update();
      },
    };
  }

  /** True while some function asserts PIRQ `pirq`. */
  pirqLevel(pirq: number): boolean {
    return this.pirqCount[pirq & 3]! > 0;
  }

  /** The level this router drives on IRQ `irq`. */
  irqLevel(irq: number): boolean {
    return this.out[irq] ?? false;
  }

  /** Recomputes the PIC inputs (after a level or a route change) and tells the sink what changed. */
  update(): void {
    const want = new Array<boolean>(16).fill(false);
    for (let p = 0; p < 4; p++) {
      if (this.pirqCount[p]! === 0) continue;
      const irq = this.routeOf(p);
      if (irq >= 0 && irq < 16) want[irq] = true;
    }
    // lower before raising, so a moved route never shows two inputs high at once needlessly
    for (let irq = 0; irq < 16; irq++) {
      if (this.out[irq] && !want[irq]) {
        this.out[irq] = false;
        this.sink.setIrq(irq, false);
      }
    }
    for (let irq = 0; irq < 16; irq++) {
      if (!this.out[irq] && want[irq]) {
        this.out[irq] = true;
        this.sink.setIrq(irq, true);
      }
    }
  }
}
