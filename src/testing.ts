/**
 * `virtkit/testing`: a driver-side kit for testing virtio devices with no CPU and no guest.
 *
 *   const rig = createPciTestRig(new MyDevice(), { interrupts: "msix" });
 *   const [vq] = rig.driver.bringUp();
 *   const head = vq.queue.add([{ addr: buf, len: 64, write: true }]);
 *   rig.driver.kick(0);
 *   rig.driver.takeInterrupts(); // { queues: [0], config: false }
 *   vq.queue.getUsed();          // { id: head, len: 64 }
 */
import { FlatMemory, type GuestMemory } from "./common/memory.js";
import type { VirtioDevice } from "./devices/device.js";
import {
  DriverError,
  type DriverVq,
  directAccess,
  type PciAccess,
  GuestAllocator,
  IntxRecorder,
  MsiRecorder,
  VirtioPciDriver,
  type VirtioPciDriverOptions,
  type VirtioStructure,
} from "./devices/transport/pci/driver.js";
import { VirtioPciTransport } from "./devices/transport/pci/transport.js";

export type { DriverQueueLayout, DriverQueueOptions, DriverSegment, UsedBuffer } from "./virtqueue/driver.js";
export { DriverQueue, layoutQueue, queueBytes } from "./virtqueue/driver.js";
export { seededEntropy } from "./devices/rng/entropy.js";
export type { DriverVq, VirtioPciDriverOptions, VirtioStructure };
export { DriverError, directAccess, GuestAllocator, IntxRecorder, MsiRecorder, VirtioPciDriver };
export type { PciAccess };

export interface PciTestRig {
  memory: GuestMemory;
  transport: VirtioPciTransport;
  driver: VirtioPciDriver;
  msi: MsiRecorder;
  intx: IntxRecorder;
}

/**
 * A device on a virtio-PCI transport in fresh guest memory (default 8 MiB), with an MSI
 * recorder and an INTx recorder wired, and a driver ready to `bringUp()`.
 */
export function createPciTestRig(
  device: VirtioDevice,
  options: {
    interrupts?: "msix" | "intx";
    memorySize?: number;
    memory?: GuestMemory;
    msixVectors?: number;
  } & Pick<VirtioPciDriverOptions, "indirectEntries"> = {},
): PciTestRig {
  const memory = options.memory ?? new FlatMemory(options.memorySize ?? 8 << 20);
  const msi = new MsiRecorder();
  const intx = new IntxRecorder();
  const transport = new VirtioPciTransport(device, {
    memory,
    msiTarget: msi,
    log: () => {},
    ...(options.msixVectors !== undefined ? { msixVectors: options.msixVectors } : {}),
  });
  transport.connectIntx(intx);
  const driver = new VirtioPciDriver(transport, memory, {
    interrupts: options.interrupts ?? "msix",
    msi,
    intx,
    dmaBase: 0x1_0000,
    dmaSize: memory.size - 0x1_0000,
    ...(options.indirectEntries !== undefined ? { indirectEntries: options.indirectEntries } : {}),
  });
  return { memory, transport, driver, msi, intx };
}
