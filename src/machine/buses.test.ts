import { describe, expect, it } from "vitest";
import { ConfigError } from "../common/errors.js";
import { FlatMemory } from "../common/memory.js";
import { IoBus, type IoHandler } from "./io-bus.js";
import { MemoryBus, type MmioHandler, PageKind } from "./memory-bus.js";
import { TimerQueue } from "./timers.js";

describe("IoBus", () => {
  it("routes claimed ports, reads all ones elsewhere and counts it", () => {
    const bus = new IoBus();
    const seen: number[][] = [];
    const h: IoHandler = { ioRead: (p, s) => p + s, ioWrite: (p, s, v) => seen.push([p, s, v]) };
    bus.register(0x3f8, 8, h, "uart");
    expect(bus.read(0x3fd, 1)).toBe(0x3fe);
    bus.write(0x3f8, 1, 0x41);
    expect(seen).toEqual([[0x3f8, 1, 0x41]]);
    expect(bus.read(0x80, 1)).toBe(0xff);
    expect(bus.read(0x80, 2)).toBe(0xffff);
    expect(bus.read(0x80, 4)).toBe(0xffffffff);
    bus.write(0x80, 1, 0);
    expect(bus.unclaimedReads).toBe(3);
    expect(bus.unclaimedWrites).toBe(1);
    expect(bus.owner(0x3ff)).toBe("uart");
  });

  it("refuses overlaps and bad ranges, naming both parties", () => {
    const bus = new IoBus();
    const h: IoHandler = { ioRead: () => 0, ioWrite: () => {} };
    bus.register(0x20, 2, h, "pic");
    expect(() => bus.register(0x21, 2, h, "other")).toThrow(/overlaps pic/);
    expect(() => bus.register(0xffff, 2, h, "edge")).toThrow(ConfigError);
    expect(bus.unregister(0x20)).toBe(true);
    bus.register(0x21, 2, h, "other");
  });
});

describe("MemoryBus", () => {
  const dev = (): MmioHandler & { log: number[][] } => {
    const log: number[][] = [];
    return { log, mmioRead: (o, s) => 0x1000 + o + s, mmioWrite: (o, s, v) => log.push([o, s, v]) };
  };

  it("RAM, MMIO over RAM, and unassigned space", () => {
    const bus = new MemoryBus(new FlatMemory(0x20_0000));
    bus.write(0x1000, 4, 0xdeadbeef);
    expect(bus.read(0x1000, 4)).toBe(0xdeadbeef);
    expect(bus.read(0x1001, 2)).toBe(0xadbe);
    const d = dev();
    bus.addMmio(0xa0000, 0x20000, d, "vga");
    expect(bus.read(0xa0010, 2)).toBe(0x1012);
    bus.write(0xa0004, 4, 7);
    expect(d.log).toEqual([[4, 4, 7]]);
    expect(bus.isRam(0x9f000, 0x1000)).toBe(true);
    expect(bus.isRam(0x9f000, 0x1001)).toBe(false);
    expect(bus.read(0x4000_0000, 4)).toBe(0xffffffff);
    bus.write(0x4000_0000, 4, 0);
    expect(bus.unassignedReads).toBe(1);
    expect(bus.unassignedWrites).toBe(1);
    expect(bus.removeMmio(0xa0000)).toBe(true);
    expect(bus.pageKind[0xa0]).toBe(PageKind.RAM);
  });

  it("splits accesses that cross a page into bytes", () => {
    const bus = new MemoryBus(new FlatMemory(0x2000));
    bus.write(0xffe, 4, 0x11223344);
    expect(bus.ram.readU32(0xffe)).toBe(0x11223344);
    expect(bus.read(0xffe, 4)).toBe(0x11223344);
    expect(bus.read(0x1ffe, 4)).toBe(0xffff0000);
  });

  it("refuses overlapping or unaligned MMIO", () => {
    const bus = new MemoryBus(new FlatMemory(0x1000));
    bus.addMmio(0xfee0_0000, 0x1000, dev(), "lapic");
    expect(() => bus.addMmio(0xfee0_0000, 0x2000, dev(), "x")).toThrow(/overlaps lapic/);
    expect(() => bus.addMmio(0x1234, 0x1000, dev(), "y")).toThrow(ConfigError);
  });
});

describe("TimerQueue", () => {
  it("runs callbacks in time order, skips cancelled ones", () => {
    const q = new TimerQueue();
    const out: string[] = [];
    q.schedule(300, () => out.push("c"));
    q.schedule(100, () => out.push("a"));
    const h = q.schedule(200, () => out.push("x"));
    q.schedule(100, () => out.push("b"));
    q.cancel(h);
    expect(q.nextDeadline()).toBe(100);
    expect(q.runDue(250)).toBe(2);
    expect(out).toEqual(["a", "b"]);
    expect(q.now()).toBe(250);
    q.runDue(1000);
    expect(out).toEqual(["a", "b", "c"]);
    expect(q.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
  });
});
