import { ConfigError, VirtkitError } from "../../../common/errors.js";
import type { GuestMemory } from "../../../common/memory.js";
import type { U64 } from "../../../common/u64.js";
import { u64TestBit } from "../../../common/u64.js";
import { PciFunction, type PciFunctionState } from "../../../pci/function.js";
import type { MsiTarget } from "../../../pci/msi.js";
import { PciInterruptPin } from "../../../pci/regs.js";
import type { PciAccessSize } from "../../../pci/types.js";
import { QueueConfig, type QueueConfigState } from "../../../virtqueue/config.js";
import { VirtQueue, type VirtQueueState } from "../../../virtqueue/queue.js";
import {
  type DeviceContext,
  VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  type VirtioDevice,
  type VirtioInterrupt,
} from "../../device.js";
import { addPciCfgCap, addVirtioCap } from "./caps.js";
import { commonRead, commonWrite } from "./common-config.js";
import { MsixController, type MsixState } from "./msix.js";
import {
  COMMON_CFG_OFFSET,
  DEVICE_CFG_OFFSET,
  ISR_OFFSET,
  MSIX_BAR,
  MSIX_BAR_SIZE,
  MSIX_MAX_VECTORS,
  MSIX_PBA_OFFSET,
  MSIX_TABLE_OFFSET,
  NOTIFY_OFF_MULTIPLIER,
  NOTIFY_OFFSET,
  VIRTIO_BAR,
  VIRTIO_BAR_SIZE,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_COMMON_CFG_SIZE,
  VIRTIO_PCI_CLASS_BY_DEVICE,
  VIRTIO_PCI_DEVICE_ID_BASE,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_PCI_SUBSYSTEM_ID_MODERN,
  VIRTIO_PCI_VENDOR_ID,
} from "./regs.js";
import { nextStatus, type StatusEnv } from "./status.js";

export interface VirtioPciOptions {
  /** Guest memory the queues live in. */
  memory: GuestMemory;
  /** Where MSI-X messages go (the machine's LAPIC, or a recorder in tests). */
  msiTarget?: MsiTarget;
  /**
   * MSI-X vectors: default queue count + 1 (one for configuration changes). 0: no MSI-X
   * capability at all (a machine without a local APIC), so the driver uses INTx.
   */
  msixVectors?: number;
  /** Reports a guest error once per device reset (default: console.warn). */
  log?: (message: string) => void;
  name?: string;
}

/** Per-queue transport state. */
interface QueueSlot {
  config: QueueConfig;
  msixVector: number;
  /** queue_enable as the driver sees it. */
  enabled: boolean;
  /** queue_reset is in effect (VIRTIO_F_RING_RESET) until the queue is enabled again. */
  resetPending: boolean;
}

export interface VirtioPciState {
  pci: PciFunctionState;
  msix: MsixState | null;
  status: number;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  driverFeatures: U64;
  configMsixVector: number;
  queueSelect: number;
  configGeneration: number;
  configDirty: boolean;
  isr: number;
  queues: { config: QueueConfigState; msixVector: number; enabled: boolean; resetPending: boolean }[];
  running: (VirtQueueState | null)[];
  device: unknown;
}

/**
 * The modern virtio-PCI transport (section 4.1) for one `VirtioDevice`: a PCI function with
 * the common, notify, ISR, device and PCI-config-access capabilities in BAR 0, an MSI-X table
 * and PBA in BAR 1, and INTx through the function's pin. Guest accesses never throw: accesses
 * of the wrong width or where no field is are ignored (reads give 0) and counted.
 */
export class VirtioPciTransport extends PciFunction implements VirtioInterrupt {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  /** The MSI-X controller, or null when the function has no MSI-X capability. */
  readonly msix: MsixController | null;
  readonly numQueues: number;
  /** The feature bits offered: the device's plus VERSION_1 and the ring features. */
  readonly offeredFeatures: U64;
  private readonly log: (message: string) => void;
  private readonly slots: QueueSlot[];
  /** Running queues by index (the DeviceContext's `queues`). */
  private readonly running: (VirtQueue | null)[];
  private ctx: DeviceContext | null = null;

