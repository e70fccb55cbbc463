/**
 * The PC this project boots Linux on: RAM, the I/O and memory buses, the chipset (8259 pair,
 * 8254, RTC/CMOS, 16550 UART, port 0x61/0x80/0x92, a minimal i8042), the PCI bus with an i440FX
 * host bridge and a PIIX3 IRQ router, what firmware would leave in memory ($PIR and ACPI
 * tables, the e820 map), the CPU, and the Linux boot protocol. No firmware runs: the machine
 * loads the kernel itself and enters it in 32-bit protected mode, as a boot loader does.
 */
import { ConfigError } from "../common/errors.js";
import { FlatMemory } from "../common/memory.js";
import { Cpu } from "../cpu/cpu.js";
import { Sreg } from "../cpu/state.js";
import type { VirtioDevice } from "../devices/device.js";
import { VirtioPciTransport } from "../devices/transport/pci/transport.js";
import { attachProtectedMode } from "../cpu/protected/index.js";
import { type BootSegment, type BootState, loadLinux } from "./boot/linux.js";
import { PcChipset } from "./chipset/pc-chipset.js";
import type { Pic } from "./chipset/pic.js";
import type { SerialBackend, Uart } from "./chipset/uart.js";
import { IoBus } from "./io-bus.js";
import { MemoryBus } from "./memory-bus.js";
import type { PciBus } from "./pci/bus.js";
import { PcPlatform } from "./platform/pc.js";
import type { PciFunction } from "../pci/function.js";
import { TimerQueue } from "./timers.js";
import { ExitReason } from "../cpu/fault.js";
import { CPUID_SIGNATURE, Feature, Msr } from "../cpu/cpuid.js";
import { IOAPIC_DEFAULT_BASE, IOAPIC_VERSION } from "./apic/io-apic.js";
import { LAPIC_DEFAULT_BASE, LAPIC_VERSION } from "./apic/local-apic.js";
import { isaIrqToGsi, PcApic } from "./apic/pc-apic.js";
import type { InterruptController } from "./irq.js";
import { Flag } from "../cpu/state.js";

/** Instructions per CPU slice at most; the loop looks at timers and host I/O between slices. */
const MAX_SLICE = 200_000;
/** Host time (ms) the guest may run before the loop yields to the host's event loop. */
const YIELD_EVERY_MS = 8;
/** The longest a halted realtime machine sleeps before looking again (ms). */
const MAX_SLEEP_MS = 50;
/**
 * Realtime clock, paced: inside a CPU slice guest time advances with the instruction count at
 * `paceRate` ns per instruction (as a virtual clock does), and between slices the rate is
 * adjusted so guest time tracks the host clock (QEMU's -icount shift=auto works this way). A
 * host stall (a loaded host descheduling the machine) therefore never shows as a jump between
 * two guest reads of the TSC or the PIT, and periodic timers fire on their deadlines one by one
 * (slices end at the next deadline): Linux's boot-time checks count ticks and time loops
 * ("tsc: Unable to calibrate against PIT", "..MP-BIOS bug: 8254 timer not connected to IO-APIC",
 * "APIC timer disabled due to verification failure" all came from such jumps).
 *
 * The guest may lag the host by at most this much (ns); a longer stall is dropped (guest time
 * then runs behind the host clock by it, as a paused machine would).
 */
export const REALTIME_MAX_LAG_NS = 50_000_000;
/** The lag is closed over about this much guest time (ns). */
const REALTIME_CATCHUP_NS = 20_000_000;

export interface RunOptions {
  /** Give the host's event loop a turn (default: a zero-delay timer). */
  yieldToHost?: () => Promise<void>;
  /** Stop after this many guest instructions (tests, benchmarks). */
  maxInstructions?: number;
}

const defaultYield = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

export type ClockMode = "realtime" | "virtual";

/** Why the machine stopped. */
export type StopReason =
  | { kind: "poweroff" }
  | { kind: "reset"; cause: string }
  | { kind: "halted"; detail: string }
  | { kind: "stopped"; detail: string }
  | { kind: "error"; error: unknown };

