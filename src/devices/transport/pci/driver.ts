import { VirtkitError } from "../../../common/errors.js";
import type { GuestMemory } from "../../../common/memory.js";
import type { U64 } from "../../../common/u64.js";
import { u64TestBit } from "../../../common/u64.js";
import type { PciFunction } from "../../../pci/function.js";
import type { MsiTarget } from "../../../pci/msi.js";
import {
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_INTERRUPT_PIN,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_TABLE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_VENDOR_ID,
} from "../../../pci/regs.js";
import type { IntxLine, PciAccessSize } from "../../../pci/types.js";
import { DriverQueue, layoutQueue, queueBytes } from "../../../virtqueue/driver.js";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
} from "../../device.js";
import {
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_CAP_PCI_CFG,
  VIRTIO_PCI_COMMON_CFGGENERATION,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_NUMQ,
  VIRTIO_PCI_COMMON_Q_AVAILHI,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCHI,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
  VIRTIO_PCI_COMMON_Q_NOFF,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDHI,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_PCI_VENDOR_ID,
} from "./regs.js";

/** Something the test driver found wrong with the device (what Linux would fail probe on). */
export class DriverError extends VirtkitError {
  constructor(message: string) {
    super("DRIVER", message);
  }
}

/** Records MSI messages: the machine's LAPIC stand-in. */
export class MsiRecorder implements MsiTarget {
  /** Messages received (a test may clear this array at any time). */
  readonly messages: { addressLo: number; addressHi: number; data: number }[] = [];
  /** Messages received since creation, cleared or not. */
  received = 0;
  sendMsi(addressLo: number, addressHi: number, data: number): void {
    this.messages.push({ addressLo, addressHi, data });
    this.received++;
  }
}

/** An INTx line that remembers its level and counts rising edges. */
export class IntxRecorder implements IntxLine {
  level = false;
  raised = 0;
  set(level: boolean): void {
    if (level && !this.level) this.raised++;
    this.level = level;
  }
}

/** A bump allocator over a region of guest memory (the driver's DMA memory). */
export class GuestAllocator {
  private next: number;
  constructor(
    readonly memory: GuestMemory,
    readonly base: number,
    readonly end: number,
  ) {
    memory.checkRange(base, end - base);
    this.next = base;
  }
  alloc(len: number, align = 16): number {
    const a = Math.ceil(this.next / align) * align;
    if (a + len > this.end) throw new DriverError(`guest allocator out of memory: ${len} bytes wanted`);
    this.next = a + len;
    this.memory.fill(a, len, 0);
    return a;
  }
}

/** Where one virtio structure is: BAR, offset, length. */
export interface VirtioStructure {
  bar: number;
  offset: number;
  length: number;
}

/** A queue the driver set up. */
export interface DriverVq {
  index: number;
  queue: DriverQueue;
  /** Offset of this queue's notify address inside the notify structure's BAR. */
  notifyOffset: number;
  msixVector: number;
}

/**
 * How a driver reaches the function: configuration space and BAR-relative accesses. The
 * default goes straight to the PciFunction (honouring Memory Space Enable as a bus would); a
 * machine test passes one that goes through ports 0xCF8/0xCFC and the memory bus.
 */
export interface PciAccess {
  configRead(offset: number, size: PciAccessSize): number;
  configWrite(offset: number, size: PciAccessSize, value: number): void;
  barRead(bar: number, offset: number, size: PciAccessSize): number;
  barWrite(bar: number, offset: number, size: PciAccessSize, value: number): void;
}

/** Direct access to a PciFunction, with no bus. */
export function directAccess(fn: PciFunction): PciAccess {
  return {
    configRead: (o, s) => fn.configRead(o, s),
    configWrite: (o, s, v) => fn.configWrite(o, s, v),
    barRead(bar, offset, size) {
      const b = fn.bar(bar);
      if (!b || !fn.memorySpaceEnabled || offset + size > b.size)
        return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
      return b.handler.mmioRead(offset, size);
    },
    barWrite(bar, offset, size, value) {
      const b = fn.bar(bar);
      if (!b || !fn.memorySpaceEnabled || offset + size > b.size) return;
      b.handler.mmioWrite(offset, size, value);
    },
  };
}