  // Common configuration registers.
  status = 0;
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  driverFeatures: U64 = { lo: 0, hi: 0 };
  configMsixVector = VIRTIO_MSI_NO_VECTOR;
  queueSelect = 0;
  configGeneration = 0;
  private configDirty = false;
  private isr = 0;
  private errorLogged = false;

  /** BAR accesses of the wrong width or at offsets that hold no field (ignored). */
  ignoredAccesses = 0;
  /** Register writes refused by the rules (read-only fields, writes after DRIVER_OK...). */
  refusedWrites = 0;
  /** Notifies for a queue that is not running (ignored). */
  ignoredNotifies = 0;
  /** Guest errors that set DEVICE_NEEDS_RESET. */
  guestErrors = 0;
  /** The last guest error, for diagnostics. */
  lastError: Error | null = null;

  constructor(device: VirtioDevice, options: VirtioPciOptions) {
    const n = device.queueMaxSizes.length;
    super({
      vendorId: VIRTIO_PCI_VENDOR_ID,
      deviceId: VIRTIO_PCI_DEVICE_ID_BASE + device.deviceId,
      classCode: VIRTIO_PCI_CLASS_BY_DEVICE[device.deviceId] ?? 0x00_ff_00,
      revision: 1,
      subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
      subsystemId: VIRTIO_PCI_SUBSYSTEM_ID_MODERN,
      interruptPin: PciInterruptPin.INTA,
      name: options.name ?? `virtio-${device.name}`,
    });
    if (!(device.deviceId >= 1 && device.deviceId <= 0x3f)) {
      throw new ConfigError(`virtio device id ${device.deviceId} does not fit PCI device ids 0x1041..0x107f`);
    }
    if (n > 0x1000 / NOTIFY_OFF_MULTIPLIER) throw new ConfigError(`too many queues: ${n}`);
    if (device.configSize > 0x1000)
      throw new ConfigError(`device config of ${device.configSize} bytes is above 4 KiB`);
    this.device = device;
    this.memory = options.memory;
    this.numQueues = n;
    this.log = options.log ?? ((m) => console.warn(m));
    this.offeredFeatures = {
      lo: (device.features.lo | (1 << VIRTIO_F_INDIRECT_DESC) | (1 << VIRTIO_F_EVENT_IDX)) >>> 0,
      hi: (device.features.hi | (1 << (VIRTIO_F_VERSION_1 - 32)) | (1 << (VIRTIO_F_RING_RESET - 32))) >>> 0,
    };
    this.slots = device.queueMaxSizes.map((max) => ({
      config: new QueueConfig(max),
      msixVector: VIRTIO_MSI_NO_VECTOR,
      enabled: false,
      resetPending: false,
    }));
    this.running = this.slots.map(() => null);

    this.addBar(VIRTIO_BAR, {
      kind: "mem32",
      size: VIRTIO_BAR_SIZE,
      name: "virtio",
      handler: { mmioRead: (o, s) => this.barRead(o, s), mmioWrite: (o, s, v) => this.barWrite(o, s, v) },
    });
    const vectors = Math.min(options.msixVectors ?? n + 1, MSIX_MAX_VECTORS);
    if (vectors > 0) {
      const msix = new MsixController(
        this,
        vectors,
        MSIX_BAR,
        MSIX_TABLE_OFFSET,
        MSIX_PBA_OFFSET,
        options.msiTarget,
        // With MSI-X enabled the function does not assert INTx (PCI 3.0 section 6.8.3.3): the
        // line follows the ISR only while MSI-X is off.
        () => this.setIntx(!msix.enabled && this.isr !== 0),
      );
      this.msix = msix;
      this.addBar(MSIX_BAR, {
        kind: "mem32",
        size: MSIX_BAR_SIZE,
        name: "msix",
        handler: {
          mmioRead: (o, s) => msix.mmioRead(o, s),
          mmioWrite: (o, s, v) => msix.mmioWrite(o, s, v),
        },
      });
    } else {
      this.msix = null;
    }
    addVirtioCap(this, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_BAR, COMMON_CFG_OFFSET, VIRTIO_PCI_COMMON_CFG_SIZE);
    addVirtioCap(
      this,
      VIRTIO_PCI_CAP_NOTIFY_CFG,
      VIRTIO_BAR,
      NOTIFY_OFFSET,
      Math.max(2, n * NOTIFY_OFF_MULTIPLIER),
      [NOTIFY_OFF_MULTIPLIER],
    );
    addVirtioCap(this, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_BAR, ISR_OFFSET, 1);
    if (device.configSize > 0) {
      addVirtioCap(this, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_BAR, DEVICE_CFG_OFFSET, device.configSize);
    }
    addPciCfgCap(this, () => this.ignoredAccesses++);
    device.attach?.({ configChanged: () => this.configChanged() });
  }

