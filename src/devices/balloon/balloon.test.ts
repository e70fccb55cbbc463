import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPciTestRig } from "../../testing.js";
import { VIRTIO_F_EVENT_IDX } from "../device.js";
import { type BalloonEvent, VirtioBalloon, type VirtioBalloonOptions } from "./balloon.js";
import {
  BALLOON_STAT_NAMES,
  VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_PAGE_REPORTING,
  VIRTIO_BALLOON_F_STATS_VQ,
} from "./constants.js";

const MEM = 4 << 20;
const PAGES = MEM / 4096;
/** Pages the test driver never uses for rings or buffers: free to give to the balloon. */
const FREE_FIRST = 512;

function balloonRig(
  options: VirtioBalloonOptions = {},
  accept: number[] = [
    VIRTIO_F_EVENT_IDX,
    VIRTIO_BALLOON_F_STATS_VQ,
    VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
    VIRTIO_BALLOON_F_PAGE_REPORTING,
  ],
) {
  const events: BalloonEvent[] = [];
  const discarded: [number, number][] = [];
  const device = new VirtioBalloon({ onDiscard: (a, l) => discarded.push([a, l]), ...options });
  device.onEvent((e) => events.push(e));
  const rig = createPciTestRig(device, { memorySize: MEM });
  const vqs = rig.driver.bringUp(accept);
  const buf = rig.driver.dma.alloc(64 * 1024, 4096);
  if (buf + 64 * 1024 > FREE_FIRST * 4096)
    throw new Error("test layout: driver memory reaches the free pages");
  /** Sends one PFN array on queue q and returns the used length. */
  const sendPfns = (q: number, pfns: readonly number[]) => {
    pfns.forEach((p, i) => {
      rig.memory.writeU32(buf + 4 * i, p >>> 0);
    });
    const vq = vqs[q]!.queue;
    vq.add([{ addr: buf, len: 4 * pfns.length, write: false }]);
    rig.driver.kick(q);
    const u = vq.getUsed();
    expect(u).not.toBeNull();
    return u!.len;
  };
  return { device, rig, vqs, buf, sendPfns, events, discarded };
}

function fillPage(mem: { fill(a: number, l: number, v: number): void }, pfn: number, v: number) {
  mem.fill(pfn * 4096, 4096, v);
}

describe("virtio-balloon inflate/deflate against a model", () => {
  it("random inflate/deflate sequences keep the device's page set equal to the model", () => {
    const pfn = fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: FREE_FIRST, max: PAGES - 1 }) },
      { weight: 1, arbitrary: fc.integer({ min: PAGES, max: 0xffff_ffff }) },
    );
    const op = fc.record({ inflate: fc.boolean(), pfns: fc.array(pfn, { minLength: 1, maxLength: 40 }) });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
        const { device, rig, sendPfns } = balloonRig();
        const model = new Set<number>();
        let outOfRange = 0;
        let returned = 0;
        let reclaimed = 0;
        for (const o of ops) {
          for (const p of o.pfns) if (p < PAGES) fillPage(rig.memory, p, 0xa5);
          // A deflate names pages the driver gave earlier: take them from the model, plus strays.
          const pfns = o.inflate ? o.pfns : [...[...model].slice(0, 10), ...o.pfns.slice(0, 3)];
          expect(sendPfns(o.inflate ? 0 : 1, pfns)).toBe(0);
          for (const p of pfns) {
            if (p >= PAGES) {
              outOfRange++;
              continue;
            }
            if (o.inflate) {
              model.add(p);
              returned++;
            } else if (model.delete(p)) reclaimed++;
          }
          if (o.inflate) {
            for (const p of pfns) if (p < PAGES) expect(rig.memory.readU32(p * 4096 + 100)).toBe(0);
          }
        }
        for (let p = 0; p < PAGES; p++) expect(device.isInflated(p)).toBe(model.has(p));
        expect(device.inflatedBytes).toBe(model.size * 4096);
        expect(device.counters.pfnsOutOfRange).toBe(outOfRange);
        expect(device.counters.pagesReturned).toBe(returned);
        expect(device.counters.pagesReclaimed).toBe(reclaimed);
        expect(rig.transport.status & 64).toBe(0);
      }),
      { numRuns: 40 },
    );
  });

  it("an inflated page is zeroed and handed to the discard hook; a deflated page is usable again", () => {
    const { device, rig, sendPfns, discarded, events } = balloonRig();
    fillPage(rig.memory, 600, 0x77);
    fillPage(rig.memory, 601, 0x77);
    sendPfns(0, [600, 601]);
    expect(rig.memory.subarray(600 * 4096, 8192).every((b) => b === 0)).toBe(true);
    expect(discarded).toEqual([[600 * 4096, 8192]]);
    expect(events).toContainEqual({ type: "inflate", pages: 2 });
    sendPfns(1, [601]);
    expect(device.isInflated(601)).toBe(false);
    expect(device.isInflated(600)).toBe(true);
    rig.memory.writeU32(601 * 4096, 0xdeadbeef);
    expect(rig.memory.readU32(601 * 4096)).toBe(0xdeadbeef);
    expect(events).toContainEqual({ type: "deflate", pages: 1 });
  });
});

