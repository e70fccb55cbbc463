import { describe, expect, it } from "vitest";
import { IoBus } from "../io-bus.js";
import { TimerQueue } from "../timers.js";
import { PcChipset } from "./pc-chipset.js";
import { PIT_HZ } from "./pit.js";

function boot() {
  const clock = new TimerQueue();
  const io = new IoBus();
  const out: number[] = [];
  let resets = 0;
  const cs = new PcChipset({
    clock,
    memorySize: 128 << 20,
    serial: { write: (b) => out.push(...b) },
    wallClock: () => Date.UTC(2024, 0, 1),
    onReset: () => resets++,
  });
  cs.register(io);
  // init_8259A
  io.write(0x21, 1, 0xff);
  io.write(0x20, 1, 0x11);
  io.write(0x21, 1, 0x30);
  io.write(0x21, 1, 0x04);
  io.write(0x21, 1, 0x01);
  io.write(0xa0, 1, 0x11);
  io.write(0xa1, 1, 0x38);
  io.write(0xa1, 1, 0x02);
  io.write(0xa1, 1, 0x01);
  io.write(0x21, 1, 0xfb);
  io.write(0xa1, 1, 0xff);
  return { clock, io, cs, out, resets: () => resets };
}

describe("PC chipset wiring", () => {
  it("claims the legacy ports", () => {
    const { io } = boot();
    const owners = [0x20, 0xa0, 0x4d0, 0x40, 0x61, 0x70, 0x3f8, 0x60, 0x64, 0x80, 0x92].map((p) =>
      io.owner(p),
    );
    expect(owners.every((o) => o !== undefined)).toBe(true);
  });

  it("the PIT's IRQ 0, COM1's IRQ 4 and the RTC's IRQ 8 arrive as vectors 0x30, 0x34, 0x38", () => {
    const { clock, io, cs } = boot();
    io.write(0x21, 1, 0xfb & ~0x01 & ~0x10);
    io.write(0xa1, 1, 0xfe);
    // PIT periodic at HZ=250
    io.write(0x43, 1, 0x34);
    io.write(0x40, 1, 4773 & 0xff);
    io.write(0x40, 1, 4773 >> 8);
    expect(cs.pic.acknowledge()).toBe(0x30); // OUT rose when the mode was set
    io.write(0x20, 1, 0x60);
    clock.runDue(Math.ceil((4773 * 1e9) / PIT_HZ));
    expect(cs.pic.hasInterrupt()).toBe(true);
    expect(cs.pic.acknowledge()).toBe(0x30);
    io.write(0x20, 1, 0x60);
    // COM1 THRE interrupt with OUT2
    io.write(0x3fc, 1, 0x08);
    io.write(0x3f9, 1, 0x02);
    expect(cs.pic.acknowledge()).toBe(0x34);
    expect(io.read(0x3fa, 1) & 0x0f).toBe(0x02);
    io.write(0x3f9, 1, 0);
    io.write(0x20, 1, 0x64);
    // RTC update interrupt (IRQ 0 masked so the PIT's ticks do not come first)
    io.write(0x21, 1, 0xfb | 0x01);
    io.write(0x70, 1, 0x0b);
    io.write(0x71, 1, 0x12);
    clock.runDue(clock.now() + 1e9);
    expect(cs.pic.acknowledge()).toBe(0x38);
    io.write(0x70, 1, 0x0c);
    expect(io.read(0x71, 1) & 0x90).toBe(0x90);
    io.write(0xa0, 1, 0x60);
    io.write(0x20, 1, 0x62);
    expect(cs.pic.registers().isr).toBe(0);
  });

  it("serial output, reset requests and a full snapshot round trip", () => {
    const { clock, io, cs, out, resets } = boot();
    for (const c of "ok") io.write(0x3f8, 1, c.charCodeAt(0));
    expect(String.fromCharCode(...out)).toBe("ok");
    io.write(0x64, 1, 0xfe);
    io.write(0x92, 1, 0x03);
    expect(resets()).toBe(2);
    io.write(0x43, 1, 0x34);
    io.write(0x40, 1, 0x00);
    io.write(0x40, 1, 0x10);
    clock.runDue(5e6);
    const st = JSON.parse(JSON.stringify(cs.save()));
    const b = boot();
    b.clock.advanceTo(5e6);
    b.cs.restore(st);
    expect(b.cs.save()).toEqual(st);
    expect(b.cs.pit.readCounter(0)).toBe(cs.pit.readCounter(0));
    cs.reset();
    expect(cs.pic.registers().imr).toBe(0xffff);
  });
});
