/**
 * virtio-blk through the whole path: driver queue -> notify BAR write -> virtio-PCI transport
 * -> VirtioBlk -> MemoryDisk -> used ring -> MSI-X message. 4 KiB random read/write IOPS and
 * 1 MiB sequential MB/s, each next to Uint8Array.prototype.set copying the same bytes in the
 * same run (the ratio is device rate / plain copy rate).
 */
import { MemoryDisk } from "../src/devices/blk/backend.js";
import { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from "../src/devices/blk/constants.js";
import { createBlkRig } from "../src/devices/blk/test-helpers.js";
import { type BenchSuite, measure, sig3 } from "./harness.js";

const DISK = 64 << 20;

function setup(reqSize: number, depth: number) {
  const disk = new MemoryDisk(DISK);
  for (let i = 0; i < DISK; i += 4096) disk.bytes[i] = i >>> 12;
  const { rig } = createBlkRig(disk, {
    memorySize: depth * (reqSize + 4096) + (8 << 20),
    queueSize: 256,
    slots: 1,
    slotSize: 4096,
  });
  const mem = rig.memory;
  const vq = rig.driver.queues[0]!;
  const slots = Array.from({ length: depth }, () => ({
    header: rig.driver.dma.alloc(16, 16),
    data: rig.driver.dma.alloc(reqSize, 4096),
    status: rig.driver.dma.alloc(1, 1),
  }));
  let seed = 12345;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const sectorsPerReq = reqSize / 512;
  const lastStart = DISK / 512 - sectorsPerReq;
  let seq = 0;
  /** One batch of `depth` requests: submit, notify, collect. */
  const batch = (type: number, random: boolean) => {
    for (const s of slots) {
      const sector = random ? (rand() % (lastStart / sectorsPerReq)) * sectorsPerReq : seq;
      seq = (seq + sectorsPerReq) % (lastStart + 1);
      mem.writeU32(s.header, type);
      mem.writeU32(s.header + 4, 0);
      mem.writeU32(s.header + 8, sector);
      mem.writeU32(s.header + 12, 0);
      vq.queue.add([
        { addr: s.header, len: 16, write: false },
        { addr: s.data, len: reqSize, write: type === VIRTIO_BLK_T_IN },
        { addr: s.status, len: 1, write: true },
      ]);
    }
    rig.driver.kick(0);
    let n = 0;
    while (vq.queue.getUsed() !== null) n++;
    if (n !== depth) throw new Error(`expected ${depth} completions, got ${n}`);
    for (const s of slots) if (mem.readU8(s.status) !== 0) throw new Error("request failed");
    rig.driver.takeInterrupts();
  };
  return { batch, disk, mem, slots, rand };
}

export const suite: BenchSuite = {
  name: "blk",
  run(report) {
    for (const [label, size, depth, random] of [
      ["4k-randread", 4096, 32, true],
      ["4k-randwrite", 4096, 32, true],
      ["1m-seqread", 1 << 20, 8, false],
      ["1m-seqwrite", 1 << 20, 8, false],
    ] as const) {
      const { batch, disk, mem, slots, rand } = setup(size, depth);
      const type = label.includes("read") ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
      const ops = measure(() => batch(type, random), depth, 1000, 10);
      // The same bytes copied by Uint8Array.prototype.set between the disk and guest buffers.
      // Same guest buffers, same disk offsets pattern, same batch size.
      const guests = slots.map((s) => mem.subarray(s.data, size));
      const lastStart = DISK - size;
      let at = 0;
      const copies = measure(
        () => {
          for (let i = 0; i < depth; i++) {
            const off = random ? (rand() % (lastStart / size)) * size : at;
            at = (at + size) % (lastStart + 1);
            if (type === VIRTIO_BLK_T_IN) guests[i]!.set(disk.bytes.subarray(off, off + size));
            else disk.bytes.set(guests[i]!, off);
          }
        },
        depth,
        1000,
        10,
      );
      if (size === 4096) {
        report(`blk.${label}`, sig3(ops / 1000), "kIOPS");
        report(`blk.${label}.set`, sig3(copies / 1000), "kIOPS");
      } else {
        report(`blk.${label}`, sig3((ops * size) / 1e6), "MB/s");
        report(`blk.${label}.set`, sig3((copies * size) / 1e6), "MB/s");
      }
      report(`blk.${label}.ratio`, sig3(ops / copies), "x");
    }
  },
};
