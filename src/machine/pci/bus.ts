import { ConfigError, hex } from "../../common/errors.js";
import type { Persist } from "../../common/persist.js";
import type { BarInfo, PciAccessSize, PciFunction, PciFunctionState } from "../../pci/function.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";
import type { IrqSink } from "../irq.js";
import type { MemoryBus } from "../memory-bus.js";
import { createI440fxHostBridge, DEFAULT_PIRQ_ROUTES, Piix3IsaBridge } from "./chipset.js";
import { PciIntxRouter, swizzlePirq } from "./intx-router.js";

/** Configuration mechanism #1 ports. */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;
/** PIIX3 Reset Control Register: a byte at 0xCF9, inside the CONFIG_ADDRESS dword. */
export const PIIX3_RCR_PORT = 0xcf9;
/** RCR bit 1: system reset (1 = hard reset of the whole machine, 0 = soft reset / INIT). */
export const RCR_SYS_RST = 0x02;
/** RCR bit 2: reset CPU; writing 1 starts the reset that bit 1 selects. */
export const RCR_RST_CPU = 0x04;
/** RCR bit 3 (PIIX4 and later, accepted here): full reset. */
export const RCR_FULL_RST = 0x08;
/** CONFIG_ADDRESS bit 31: enable configuration space mapping. */
export const CONFIG_ADDRESS_ENABLE = 0x8000_0000;

/** The i440FX host bridge's slot and the PIIX3's (their devfn are 0x00 and 0x08). */
export const HOST_BRIDGE_DEVICE = 0;
export const ISA_BRIDGE_DEVICE = 1;

export interface PciBusOptions {
  io: IoBus;
  memory: MemoryBus;
  /** Where PCI INTx lines end up (the 8259 pair). */
  irq: IrqSink;
  /** PIRQRC[A:D] as a BIOS would leave them. Default 10, 10, 11, 11. */
  pirqRoutes?: readonly number[];
  /** A guest reset through port 0xCF9: `hard` when RCR bit 1 (or 3) was set with bit 2. */
  onReset?: (hard: boolean) => void;
  /** Where BAR conflicts are reported (the first 16, then a note that more are only counted). */
  log?: (message: string) => void;
}

export interface PciSlot {
  device: number;
  func: number;
  fn: PciFunction;
}

export interface PciBusState {
  configAddress: number;
  rcr: number;
  hostBridge: PciFunctionState;
  isaBridge: PciFunctionState;
}

interface Mapping {
  fn: PciFunction;
  bar: BarInfo;
  address: number;
}

const ONES = [0, 0xff, 0xffff, 0, 0xffff_ffff] as const;
const MAX_LOGGED_CONFLICTS = 16;

function bdf(device: number, func: number): string {
  return `00:${hex(device, 2)}.${func}`;
}

/**
 * PCI bus 0 of an i440FX/PIIX3 PC: the functions by device and function number, configuration
 * mechanism #1 on ports 0xCF8 (CONFIG_ADDRESS, dword) and 0xCFC-0xCFF (CONFIG_DATA, any width,
 * the low two port bits added to the register offset), the PIIX3 reset control register at
 * 0xCF9 (byte), and the glue to the machine: a BAR that starts or stops decoding, or moves, is
 * unmapped from / mapped on the `MemoryBus` or `IoBus`; INTx pins go through the PIIX3 PIRQ
 * routes to the `IrqSink`.
 *
 * A BAR that would overlap another range (or RAM) is left unmapped, counted in `barConflicts`
 * and logged once; it is mapped as soon as a later move frees its place.
 */
export class PciBus implements Persist<PciBusState> {
  readonly hostBridge: PciFunction;
  readonly isaBridge: Piix3IsaBridge;
  readonly router: PciIntxRouter;
  /** BARs that could not be mapped where the guest put them. */
  barConflicts = 0;
  /** The most recent conflict messages (up to 16). */
  readonly conflictLog: string[] = [];
  /** Accesses to 0xCF8-0xCFB that are neither a dword at 0xCF8 nor a byte at 0xCF9. */
  strayAccesses = 0;
  /** The buses BARs are mapped on. */
  readonly io: IoBus;
  readonly memory: MemoryBus;
  private readonly slots = new Map<number, PciFunction>();
  private readonly mapped = new Map<BarInfo, Mapping>();
  private readonly pending = new Map<BarInfo, Mapping>();
  private readonly onReset: ((hard: boolean) => void) | undefined;
  private readonly log: ((message: string) => void) | undefined;
  private configAddress = 0;
  private rcr = 0;
  private readonly listener = (
    fn: PciFunction,
    bar: BarInfo,
    _old: number | null,
    now: number | null,
  ): void => this.barMoved(fn, bar, now);

