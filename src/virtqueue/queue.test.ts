import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { QueueConfig } from "./config.js";
import { DriverQueue, layoutQueue } from "./driver.js";
import { QueueError } from "./errors.js";
import { VirtQueue } from "./queue.js";

describe("QueueConfig", () => {
  it("accepts only power-of-two sizes up to the maximum", () => {
    expect(() => new QueueConfig(3)).toThrow(QueueError);
    expect(() => new QueueConfig(65536)).toThrow(/32768/);
    const c = new QueueConfig(256);
    for (const bad of [0, 3, 100, 512, -4, 1.5]) {
      expect(() => c.setSize(bad)).toThrow(expect.objectContaining({ code: "BAD_SIZE" }));
      expect(c.isValidSize(bad)).toBe(false);
    }
    c.setSize(16);
    expect(c.size).toBe(16);
    expect(new QueueConfig(32768).size).toBe(32768);
  });

  it("activates only when ready, aligned, below 4 GiB and inside memory", () => {
    const mem = new FlatMemory(0x10000);
    const c = new QueueConfig(16);
    const l = layoutQueue(0x1000, 16);
    c.setDesc(l.desc);
    c.setAvail(l.avail);
    c.setUsed(l.used);
    expect(() => c.activate(mem, { eventIdx: false, indirect: false })).toThrow(
      expect.objectContaining({ code: "NOT_READY" }),
    );
    c.ready = true;
    expect(c.activate(mem, { eventIdx: true, indirect: false })).toBeInstanceOf(VirtQueue);
    c.setDesc(l.desc + 8);
    expect(c.validate(mem)?.message).toMatch(/descriptor table address 0x1008 is not aligned to 16/);
    c.setDesc(l.desc, 1);
    expect(c.validate(mem)?.message).toMatch(/above 4 GiB/);
    c.setDesc(l.desc);
    c.setUsed(l.used + 2);
    expect(c.validate(mem)?.code).toBe("BAD_RING_ADDRESS");
    c.setUsed(0xfffc);
    expect(c.validate(mem)?.message).toMatch(/used ring 0xfffc\+0x86 lies outside guest memory/);
  });

  it("resets and round-trips its state", () => {
    const c = new QueueConfig(64);
    c.setSize(8);
    c.setDesc(0x1000, 2);
    c.ready = true;
    const s = c.save();
    const d = new QueueConfig(64);
    d.restore(JSON.parse(JSON.stringify(s)));
    expect(d.save()).toEqual(s);
    c.reset();
    expect(c.save()).toEqual({ ...new QueueConfig(64).save() });
    expect(() => new QueueConfig(32).restore(s)).toThrow(expect.objectContaining({ code: "BAD_STATE" }));
  });
});

function rig(size = 8, eventIdx = false) {
  const mem = new FlatMemory(0x20000);
  const l = layoutQueue(0x1000, size);
  const drv = new DriverQueue(mem, l, { eventIdx, indirectArea: { addr: 0x8000, maxEntries: 8 } });
  const dev = new VirtQueue(mem, { ...l, eventIdx, indirect: true });
  return { mem, l, drv, dev };
}

