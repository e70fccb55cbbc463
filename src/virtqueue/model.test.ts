import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import type { DescriptorChain } from "./chain.js";
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from "./constants.js";
import { DriverQueue, layoutQueue, queueBytes } from "./driver.js";
import { VirtQueue } from "./queue.js";

/**
 * Property test of device side against driver side and a simple model: random interleavings of
 * adds, pops, out-of-order completions, flushes, collects and notification toggling, starting
 * at indices near 65535 so the 16-bit indices wrap.
 */

const MAX_SEGS = 6;
const SEG_MAX = 64;
const DATA = 0x10000;

type Op =
  | { t: "add"; segs: number; readable: number; lens: number[]; indirect: boolean; seed: number }
  | { t: "pop" }
  | { t: "undo" }
  | { t: "complete"; pick: number; frac: number }
  | { t: "flush" }
  | { t: "collect" }
  | { t: "kick" }
  | { t: "devNotify"; on: boolean }
  | { t: "drvIrq"; on: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        segs: fc.integer({ min: 1, max: MAX_SEGS }),
        readableFrac: fc.double({ min: 0, max: 1, noNaN: true }),
        lens: fc.array(fc.integer({ min: 0, max: SEG_MAX }), { minLength: MAX_SEGS, maxLength: MAX_SEGS }),
        indirect: fc.boolean(),
        seed: fc.integer({ min: 0, max: 255 }),
      })
      .map(
        ({ segs, readableFrac, lens, indirect, seed }): Op => ({
          t: "add",
          segs,
          readable: Math.round(readableFrac * segs),
          lens,
          indirect,
          seed,
        }),
      ),
  },
  { weight: 3, arbitrary: fc.constant<Op>({ t: "pop" }) },
  { weight: 1, arbitrary: fc.constant<Op>({ t: "undo" }) },
  {
    weight: 3,
    arbitrary: fc
      .record({ pick: fc.nat(), frac: fc.double({ min: 0, max: 1, noNaN: true }) })
      .map((r): Op => ({ t: "complete", ...r })),
  },
  { weight: 2, arbitrary: fc.constant<Op>({ t: "flush" }) },
  { weight: 2, arbitrary: fc.constant<Op>({ t: "collect" }) },
  { weight: 2, arbitrary: fc.constant<Op>({ t: "kick" }) },
  { weight: 1, arbitrary: fc.boolean().map((on): Op => ({ t: "devNotify", on })) },
  { weight: 1, arbitrary: fc.boolean().map((on): Op => ({ t: "drvIrq", on })) },
);

interface Outstanding {
  readable: Uint8Array;
  writable: { addr: number; len: number }[];
  writableLen: number;
  slot: number;
}

/** The spec's words for a notification with event index: some new entry was placed at index `event`. */
function passes(event: number, old: number, newIdx: number): boolean {
  for (let k = old; k !== newIdx; k = (k + 1) & 0xffff) if (k === event) return true;
  return false;
}

