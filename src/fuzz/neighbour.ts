import type { FlatMemory } from "../common/memory.js";
import { VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET, VIRTIO_F_EVENT_IDX } from "../devices/device.js";
import { VirtioRng } from "../devices/rng/rng.js";
import { seededEntropy } from "../devices/rng/entropy.js";
import { type DriverVq, MsiRecorder, VirtioPciDriver } from "../devices/transport/pci/driver.js";
import { VirtioPciTransport } from "../devices/transport/pci/transport.js";
import type { GuardedMemory } from "./guarded-memory.js";

const SLOTS = 32;
const SLOT_SIZE = 64;

/**
 * The well-behaved neighbour: virtio-rng on its own transport, on the same guest memory as the
 * hostile device, with a correct driver (MSI-X, EVENT_IDX) in [base, end). After every case it
 * must serve one request and interrupt.
 *
 * A hostile driver may aim its own device at any guest memory (a scribbled descriptor address,
 * a balloon PFN read from a stale buffer): that is the guest breaking itself, not the host.
 * Writes over the neighbour's rings and buffers are counted (`memoryHits`) and undone before the
 * check, so the check is about the host keeping devices apart.
 */
export class Neighbour {
  readonly transport: VirtioPciTransport;
  readonly driver: VirtioPciDriver;
  readonly vq: DriverVq;
  readonly msi = new MsiRecorder();
  memoryHits = 0;
  private slot = 0;
  private readonly slotsBase: number;
  private saved: [number, Uint8Array][] = [];

  constructor(
    memory: GuardedMemory,
    private readonly raw: FlatMemory,
    seed: number,
    base: number,
    end: number,
  ) {
    this.transport = new VirtioPciTransport(new VirtioRng({ entropy: seededEntropy(seed), queueSize: 16 }), {
      memory,
      msiTarget: this.msi,
      log: () => {},
    });
    this.slotsBase = end - SLOTS * SLOT_SIZE;
    this.driver = new VirtioPciDriver(this.transport, raw, {
      interrupts: "msix",
      msi: this.msi,
      dmaBase: base,
      dmaSize: this.slotsBase - base,
      indirectEntries: 0,
    });
    const [vq] = this.driver.bringUp([VIRTIO_F_EVENT_IDX]);
    this.vq = vq!;
    this.save();
  }

  private save(): void {
    const q = this.vq.queue;
    const ringEnd = q.used + 6 + 8 * q.size;
    this.saved = [
      [q.desc, this.raw.u8.slice(q.desc, ringEnd)],
      [this.slotsBase, this.raw.u8.slice(this.slotsBase, this.slotsBase + SLOTS * SLOT_SIZE)],
    ];
  }

  private restore(): void {
    let hit = false;
    for (const [addr, saved] of this.saved) {
      const now = this.raw.u8.subarray(addr, addr + saved.length);
      for (let i = 0; i < saved.length; i++) {
        if (now[i] !== saved[i]) {
          hit = true;
          now.set(saved);
          break;
        }
      }
    }
    if (hit) this.memoryHits++;
  }

  /** One request: returns what went wrong, or null. */
  check(): string | null {
    this.restore();
    try {
      if (this.transport.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET)
        return "the neighbour rng needs a reset";
      const addr = this.slotsBase + SLOT_SIZE * (this.slot++ % SLOTS);
      const head = this.vq.queue.add([{ addr, len: 48, write: true }]);
      this.driver.kick(0);
      const used = this.vq.queue.getUsed();
      if (!used || used.id !== head || used.len !== 48) {
        return `the neighbour rng answered ${JSON.stringify(used)} for head ${head}`;
      }
      if (!this.driver.takeInterrupts().queues.includes(0)) return "the neighbour rng did not interrupt";
      this.msi.messages.length = 0;
      this.save();
      return null;
    } catch (e) {
      return `the neighbour failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    }
  }
}
