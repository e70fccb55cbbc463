import type { NetBackend } from "./backend.js";
import {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_SPEED_DUPLEX,
  VIRTIO_NET_F_STATUS,
} from "./constants.js";
import type { RxFilterState } from "./filter.js";

export interface VirtioNetOptions {
  /** The MAC address offered in `mac` (default: a random locally administered one). */
  mac?: string | Uint8Array;
  /** Where frames go (default: nowhere until `connect`). */
  backend?: NetBackend;
  /** max_virtqueue_pairs (default 1; VIRTIO_NET_F_MQ is offered when above 1). */
  queuePairs?: number;
  /** Size of every queue (default 256). */
  queueSize?: number;
  /** The mtu field (default 1500; 68..65535). */
  mtu?: number;
  /** Link state at power-on (default up). */
  linkUp?: boolean;
  /** speed in Mbit/s (default 10000) and duplex (default full) for VIRTIO_NET_F_SPEED_DUPLEX. */
  speed?: number;
  duplex?: number;
  /** Most transmit buffers taken from one queue per turn (default 128). */
  txBudget?: number;
  /**
   * How the device comes back to a transmit queue whose turn ended with buffers left (default:
   * the next event loop turn, setImmediate or setTimeout 0): the machine's scheduler, or a
   * test's manual stepper.
   */
  schedule?: (fn: () => void) => void;
  /** Feature bits not to offer (for instance VIRTIO_NET_F_MRG_RXBUF to test without it). */
  withhold?: readonly number[];
}

/** Counters as a plain object. */
export interface NetCounters {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames from the network dropped because the guest had no receive buffer posted. */
  rxDroppedNoBuffer: number;
  /** Frames larger than the posted buffer (without MRG_RXBUF), or than mtu + header. */
  rxDroppedTooLarge: number;
  /** Frames the RX filter refused. */
  rxDroppedFiltered: number;
  /** Frames that arrived while the device was not running or the link was down. */
  rxDroppedNotReady: number;
  /** Frames from the network whose partial checksum offsets do not fit them. */
  rxDroppedInvalid: number;
  /** Transmitted frames dropped: link down. */
  txDroppedLinkDown: number;
  /** Transmitted frames dropped: shorter than 14 bytes, longer than allowed, GSO, bad csum offsets. */
  txDroppedInvalid: number;
  /** Transmit turns that ended at the budget with buffers left. */
  txBudgetExhausted: number;
  ctrlCommands: number;
  ctrlErrors: number;
}

export interface VirtioNetState {
  mac: string;
  linkUp: boolean;
  announce: boolean;
  speed: number;
  duplex: number;
  queuePairs: number;
  filter: RxFilterState;
  counters: NetCounters;
}

export const zeroCounters = (): NetCounters => ({
  txFrames: 0,
  txBytes: 0,
  rxFrames: 0,
  rxBytes: 0,
  rxDroppedNoBuffer: 0,
  rxDroppedTooLarge: 0,
  rxDroppedFiltered: 0,
  rxDroppedNotReady: 0,
  rxDroppedInvalid: 0,
  txDroppedLinkDown: 0,
  txDroppedInvalid: 0,
  txBudgetExhausted: 0,
  ctrlCommands: 0,
  ctrlErrors: 0,
});

/** The device-specific features offered unless withheld (VIRTIO_NET_F_MQ is added with several pairs). */
export const DEFAULT_OFFERED = [
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_SPEED_DUPLEX,
];

/**
 * The next turn of the host's event loop: setImmediate where there is one (Node: after pending
 * I/O, without the 1 ms floor of timers), else setTimeout 0 (browsers).
 */
export function defaultSchedule(fn: () => void): void {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  if (g.setImmediate) g.setImmediate(fn);
  else globalThis.setTimeout(fn, 0);
}
