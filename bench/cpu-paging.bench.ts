/**
 * CPU speed with paging on: the `cpu` suite's flat 32-bit workload (src/cpu/workload.ts) run
 * once with CR0.PG = 0 and once with 4 KiB identity paging (code, data and stack through the
 * software TLB; after the first pass every access is a TLB hit), plus the same with the
 * workload mapped by one 4 MiB PSE page, and the cost of a CR3 reload (TLB flush + refill).
 * Issue 7's target: the paging figure within 25% of the flat one.
 */
import { FlatMemory } from "../src/common/memory.js";
import { Cpu } from "../src/cpu/cpu.js";
import { ExitReason } from "../src/cpu/fault.js";
import { Cr4, Pte } from "../src/cpu/paging.js";
import { attachProtectedMode } from "../src/cpu/protected/index.js";
import { Cr0 } from "../src/cpu/state.js";
import { workload32 } from "../src/cpu/workload.js";
import { IoBus } from "../src/machine/io-bus.js";
import { MemoryBus } from "../src/machine/memory-bus.js";
import type { BenchSuite } from "./harness.js";

const PD = 0x20_0000;
const PT = 0x20_1000;

type Mode = "flat" | "4k" | "4m";

function makeCpu(mode: Mode): Cpu {
  const ram = new FlatMemory(0x80_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
  attachProtectedMode(cpu);
  ram.u8.set(workload32(0x10_0000), 0x1000);
  if (mode !== "flat") {
    if (mode === "4k") {
      ram.writeU32(PD, PT | Pte.P | Pte.RW);
      for (let i = 0; i < 1024; i++) ram.writeU32(PT + 4 * i, (i << 12) | Pte.P | Pte.RW);
    } else ram.writeU32(PD, Pte.P | Pte.RW | Pte.PS);
  }
  return cpu;
}

function runOnce(cpu: Cpu, mode: Mode): number {
  cpu.setFlat32(0x1000, 0x8000);
  if (mode !== "flat") {
    cpu.cr3 = PD;
    cpu.cr4 = mode === "4m" ? Cr4.PSE : 0;
    cpu.cr0 |= Cr0.PG;
    cpu.paging = cpu.pagingUnit;
  }
  const before = cpu.instructions;
  if (cpu.run(100_000_000) !== ExitReason.HLT) throw new Error("workload did not halt");
  return cpu.instructions - before;
}

/**
 * Best-of-rounds MIPS for each mode, with the modes' rounds interleaved (flat, 4k, 4m, flat, ...)
 * so every mode runs with the same JIT state and machine load. Per second of process CPU time
 * (user + system), as the `cpu` suite, so the figure holds on a shared, loaded host.
 */
function mipsAll(modes: Mode[], ms: number): number[] {
  const cpus = modes.map((m) => makeCpu(m));
  const warm = performance.now() + ms / 2;
  while (performance.now() < warm) for (let i = 0; i < modes.length; i++) runOnce(cpus[i]!, modes[i]!);
  const best = modes.map(() => 0);
  for (let r = 0; r < 5; r++) {
    for (let i = 0; i < modes.length; i++) {
      let n = 0;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      while (performance.now() - t0 < ms / 5 / modes.length) n += runOnce(cpus[i]!, modes[i]!);
      const c = process.cpuUsage(c0);
      best[i] = Math.max(best[i]!, n / (c.user + c.system));
    }
  }
  return best;
}

export const suite: BenchSuite = {
  name: "cpu-paging",
  run(report) {
    const ms = Number(process.env.CPU_BENCH_MS ?? 2000);
    const [flat, paged, large] = mipsAll(["flat", "4k", "4m"], 2 * ms) as [number, number, number];
    report("cpu flat32 workload, paging off", flat, "MIPS");
    report("cpu flat32 workload, 4 KiB paging (TLB hits)", paged, "MIPS");
    report("cpu flat32 workload, 4 MiB PSE paging", large, "MIPS");
    report("paging cost vs flat (4 KiB)", (100 * (flat - paged)) / flat, "%");
    // CR3 reload: a full non-global flush followed by refills of the workload's pages.
    const cpu = makeCpu("4k");
    runOnce(cpu, "4k");
    const paging = cpu.pagingUnit!;
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < ms / 4) {
      for (let i = 0; i < 1000; i++) {
        paging.flush(false);
        for (let p = 0; p < 16; p++) paging.translate(0x10_0000 + (p << 12), 0);
      }
      n += 1000;
    }
    report("CR3 flush + 16 page refills", n / ((performance.now() - t0) / 1000) / 1e6, "M/s");
  },
};
