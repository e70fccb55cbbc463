/** Fuzz adapters: virtio-rng, the example checksum device, virtio-blk. */
import { type BlockBackend, MemoryDisk } from "../devices/blk/backend.js";
import { VirtioBlk } from "../devices/blk/blk.js";
import { SECTOR_SIZE } from "../devices/blk/constants.js";
import { FailingBackend, ManualBackend } from "../devices/blk/test-backends.js";
import { VirtioRng } from "../devices/rng/rng.js";
import { seededEntropy } from "../devices/rng/entropy.js";
import { ChecksumDevice } from "../../examples/checksum-device/device.js";
import { Prng } from "./prng.js";

import type { FuzzDeviceFactory } from "./devices.js";
import { bytes, len, split, sum, writables } from "./payload.js";

// ---- rng ----

export const rngFactory: FuzzDeviceFactory = {
  name: "rng",
  create(seed) {
    const device = new VirtioRng({ entropy: seededEntropy(seed), queueSize: 64 });
    return {
      device,
      consumes: (q) => q === 0,
      request(rng) {
        const readable = rng.chance(0.2) ? [bytes(rng, len(rng, 64))] : [];
        return { readable, writable: writables(rng, rng.range(1, 3), 2048), mustFail: false };
      },
      hostEvent() {},
      settle: () => true,
      busy: () => false,
    };
  },
};

// ---- checksum ----

export const checksumFactory: FuzzDeviceFactory = {
  name: "checksum",
  create() {
    const device = new ChecksumDevice();
    return {
      device,
      consumes: (q) => q === 0,
      request(rng) {
        const head = new Uint8Array(8);
        const v = new DataView(head.buffer);
        v.setUint32(0, rng.chance(0.8) ? rng.int(3) : rng.edgyU32(), true);
        v.setUint32(4, rng.edgyU32(), true);
        const body = bytes(rng, len(rng, 300));
        const all = new Uint8Array(8 + body.length);
        all.set(head);
        all.set(body, 8);
        const readable = rng.chance(0.1)
          ? []
          : split(rng, all.subarray(0, rng.chance(0.1) ? rng.int(9) : all.length));
        return { readable, writable: rng.chance(0.8) ? [8] : writables(rng), mustFail: false };
      },
      hostEvent() {},
      settle: () => true,
      busy: () => false,
    };
  },
};

// ---- blk ----

const BLK_CAPACITY = 64 * 1024;
const BLK_TYPES = [0, 0, 1, 1, 4, 8, 11, 13, 14, 10, 2, 0xffff_ffff];

export const blkFactory: FuzzDeviceFactory = {
  name: "blk",
  create(seed) {
    const setup = new Prng(seed);
    const disk = new MemoryDisk(BLK_CAPACITY, { readOnly: setup.chance(0.15) });
    const mode = setup.int(3);
    const manual = mode === 0 ? new ManualBackend(disk) : null;
    const failRng = new Prng(seed ^ 0x5a5a);
    const backend: BlockBackend =
      manual ?? (mode === 1 ? new FailingBackend(disk, () => failRng.chance(0.2)) : disk);
    const queues = setup.range(1, 2);
    const device = new VirtioBlk({
      backend,
      queues,
      queueSize: 64,
      id: "fuzz",
      discard: setup.chance(0.8) ? { maxSeg: setup.range(1, 3) } : false,
      writeZeroes: setup.chance(0.8) ? { maxSeg: setup.range(1, 3) } : false,
      secureErase: setup.chance(0.5) ? {} : false,
    });
    const sectors = BLK_CAPACITY / SECTOR_SIZE;
    const sector = (rng: Prng): [number, number] => {
      switch (rng.int(5)) {
        case 0:
          return [rng.int(sectors), 0];
        case 1:
          return [sectors - rng.int(4), 0];
        case 2:
          return [rng.u32(), rng.u32()];
        case 3:
          return [0xffff_ffff, 0xffff_ffff];
        default:
          return [rng.int(8), 0];
      }
    };
    return {
      device,
      consumes: (q) => q < queues,
      request(rng) {
        const type = rng.chance(0.9) ? rng.pick(BLK_TYPES) : rng.u32();
        const hdr = new Uint8Array(16);
        const v = new DataView(hdr.buffer);
        v.setUint32(0, type, true);
        v.setUint32(4, rng.chance(0.9) ? 0 : rng.u32(), true);
        const [lo, hi] = sector(rng);
        v.setUint32(8, lo, true);
        v.setUint32(12, hi, true);
        const readable: Uint8Array[] = [rng.chance(0.05) ? hdr.subarray(0, rng.int(16)) : hdr];
        let writable: number[] = [1];
        if (type === 1 || rng.chance(0.1)) {
          const n = rng.chance(0.8) ? SECTOR_SIZE * rng.range(0, 4) : len(rng, 2100);
          readable.push(...split(rng, bytes(rng, n)));
        } else if (type === 0 || type === 8) {
          const n = rng.chance(0.8) ? SECTOR_SIZE * rng.range(0, 4) : len(rng, 2100);
          writable = n > 0 ? [n, 1] : [1];
        } else if (type >= 11 && type <= 14) {
          const segs = rng.range(0, 4);
          const d = new Uint8Array(16 * segs + (rng.chance(0.1) ? rng.range(1, 15) : 0));
          const dv = new DataView(d.buffer);
          for (let i = 0; i < segs; i++) {
            const [slo, shi] = sector(rng);
            dv.setUint32(16 * i, slo, true);
            dv.setUint32(16 * i + 4, shi, true);
            dv.setUint32(16 * i + 8, rng.chance(0.7) ? rng.int(16) : rng.edgyU32(), true);
            dv.setUint32(16 * i + 12, rng.chance(0.7) ? rng.int(2) : rng.edgyU32(), true);
          }
          readable.push(d);
        }
        if (rng.chance(0.1)) writable = writables(rng);
        // 5.2.6: the status byte is the last device-writable byte; without one the device
        // cannot answer and must need a reset.
        return { readable, writable, mustFail: sum(writable) === 0 };
      },
      hostEvent(rng) {
        if (!manual || manual.pending.length === 0) return;
        const i = rng.int(manual.pending.length);
        if (rng.chance(0.2)) {
          const [op] = manual.pending.splice(i, 1);
          op?.fail();
        } else manual.releaseAt(i);
      },
      async settle() {
        // Release whatever waits (a write-through write queues its flush only once the write is
        // done), let the completions run, and again, until nothing is in flight.
        for (let round = 0; round < 256; round++) {
          if (manual) while (manual.pending.length > 0) manual.releaseAt(0);
          if (device.requestsInFlight === 0 && (!manual || manual.pending.length === 0)) {
            // One more turn for the microtask that publishes asynchronous completions.
            await Promise.resolve();
            return true;
          }
          for (let i = 0; i < 4; i++) await Promise.resolve();
        }
        return false;
      },
      busy: () => device.requestsInFlight > 0 || (manual !== null && manual.pending.length > 0),
    };
  },
};
