/**
 * The APIC side of a uniprocessor PC, as QEMU's `pc` machine wires it: one local APIC (ID 0)
 * and one I/O APIC (ID 0, 0xFEC00000, GSIs 0-23) on the same APIC bus. The ISA IRQs reach the
 * I/O APIC besides the 8259 pair: IRQ 0 (the PIT) on pin 2, every other IRQ on the pin of its
 * number (pin 0 stays unconnected: the 8259 reaches the CPU through LINT0 instead). PCI INTx
 * lines arrive on the pins of the ISA IRQs their PIRQ routes name, so the ACPI _PRT (static
 * GSIs = those IRQs) and the MP table describe the same wiring in PIC and APIC mode.
 */
import type { MsrHandler } from "../../cpu/cpuid.js";
import type { InterruptController, IrqSink } from "../irq.js";
import type { MemoryBus } from "../memory-bus.js";
import type { TimerQueue } from "../timers.js";
import { IOAPIC_DEFAULT_BASE, IoApic, type IoApicState } from "./io-apic.js";
import { LocalApic, type LocalApicState } from "./local-apic.js";

/** The I/O APIC pin ISA IRQ `irq` drives (ACPI MADT interrupt source override IRQ0 -> GSI2). */
export function isaIrqToGsi(irq: number): number {
  if (irq === 0) return 2;
  if (irq === 2) return 9; // the ISA bus's IRQ2 pin is IRQ 9 on an AT, as in the PIC
  return irq;
}

export interface PcApicOptions {
  memory: MemoryBus;
  timers: TimerQueue;
  /** The 8259 pair (LINT0 in ExtINT mode). */
  pic: InterruptController;
  /** The CPU's NMI input. */
  nmi: () => void;
  /** Something may have become deliverable: the CPU should look (and a halted loop wake). */
  onInterrupt: () => void;
  log?: (message: string) => void;
}

export interface PcApicState {
  lapic: LocalApicState;
  ioapic: IoApicState;
}

export class PcApic implements IrqSink {
  readonly lapic: LocalApic;
  readonly ioapic: IoApic;
  private readonly memory: MemoryBus;
  private lapicMapped = -1;
  private readonly log: ((message: string) => void) | undefined;

  constructor(o: PcApicOptions) {
    this.memory = o.memory;
    this.log = o.log;
    this.lapic = new LocalApic({
      timers: o.timers,
      pic: o.pic,
      nmi: o.nmi,
      onInterrupt: o.onInterrupt,
      onEoi: (vector) => this.ioapic.eoi(vector),
      onBaseChange: (base) => this.mapLapic(base),
      log: o.log,
    });
    this.ioapic = new IoApic(
      {
        deliverMessage: (dest, logical, vector, mode, level) =>
          this.lapic.matchesDestination(dest, logical) && this.lapic.deliver(vector, mode, level),
      },
      o.log,
    );
    this.memory.addMmio(IOAPIC_DEFAULT_BASE, 0x1000, this.ioapic, "ioapic");
    this.mapLapic(this.lapic.mmioBase);
  }

  /** ISA IRQ `irq` (0-15) changed: the I/O APIC's pin for it follows. */
  setIrq(irq: number, level: boolean): void {
    this.ioapic.setIrq(isaIrqToGsi(irq), level);
  }

  /** IA32_APIC_BASE for the CPU's MSR table. */
  apicBaseMsr(): MsrHandler {
    return {
      read: (out) => {
        out[0] = this.lapic.apicBase;
        out[1] = 0;
      },
      write: (lo, hi) => this.lapic.writeApicBase(lo, hi),
    };
  }

  /** Moves the local APIC's register page (or unmaps it: base -1). A clash with another range is logged and leaves it unmapped. */
  private mapLapic(base: number): void {
    if (this.lapicMapped === base) return;
    if (this.lapicMapped >= 0) this.memory.removeMmio(this.lapicMapped);
    this.lapicMapped = -1;
    if (base < 0) return;
    try {
      this.memory.addMmio(base, 0x1000, this.lapic, "lapic");
      this.lapicMapped = base;
    } catch (e) {
      this.log?.(`lapic: cannot map the register page at 0x${base.toString(16)}: ${(e as Error).message}`);
    }
  }

  reset(): void {
    this.lapic.reset();
    this.ioapic.reset();
  }

  save(): PcApicState {
    return { lapic: this.lapic.save(), ioapic: this.ioapic.save() };
  }

  restore(state: PcApicState): void {
    this.lapic.restore(state.lapic);
    this.ioapic.restore(state.ioapic);
  }
}
