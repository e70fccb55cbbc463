import type { PciFunction } from "./function.js";

/** Width of a configuration, MMIO or port access. Same values as the machine's AccessSize. */
export type PciAccessSize = 1 | 2 | 4;

/**
 * What serves a BAR's accesses. `offset` is relative to the BAR's base, for memory and I/O BARs
 * alike (the bus subtracts the base). Structurally the machine's `MmioHandler`, so a device
 * passes the same object it would hand to `MemoryBus.addMmio`.
 */
export interface BarHandler {
  mmioRead(offset: number, size: PciAccessSize): number;
  mmioWrite(offset: number, size: PciAccessSize, value: number): void;
}

/** An interrupt line as a function drives it (structurally the machine's `IrqLine`). */
export interface IntxLine {
  set(level: boolean): void;
}

export type BarKind = "mem32" | "mem64" | "io";

export interface BarDefinition {
  kind: BarKind;
  /** Bytes; a power of two. Memory BARs: 4 KiB to 2 GiB. I/O BARs: 4 to 256. */
  size: number;
  /** Memory BARs only: the prefetchable bit. */
  prefetchable?: boolean;
  handler: BarHandler;
  /** For logs and errors ("common+notify", "msix"...). */
  name?: string;
}

export interface BarInfo {
  readonly index: number;
  readonly kind: BarKind;
  readonly size: number;
  readonly prefetchable: boolean;
  readonly handler: BarHandler;
  readonly name: string;
}

/**
 * Called when a BAR's decoded address changes: `oldAddress`/`newAddress` are the guest physical
 * (memory) or port (I/O) base, or null when the BAR is not decoded (decode disabled in the
 * command register, address 0, or an address the BAR cannot be decoded at).
 */
export type BarChangeListener = (
  fn: PciFunction,
  bar: BarInfo,
  oldAddress: number | null,
  newAddress: number | null,
) => void;

/**
 * Lets a capability's owner see its configuration accesses. `offset` is relative to the
 * capability's first byte (its ID). `read` may return a value to use instead of the stored
 * bytes (undefined: the stored bytes). `write` runs after the masked store, with the value the
 * guest wrote.
 */
export interface CapabilityHooks {
  read?(offset: number, size: PciAccessSize): number | undefined;
  write?(offset: number, size: PciAccessSize, value: number): void;
}

export interface CapabilityOptions {
  /** Per byte of `body`: the bits the guest may write. Default: none (read-only). */
  writable?: Uint8Array;
  /** Per byte of `body`: the bits the guest clears by writing 1. Default: none. */
  writeOneToClear?: Uint8Array;
  hooks?: CapabilityHooks;
}

export interface Capability {
  readonly id: number;
  /** Offset of the capability's ID byte in configuration space. */
  readonly offset: number;
  /** Length in bytes, ID and next pointer included. */
  readonly length: number;
  readonly hooks: CapabilityHooks | undefined;
}

export interface PciFunctionOptions {
  vendorId: number;
  deviceId: number;
  /** 24-bit class code: base class << 16 | sub-class << 8 | programming interface. */
  classCode: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** 0 = no interrupt pin, 1..4 = INTA#..INTD#. */
  interruptPin?: number;
  /** Sets bit 7 of the header type (the bus sets it itself when a slot holds several functions). */
  multiFunction?: boolean;
  /** For logs and errors. */
  name?: string;
}

export interface PciFunctionState {
  /** The 256 configuration bytes. */
  config: number[];
  /** The INTx level the function drives (before the command register's Interrupt Disable). */
  intx: boolean;
}