export interface VirtioPciDriverOptions {
  /** Default: `directAccess(fn)`. */
  access?: PciAccess;
  /** Interrupt mode: MSI-X (needs `msi`, the recorder the transport sends to) or INTx + ISR. */
  interrupts: "msix" | "intx";
  msi?: MsiRecorder;
  /** The INTx line the function drives (when not given, `fn.intxAsserted` is used). */
  intx?: IntxRecorder;
  /** Guest memory region for rings and buffers. */
  dmaBase?: number;
  dmaSize?: number;
  /** Indirect table entries per descriptor (0: no indirect area). */
  indirectEntries?: number;
}

/** Message data the driver programs for MSI-X vector v. */
const MSI_DATA_BASE = 0x40;

/**
 * A driver-side model of what Linux's virtio_pci_modern driver does, with no CPU: walk the
 * capability list, map the structures, reset, ACKNOWLEDGE, DRIVER, negotiate features,
 * FEATURES_OK and its check, set up queues with DriverQueue, DRIVER_OK, notify, and take
 * interrupts by MSI-X or by INTx + ISR. BAR accesses go straight to the function's BAR
 * handlers, honouring Memory Space Enable like a bus would.
 */
export class VirtioPciDriver {
  readonly fn: PciFunction;
  readonly memory: GuestMemory;
  readonly dma: GuestAllocator;
  readonly common: VirtioStructure;
  readonly notifyCap: VirtioStructure;
  readonly notifyMultiplier: number;
  readonly isrCap: VirtioStructure;
  readonly deviceCfg: VirtioStructure | null;
  readonly pciCfgCapOffset: number;
  readonly msixCapOffset: number;
  readonly queues: DriverVq[] = [];
  /** How the driver reaches configuration space and the BARs. */
  readonly access: PciAccess;
  features: U64 = { lo: 0, hi: 0 };
  private readonly options: VirtioPciDriverOptions;
  private msiSeen = 0;