export interface MachineConfig {
  /** RAM in bytes (16 MiB to 3 GiB, a whole number of MiB). */
  memory: number;
  /** The bzImage. */
  kernel: Uint8Array;
  /** The bzImage's payload decompressed on the host (its vmlinux ELF), to skip in-guest decompression. */
  vmlinux?: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
  /** Where COM1's output goes (nothing when absent). */
  serial?: SerialBackend;
  /** Called when COM1's receive buffer has room again after `serialReceive` refused bytes. */
  onSerialRxSpace?: () => void;
  /** How time advances (default realtime). */
  clock?: ClockMode;
  /** Virtual clock: nanoseconds per instruction (default 1). */
  nsPerInstruction?: number;
  /** ACPI tables (default true): the guest's poweroff goes through \_S5. */
  acpi?: boolean;
  /**
   * A local APIC and an I/O APIC (default true), as QEMU's `pc` machine: the CPU takes its
   * interrupts from the local APIC (the 8259 pair through LINT0 in virtual wire mode), ISA and
   * PCI INTx lines also reach the I/O APIC, virtio devices offer MSI-X (queue count + 1
   * vectors), and the firmware tables gain the MADT and an MP table. False: the 8259 pair
   * alone, and virtio devices use INTx.
   */
  apic?: boolean;
  /** Wall clock in ms since the epoch, for the RTC (default Date.now). */
  wallClock?: () => number;
  /** A monotonic host clock in ms (default performance.now). */
  hostClock?: () => number;
  /**
   * Virtio devices (built-in or user-written, anything implementing `VirtioDevice`), each on
   * its own virtio-PCI function from slot 2 up, in order: with MSI-X when the machine has an
   * APIC, INTx otherwise.
   */
  devices?: readonly VirtioDevice[];
  /** Other PCI functions to put on the bus, in the slots after the virtio devices. */
  pciFunctions?: readonly PciFunction[];
  /** Diagnostics from the platform (BAR conflicts and the like). */
  log?: (message: string) => void;
}

function segmentAttr(s: BootSegment): number {
  return s.access | ((s.flags & 0xf) << 12);
}

export class Machine {
  readonly ram: FlatMemory;
  readonly memory: MemoryBus;
  readonly io = new IoBus();
  readonly timers = new TimerQueue();
  readonly chipset: PcChipset;
  readonly pic: Pic;
  /** The local APIC and I/O APIC (null with `apic: false`). */
  readonly apic: PcApic | null;
  /** What the CPU takes interrupts from: the local APIC, or the PIC without one. */
  readonly interrupts: InterruptController;
  readonly uart: Uart;
  readonly platform: PcPlatform;
  readonly pci: PciBus;
  /** The virtio-PCI functions of `config.devices`, in order. */
  readonly transports: VirtioPciTransport[] = [];
  readonly cpu: Cpu;
  readonly boot: BootState;
  readonly clockMode: ClockMode;
  /** Set when something asked the machine to stop; the run loop returns it at the next slice. */
  private stopReason: StopReason | null = null;
  private readonly nsPerInstruction: number;
  /** Virtual time skipped while halted (ns), added to the instruction-derived time. */
  private skippedNs = 0;
  private readonly hostClock: () => number;
  private hostStart = 0;
  /** Realtime pacing: guest ns per instruction now, and host ns per instruction measured. */
  private paceRate = 50;
  private measuredRate = 50;
  /** Realtime pacing: guest time = paceBaseNs + (retired - paceBaseRetired) * paceRate. */
  private paceBaseNs = 0;
  private paceBaseRetired = 0;
  /** Realtime: host time (ns) not shown to the guest, because the guest lagged more than REALTIME_MAX_LAG_NS. */
  droppedHostNs = 0;
  private wake: (() => void) | null = null;

