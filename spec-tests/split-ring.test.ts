/**
 * Device-side normative requirements of section 2.7 (Split Virtqueues) of the virtio 1.2
 * specification (../shared/virtio-spec/split-ring.tex), one test each, quoting the sentence.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory, RecordingMemory } from "../src/common/memory.js";
import {
  DriverQueue,
  layoutQueue,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  VirtQueue,
} from "../src/virtqueue/index.js";

const SIZE = 8;

function rig(opts: { eventIdx?: boolean; indirect?: boolean; recording?: boolean } = {}) {
  const flat = new FlatMemory(0x20000);
  const mem = opts.recording ? new RecordingMemory(flat) : flat;
  const l = layoutQueue(0x1000, SIZE);
  const eventIdx = opts.eventIdx ?? false;
  const drv = new DriverQueue(flat, l, { eventIdx, indirectArea: { addr: 0x4000, maxEntries: 8 } });
  const dev = new VirtQueue(mem, { ...l, eventIdx, indirect: opts.indirect ?? true });
  return { flat, mem, l, drv, dev };
}

function writeDesc(
  m: FlatMemory,
  table: number,
  i: number,
  addr: number,
  len: number,
  flags: number,
  next = 0,
) {
  const o = table + 16 * i;
  m.writeU32(o, addr);
  m.writeU32(o + 4, 0);
  m.writeU32(o + 8, len);
  m.writeU16(o + 12, flags);
  m.writeU16(o + 14, next);
}

describe("2.7.4.1 Device Requirements: Message Framing", () => {
  it('"The device MUST NOT make assumptions about the particular arrangement of descriptors."', () => {
    // The same 12-byte request split every possible way reads back the same.
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 6 }), (cuts) => {
        const { flat, drv, dev } = rig();
        const payload = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
        const points = [...new Set([0, ...cuts.map((c) => c % 13), 12])].sort((a, b) => a - b);
        const segs = [];
        for (let i = 0; i + 1 < points.length; i++) {
          const addr = 0x10000 + i * 0x100;
          flat.writeFrom(addr, payload.subarray(points[i]!, points[i + 1]!));
          segs.push({ addr, len: points[i + 1]! - points[i]!, write: false });
        }
        drv.add(segs.slice(0, SIZE), { indirect: segs.length > SIZE });
        const r = dev.pop()!.reader();
        expect(r.readU32()).toBe(0xa3a2a1a0);
        expect([...r.read(8)]).toEqual([...payload.subarray(4)]);
      }),
    );
  });
});

describe("2.7.5.1 Device Requirements: The Virtqueue Descriptor Table", () => {
  it('"A device MUST NOT write to a device-readable buffer" and "MUST NOT write to any descriptor table entry."', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (n, ind, junk) => {
          const { flat, l, drv, dev } = rig();
          flat.writeFrom(0x10000, junk);
          const segs = [];
          for (let i = 0; i < n; i++) segs.push({ addr: 0x10000 + 16 * i, len: 16, write: false });
          segs.push({ addr: 0x11000, len: 32, write: true });
          drv.add(segs, { indirect: ind });
          const before = flat.u8.slice();
          const c = dev.pop()!;
          c.reader().readAll();
          const w = c.writer();
          w.fill(32, 0x5a);
          dev.addUsed(c.head, w.bytesWritten);
          dev.flushUsed();
          // Only the writable buffer and the used ring changed.
          for (let a = 0; a < flat.size; a++) {
            if (before[a] === flat.u8[a]) continue;
            const inWritable = a >= 0x11000 && a < 0x11020;
            const inUsed = a >= l.used && a < l.used + 6 + 8 * SIZE;
            expect(inWritable || inUsed, `byte 0x${a.toString(16)} changed`).toBe(true);
          }
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe("2.7.5.3.2 Device Requirements: Indirect Descriptors", () => {
  it('"The device MUST ignore the write-only flag (flags&VIRTQ_DESC_F_WRITE) in the descriptor that refers to an indirect table."', () => {
    const { flat, l, dev } = rig();
    writeDesc(flat, l.desc, 0, 0x4000, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE);
    writeDesc(flat, 0x4000, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 1);
    writeDesc(flat, 0x4000, 1, 0x10100, 8, VIRTQ_DESC_F_WRITE);
    flat.writeU16(l.avail + 2, 1);
    const c = dev.pop()!;
    expect(c.readableLength).toBe(4);
    expect(c.writableLength).toBe(8);
  });

  it('"The device MUST handle the case of zero or more normal chained descriptors followed by a single descriptor with flags&VIRTQ_DESC_F_INDIRECT."', () => {
    const { flat, l, dev } = rig();
    writeDesc(flat, l.desc, 3, 0x10000, 4, VIRTQ_DESC_F_NEXT, 5);
    writeDesc(flat, l.desc, 5, 0x10010, 2, VIRTQ_DESC_F_NEXT, 6);
    writeDesc(flat, l.desc, 6, 0x4000, 32, VIRTQ_DESC_F_INDIRECT);
    writeDesc(flat, 0x4000, 0, 0x10020, 6, VIRTQ_DESC_F_NEXT, 1);
    writeDesc(flat, 0x4000, 1, 0x10100, 8, VIRTQ_DESC_F_WRITE);
    flat.writeU16(l.avail + 4, 3);
    flat.writeU16(l.avail + 2, 1);
    const c = dev.pop()!;
    expect(c.head).toBe(3);
    expect(c.addrs).toEqual([0x10000, 0x10010, 0x10020, 0x10100]);
    expect(c.readableCount).toBe(3);
    expect(c.descriptorCount).toBe(5);
  });
});

describe("2.7.7.2 Device Requirements: Used Buffer Notification Suppression", () => {
  it('without EVENT_IDX: "The device MUST ignore the used_event value." and "If flags is 0, the device MUST send a notification."', () => {
    const { drv, dev } = rig({ eventIdx: false });
    drv.setUsedEvent(100);
    for (let i = 0; i < 4; i++) {
      const h = drv.add([{ addr: 0x10000, len: 4, write: true }]);
      dev.addUsed(dev.pop()!.head, 0);
      expect(dev.flushUsed()).toBe(true);
      expect(drv.getUsed()!.id).toBe(h);
    }
  });

  it('without EVENT_IDX: "If flags is 1, the device SHOULD NOT send a notification."', () => {
    const { drv, dev } = rig({ eventIdx: false });
    drv.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    drv.add([{ addr: 0x10000, len: 4, write: true }]);
    dev.addUsed(dev.pop()!.head, 0);
    expect(dev.flushUsed()).toBe(false);
  });

  it('with EVENT_IDX: "The device MUST ignore the lower bit of flags."', () => {
    const { drv, dev } = rig({ eventIdx: true });
    drv.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    drv.add([{ addr: 0x10000, len: 4, write: true }]);
    dev.addUsed(dev.pop()!.head, 0);
    expect(dev.flushUsed()).toBe(true); // used_event is 0: the first used buffer notifies
  });

  it('with EVENT_IDX: "If the idx field in the used ring (which determined where that descriptor index was placed) was equal to used_event, the device MUST send a notification." Otherwise SHOULD NOT.', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 4 }), (usedEvent, batch) => {
        const { drv, dev } = rig({ eventIdx: true });
        // Warm up: one used buffer so the device's "old" index is known.
        drv.add([{ addr: 0x10000, len: 4, write: true }]);
        dev.addUsed(dev.pop()!.head, 0);
        dev.flushUsed();
        drv.getUsed();
        drv.setUsedEvent(usedEvent);
        for (let i = 0; i < batch; i++) drv.add([{ addr: 0x10000, len: 4, write: true }]);
        for (let i = 0; i < batch; i++) dev.addUsed(dev.pop()!.head, 0);
        // Entries were placed at used indices 1 .. batch.
        expect(dev.flushUsed()).toBe(usedEvent >= 1 && usedEvent <= batch);
      }),
    );
  });

  it('"For example, if used_event is 0, then a device using VIRTIO_F_EVENT_IDX would send a used buffer notification to the driver after the first buffer is used (and again after the 65536th buffer, etc)."', () => {
    const { drv, dev } = rig({ eventIdx: true });
    const seen: number[] = [];
    for (let n = 1; n <= 65537; n++) {
      drv.add([{ addr: 0x10000, len: 4, write: true }]);
      dev.addUsed(dev.pop()!.head, 0);
      if (dev.flushUsed()) seen.push(n);
      drv.getUsed();
      drv.setUsedEvent(0);
    }
    expect(seen).toEqual([1, 65537]);
  });
});

describe("2.7.8.2 Device Requirements: The Virtqueue Used Ring", () => {
  it('"The device MUST set len prior to updating the used idx."', () => {
    const { flat, l, drv, dev } = rig();
    drv.add([{ addr: 0x10000, len: 8, write: true }]);
    const c = dev.pop()!;
    dev.addUsed(c.head, 5);
    // len is in the ring, idx not yet published.
    expect(flat.readU32(l.used + 8)).toBe(5);
    expect(flat.readU16(l.used + 2)).toBe(0);
    dev.flushUsed();
    expect(flat.readU16(l.used + 2)).toBe(1);
  });

  it('"The device MUST write at least len bytes to descriptor, beginning at the first device-writable buffer, prior to updating the used idx."', () => {
    const { flat, l, drv, dev } = rig();
    drv.add([
      { addr: 0x10000, len: 4, write: false },
      { addr: 0x10100, len: 3, write: true },
      { addr: 0x10200, len: 3, write: true },
    ]);
    const c = dev.pop()!;
    const w = c.writer();
    w.write(Uint8Array.of(1, 2, 3, 4, 5));
    dev.addUsed(c.head, w.bytesWritten);
    dev.flushUsed();
    expect([...flat.subarray(0x10100, 3), ...flat.subarray(0x10200, 2)]).toEqual([1, 2, 3, 4, 5]);
    expect(flat.readU32(l.used + 8)).toBe(5);
    expect(drv.getUsed()!.len).toBe(5);
  });
});

describe("2.7.10.1 Device Requirements: Available Buffer Notification Suppression", () => {
  it('without EVENT_IDX: "The device MUST set flags to 0 or 1."', () => {
    const { flat, l, dev } = rig({ eventIdx: false });
    dev.disableNotification();
    expect(flat.readU16(l.used)).toBe(VIRTQ_USED_F_NO_NOTIFY);
    dev.enableNotification();
    expect(flat.readU16(l.used)).toBe(0);
  });

  it('with EVENT_IDX: "The device MUST set flags to 0."', () => {
    const { flat, l, drv, dev } = rig({ eventIdx: true });
    dev.disableNotification();
    expect(flat.readU16(l.used)).toBe(0);
    drv.add([{ addr: 0x10000, len: 4, write: false }]);
    dev.enableNotification();
    expect(flat.readU16(l.used)).toBe(0);
    // avail_event follows next_avail
    expect(flat.readU16(l.used + 4 + 8 * SIZE)).toBe(0);
    dev.pop();
    expect(flat.readU16(l.used + 4 + 8 * SIZE)).toBe(1);
  });

  it('"The device MUST handle spurious notifications from the driver."', () => {
    const { drv, dev } = rig();
    // A notify with nothing new: pop simply finds nothing, any number of times.
    for (let i = 0; i < 3; i++) expect(dev.pop()).toBeNull();
    drv.add([{ addr: 0x10000, len: 4, write: false }]);
    expect(dev.pop()).not.toBeNull();
    expect(dev.pop()).toBeNull();
    expect(dev.flushUsed()).toBe(false);
  });
});

describe("2.7 Split Virtqueues", () => {
  it('"Queue Size value is always a power of 2. The maximum Queue Size value is 32768."', () => {
    const mem = new FlatMemory(0x100000);
    const l = layoutQueue(0, 32768);
    expect(new VirtQueue(mem, { ...l, eventIdx: true, indirect: true }).size).toBe(32768);
    expect(() => new VirtQueue(mem, { ...l, size: 65536, eventIdx: true, indirect: true })).toThrow(/32768/);
    expect(() => new VirtQueue(mem, { ...l, size: 12, eventIdx: true, indirect: true })).toThrow(
      /power of two/,
    );
  });
});
