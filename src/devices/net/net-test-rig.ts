/**
 * A virtio-net NIC on the virtio-PCI test kit, plugged into a backend, with a driver that has
 * brought it up: what tests, the spec tests and the `net` benchmark start from.
 */
import { createPciTestRig } from "../../testing.js";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../device.js";
import type { MsiRecorder, VirtioPciDriver } from "../transport/pci/driver.js";
import type { VirtioPciTransport } from "../transport/pci/transport.js";
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
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_SPEED_DUPLEX,
  VIRTIO_NET_F_STATUS,
} from "./constants.js";
import { NetDriver } from "./driver.js";
import { VirtioNet, type VirtioNetOptions } from "./net.js";

/** Every feature this device offers, plus the ring features. */
export const ALL_NET_FEATURES: readonly number[] = [
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
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
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_SPEED_DUPLEX,
];

export interface NetRig {
  device: VirtioNet;
  transport: VirtioPciTransport;
  pci: VirtioPciDriver;
  net: NetDriver;
  msi: MsiRecorder;
  /** Scheduled transmit turns not run yet (with the default manual scheduler). */
  deferred: (() => void)[];
  /** Runs the scheduled transmit turns (and those they schedule) until none is left. */
  runDeferred(): number;
}

export interface NetRigOptions extends VirtioNetOptions {
  /** Feature bits the driver accepts (default ALL_NET_FEATURES). */
  accept?: readonly number[];
  memorySize?: number;
  queueSize?: number;
  slotSize?: number;
  /** Interrupts by MSI-X (default) or INTx + ISR, as the machine wires them. */
  interrupts?: "msix" | "intx";
  /** Use the device's default scheduler (the event loop) instead of the manual `deferred` list. */
  defaultSchedule?: boolean;
}

export function createNetRig(backend: NetBackend | undefined, options: NetRigOptions = {}): NetRig {
  const deferred: (() => void)[] = [];
  const device = new VirtioNet({
    ...(options.defaultSchedule ? {} : { schedule: (fn: () => void) => deferred.push(fn) }),
    ...options,
    ...(backend ? { backend } : {}),
  });
  const {
    transport,
    driver: pci,
    msi,
  } = createPciTestRig(device, {
    memorySize: options.memorySize ?? 4 << 20,
    interrupts: options.interrupts ?? "msix",
  });
  pci.init(options.accept ?? ALL_NET_FEATURES);
  const net = new NetDriver(pci, {
    ...(options.queueSize !== undefined ? { queueSize: options.queueSize } : { queueSize: 64 }),
    ...(options.slotSize !== undefined ? { slotSize: options.slotSize } : {}),
  });
  return {
    device,
    transport,
    pci,
    net,
    msi,
    deferred,
    runDeferred() {
      let n = 0;
      for (let fn = deferred.shift(); fn; fn = deferred.shift()) {
        fn();
        n++;
      }
      return n;
    },
  };
}
