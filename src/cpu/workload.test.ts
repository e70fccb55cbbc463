import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { ExitReason } from "./fault.js";
import { CALL_COUNT, FILL_COUNT, SORT_COUNT, workload16, workload32 } from "./workload.js";

function lcg32(): number[] {
  const out: number[] = [];
  let x = 12345;
  for (let i = 0; i < FILL_COUNT; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(x);
  }
  return out;
}

describe("benchmark workload", () => {
  it("flat 32-bit: checksum, copy, call sum and sort are right", () => {
    const ram = new FlatMemory(0x40_0000);
    const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
    const data = 0x10_0000;
    ram.u8.set(workload32(data), 0x1000);
    cpu.setFlat32(0x1000, 0x8000);
    expect(cpu.run(10_000_000)).toBe(ExitReason.HLT);
    const vals = lcg32();
    let calls = 0;
    for (let i = CALL_COUNT; i >= 1; i--) calls = (calls + i * 3 + 7) >>> 0;
    expect(cpu.r32[2]! >>> 0).toBe(calls);
    const dst = data + FILL_COUNT * 4;
    const sorted = vals.slice(0, SORT_COUNT).map((v, i) => (i < 64 ? (v ^ 0x5a5a5a5a) >>> 0 : v));
    sorted.sort((x, y) => x - y);
    for (let i = 0; i < SORT_COUNT; i++) expect(ram.readU32(dst + 4 * i)).toBe(sorted[i]);
    for (let i = 0; i < FILL_COUNT; i++) expect(ram.readU32(data + 4 * i)).toBe(vals[i]);
    expect(cpu.instructions).toBeGreaterThan(50_000);
  });

  it("real mode: same shape with 16-bit code", () => {
    const ram = new FlatMemory(0x20_0000);
    const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
    ram.u8.set(workload16(), 0x1_0000);
    cpu.setRealMode(0x1000, 0);
    for (const s of [0, 3]) cpu.loadSegment(s, 0x2000);
    cpu.loadSegment(2, 0x5000);
    cpu.r16[8] = 0xfffe;
    expect(cpu.run(10_000_000)).toBe(ExitReason.HLT);
    let calls = 0;
    for (let i = CALL_COUNT; i >= 1; i--) calls = (calls + i * 3 + 7) & 0xffff;
    expect(cpu.r16[4]).toBe(calls);
    const words: number[] = [];
    let x = 12345;
    for (let i = 0; i < FILL_COUNT; i++) {
      x = (Math.imul(x, 25173) + 13849) & 0xffff;
      words.push(x);
    }
    const dst = 0x2_0000 + FILL_COUNT * 2;
    const sorted = words.slice(0, SORT_COUNT).map((v, i) => (i < 128 ? v ^ 0x5a5a : v));
    sorted.sort((p, q) => p - q);
    for (let i = 0; i < SORT_COUNT; i++) expect(ram.readU16(dst + 2 * i)).toBe(sorted[i]);
  });
});