describe("VirtQueue", () => {
  it("pops nothing from an empty ring and undoPop returns the same chain", () => {
    const { drv, dev } = rig();
    expect(dev.pop()).toBeNull();
    expect(() => dev.undoPop()).toThrow(expect.objectContaining({ code: "BAD_USED" }));
    const h = drv.add([{ addr: 0x10000, len: 4, write: false }]);
    const c = dev.pop()!;
    expect(c.head).toBe(h);
    dev.undoPop();
    expect(dev.pop()!.head).toBe(h);
    expect(dev.pop()).toBeNull();
  });

  it("refuses addUsed with a head outside the queue", () => {
    const { dev } = rig();
    expect(() => dev.addUsed(8, 0)).toThrow(expect.objectContaining({ code: "BAD_USED" }));
    expect(() => dev.addUsed(-1, 0)).toThrow(QueueError);
  });

  it("keeps cursors in host state: a driver scribbling on used.idx changes nothing", () => {
    const { mem, l, drv, dev } = rig();
    const h = drv.add([{ addr: 0x10000, len: 4, write: true }]);
    const c = dev.pop()!;
    mem.writeU16(l.used + 2, 0x1234);
    dev.addUsed(c.head, 4);
    dev.flushUsed();
    expect(mem.readU16(l.used + 2)).toBe(1);
    expect(drv.getUsed()).toEqual({ id: h, len: 4 });
  });

  it("the first flush after activation interrupts with EVENT_IDX, then follows used_event", () => {
    const { drv, dev } = rig(8, true);
    drv.add([{ addr: 0x10000, len: 4, write: true }]);
    drv.add([{ addr: 0x10010, len: 4, write: true }]);
    dev.addUsed(dev.pop()!.head, 1);
    expect(dev.flushUsed()).toBe(true);
    expect(dev.flushUsed()).toBe(false); // nothing new
    drv.setUsedEvent(5);
    dev.addUsed(dev.pop()!.head, 1);
    expect(dev.flushUsed()).toBe(false);
  });

  it("save/restore carries the cursors to a new queue", () => {
    const { mem, l, drv, dev } = rig(8, true);
    for (let i = 0; i < 3; i++) drv.add([{ addr: 0x10000 + 16 * i, len: 4, write: true }]);
    dev.addUsed(dev.pop()!.head, 1);
    dev.pop();
    const s = JSON.parse(JSON.stringify(dev.save()));
    const dev2 = VirtQueue.fromState(mem, s);
    expect(dev2.nextAvailIdx).toBe(2);
    expect(dev2.nextUsedIdx).toBe(1);
    expect(dev2.pop()!.head).toBe(2);
    expect(() => dev2.restore({ ...s, nextAvail: 70000 })).toThrow(
      expect.objectContaining({ code: "BAD_STATE" }),
    );
    expect(() => dev2.restore({ ...s, size: 16 })).toThrow(QueueError);
    expect(() => VirtQueue.fromState(mem, { ...s, used: 0x1ffff })).toThrow(
      expect.objectContaining({ code: "BAD_RING_ADDRESS" }),
    );
    dev2.reset();
    expect(dev2.nextAvailIdx).toBe(0);
    expect(l.size).toBe(8);
  });

  it("enableNotification re-checks for buffers that arrived while notifications were off", () => {
    const { mem, l, drv, dev } = rig(8, false);
    dev.disableNotification();
    expect(mem.readU16(l.used)).toBe(1);
    drv.add([{ addr: 0x10000, len: 4, write: false }]);
    expect(drv.kick()).toBe(false);
    expect(dev.enableNotification()).toBe(true);
    expect(mem.readU16(l.used)).toBe(0);
    dev.pop();
    expect(dev.enableNotification()).toBe(false);
  });
});

