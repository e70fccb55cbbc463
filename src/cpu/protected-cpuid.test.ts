import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { CPUID_BRAND, CPUID_VENDOR, Feature, Msr } from "./cpuid.js";
import { ExitReason } from "./fault.js";
import { attachProtectedMode } from "./protected/unit.js";

function cpuWith(code: number[], clockNs?: () => number): Cpu {
  const ram = new FlatMemory(0x20_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus(), ...(clockNs ? { clockNs } : {}) });
  attachProtectedMode(cpu);
  ram.u8.set(code, 0x1000);
  cpu.setFlat32(0x1000, 0x8000);
  return cpu;
}

function cpuidOf(leaf: number): [number, number, number, number] {
  // mov eax, leaf; cpuid; hlt
  const cpu = cpuWith([
    0xb8,
    leaf & 0xff,
    (leaf >>> 8) & 0xff,
    (leaf >>> 16) & 0xff,
    leaf >>> 24,
    0x0f,
    0xa2,
    0xf4,
  ]);
  expect(cpu.run(10)).toBe(ExitReason.HLT);
  return [cpu.r32[0]! >>> 0, cpu.r32[3]! >>> 0, cpu.r32[1]! >>> 0, cpu.r32[2]! >>> 0];
}

function ascii(...regs: number[]): string {
  let s = "";
  for (const r of regs) for (let i = 0; i < 4; i++) s += String.fromCharCode((r >>> (8 * i)) & 0xff);
  return s.replace(/\0+$/, "");
}

describe("CPUID", () => {
  it("leaf 0: our vendor string; leaf 1: family 6 and exactly the implemented features", () => {
    const [max, b, c, d] = cpuidOf(0);
    expect(max).toBeGreaterThanOrEqual(1);
    expect(ascii(b, d, c)).toBe(CPUID_VENDOR);
    expect(CPUID_VENDOR).toHaveLength(12);
    const [sig, , ecx, edx] = cpuidOf(1);
    expect((sig >>> 8) & 0xf).toBe(6);
    expect(ecx).toBe(0);
    const want =
      Feature.FPU |
      Feature.PSE |
      Feature.TSC |
      Feature.MSR |
      Feature.CX8 |
      Feature.SEP |
      Feature.PGE |
      Feature.CMOV;
    expect(edx >>> 0).toBe(want);
    // Absent: VME, DE, PAE, MCE, APIC (no local APIC on a bare CPU), MTRR, MMX (23), FXSR (24), SSE (25).
    for (const bit of [1, 2, 6, 7, 9, 12, 14, 16, 23, 24, 25]) expect(edx & (1 << bit)).toBe(0);
  });

  it("extended leaves up to 0x80000004 with the brand string", () => {
    const [max] = cpuidOf(0x8000_0000);
    expect(max >>> 0).toBe(0x8000_0004);
    const [, , ecx1, edx1] = cpuidOf(0x8000_0001);
    expect([ecx1, edx1]).toEqual([0, 0]); // no NX, no long mode
    let brand = "";
    for (let l = 0x8000_0002; l <= 0x8000_0004; l++) {
      const [a, b, c, d] = cpuidOf(l);
      brand += ascii(a, b, c, d).padEnd(16, "\0");
    }
    expect(brand.replace(/\0+$/, "")).toBe(CPUID_BRAND);
  });
});

describe("TSC and MSRs", () => {
  it("RDTSC and MSR 0x10 count at tscHz from the injected clock; WRMSR 0x10 sets the counter", () => {
    let now = 0;
    // rdtsc; mov ebx,eax; mov ecx,0x10; rdmsr; hlt
    const cpu = cpuWith([0x0f, 0x31, 0x89, 0xc3, 0xb9, 0x10, 0, 0, 0, 0x0f, 0x32, 0xf4], () => now);
    cpu.cpuid.tscHz = 2_000_000_000; // 2 GHz: 2 ticks per ns
    cpu.cpuid.reset();
    now = 1_000;
    cpu.run(10);
    expect(cpu.r32[3]).toBe(2_000);
    expect(cpu.r32[0]).toBe(2_000);
    expect(cpu.cpuid.writeMsr(Msr.TSC, 0x10, 1)).toBe(true);
    now = 1_500;
    const out = new Uint32Array(2);
    cpu.cpuid.readMsr(Msr.TSC, out);
    expect([out[0], out[1]]).toEqual([0x10 + 1_000, 1]);
  });

  it("readMsr refuses unknown MSRs (RDMSR #GP(0) is checked in the ring3 program); SYSENTER MSRs read back", () => {
    const cpu = cpuWith([]);
    const out = new Uint32Array(2);
    expect(cpu.cpuid.readMsr(0x1234, out)).toBe(false);
    expect(cpu.cpuid.writeMsr(Msr.SYSENTER_EIP, 0xc000_1000, 0)).toBe(true);
    expect(cpu.cpuid.readMsr(Msr.SYSENTER_EIP, out)).toBe(true);
    expect(out[0]).toBe(0xc000_1000);
  });

  it("CR4 rejects PAE and VME (#GP), accepts PSE, PGE, TSD, DE", () => {
    // mov eax,0x20; mov cr4,eax (PAE) → #GP; with no IDT the fault escalates: check via a handler-less run.
    const cpu = cpuWith([0xb8, 0x9c, 0, 0, 0, 0x0f, 0x22, 0xe0, 0xf4]);
    expect(cpu.run(10)).toBe(ExitReason.HLT);
    expect(cpu.cr4).toBe(0x9c);
    const bad = cpuWith([0xb8, 0x20, 0, 0, 0, 0x0f, 0x22, 0xe0, 0xf4]);
    bad.idtrLimit = 0; // every delivery faults: #GP → #DF → shutdown
    expect(bad.run(10)).toBe(ExitReason.SHUTDOWN);
    expect(bad.cr4).toBe(0);
  });
});