  constructor(readonly config: MachineConfig) {
    if (!(config.kernel instanceof Uint8Array))
      throw new ConfigError("machine: kernel must be the bzImage's bytes");
    this.clockMode = config.clock ?? "realtime";
    this.nsPerInstruction = config.nsPerInstruction ?? 1;
    this.hostClock = config.hostClock ?? (() => performance.now());
    this.ram = new FlatMemory(config.memory);
    this.memory = new MemoryBus(this.ram);
    const withApic = config.apic !== false;

    this.chipset = new PcChipset({
      clock: this.timers,
      memorySize: config.memory,
      serial: config.serial,
      onSerialRxSpace: config.onSerialRxSpace,
      wallClock: config.wallClock,
      onReset: () => this.requestStop({ kind: "reset", cause: "reset through the i8042 or port 0x92" }),
      onIntrChange: (level) => level && this.interruptRaised(),
      isaIrqTap: withApic ? { setIrq: (irq, level) => this.apic?.setIrq(irq, level) } : undefined,
    });
    this.chipset.register(this.io);
    this.pic = this.chipset.pic;
    this.apic = withApic
      ? new PcApic({
          memory: this.memory,
          timers: this.timers,
          pic: this.pic,
          nmi: () => {
            this.cpu.nmi();
            this.interruptRaised();
          },
          onInterrupt: () => this.interruptRaised(),
          log: config.log,
        })
      : null;
    this.interrupts = this.apic?.lapic ?? this.pic;
    this.uart = this.chipset.com1;
    this.platform = new PcPlatform({
      io: this.io,
      memory: this.memory,
      irq: this.chipset.isaIrqs,
      onReset: () => this.requestStop({ kind: "reset", cause: "reset through port 0xCF9" }),
      onPowerOff: () => this.requestStop({ kind: "poweroff" }),
      log: config.log,
    });
    this.pci = this.platform.bus;
    let slot = 2;
    for (const device of config.devices ?? []) {
      const fn = new VirtioPciTransport(device, {
        memory: this.ram,
        log: config.log,
        name: device.name,
        // with a local APIC: queue count + 1 MSI-X vectors (the default); without: no MSI-X
        // capability, so drivers use INTx
        msixVectors: this.apic ? undefined : 0,
        msiTarget: this.apic?.lapic,
      });
      this.transports.push(fn);
      this.pci.add(fn, slot++);
    }
    for (const fn of config.pciFunctions ?? []) this.pci.add(fn, slot++);

    this.cpu = new Cpu({
      memory: this.memory,
      io: this.io,
      interrupts: this.interrupts,
      clockNs: () => this.timers.now(),
    });
    attachProtectedMode(this.cpu);
    if (this.apic) {
      this.cpu.cpuid.features |= Feature.APIC;
      this.cpu.cpuid.msrHandlers.set(Msr.APIC_BASE, this.apic.apicBaseMsr());
    } else {
      this.cpu.cpuid.features &= ~Feature.APIC;
    }

    const fw = this.platform.firmware({
      acpi: config.acpi !== false,
      apic: this.apic
        ? {
            localApicAddress: LAPIC_DEFAULT_BASE,
            localApicVersion: LAPIC_VERSION & 0xff,
            ioApicId: 0,
            ioApicVersion: IOAPIC_VERSION & 0xff,
            ioApicAddress: IOAPIC_DEFAULT_BASE,
            cpuSignature: CPUID_SIGNATURE,
            cpuFeatures: this.cpu.cpuid.features,
            isaIrqToPin: isaIrqToGsi,
          }
        : undefined,
    });
    this.boot = loadLinux(this.ram, {
      kernel: config.kernel,
      vmlinux: config.vmlinux,
      initrd: config.initrd,
      cmdline: config.cmdline,
      e820: fw.e820,
      acpiRsdp: fw.tables.acpi?.rsdp,
    });
    this.enter(this.boot);
    this.hostStart = this.hostClock();
    this.timers.setSource(() => this.timeSource());
  }

  /** Loads the CPU with the boot loader's entry state. */
  private enter(b: BootState): void {
    const cpu = this.cpu;
    const order: [number, BootSegment][] = [
      [Sreg.ES, b.es],
      [Sreg.CS, b.cs],
      [Sreg.SS, b.ss],
      [Sreg.DS, b.ds],
      [Sreg.FS, b.fs],
      [Sreg.GS, b.gs],
    ];
    cpu.cr0 = b.cr0;
    for (const [sreg, s] of order) cpu.setSegmentCache(sreg, s.selector, s.base, s.limit, segmentAttr(s));
    cpu.gdtrBase = b.gdt.base;
    cpu.gdtrLimit = b.gdt.limit;
    cpu.idtrBase = b.idt.base;
    cpu.idtrLimit = b.idt.limit;
    const regs = [b.eax, b.ecx, b.edx, b.ebx, b.esp, b.ebp, b.esi, b.edi];
    for (let i = 0; i < 8; i++) cpu.r32[i] = regs[i]! >>> 0;
    cpu.setEflags(b.eflags);
    cpu.eip = b.eip >>> 0;
    cpu.cpl = 0;
    cpu.invalidateFetch();
  }

  private timeSource(): number {
    if (this.clockMode === "virtual") return this.cpu.retired * this.nsPerInstruction + this.skippedNs;
    return this.paceBaseNs + (this.cpu.retired - this.paceBaseRetired) * this.paceRate;
  }

  /** Realtime: the host clock as guest ns, with a lag beyond REALTIME_MAX_LAG_NS dropped. */
  private hostNs(guestNow: number): number {
    const host = (this.hostClock() - this.hostStart) * 1e6;
    if (host - guestNow <= REALTIME_MAX_LAG_NS) return host;
    this.droppedHostNs += host - guestNow - REALTIME_MAX_LAG_NS;
    this.hostStart += (host - guestNow - REALTIME_MAX_LAG_NS) / 1e6;
    return guestNow + REALTIME_MAX_LAG_NS;
  }

  /**
   * Realtime, after a slice that ran `ran` instructions in `hostMs`: continues guest time from
   * where it is at a new rate, the measured host rate corrected to close the lag (or lead).
   */
  private repace(ran: number, hostMs: number): void {
    const now = this.timers.now();
    this.paceBaseNs = now;
    this.paceBaseRetired = this.cpu.retired;
    if (ran > 0 && hostMs > 0) this.measuredRate = 0.8 * this.measuredRate + (0.2 * hostMs * 1e6) / ran;
    const lag = this.hostNs(now) - now;
    const k = Math.max(0.25, Math.min(4, 1 + lag / REALTIME_CATCHUP_NS));
    this.paceRate = Math.max(0.01, Math.min(1e6, this.measuredRate * k));
  }