describe("ChainReader and ChainWriter", () => {
  function chainOf(lens: number[], writeFrom: number) {
    const mem = new FlatMemory(0x20000);
    const l = layoutQueue(0x1000, 16);
    const drv = new DriverQueue(mem, l);
    const dev = new VirtQueue(mem, { ...l, eventIdx: false, indirect: false });
    let a = 0x10000;
    const segs = lens.map((len, i) => {
      const s = { addr: a, len, write: i >= writeFrom };
      a += len + 3;
      return s;
    });
    drv.add(segs);
    return { mem, segs, chain: dev.pop()! };
  }

  it("reads values across segment boundaries and refuses reading past the end", () => {
    const { mem, segs, chain } = chainOf([1, 0, 2, 5, 4], 5);
    const bytes = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc];
    let k = 0;
    for (const s of segs) for (let i = 0; i < s.len; i++) mem.writeU8(s.addr + i, bytes[k++]!);
    const r = chain.reader();
    expect(r.remaining).toBe(12);
    expect(r.readU16()).toBe(0x2211);
    expect(r.readU32()).toBe(0x66554433);
    r.skip(1);
    expect(r.readU8()).toBe(0x88);
    expect(() => r.readU64()).toThrow(expect.objectContaining({ code: "READ_PAST_END" }));
    expect(r.position).toBe(8);
    expect([...r.read(4)]).toEqual([0x99, 0xaa, 0xbb, 0xcc]);
    expect(() => r.readU8()).toThrow(
      /read of 1 bytes at offset 12 runs past the end of the 12-byte readable part/,
    );
    expect(() => r.skip(1)).toThrow(QueueError);
    expect(() => r.read(1)).toThrow(QueueError);
  });

  it("reads a u64 as halves and gives zero-copy views inside one segment", () => {
    const { mem, segs, chain } = chainOf([8, 8], 2);
    mem.writeU64(segs[0]!.addr, { lo: 1, hi: 2 });
    const r = chain.reader();
    expect(r.readU64()).toEqual({ lo: 1, hi: 2 });
    const v = r.read(8);
    mem.writeU8(segs[1]!.addr, 9);
    expect(v[0]).toBe(9);
  });

  it("writes across segments, counts bytesWritten, and writes nothing past the end", () => {
    const { mem, segs, chain } = chainOf([4, 3, 1, 6], 1);
    const w = chain.writer();
    expect(w.remaining).toBe(10);
    w.writeU16(0xbbaa);
    w.writeU32(0xffeeddcc); // crosses into the third and fourth segments
    w.write(Uint8Array.of(1, 2));
    expect(w.bytesWritten).toBe(8);
    expect(() => w.writeU32(0)).toThrow(expect.objectContaining({ code: "WRITE_PAST_END" }));
    expect(w.bytesWritten).toBe(8);
    const got: number[] = [];
    for (const s of segs.slice(1)) for (let i = 0; i < s.len; i++) got.push(mem.readU8(s.addr + i));
    expect(got).toEqual([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1, 2, 0, 0]);
    // the readable segment was not touched
    expect(mem.readU32(segs[0]!.addr)).toBe(0);
    expect(() => w.writeU64({ lo: 0, hi: 0 })).toThrow(QueueError);
    w.writeU16(0x0403);
    expect(w.remaining).toBe(0);
  });

  it("round-trips random data through random segmentations", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 8 }),
        fc.uint8Array({ maxLength: 200 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 20 }),
        (lens, data, steps) => {
          const { chain } = chainOf(lens, 0);
          const w = chain.writer();
          const n = Math.min(data.length, w.remaining);
          let at = 0;
          let si = 0;
          while (at < n) {
            const k = Math.min(steps[si++ % steps.length]!, n - at);
            w.write(data.subarray(at, at + k));
            at += k;
          }
          expect(w.bytesWritten).toBe(n);
          const back = new Uint8Array(n);
          let p = 0;
          for (let i = 0; i < chain.length && p < n; i++) {
            const take = Math.min(chain.lens[i]!, n - p);
            back.set(chain.memory.subarray(chain.addrs[i]!, take), p);
            p += take;
          }
          expect(back).toEqual(data.subarray(0, n));
        },
      ),
    );
  });
});

describe("DriverQueue", () => {
  it("refuses bad requests and runs out of descriptors honestly", () => {
    const { drv } = rig(4);
    expect(() => drv.add([])).toThrow(expect.objectContaining({ code: "DRIVER_BAD_REQUEST" }));
    expect(() =>
      drv.add([
        { addr: 0x10000, len: 1, write: true },
        { addr: 0x10000, len: 1, write: false },
      ]),
    ).toThrow(/readable segments must come before/);
    const seg = { addr: 0x10000, len: 1, write: false };
    drv.add([seg, seg, seg]);
    expect(() => drv.add([seg, seg])).toThrow(expect.objectContaining({ code: "DRIVER_NO_SPACE" }));
    drv.add([seg, seg, seg, seg, seg], { indirect: true });
    expect(drv.numFree).toBe(0);
  });

  it("refuses a used id the driver never made available", () => {
    const { mem, l, drv } = rig(4);
    drv.add([{ addr: 0x10000, len: 1, write: true }]);
    mem.writeU32(l.used + 4, 3);
    mem.writeU16(l.used + 2, 1);
    expect(() => drv.getUsed()).toThrow(expect.objectContaining({ code: "DRIVER_BAD_USED_ID" }));
    mem.writeU16(l.used + 2, 2);
    expect(() => drv.getUsed()).toThrow(/ahead of the 1 outstanding/);
  });
});