  // ---- BAR 0 -------------------------------------------------------------------------------

  private barRead(offset: number, size: PciAccessSize): number {
    if (offset < ISR_OFFSET) {
      const v = offset < VIRTIO_PCI_COMMON_CFG_SIZE ? commonRead(this, offset, size) : null;
      if (v === null) {
        this.ignoredAccesses++;
        return 0;
      }
      return v;
    }
    if (offset === ISR_OFFSET && size === 1) return this.readIsr();
    if (offset >= DEVICE_CFG_OFFSET && offset < NOTIFY_OFFSET) {
      const o = offset - DEVICE_CFG_OFFSET;
      if (o + size <= this.device.configSize) {
        if (this.configDirty) {
          this.configDirty = false;
          this.configGeneration = (this.configGeneration + 1) & 0xff;
        }
        return this.device.readConfig(o, size);
      }
    }
    this.ignoredAccesses++;
    return 0;
  }

  private barWrite(offset: number, size: PciAccessSize, value: number): void {
    if (offset < ISR_OFFSET) {
      if (offset >= VIRTIO_PCI_COMMON_CFG_SIZE || !commonWrite(this, offset, size, value))
        this.ignoredAccesses++;
      return;
    }
    if (offset >= DEVICE_CFG_OFFSET && offset < NOTIFY_OFFSET) {
      const o = offset - DEVICE_CFG_OFFSET;
      if (o + size <= this.device.configSize) {
        this.device.writeConfig(o, size, value);
        return;
      }
    } else if (offset >= NOTIFY_OFFSET && (size === 2 || size === 4)) {
      const rel = offset - NOTIFY_OFFSET;
      if (rel % NOTIFY_OFF_MULTIPLIER === 0 && rel / NOTIFY_OFF_MULTIPLIER < this.numQueues) {
        this.notify(rel / NOTIFY_OFF_MULTIPLIER);
        return;
      }
    }
    this.ignoredAccesses++;
  }

  private readIsr(): number {
    const v = this.isr;
    this.isr = 0;
    this.setIntx(false);
    return v;
  }

  // ---- used by common-config.ts ------------------------------------------------------------

  /** The queue slot `queue_select` points at, or undefined when it names no queue. */
  selectedSlot(): QueueSlot | undefined {
    return this.slots[this.queueSelect];
  }

  /** True while queue registers of the selected queue may be written. */
  queueWritable(slot: QueueSlot): boolean {
    return !(this.status & VIRTIO_CONFIG_S_DRIVER_OK) || slot.resetPending;
  }

  /** Offered feature bits for a feature select value. */
  deviceFeaturesWord(select: number): number {
    return select === 0 ? this.offeredFeatures.lo : select === 1 ? this.offeredFeatures.hi : 0;
  }