  /** Realtime, after the CPU sat halted: guest time jumps to the host's (no instruction ran meanwhile). */
  private catchUp(): void {
    if (this.clockMode !== "realtime") return;
    const now = this.timers.now();
    this.paceBaseNs = Math.max(now, this.hostNs(now));
    this.paceBaseRetired = this.cpu.retired;
  }

  private interruptRaised(): void {
    this.cpu.notifyInterrupt();
    this.wake?.();
  }

  /** Asks the run loop to stop with `reason` (the first request wins). */
  requestStop(reason: StopReason): void {
    if (this.stopReason === null) this.stopReason = reason;
    this.wake?.();
  }

  /**
   * Runs the guest until it stops: power-off, reset, a CPU halted with interrupts off, or
   * `requestStop`. The CPU runs in slices; between slices due timers fire, and the host's event
   * loop gets a turn every few milliseconds, so host I/O flows while the guest runs. A halted
   * CPU skips ahead to the next timer (virtual clock) or sleeps until it (realtime).
   */
  async run(options: RunOptions = {}): Promise<StopReason> {
    const yieldToHost = options.yieldToHost ?? defaultYield;
    const limit = options.maxInstructions ?? Number.POSITIVE_INFINITY;
    const cpu = this.cpu;
    const timers = this.timers;
    this.hostStart = this.hostClock() - timers.now() / 1e6;
    this.paceBaseNs = timers.now();
    this.paceBaseRetired = cpu.retired;
    let lastYield = this.hostClock();
    try {
      while (this.stopReason === null) {
        timers.runDue(timers.now());
        if (cpu.instructions >= limit)
          return { kind: "stopped", detail: `instruction limit ${limit} reached` };
        let budget = Math.min(MAX_SLICE, limit - cpu.instructions);
        const rate = this.clockMode === "virtual" ? this.nsPerInstruction : this.paceRate;
        // end the slice at the next timer deadline, so each tick is delivered on time
        const ahead = (timers.nextDeadline() - timers.now()) / rate;
        budget = Math.max(1, Math.min(budget, Math.ceil(ahead)));
        const sliceStart = this.hostClock();
        const before = cpu.instructions;
        const exit = cpu.run(budget);
        if (this.clockMode === "realtime")
          this.repace(cpu.instructions - before, this.hostClock() - sliceStart);
        if (exit === ExitReason.SHUTDOWN) {
          this.requestStop({ kind: "reset", cause: "triple fault" });
          break;
        }
        if (exit === ExitReason.HLT && !this.interrupts.hasInterrupt()) {
          const deadline = timers.nextDeadline();
          if ((cpu.getEflags() & Flag.IF) === 0) {
            this.requestStop({ kind: "halted", detail: "the CPU halted with interrupts disabled" });
            break;
          }
          if (this.clockMode === "virtual" && deadline !== Number.POSITIVE_INFINITY) {
            // Let finished host work (backend I/O) complete first; while a device still waits
            // for the host, wait in host time instead of skipping guest time ahead.
            await yieldToHost();
            lastYield = this.hostClock();
            if (this.interrupts.hasInterrupt() || this.stopReason !== null) continue;
            if (this.transports.some((t) => t.device.hostBusy?.() === true)) {
              await this.sleep(1);
              continue;
            }
            const now = timers.now();
            if (deadline > now) this.skippedNs += deadline - now;
            continue;
          }
          const waitMs =
            deadline === Number.POSITIVE_INFINITY
              ? MAX_SLEEP_MS
              : Math.min(MAX_SLEEP_MS, Math.max(0, (deadline - timers.now()) / 1e6));
          await this.sleep(waitMs);
          this.catchUp();
          lastYield = this.hostClock();
          continue;
        }
        const t = this.hostClock();
        if (t - lastYield >= YIELD_EVERY_MS) {
          await yieldToHost();
          lastYield = this.hostClock();
        }
      }
    } catch (error) {
      return { kind: "error", error };
    }
    return this.stopReason ?? { kind: "stopped", detail: "stopped" };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  /** Offers host input to COM1. Returns how many bytes it took (the rest: wait for onSerialRxSpace). */
  serialReceive(bytes: Uint8Array): number {
    const n = this.uart.receive(bytes);
    this.kick();
    return n;
  }

  /** Wakes a run loop that is waiting for a timer or host input. */
  kick(): void {
    this.wake?.();
  }
}
