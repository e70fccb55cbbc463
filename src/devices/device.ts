/**
 * The device API: what a virtio device is to a transport, and what a transport gives a
 * device when the driver sets DRIVER_OK. A device never knows whether it sits on PCI or
 * anything else, nor whether its interrupts go out as MSI-X or INTx.
 */
import type { GuestMemory } from "../common/memory.js";
import type { U64 } from "../common/u64.js";
import type { VirtQueue } from "../virtqueue/queue.js";

/** Device status bits (section 2.1). */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_SUSPEND = 16;
export const VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET = 64;
export const VIRTIO_CONFIG_S_FAILED = 128;

/** Device status bits by their spec names. */
export const DeviceStatus = {
  ACKNOWLEDGE: VIRTIO_CONFIG_S_ACKNOWLEDGE,
  DRIVER: VIRTIO_CONFIG_S_DRIVER,
  DRIVER_OK: VIRTIO_CONFIG_S_DRIVER_OK,
  FEATURES_OK: VIRTIO_CONFIG_S_FEATURES_OK,
  SUSPEND: VIRTIO_CONFIG_S_SUSPEND,
  DEVICE_NEEDS_RESET: VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  FAILED: VIRTIO_CONFIG_S_FAILED,
} as const;

/** Reserved (device-independent) feature bits (section 6). Ring bits 28/29 come from the virtqueue. */
export { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../virtqueue/constants.js";
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VIRTIO_F_ORDER_PLATFORM = 36;
export const VIRTIO_F_SR_IOV = 37;
export const VIRTIO_F_NOTIFICATION_DATA = 38;
export const VIRTIO_F_NOTIF_CONFIG_DATA = 39;
export const VIRTIO_F_RING_RESET = 40;

/** Virtio device IDs (section 5). */
export const VirtioDeviceId = {
  NET: 1,
  BLOCK: 2,
  CONSOLE: 3,
  ENTROPY: 4,
  BALLOON: 5,
  SCSI: 8,
  NINEP: 9,
  GPU: 16,
  INPUT: 18,
  VSOCK: 19,
} as const;

/** How a device raises interrupts. The transport decides between MSI-X and INTx + ISR. */
export interface VirtioInterrupt {
  /** A used buffer notification for queue `queue`. */
  signalQueue(queue: number): void;
  /** A configuration change notification. */
  signalConfig(): void;
}

/** What a device gets when the driver sets DRIVER_OK. */
export interface DeviceContext {
  /** The negotiated feature bits. */
  readonly features: U64;
  readonly memory: GuestMemory;
  /**
   * The running queues by index; null for a queue the driver did not enable (or reset with
   * queue_reset). Look the queue up on each use: the entry changes on queue reset/re-enable.
   */
  readonly queues: readonly (VirtQueue | null)[];
  readonly interrupt: VirtioInterrupt;
  /**
   * Reports a guest error found outside `onQueueNotify` (for instance when an asynchronous
   * backend completes). The transport sets DEVICE_NEEDS_RESET, sends a configuration change
   * notification and stops delivering notifies to the device until reset.
   */
  fail(error: Error): void;
}

/** What a transport offers a device from the moment it is plugged in. */
export interface VirtioDeviceHost {
  /**
   * The device changed its device-specific configuration: config_generation changes before
   * the driver's next read, and a configuration change notification goes out if DRIVER_OK.
   */
  configChanged(): void;
}

/**
 * A virtio device, transport-independent. A device that finds a guest error while handling a
 * notify throws a `VirtkitError` (a `QueueError` from the virtqueue, for instance); the
 * transport turns it into DEVICE_NEEDS_RESET and a configuration change notification.
 */
export interface VirtioDevice<S = unknown> {
  /** The virtio device ID (VirtioDeviceId). */
  readonly deviceId: number;
  /** For logs. */
  readonly name: string;
  /**
   * Device-specific feature bits offered (the transport adds VIRTIO_F_VERSION_1 and the ring
   * features it implements).
   */
  readonly features: U64;
  /**
   * Offered bits the driver must accept: FEATURES_OK is refused without them (the transport
   * always requires VIRTIO_F_VERSION_1). Default: none.
   */
  readonly requiredFeatures?: U64;
  /** Maximum size of each queue (powers of two up to 32768); the length is the queue count. */
  readonly queueMaxSizes: readonly number[];
  /** Bytes of device-specific configuration (0 when the device type has none). */
  readonly configSize: number;
  /** Reads `size` bytes (1, 2 or 4) of device configuration at `offset` (inside configSize). */
  readConfig(offset: number, size: 1 | 2 | 4): number;
  /** Writes device configuration. Read-only fields ignore writes. */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void;
  /** Called once by the transport when plugged in. */
  attach?(host: VirtioDeviceHost): void;
  /** The driver set DRIVER_OK: start. */
  activate(ctx: DeviceContext): void;
  /** The driver reset the device (or the machine reset): stop, drop queues and in-flight work. */
  reset(): void;
  /** An available buffer notification for queue `queue` (also sent for every queue at DRIVER_OK). */
  onQueueNotify(queue: number): void;
  /** The driver reset one queue (VIRTIO_F_RING_RESET): drop in-flight work of that queue. */
  onQueueReset?(queue: number): void;
  /**
   * True while the device waits for host-side work that will complete without the guest doing
   * anything (an asynchronous backend request in flight). A machine on a virtual clock does not
   * skip guest time ahead while a device is busy, so I/O does not look slow to the guest.
   */
  hostBusy?(): boolean;
  save(): S;
  restore(state: S): void;
}