  /** Whether feature `bit` was negotiated (accepted by the driver, FEATURES_OK). */
  negotiated(bit: number): boolean {
    return (this.status & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && u64TestBit(this.driverFeatures, bit);
  }

  /** A vector value as MSI-X vector configuration accepts it (NO_VECTOR when it cannot be mapped). */
  mapVector(v: number): number {
    return this.msix !== null && v < this.msix.vectors ? v : VIRTIO_MSI_NO_VECTOR;
  }

  writeStatus(value: number): void {
    const env: StatusEnv = {
      featuresProblem: () => this.featuresProblem(),
      queuesProblem: () => this.queuesProblem(),
    };
    const out = nextStatus(this.status, value, env);
    switch (out.action) {
      case "reset":
        this.resetDevice();
        return;
      case "ignored":
        this.refusedWrites++;
        return;
      case "activate":
        this.status = out.status;
        this.activate();
        return;
      case "none":
        if (out.rule === "driver-ok-bad-queues") {
          // guestError sets DEVICE_NEEDS_RESET and, DRIVER_OK being set, sends the configuration
          // change notification 2.1.2 requires (it did not when the bit was set here first).
          this.status = out.status & ~VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET;
          this.guestError(new VirtkitError("BAD_QUEUE_SETUP", this.queuesProblem() ?? "bad queue setup"));
          return;
        }
        this.status = out.status;
    }
  }

  private featuresProblem(): string | null {
    const acc = this.driverFeatures;
    const off = this.offeredFeatures;
    if ((acc.lo & ~off.lo) >>> 0 !== 0 || (acc.hi & ~off.hi) >>> 0 !== 0) {
      return "driver accepted features the device did not offer";
    }
    if (!u64TestBit(acc, VIRTIO_F_VERSION_1)) return "driver did not accept VIRTIO_F_VERSION_1";
    const req = this.device.requiredFeatures;
    if (req && ((req.lo & ~acc.lo) >>> 0 !== 0 || (req.hi & ~acc.hi) >>> 0 !== 0)) {
      return "driver left out features the device requires";
    }
    return null;
  }

  private queuesProblem(): string | null {
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (!s.enabled) continue;
      const err = s.config.validate(this.memory);
      if (err) return `queue ${i}: ${err.message}`;
    }
    return null;
  }

  /** queue_enable = 1 for the selected queue. */
  enableQueue(slot: QueueSlot): void {
    slot.enabled = true;
    slot.config.ready = true;
    if (
      slot.resetPending &&
      this.status & VIRTIO_CONFIG_S_DRIVER_OK &&
      // A device that needs a reset stays stopped: a re-enabled queue does not bring it back.
      !(this.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET)
    ) {
      // Re-enable after queue_reset (VIRTIO_F_RING_RESET).
      slot.resetPending = false;
      const q = this.slots.indexOf(slot);
      try {
        this.running[q] = slot.config.activate(this.memory, this.queueFeatures());
      } catch (e) {
        this.guestError(e);
        return;
      }
      this.notify(q);
    }
  }

  /** queue_reset = 1 for the selected queue (VIRTIO_F_RING_RESET). */
  resetQueue(slot: QueueSlot): void {
    const q = this.slots.indexOf(slot);
    this.running[q] = null;
    this.device.onQueueReset?.(q);
    slot.config.reset();
    slot.enabled = false;
    slot.msixVector = VIRTIO_MSI_NO_VECTOR;
    slot.resetPending = true;
  }

  private queueFeatures() {
    return {
      eventIdx: this.negotiated(VIRTIO_F_EVENT_IDX),
      indirect: this.negotiated(VIRTIO_F_INDIRECT_DESC),
    };
  }

  // ---- activation, notifies, errors --------------------------------------------------------

