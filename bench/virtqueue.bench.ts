import { FlatMemory } from "../src/common/memory.js";
import { VIRTQ_DESC_F_NEXT, VirtQueue } from "../src/virtqueue/index.js";
import { type BenchSuite, measure } from "./harness.js";

const QSIZE = 256;
const DESC = 0x1000;
const AVAIL = DESC + 16 * QSIZE;
const USED = 0x4000;
const BUF = 0x10_0000;

/** A queue whose descriptor table holds chains of `segs` descriptors of `segLen` bytes each. */
function setup(segs: number, segLen: number, memSize = 16 << 20) {
  const mem = new FlatMemory(memSize);
  const chains = QSIZE / segs;
  for (let c = 0; c < chains; c++) {
    for (let s = 0; s < segs; s++) {
      const d = c * segs + s;
      const o = DESC + 16 * d;
      mem.writeU32(o, BUF + (s % 4) * segLen);
      mem.writeU32(o + 4, 0);
      mem.writeU32(o + 8, segLen);
      mem.writeU16(o + 12, s + 1 < segs ? VIRTQ_DESC_F_NEXT : 0);
      mem.writeU16(o + 14, d + 1);
    }
  }
  // The available ring lists the heads over and over.
  for (let i = 0; i < QSIZE; i++) mem.writeU16(AVAIL + 4 + 2 * i, (i % chains) * segs);
  const vq = new VirtQueue(mem, {
    size: QSIZE,
    desc: DESC,
    avail: AVAIL,
    used: USED,
    eventIdx: true,
    indirect: true,
  });
  let availIdx = 0;
  /** The driver's part: make `n` more chains available (one idx write). */
  const offer = (n: number) => {
    availIdx = (availIdx + n) & 0xffff;
    mem.writeU16(AVAIL + 2, availIdx);
  };
  return { mem, vq, offer, chains };
}

export const suite: BenchSuite = {
  name: "virtqueue",
  run(report) {
    for (const segs of [1, 4]) {
      const { vq, offer, chains } = setup(segs, 512);
      const batch = Math.min(chains, 64);
      let sink = 0;
      const rate = measure(() => {
        offer(batch);
        let c = vq.pop();
        while (c !== null) {
          vq.addUsed(c.head, 0);
          c = vq.pop();
        }
        if (vq.flushUsed()) sink++;
      }, batch);
      if (sink < 0) console.log(sink);
      report(`virtqueue.pop-add-flush.${segs}desc`, rate / 1e6, "Mchains/s");
    }

    // 64 KiB chains through ChainReader vs Uint8Array.prototype.set over the same bytes.
    const SIZE = 64 * 1024;
    for (const [segs, label] of [
      [1, "1x64k"],
      [16, "16x4k"],
    ] as const) {
      const { mem, vq, offer } = setup(segs, SIZE / segs, 32 << 20);
      const dst = new Uint8Array(SIZE);
      const readerRate = measure(() => {
        offer(1);
        const c = vq.pop()!;
        c.reader().readInto(dst);
        vq.addUsed(c.head, 0);
        vq.flushUsed();
      }, SIZE);
      const src = mem.u8.subarray(BUF, BUF + SIZE);
      const setRate = measure(() => {
        dst.set(src);
      }, SIZE);
      report(`virtqueue.chainreader.${label}`, readerRate / 2 ** 30, "GiB/s");
      report(`virtqueue.memcpy.${label}`, setRate / 2 ** 30, "GiB/s");
      report(`virtqueue.chainreader-vs-memcpy.${label}`, readerRate / setRate, "ratio");
    }
  },
};