describe("virtio-balloon target, actual and events", () => {
  it("setTarget changes num_pages with a configuration change; the driver's actual comes back as an event", () => {
    const { device, rig, events } = balloonRig();
    rig.driver.takeInterrupts();
    device.setTarget(10 * 4096 + 100);
    expect(rig.driver.readConfig(0, 4)).toBe(10);
    expect(rig.driver.takeInterrupts().config).toBe(true);
    // Linux writes actual with one 32-bit write; legacy drivers byte by byte.
    rig.driver.writeConfig(4, 4, 7);
    expect(device.currentSize).toBe(7 * 4096);
    rig.driver.writeConfig(4, 1, 9);
    rig.driver.writeConfig(5, 1, 1);
    expect(rig.driver.readConfig(4, 4)).toBe(0x109);
    expect(events.filter((e) => e.type === "actual").map((e) => (e as { pages: number }).pages)).toEqual([
      7, 9, 0x109,
    ]);
    // num_pages is read-only for the driver.
    rig.driver.writeConfig(0, 4, 1234);
    expect(rig.driver.readConfig(0, 4)).toBe(10);
    expect(() => device.setTarget(-1)).toThrow(/balloon target/);
  });
});

describe("virtio-balloon statistics", () => {
  const entry = fc.record({
    tag: fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: 0, max: 9 }) },
      fc.integer({ min: 10, max: 0xffff }),
    ),
    value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  });
  it("statistics are parsed exactly, unknown tags ignored, in any order", () => {
    fc.assert(
      fc.property(fc.array(fc.array(entry, { maxLength: 14 }), { minLength: 1, maxLength: 4 }), (rounds) => {
        const { device, rig, vqs } = balloonRig();
        const statsq = vqs[2]!.queue;
        const addr = rig.driver.dma.alloc(4096);
        for (let r = 0; r < rounds.length; r++) {
          const entries = rounds[r]!;
          entries.forEach((e, i) => {
            rig.memory.writeU16(addr + 10 * i, e.tag);
            rig.memory.writeU32(addr + 10 * i + 2, Number(e.value & 0xffff_ffffn));
            rig.memory.writeU32(addr + 10 * i + 6, Number(e.value >> 32n));
          });
          statsq.add([{ addr, len: Math.max(10 * entries.length, 0) || 10, write: false }]);
          if (entries.length === 0) rig.memory.writeU16(addr, 0xffff); // one unknown entry
          rig.driver.kick(2);
          const expected: Record<string, bigint> = {};
          for (const e of entries) if (e.tag <= 9) expected[BALLOON_STAT_NAMES[e.tag]!] = e.value;
          expect(device.stats).toEqual(expected);
          expect(statsq.getUsed()).toBeNull(); // held for the next request
          expect(device.requestStats()).toBe(true);
          expect(statsq.getUsed()).not.toBeNull();
          expect(device.requestStats()).toBe(false);
        }
        expect(device.counters.statsUpdates).toBe(rounds.length);
      }),
      { numRuns: 40 },
    );
  });
});

describe("virtio-balloon free page reporting", () => {
  it("reported pages are zeroed and counted as returned, and usable after the request is used", () => {
    const { device, rig, vqs, events } = balloonRig();
    const repq = vqs[3]!.queue;
    for (let p = 700; p < 708; p++) fillPage(rig.memory, p, 0x33);
    repq.add([
      { addr: 700 * 4096, len: 4 * 4096, write: true },
      { addr: 704 * 4096 + 100, len: 4096 * 2, write: true }, // covers only page 705 whole
    ]);
    rig.driver.kick(3);
    expect(repq.getUsed()).not.toBeNull();
    expect(rig.memory.subarray(700 * 4096, 4 * 4096).every((b) => b === 0)).toBe(true);
    expect(rig.memory.subarray(705 * 4096, 4096).every((b) => b === 0)).toBe(true);
    expect(rig.memory.readU8(704 * 4096 + 100)).toBe(0x33);
    expect(rig.memory.readU8(706 * 4096 + 200)).toBe(0x33);
    expect(device.counters.pagesReported).toBe(5);
    expect(device.counters.pagesReturned).toBe(5);
    expect(device.isInflated(700)).toBe(false);
    expect(events).toContainEqual({ type: "report", pages: 5 });
  });

  it("without STATS_VQ negotiated the reporting queue is queue 2", () => {
    const { device, rig, vqs } = balloonRig({}, [VIRTIO_BALLOON_F_PAGE_REPORTING]);
    const q2 = vqs[2]!.queue;
    fillPage(rig.memory, 800, 1);
    q2.add([{ addr: 800 * 4096, len: 4096, write: true }]);
    rig.driver.kick(2);
    expect(q2.getUsed()).not.toBeNull();
    expect(device.counters.pagesReported).toBe(1);
    expect(device.stats).toBeNull();
  });
});

describe("virtio-balloon state", () => {
  it("save/restore keeps the page set, target, actual, statistics and the held stats buffer", () => {
    const a = balloonRig();
    a.sendPfns(0, [600, 601, 602, 900]);
    a.device.setTarget(4 * 4096);
    a.rig.driver.writeConfig(4, 4, 4);
    const addr = a.rig.driver.dma.alloc(64);
    a.rig.memory.writeU16(addr, 4);
    a.rig.memory.writeU32(addr + 2, 12345);
    a.vqs[2]!.queue.add([{ addr, len: 10, write: false }]);
    a.rig.driver.kick(2);
    const snap = JSON.parse(JSON.stringify(a.rig.transport.save()));
    const b = balloonRig();
    b.rig.transport.restore(snap);
    expect(b.device.save()).toEqual(a.device.save());
    expect(b.device.isInflated(601)).toBe(true);
    expect(b.device.stats).toEqual({ memFree: 12345n });
    expect(b.device.requestStats()).toBe(true);
  });

  it("a device reset gives every page back to the guest", () => {
    const { device, rig, sendPfns } = balloonRig();
    sendPfns(0, [600, 601]);
    rig.driver.reset();
    expect(device.inflatedBytes).toBe(0);
    expect(device.currentSize).toBe(0);
  });
});