  private activate(): void {
    const features = this.queueFeatures();
    try {
      for (let i = 0; i < this.slots.length; i++) {
        const s = this.slots[i]!;
        this.running[i] = s.enabled ? s.config.activate(this.memory, features) : null;
      }
      this.ctx = {
        features: {
          lo: (this.driverFeatures.lo & this.offeredFeatures.lo) >>> 0,
          hi: (this.driverFeatures.hi & this.offeredFeatures.hi) >>> 0,
        },
        memory: this.memory,
        queues: this.running,
        interrupt: this,
        fail: (e) => this.guestError(e),
      };
      this.device.activate(this.ctx);
    } catch (e) {
      this.guestError(e);
      return;
    }
    // A notify that raced activation is not lost: look at every queue once.
    for (let i = 0; i < this.slots.length; i++) if (this.running[i]) this.notify(i);
  }

  /**
   * An available buffer notification for queue `q`. Ignored (counted) before DRIVER_OK, after
   * DEVICE_NEEDS_RESET, for a queue that is not running, and while Bus Master Enable is off.
   */
  notify(q: number): void {
    if (
      // Bus Master Enable off: the function may not touch guest memory (PCI 3.0 section 6.2.2).
      !this.busMasterEnabled ||
      !(this.status & VIRTIO_CONFIG_S_DRIVER_OK) ||
      this.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET ||
      this.ctx === null ||
      !this.running[q]
    ) {
      this.ignoredNotifies++;
      return;
    }
    try {
      this.device.onQueueNotify(q);
    } catch (e) {
      this.guestError(e);
    }
  }

  /**
   * A guest error: DEVICE_NEEDS_RESET, a configuration change notification, and no more
   * notifies for this device until reset. Errors that are not VirtkitErrors are host bugs and
   * are rethrown.
   */
  private guestError(e: unknown): void {
    if (!(e instanceof VirtkitError)) throw e;
    this.guestErrors++;
    this.lastError = e;
    if (!this.errorLogged) {
      this.errorLogged = true;
      this.log(`${this.name}: guest error, device needs reset: ${e.message}`);
    }
    const wasSet = (this.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET) !== 0;
    this.status |= VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET;
    // The device stops processing until reset: its queues disappear from the DeviceContext, so
    // host-side paths (console input, a block completion, a stats request) cannot take or use
    // buffers either, not only notifies. Found by the hostile-driver fuzzer (src/fuzz).
    this.running.fill(null);
    if (!wasSet && this.status & VIRTIO_CONFIG_S_DRIVER_OK) this.sendConfigInterrupt();
  }

  // ---- interrupts --------------------------------------------------------------------------

  signalQueue(queue: number): void {
    if (!(this.status & VIRTIO_CONFIG_S_DRIVER_OK) || this.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET)
      return;
    if (this.msix?.enabled) {
      const v = this.slots[queue]?.msixVector ?? VIRTIO_MSI_NO_VECTOR;
      if (v !== VIRTIO_MSI_NO_VECTOR) this.msix.notify(v);
      return;
    }
    this.isr |= VIRTIO_PCI_ISR_QUEUE;
    this.setIntx(true);
  }

  signalConfig(): void {
    this.configChanged();
  }