  constructor(options: PciBusOptions) {
    this.io = options.io;
    this.memory = options.memory;
    this.onReset = options.onReset;
    this.log = options.log;
    this.hostBridge = createI440fxHostBridge();
    this.isaBridge = new Piix3IsaBridge(options.pirqRoutes ?? DEFAULT_PIRQ_ROUTES);
    this.router = new PciIntxRouter(options.irq, (p) => this.isaBridge.routedIrq(p));
    this.isaBridge.onRoutesChanged = () => this.router.update();
    this.add(this.hostBridge, HOST_BRIDGE_DEVICE, 0);
    this.add(this.isaBridge, ISA_BRIDGE_DEVICE, 0);
    const addressPorts: IoHandler = {
      ioRead: (port, size) => this.addressRead(port, size),
      ioWrite: (port, size, value) => this.addressWrite(port, size, value),
    };
    const dataPorts: IoHandler = {
      ioRead: (port, size) => this.dataRead(port, size),
      ioWrite: (port, size, value) => this.dataWrite(port, size, value),
    };
    this.io.register(PCI_CONFIG_ADDRESS_PORT, 4, addressPorts, "PCI CONFIG_ADDRESS / PIIX3 RCR");
    this.io.register(PCI_CONFIG_DATA_PORT, 4, dataPorts, "PCI CONFIG_DATA");
  }

  /** Puts `fn` at 00:device.func. Its BARs are mapped whenever they decode; its INTx pin is wired. */
  add(fn: PciFunction, device: number, func = 0): void {
    if (
      !Number.isInteger(device) ||
      device < 0 ||
      device > 31 ||
      !Number.isInteger(func) ||
      func < 0 ||
      func > 7
    ) {
      throw new ConfigError(`PCI slot ${device}.${func} is invalid: device 0..31, function 0..7`);
    }
    const devfn = (device << 3) | func;
    const taken = this.slots.get(devfn);
    if (taken) throw new ConfigError(`PCI slot ${bdf(device, func)} already holds ${taken.name}`);
    for (const f of this.slots.values()) {
      if (f === fn) throw new ConfigError(`PCI function ${fn.name} is already on the bus`);
    }
    this.slots.set(devfn, fn);
    fn.addBarListener(this.listener);
    if (fn.interruptPin !== 0) fn.connectIntx(this.router.lineFor(device, fn.interruptPin));
    // several functions in a slot: function 0 says so, or the kernel never looks past it
    const fn0 = this.slots.get(device << 3);
    if (fn0 && [...this.slots.keys()].some((k) => k >> 3 === device && (k & 7) !== 0))
      fn0.setMultiFunction(true);
    for (const bar of fn.bars()) {
      const at = fn.decodedAddress(bar.index);
      if (at !== null) this.barMoved(fn, bar, at);
    }
  }

  functionAt(device: number, func = 0): PciFunction | undefined {
    return this.slots.get(((device & 31) << 3) | (func & 7));
  }

  /** Every function, in device/function order. */
  functions(): PciSlot[] {
    return [...this.slots.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([devfn, fn]) => ({ device: devfn >> 3, func: devfn & 7, fn }));
  }

  /** Where a function sits, or undefined. */
  slotOf(fn: PciFunction): { device: number; func: number } | undefined {
    for (const [devfn, f] of this.slots) if (f === fn) return { device: devfn >> 3, func: devfn & 7 };
    return undefined;
  }

  /** The IRQ a function's INTx pin reaches through the current PIIX3 routes, or -1. */
  irqOf(fn: PciFunction): number {
    const slot = this.slotOf(fn);
    if (!slot || fn.interruptPin === 0) return -1;
    return this.isaBridge.routedIrq(swizzlePirq(slot.device, fn.interruptPin));
  }

  /**
   * Bit n set when a PIRQ line is routed to IRQ n now: the ELCR bits a BIOS sets level-triggered
   * (write the low byte to port 0x4D0 and the high byte to 0x4D1, or-ed with what is there).
   */
  routedIrqMask(): number {
    let mask = 0;
    for (let p = 0; p < 4; p++) {
      const irq = this.isaBridge.routedIrq(p);
      if (irq >= 0) mask |= 1 << irq;
    }
    return mask;
  }

  /** Where BAR `bar` of `fn` is mapped on the machine's buses now, or null. */
  mappedAddress(bar: BarInfo): number | null {
    return this.mapped.get(bar)?.address ?? null;
  }

  // ---- configuration mechanism #1 ----------------------------------------------------------

  private addressRead(port: number, size: AccessSize): number {
    if (port === PCI_CONFIG_ADDRESS_PORT && size === 4) return this.configAddress;
    if (port === PIIX3_RCR_PORT && size === 1) return this.rcr;
    this.strayAccesses++;
    return ONES[size];
  }

  private addressWrite(port: number, size: AccessSize, value: number): void {
    if (port === PCI_CONFIG_ADDRESS_PORT && size === 4) {
      // bits 30:24 reserved and 1:0 fixed at 0 (type 0 / type 1 select is by bus number)
      this.configAddress = (value & 0x80ff_fffc) >>> 0;
      return;
    }
    if (port === PIIX3_RCR_PORT && size === 1) {
      this.rcr = value & (RCR_SYS_RST | RCR_FULL_RST);
      if (value & RCR_RST_CPU) this.onReset?.((value & (RCR_SYS_RST | RCR_FULL_RST)) !== 0);
      return;
    }
    this.strayAccesses++;
  }

