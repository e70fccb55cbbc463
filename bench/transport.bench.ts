import { seededEntropy, VirtioRng } from "../src/devices/rng/index.js";
import { createPciTestRig } from "../src/testing.js";
import { type BenchSuite, measure } from "./harness.js";

/**
 * Notify-to-interrupt round trips through the virtio-PCI transport with virtio-rng and
 * 64-byte buffers, driven by the testing kit: add a buffer, kick (notify write through BAR 0),
 * the device fills it and flushes, the interrupt arrives (MSI-X message, or INTx + ISR read),
 * the driver collects the used buffer.
 */
export const suite: BenchSuite = {
  name: "transport",
  run(report) {
    for (const mode of ["msix", "intx"] as const) {
      const rig = createPciTestRig(new VirtioRng({ entropy: seededEntropy(1) }), { interrupts: mode });
      const [vq] = rig.driver.bringUp([]);
      const q = vq!.queue;
      const buf = rig.driver.dma.alloc(64);
      const seg = [{ addr: buf, len: 64, write: true }];
      let lost = 0;
      const rate = measure(() => {
        q.add(seg);
        rig.driver.notify(0);
        if (rig.driver.takeInterrupts().queues.length !== 1) lost++;
        if (q.getUsed() === null) lost++;
        rig.msi.messages.length = 0;
      }, 1);
      if (lost > 0) throw new Error(`transport bench: ${lost} round trips without interrupt or used buffer`);
      report(`transport.rng-roundtrip.64B.${mode}`, rate / 1e3, "Kroundtrips/s");
    }
  },
};