  private configChanged(): void {
    this.configDirty = true;
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK) this.sendConfigInterrupt();
  }

  private sendConfigInterrupt(): void {
    if (this.msix?.enabled) {
      if (this.configMsixVector !== VIRTIO_MSI_NO_VECTOR) this.msix.notify(this.configMsixVector);
      return;
    }
    this.isr |= VIRTIO_PCI_ISR_CONFIG;
    this.setIntx(true);
  }

  // ---- reset and state ---------------------------------------------------------------------

  /** The virtio reset (device_status = 0): the PCI function itself is untouched. */
  resetDevice(): void {
    this.device.reset();
    this.ctx = null;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      s.config.reset();
      s.msixVector = VIRTIO_MSI_NO_VECTOR;
      s.enabled = false;
      s.resetPending = false;
      this.running[i] = null;
    }
    this.status = 0;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.driverFeatures = { lo: 0, hi: 0 };
    this.configMsixVector = VIRTIO_MSI_NO_VECTOR;
    this.queueSelect = 0;
    this.isr = 0;
    this.errorLogged = false;
    this.setIntx(false);
  }

  /** PCI function reset (machine reset): configuration space, MSI-X and the device. */
  override reset(): void {
    super.reset();
    this.msix?.reset();
    if (this.slots) this.resetDevice();
  }

  override save(): PciFunctionState & { virtio: VirtioPciState } {
    const pci = super.save();
    return {
      ...pci,
      virtio: {
        pci,
        msix: this.msix ? this.msix.save() : null,
        status: this.status,
        deviceFeatureSelect: this.deviceFeatureSelect,
        driverFeatureSelect: this.driverFeatureSelect,
        driverFeatures: { ...this.driverFeatures },
        configMsixVector: this.configMsixVector,
        queueSelect: this.queueSelect,
        configGeneration: this.configGeneration,
        configDirty: this.configDirty,
        isr: this.isr,
        queues: this.slots.map((s) => ({
          config: s.config.save(),
          msixVector: s.msixVector,
          enabled: s.enabled,
          resetPending: s.resetPending,
        })),
        running: this.running.map((q) => (q ? q.save() : null)),
        device: this.device.save(),
      },
    };
  }

  override restore(state: PciFunctionState & { virtio?: VirtioPciState }): void {
    super.restore(state);
    const v = state.virtio;
    if (!v) return;
    if (v.queues.length !== this.slots.length) {
      throw new ConfigError(
        `saved transport has ${v.queues.length} queues, this device ${this.slots.length}`,
      );
    }
    if ((v.msix === null) !== (this.msix === null)) {
      throw new ConfigError(
        `saved transport ${v.msix === null ? "has no" : "has an"} MSI-X capability, this one differs`,
      );
    }
    if (this.msix && v.msix) this.msix.restore(v.msix);
    this.deviceFeatureSelect = v.deviceFeatureSelect >>> 0;
    this.driverFeatureSelect = v.driverFeatureSelect >>> 0;
    this.driverFeatures = { lo: v.driverFeatures.lo >>> 0, hi: v.driverFeatures.hi >>> 0 };
    this.configMsixVector = v.configMsixVector & 0xffff;
    this.queueSelect = v.queueSelect & 0xffff;
    this.configGeneration = v.configGeneration & 0xff;
    this.configDirty = v.configDirty === true;
    this.isr = v.isr & 3;
    v.queues.forEach((q, i) => {
      const s = this.slots[i]!;
      s.config.restore(q.config);
      s.msixVector = q.msixVector & 0xffff;
      s.enabled = q.enabled === true;
      s.resetPending = q.resetPending === true;
    });
    this.status = v.status & 0xff;
    this.ctx = null;
    this.running.fill(null);
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK && !(this.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET)) {
      v.running.forEach((r, i) => {
        this.running[i] = r ? VirtQueue.fromState(this.memory, r) : null;
      });
      this.ctx = {
        features: {
          lo: (this.driverFeatures.lo & this.offeredFeatures.lo) >>> 0,
          hi: (this.driverFeatures.hi & this.offeredFeatures.hi) >>> 0,
        },
        memory: this.memory,
        queues: this.running,
        interrupt: this,
        fail: (e) => this.guestError(e),
      };
      this.device.activate(this.ctx);
    }
    this.device.restore(v.device);
  }

  /** The interrupt status byte, without clearing it (for tests and debuggers). */
  peekIsr(): number {
    return this.isr;
  }

  /** The running queue `q`, if any (for tests and debuggers). */
  queue(q: number): VirtQueue | null {
    return this.running[q] ?? null;
  }

  /** The per-queue transport state of queue `q` (read-only use). */
  queueSlot(q: number): Readonly<QueueSlot> | undefined {
    return this.slots[q];
  }
}

export type { QueueSlot };