  /** The function and register CONFIG_ADDRESS selects for a data port access, or undefined. */
  private selected(port: number): { fn: PciFunction; offset: number } | undefined {
    const a = this.configAddress;
    if (!(a & CONFIG_ADDRESS_ENABLE)) return undefined;
    if ((a >>> 16) & 0xff) return undefined; // only bus 0 exists
    const fn = this.slots.get((a >>> 8) & 0xff);
    if (!fn) return undefined;
    return { fn, offset: (a & 0xfc) + (port & 3) };
  }

  private dataRead(port: number, size: AccessSize): number {
    const s = this.selected(port);
    return s ? s.fn.configRead(s.offset, size as PciAccessSize) : ONES[size];
  }

  private dataWrite(port: number, size: AccessSize, value: number): void {
    const s = this.selected(port);
    s?.fn.configWrite(s.offset, size as PciAccessSize, value);
  }

  /** Configuration read as the guest would do it through mechanism #1 (for firmware and tests). */
  configRead(device: number, func: number, offset: number, size: PciAccessSize): number {
    const fn = this.functionAt(device, func);
    return fn ? fn.configRead(offset, size) : ONES[size];
  }

  configWrite(device: number, func: number, offset: number, size: PciAccessSize, value: number): void {
    this.functionAt(device, func)?.configWrite(offset, size, value);
  }

  // ---- BAR mapping -------------------------------------------------------------------------

  private barMoved(fn: PciFunction, bar: BarInfo, now: number | null): void {
    const old = this.mapped.get(bar);
    if (old) {
      if (bar.kind === "io") this.io.unregister(old.address);
      else this.memory.removeMmio(old.address);
      this.mapped.delete(bar);
    }
    this.pending.delete(bar);
    if (now !== null) {
      const problem = this.tryMap({ fn, bar, address: now });
      if (problem) {
        this.barConflicts++;
        const slot = this.slotOf(fn);
        const msg = `PCI ${slot ? bdf(slot.device, slot.func) : "?"} ${fn.name} ${bar.name} not mapped at 0x${hex(now)}: ${problem}`;
        this.conflictLog.push(msg);
        if (this.conflictLog.length > 16) this.conflictLog.shift();
        // a guest that keeps doing it cannot flood the host's log
        if (this.barConflicts <= MAX_LOGGED_CONFLICTS) this.log?.(msg);
        else if (this.barConflicts === MAX_LOGGED_CONFLICTS + 1)
          this.log?.("PCI: further BAR conflicts are counted, not logged");
      }
    }
    if (old) this.retryPending();
  }

  /** Maps a BAR; returns null, or why it could not (and remembers it for a retry). */
  private tryMap(m: Mapping): string | null {
    const { fn, bar, address } = m;
    const slot = this.slotOf(fn);
    const name = `${fn.name} ${bar.name} (${slot ? bdf(slot.device, slot.func) : "?"})`;
    try {
      if (bar.kind === "io") {
        const h = bar.handler;
        this.io.register(
          address,
          bar.size,
          {
            ioRead: (port, size) => h.mmioRead(port - address, size),
            ioWrite: (port, size, value) => h.mmioWrite(port - address, size, value),
          },
          name,
        );
      } else {
        if (address < this.memory.ram.size) {
          throw new ConfigError(`it overlaps RAM (0-0x${hex(this.memory.ram.size - 1)})`);
        }
        this.memory.addMmio(address, bar.size, bar.handler, name);
      }
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      this.pending.set(bar, m);
      return e.message;
    }
    this.mapped.set(bar, m);
    return null;
  }

  private retryPending(): void {
    for (const m of [...this.pending.values()]) {
      this.pending.delete(m.bar);
      if (m.fn.decodedAddress(m.bar.index) === m.address) this.tryMap(m);
    }
  }

  // ---- reset and state ---------------------------------------------------------------------

  /** Machine reset: every function back to power-on values (decode off), CONFIG_ADDRESS 0. */
  reset(): void {
    this.configAddress = 0;
    this.rcr = 0;
    for (const fn of this.slots.values()) fn.reset();
  }

  save(): PciBusState {
    return {
      configAddress: this.configAddress,
      rcr: this.rcr,
      hostBridge: this.hostBridge.save(),
      isaBridge: this.isaBridge.save(),
    };
  }

  restore(state: PciBusState): void {
    this.configAddress = (state.configAddress & 0x80ff_fffc) >>> 0;
    this.rcr = state.rcr & (RCR_SYS_RST | RCR_FULL_RST);
    this.hostBridge.restore(state.hostBridge);
    this.isaBridge.restore(state.isaBridge);
  }
}
