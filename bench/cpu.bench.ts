/**
 * CPU interpreter speed: millions of guest instructions per second on the fixed workload
 * (src/cpu/workload.ts) in flat 32-bit mode and in real mode, with the decoded-instruction cache
 * (src/cpu/icache.ts) and without it, and the flat workload without it with the opcode dispatch
 * done by a generated `switch` instead of the handler array.
 */
import { FlatMemory } from "../src/common/memory.js";
import { Cpu, type Handler } from "../src/cpu/cpu.js";
import { ExitReason } from "../src/cpu/fault.js";
import { Sreg } from "../src/cpu/state.js";
import { DISPATCH, LOCKABLE, PREFIX } from "../src/cpu/table.js";
import { workload16, workload32 } from "../src/cpu/workload.js";
import { IoBus } from "../src/machine/io-bus.js";
import { MemoryBus } from "../src/machine/memory-bus.js";
import type { BenchSuite } from "./harness.js";

function flatCpu(decodeCache = true): Cpu {
  const ram = new FlatMemory(0x40_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus(), decodeCache });
  ram.u8.set(workload32(0x10_0000), 0x1000);
  return cpu;
}

function realCpu(decodeCache = true): Cpu {
  const ram = new FlatMemory(0x20_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus(), decodeCache });
  ram.u8.set(workload16(), 0x1_0000);
  return cpu;
}

function runFlat(cpu: Cpu): number {
  cpu.setFlat32(0x1000, 0x8000);
  const before = cpu.instructions;
  if (cpu.run(100_000_000) !== ExitReason.HLT) throw new Error("workload did not halt");
  return cpu.instructions - before;
}

function runReal(cpu: Cpu): number {
  cpu.setRealMode(0x1000, 0);
  cpu.loadSegment(Sreg.ES, 0x2000);
  cpu.loadSegment(Sreg.DS, 0x2000);
  cpu.loadSegment(Sreg.SS, 0x5000);
  cpu.r16[8] = 0xfffe;
  const before = cpu.instructions;
  if (cpu.run(100_000_000) !== ExitReason.HLT) throw new Error("workload did not halt");
  return cpu.instructions - before;
}

/**
 * Best-of-rounds guest instructions per second of process CPU time (user + system), in
 * millions. CPU time rather than wall time keeps the figure stable on a shared, loaded host.
 */
function mips(cpu: Cpu, once: (cpu: Cpu) => number, ms: number): number {
  const warm = performance.now() + ms / 2;
  while (performance.now() < warm) once(cpu);
  let best = 0;
  for (let r = 0; r < 5; r++) {
    let n = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < ms / 5) n += once(cpu);
    const c = process.cpuUsage(c0);
    best = Math.max(best, n / (c.user + c.system));
  }
  return best;
}

/**
 * The same step() with the final dispatch as a generated `switch (index) { case k: hk(cpu) }`
 * over the same handlers (each case calls a constant closure), for the switch-vs-array figure.
 */
export function switchStep(): (this: Cpu) => void {
  const used = new Map<Handler, number>();
  const names: Handler[] = [];
  const cases: string[] = [];
  for (let i = 0; i < DISPATCH.length; i++) {
    const h = DISPATCH[i]!;
    let k = used.get(h);
    if (k === undefined) {
      k = names.length;
      used.set(h, k);
      names.push(h);
    }
    cases.push(`case ${i}: h${k}(cpu); break;`);
  }
  const decl = names.map((_, k) => `const h${k} = H[${k}];`).join("\n");
  const body = `${decl}
return function step() {
  const cpu = this;
  cpu.op32 = cpu.ad32 = cpu.codeBig;
  cpu.segOvr = -1; cpu.rep = 0; cpu.lock = 0;
  let b = cpu.fetch8();
  while (PREFIX[b] !== 0) {
    switch (b) {
      case 0x26: cpu.segOvr = 0; break; case 0x2e: cpu.segOvr = 1; break;
      case 0x36: cpu.segOvr = 2; break; case 0x3e: cpu.segOvr = 3; break;
      case 0x64: cpu.segOvr = 4; break; case 0x65: cpu.segOvr = 5; break;
      case 0x66: cpu.op32 = cpu.codeBig ^ 1; break; case 0x67: cpu.ad32 = cpu.codeBig ^ 1; break;
      case 0xf0: cpu.lock = 1; break; case 0xf2: cpu.rep = 1; break; default: cpu.rep = 2;
    }
    b = cpu.fetch8();
  }
  if (b === 0x0f) b = 0x100 | cpu.fetch8();
  cpu.opcode = b;
  if (cpu.lock && LOCKABLE[b] === 0) cpu.ud();
  switch (cpu.op32 ? b | 0x200 : b) {
${cases.join("\n")}
  }
  if (!cpu.codeBig) cpu.eip &= 0xffff;
};`;
  const make = new Function("H", "PREFIX", "LOCKABLE", body) as (
    h: Handler[],
    p: Uint8Array,
    l: Uint8Array,
  ) => (this: Cpu) => void;
  return make(names, PREFIX, LOCKABLE);
}

export const suite: BenchSuite = {
  name: "cpu",
  run(report) {
    const ms = Number(process.env.CPU_BENCH_MS ?? 2000);
    // The decoder-only runs come first: the cached runs leave so few instructions to `step`
    // that `run`'s optimized code treats it as cold, and a decoder-only run measured after them
    // would measure that (10-20% lower) rather than the decoder. In a guest both are hot.
    report("cpu flat32 workload, no decode cache", mips(flatCpu(false), runFlat, ms), "MIPS");
    report("cpu real-mode workload, no decode cache", mips(realCpu(false), runReal, ms), "MIPS");
    report("cpu flat32 workload", mips(flatCpu(), runFlat, ms), "MIPS");
    report("cpu real-mode workload", mips(realCpu(), runReal, ms), "MIPS");
    const sw = flatCpu(false);
    sw.step = switchStep();
    report("cpu flat32 workload, no decode cache, switch dispatch", mips(sw, runFlat, ms), "MIPS");
    const one = flatCpu();
    report("cpu flat32 workload instructions", runFlat(one), "instructions");
  },
};