function runScenario(size: number, eventIdx: boolean, indirect: boolean, start: number, ops: Op[]): void {
  const mem = new FlatMemory(1 << 20);
  const layout = layoutQueue(0x1000, size);
  const indirectBase = 0x1000 + queueBytes(size) + 16;
  const indirectArea = { addr: (indirectBase + 15) & ~15, maxEntries: MAX_SEGS };
  const drv = new DriverQueue(mem, layout, { eventIdx, indirectArea, startIndex: start });
  const dev = new VirtQueue(mem, { ...layout, eventIdx, indirect });
  dev.restore({
    ...dev.save(),
    nextAvail: start,
    nextUsed: start,
    signalledUsed: start,
    signalledValid: true,
  });

  const outstanding = new Map<number, Outstanding>();
  const slotsInUse = new Set<number>();
  const inFlight: DescriptorChain[] = [];
  let lastPopped: DescriptorChain | null = null;
  const returned = new Map<number, number>(); // head -> expected len, published or not
  let added = 0;
  let collected = 0;
  let modelAvail = start; // driver's avail idx
  let modelPopped = start; // device's next_avail
  let lastKick = start;
  let lastFlush = start;
  let modelUsed = start; // device's next_used

  const completeChain = (c: DescriptorChain, frac: number) => {
    const w = c.writer();
    const n = Math.floor(frac * c.writableLength);
    const pattern = new Uint8Array(n);
    for (let i = 0; i < n; i++) pattern[i] = (c.head * 7 + i) & 0xff;
    w.write(pattern);
    expect(w.bytesWritten).toBe(n);
    dev.addUsed(c.head, n);
    returned.set(c.head, n);
    modelUsed = (modelUsed + 1) & 0xffff;
  };

  const popOne = (): DescriptorChain | null => {
    const c = dev.pop();
    if (modelPopped === modelAvail) {
      expect(c).toBeNull();
      return null;
    }
    expect(c).not.toBeNull();
    const o = outstanding.get(c!.head);
    expect(o).toBeDefined();
    // The device reads exactly what the driver wrote, in random-size pieces.
    const r = c!.reader();
    expect(r.remaining).toBe(o!.readable.length);
    const got = new Uint8Array(o!.readable.length);
    let at = 0;
    let step = 1;
    while (at < got.length) {
      const k = Math.min(step, got.length - at);
      got.set(r.read(k), at);
      at += k;
      step = (step * 3 + 1) % 37 || 1;
    }
    expect(got).toEqual(o!.readable);
    expect(r.remaining).toBe(0);
    expect(c!.writableLength).toBe(o!.writableLen);
    modelPopped = (modelPopped + 1) & 0xffff;
    return c;
  };

  const collect = () => {
    for (let u = drv.getUsed(); u !== null; u = drv.getUsed()) {
      const o = outstanding.get(u.id);
      expect(o, `id ${u.id} comes back once`).toBeDefined();
      expect(u.len).toBe(returned.get(u.id));
      // The bytes the device wrote are in the writable segments, in order.
      const bytes: number[] = [];
      for (const s of o!.writable) for (let i = 0; i < s.len; i++) bytes.push(mem.readU8(s.addr + i));
      for (let i = 0; i < u.len; i++) expect(bytes[i]).toBe((u.id * 7 + i) & 0xff);
      slotsInUse.delete(o!.slot);
      outstanding.delete(u.id);
      returned.delete(u.id);
      collected++;
    }
  };

  for (const op of ops) {
    switch (op.t) {
      case "add": {
        const useIndirect = op.indirect && indirect;
        const need = useIndirect ? 1 : op.segs;
        if (drv.numFree < need) break;
        const segs: { addr: number; len: number; write: boolean }[] = [];
        const readable: number[] = [];
        const writable: { addr: number; len: number }[] = [];
        // Each live buffer owns a data slot (at most `size` are outstanding).
        let slot = 0;
        while (slotsInUse.has(slot)) slot++;
        slotsInUse.add(slot);
        for (let i = 0; i < op.segs; i++) {
          const addr = DATA + (slot * MAX_SEGS + i) * SEG_MAX;
          const len = op.lens[i]!;
          const write = i >= op.readable;
          segs.push({ addr, len, write });
          if (write) {
            writable.push({ addr, len });
            mem.fill(addr, len, 0);
          } else {
            for (let j = 0; j < len; j++) {
              const b = (op.seed + 31 * i + j * 13) & 0xff;
              mem.writeU8(addr + j, b);
              readable.push(b);
            }
          }
        }
        const head = drv.add(segs, { indirect: useIndirect });
        expect(outstanding.has(head)).toBe(false);
        outstanding.set(head, {
          readable: Uint8Array.from(readable),
          writable,
          writableLen: writable.reduce((a, s) => a + s.len, 0),
          slot,
        });
        added++;
        modelAvail = (modelAvail + 1) & 0xffff;
        break;
      }
      case "pop": {
        const c = popOne();
        if (c) inFlight.push(c);
        lastPopped = c;
        break;
      }
      case "undo": {
        // Put back the chain popped last, while it is still held, and pop it again.
        const c = inFlight[inFlight.length - 1];
        if (c !== undefined && c === lastPopped) {
          inFlight.pop();
          dev.undoPop();
          modelPopped = (modelPopped - 1) & 0xffff;
          const again = popOne();
          expect(again!.head).toBe(c.head);
          inFlight.push(again!);
          lastPopped = again;
        }
        break;
      }
      case "complete": {
        if (inFlight.length === 0) break;
        const [c] = inFlight.splice(op.pick % inFlight.length, 1);
        if (c === lastPopped) lastPopped = null;
        completeChain(c!, op.frac);
        break;
      }
      case "flush": {
        const availFlags = mem.readU16(layout.avail);
        const usedEvent = mem.readU16(layout.avail + 4 + 2 * size);
        const expected = eventIdx
          ? passes(usedEvent, lastFlush, modelUsed)
          : modelUsed !== lastFlush && (availFlags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
        expect(dev.flushUsed()).toBe(expected);
        expect(mem.readU16(layout.used + 2)).toBe(modelUsed);
        lastFlush = modelUsed;
        break;
      }
      case "collect":
        collect();
        break;
      case "kick": {
        const usedFlags = mem.readU16(layout.used);
        const availEvent = mem.readU16(layout.used + 4 + 8 * size);
        const expected = eventIdx
          ? passes(availEvent, lastKick, modelAvail)
          : modelAvail !== lastKick && (usedFlags & VIRTQ_USED_F_NO_NOTIFY) === 0;
        expect(drv.kick()).toBe(expected);
        lastKick = modelAvail;
        break;
      }
      case "devNotify":
        if (op.on) {
          expect(dev.enableNotification()).toBe(modelPopped !== modelAvail);
          if (eventIdx) expect(mem.readU16(layout.used + 4 + 8 * size)).toBe(modelPopped);
          else expect(mem.readU16(layout.used)).toBe(0);
        } else {
          dev.disableNotification();
          expect(mem.readU16(layout.used)).toBe(eventIdx ? 0 : VIRTQ_USED_F_NO_NOTIFY);
        }
        break;
      case "drvIrq":
        if (op.on) drv.enableInterrupts();
        else drv.disableInterrupts();
        break;
    }
  }

  // Drain: every buffer comes back exactly once with its id and length.
  for (let c = popOne(); c !== null; c = popOne()) inFlight.push(c);
  while (inFlight.length > 0) completeChain(inFlight.pop()!, 1);
  dev.flushUsed();
  collect();
  expect(collected).toBe(added);
  expect(outstanding.size).toBe(0);
  expect(drv.numFree).toBe(size);
}

describe("split virtqueue against the model", () => {
  it("every buffer comes back once, data intact, notification decisions as the spec says", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4, 8, 16, 32),
        fc.boolean(),
        fc.boolean(),
        fc.oneof(fc.integer({ min: 65520, max: 65535 }), fc.constant(0), fc.integer({ min: 0, max: 65535 })),
        fc.array(opArb, { minLength: 1, maxLength: 120 }),
        runScenario,
      ),
      { numRuns: 300 },
    );
  });

  it("wraps the 16-bit indices many times over a long run", () => {
    const ops: Op[] = [];
    for (let i = 0; i < 3000; i++) {
      ops.push({
        t: "add",
        segs: 1 + (i % 3),
        readable: 1,
        lens: [3, 5, 7, 9, 11, 13],
        indirect: i % 2 === 0,
        seed: i & 0xff,
      });
      ops.push(
        { t: "kick" },
        { t: "pop" },
        { t: "complete", pick: 0, frac: 1 },
        { t: "flush" },
        { t: "collect" },
      );
    }
    runScenario(4, true, true, 65000, ops);
    runScenario(4, false, true, 65000, ops);
  });
});