  constructor(fn: PciFunction, memory: GuestMemory, options: VirtioPciDriverOptions) {
    this.fn = fn;
    this.memory = memory;
    this.options = options;
    const acc: PciAccess = options.access ?? directAccess(fn);
    this.access = acc;
    const base = options.dmaBase ?? 0x10_0000;
    this.dma = new GuestAllocator(
      memory,
      base,
      base + (options.dmaSize ?? Math.min(memory.size - base, 0x40_0000)),
    );
    if (acc.configRead(PCI_VENDOR_ID, 2) !== VIRTIO_PCI_VENDOR_ID)
      throw new DriverError("not a virtio vendor id");
    const did = acc.configRead(PCI_DEVICE_ID, 2);
    if (did < 0x1040 || did > 0x107f)
      throw new DriverError(`device id 0x${did.toString(16)} is not a modern virtio id`);
    if (!(acc.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) throw new DriverError("no capability list");
    let common: VirtioStructure | undefined;
    let notify: VirtioStructure | undefined;
    let isr: VirtioStructure | undefined;
    let device: VirtioStructure | undefined;
    let mult = 0;
    let pciCfg = 0;
    let msix = 0;
    let guard = 0;
    for (let p = acc.configRead(PCI_CAPABILITY_LIST, 1) & 0xfc; p !== 0 && guard < 48; guard++) {
      const id = acc.configRead(p, 1);
      if (id === PCI_CAP_ID_MSIX) msix = p;
      if (id === PCI_CAP_ID_VNDR) {
        const type = acc.configRead(p + 3, 1);
        const bar = acc.configRead(p + 4, 1);
        const s = { bar, offset: acc.configRead(p + 8, 4), length: acc.configRead(p + 12, 4) };
        // "The driver SHOULD use the first instance of each virtio structure type they can support."
        if (bar <= 5) {
          if (type === VIRTIO_PCI_CAP_COMMON_CFG) common ??= s;
          else if (type === VIRTIO_PCI_CAP_NOTIFY_CFG && !notify) {
            notify = s;
            mult = acc.configRead(p + 16, 4);
          } else if (type === VIRTIO_PCI_CAP_ISR_CFG) isr ??= s;
          else if (type === VIRTIO_PCI_CAP_DEVICE_CFG) device ??= s;
        }
        if (type === VIRTIO_PCI_CAP_PCI_CFG && pciCfg === 0) pciCfg = p;
      }
      p = acc.configRead(p + 1, 1) & 0xfc;
    }
    if (!common || !notify || !isr) throw new DriverError("missing common, notify or ISR capability");
    this.common = common;
    this.notifyCap = notify;
    this.notifyMultiplier = mult;
    this.isrCap = isr;
    this.deviceCfg = device ?? null;
    this.pciCfgCapOffset = pciCfg;
    this.msixCapOffset = msix;
    // pci_enable_device + pci_set_master. Like Linux's do_pci_enable_device, a function with an
    // interrupt pin gets INTx enabled (Interrupt Disable cleared) when MSI-X is not in use.
    let cmd = acc.configRead(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    if (acc.configRead(PCI_INTERRUPT_PIN, 1) !== 0) cmd &= ~PCI_COMMAND_INTX_DISABLE;
    acc.configWrite(PCI_COMMAND, 2, cmd);
  }

  // ---- BAR access --------------------------------------------------------------------------

  barRead(bar: number, offset: number, size: PciAccessSize): number {
    return this.access.barRead(bar, offset, size);
  }

  barWrite(bar: number, offset: number, size: PciAccessSize, value: number): void {
    this.access.barWrite(bar, offset, size, value);
  }

  readCommon(offset: number, size: PciAccessSize): number {
    return this.barRead(this.common.bar, this.common.offset + offset, size);
  }

  writeCommon(offset: number, size: PciAccessSize, value: number): void {
    this.barWrite(this.common.bar, this.common.offset + offset, size, value);
  }

  /** Device-specific configuration read. */
  readConfig(offset: number, size: PciAccessSize): number {
    if (!this.deviceCfg) throw new DriverError("device has no device-specific configuration");
    return this.barRead(this.deviceCfg.bar, this.deviceCfg.offset + offset, size);
  }

  writeConfig(offset: number, size: PciAccessSize, value: number): void {
    if (!this.deviceCfg) throw new DriverError("device has no device-specific configuration");
    this.barWrite(this.deviceCfg.bar, this.deviceCfg.offset + offset, size, value);
  }

  /** Reads the whole device configuration consistently (config_generation loop, as Linux does). */
  readConfigBytes(offset: number, length: number): Uint8Array {
    for (let tries = 0; tries < 100; tries++) {
      const gen = this.readCommon(VIRTIO_PCI_COMMON_CFGGENERATION, 1);
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = this.readConfig(offset + i, 1);
      if (this.readCommon(VIRTIO_PCI_COMMON_CFGGENERATION, 1) === gen) return out;
    }
    throw new DriverError("config_generation never settled");
  }

  get status(): number {
    return this.readCommon(VIRTIO_PCI_COMMON_STATUS, 1);
  }

  setStatus(bits: number): void {
    this.writeCommon(VIRTIO_PCI_COMMON_STATUS, 1, this.status | bits);
  }

  get numQueues(): number {
    return this.readCommon(VIRTIO_PCI_COMMON_NUMQ, 2);
  }

  // ---- initialization (section 3.1.1) ------------------------------------------------------

  /** Writes 0 to device_status and waits for it to read back 0. */
  reset(): void {
    this.writeCommon(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    for (let i = 0; i < 1000; i++) if (this.status === 0) break;
    if (this.status !== 0) throw new DriverError("device_status did not read back 0 after reset");
    this.queues.length = 0;
  }

  /** The 64 offered feature bits. */
  deviceFeatures(): U64 {
    this.writeCommon(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    const lo = this.readCommon(VIRTIO_PCI_COMMON_DF, 4);
    this.writeCommon(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    const hi = this.readCommon(VIRTIO_PCI_COMMON_DF, 4);
    return { lo, hi };
  }

  /** Writes the accepted feature bits (no checks: tests use it to misbehave). */
  writeDriverFeatures(f: U64): void {
    this.writeCommon(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    this.writeCommon(VIRTIO_PCI_COMMON_GF, 4, f.lo);
    this.writeCommon(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    this.writeCommon(VIRTIO_PCI_COMMON_GF, 4, f.hi);
  }

  /**
   * Reset, ACKNOWLEDGE, DRIVER, negotiate (`wanted` feature bits that are offered, plus
   * VIRTIO_F_VERSION_1), FEATURES_OK and the re-read check. Returns the accepted features.
   */
  init(wanted: readonly number[] = [VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC]): U64 {
    this.reset();
    this.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.setStatus(VIRTIO_CONFIG_S_DRIVER);
    const offered = this.deviceFeatures();
    if (!u64TestBit(offered, VIRTIO_F_VERSION_1))
      throw new DriverError("device does not offer VIRTIO_F_VERSION_1");
    let lo = 0;
    let hi = 1 << (VIRTIO_F_VERSION_1 - 32);
    for (const b of wanted) {
      if (!u64TestBit(offered, b)) continue;
      if (b < 32) lo |= 1 << b;
      else hi |= 1 << (b - 32);
    }
    this.features = { lo: lo >>> 0, hi: hi >>> 0 };
    this.writeDriverFeatures(this.features);
    this.setStatus(VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(this.status & VIRTIO_CONFIG_S_FEATURES_OK)) throw new DriverError("device refused FEATURES_OK");
    if (this.options.interrupts === "msix") this.enableMsix();
    else this.disableMsix();
    return this.features;
  }

  /** INTx mode: MSI-X off (as pci_disable_msix leaves it), since with MSI-X on INTx is never asserted. */
  disableMsix(): void {
    const cap = this.msixCapOffset;
    if (cap === 0) return;
    const ctrl = this.access.configRead(cap + PCI_MSIX_FLAGS, 2);
    if (ctrl & PCI_MSIX_FLAGS_ENABLE)
      this.access.configWrite(cap + PCI_MSIX_FLAGS, 2, ctrl & ~PCI_MSIX_FLAGS_ENABLE);
  }

  /** Enables MSI-X, programs every table entry (data = 0x40 + vector) and unmasks it. */
  enableMsix(): void {
    const cap = this.msixCapOffset;
    if (cap === 0) throw new DriverError("no MSI-X capability");
    const ctrl = this.access.configRead(cap + PCI_MSIX_FLAGS, 2);
    const vectors = (ctrl & 0x7ff) + 1;
    const tbl = this.access.configRead(cap + PCI_MSIX_TABLE, 4);
    const bar = tbl & 7;
    const off = tbl & ~7;
    for (let v = 0; v < vectors; v++) {
      this.barWrite(bar, off + 16 * v, 4, 0xfee0_0000);
      this.barWrite(bar, off + 16 * v + 4, 4, 0);
      this.barWrite(bar, off + 16 * v + 8, 4, MSI_DATA_BASE + v);
      this.barWrite(bar, off + 16 * v + 12, 4, 0);
    }
    this.access.configWrite(
      cap + PCI_MSIX_FLAGS,
      2,
      (ctrl & ~PCI_MSIX_FLAGS_MASKALL) | PCI_MSIX_FLAGS_ENABLE,
    );
    this.writeCommon(VIRTIO_PCI_COMMON_MSIX, 2, 0);
    if (this.readCommon(VIRTIO_PCI_COMMON_MSIX, 2) !== 0)
      throw new DriverError("config_msix_vector mapping failed");
  }

  /** Sets up queue `index` (size: the device maximum, or `size` when smaller) and enables it. */
  setupQueue(index: number, size?: number): DriverVq {
    this.writeCommon(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    const max = this.readCommon(VIRTIO_PCI_COMMON_Q_SIZE, 2);
    if (max === 0) throw new DriverError(`queue ${index} is unavailable`);
    const n = size !== undefined && size < max ? size : max;
    this.writeCommon(VIRTIO_PCI_COMMON_Q_SIZE, 2, n);
    const base = this.dma.alloc(queueBytes(n), 4096);
    const layout = layoutQueue(base, n);
    const entries = this.options.indirectEntries ?? 8;
    const indirectArea =
      entries > 0 && u64TestBit(this.features, VIRTIO_F_INDIRECT_DESC)
        ? { addr: this.dma.alloc(n * entries * 16, 16), maxEntries: entries }
        : undefined;
    const queue = new DriverQueue(this.memory, layout, {
      eventIdx: u64TestBit(this.features, VIRTIO_F_EVENT_IDX),
      ...(indirectArea ? { indirectArea } : {}),
    });
    this.writeCommon(VIRTIO_PCI_COMMON_Q_DESCLO, 4, layout.desc);
    this.writeCommon(VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    this.writeCommon(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, layout.avail);
    this.writeCommon(VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
    this.writeCommon(VIRTIO_PCI_COMMON_Q_USEDLO, 4, layout.used);
    this.writeCommon(VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    let msixVector = VIRTIO_MSI_NO_VECTOR;
    if (this.options.interrupts === "msix") {
      this.writeCommon(VIRTIO_PCI_COMMON_Q_MSIX, 2, index + 1);
      msixVector = this.readCommon(VIRTIO_PCI_COMMON_Q_MSIX, 2);
      // Fewer vectors than queues: share vector 1, as Linux's fallback does.
      if (msixVector === VIRTIO_MSI_NO_VECTOR) {
        this.writeCommon(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
        msixVector = this.readCommon(VIRTIO_PCI_COMMON_Q_MSIX, 2);
      }
    }
    const noff = this.readCommon(VIRTIO_PCI_COMMON_Q_NOFF, 2);
    this.writeCommon(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    const vq = {
      index,
      queue,
      notifyOffset: this.notifyCap.offset + noff * this.notifyMultiplier,
      msixVector,
    };
    this.queues[index] = vq;
    return vq;
  }

  /** Sets DRIVER_OK. */
  driverOk(): void {
    this.setStatus(VIRTIO_CONFIG_S_DRIVER_OK);
  }

  /** init + every queue + DRIVER_OK. */
  bringUp(wanted?: readonly number[], queueSize?: number): DriverVq[] {
    this.init(wanted);
    const n = this.numQueues;
    for (let i = 0; i < n; i++) this.setupQueue(i, queueSize);
    this.driverOk();
    return this.queues;
  }

  /** Writes the queue index to its notify address. */
  notify(index: number): void {
    const vq = this.queues[index];
    if (!vq) throw new DriverError(`queue ${index} is not set up`);
    this.barWrite(this.notifyCap.bar, vq.notifyOffset, 2, index);
  }

  /** Notifies the device when the queue's suppression state says it wants it. Returns whether it did. */
  kick(index: number): boolean {
    const vq = this.queues[index];
    if (!vq) throw new DriverError(`queue ${index} is not set up`);
    if (!vq.queue.kick()) return false;
    this.notify(index);
    return true;
  }

  /**
   * Takes the interrupts that arrived since the last call: by MSI-X messages (mapped back to
   * queues by vector) or, with INTx, by reading the ISR (which clears it and lowers the line).
   */
  takeInterrupts(): { queues: number[]; config: boolean } {
    const queues = new Set<number>();
    let config = false;
    if (this.options.interrupts === "msix") {
      const rec = this.options.msi;
      if (rec) {
        // The messages that arrived since the last call are the last `fresh` entries.
        const fresh = Math.min(rec.received - this.msiSeen, rec.messages.length);
        this.msiSeen = rec.received;
        for (let i = rec.messages.length - fresh; i < rec.messages.length; i++) {
          const v = rec.messages[i]!.data - MSI_DATA_BASE;
          if (v === 0) config = true;
          for (const q of this.queues) if (q && q.msixVector === v) queues.add(q.index);
        }
      }
    } else {
      const asserted = this.options.intx ? this.options.intx.level : this.fn.intxAsserted;
      if (asserted) {
        const isr = this.barRead(this.isrCap.bar, this.isrCap.offset, 1);
        if (isr & VIRTIO_PCI_ISR_QUEUE) for (const q of this.queues) if (q) queues.add(q.index);
        if (isr & VIRTIO_PCI_ISR_CONFIG) config = true;
      }
    }
    return { queues: [...queues].sort((a, b) => a - b), config };
  }
}
