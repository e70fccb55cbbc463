import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { ExitReason } from "./fault.js";

function machine(code: number[], at = 0x1000): Cpu {
  const ram = new FlatMemory(0x20_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
  ram.u8.set(code, at);
  cpu.setFlat32(at, 0x10_0000);
  return cpu;
}

describe("Cpu flat 32-bit", () => {
  it("runs a counted loop to HLT", () => {
    // mov ecx,10; xor eax,eax; L: add eax,ecx; loop L; hlt
    const cpu = machine([0xb9, 10, 0, 0, 0, 0x31, 0xc0, 0x01, 0xc8, 0xe2, 0xfc, 0xf4]);
    expect(cpu.run(1000)).toBe(ExitReason.HLT);
    expect(cpu.r32[0]).toBe(55);
    expect(cpu.r32[1]).toBe(0);
  });

  it("raises #UD for an undefined opcode through the real-mode IVT", () => {
    const ram = new FlatMemory(0x20_0000);
    const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
    cpu.setRealMode(0x100, 0);
    // IVT entry 6 → 0200:0000 where a HLT sits.
    ram.writeU16(6 * 4, 0);
    ram.writeU16(6 * 4 + 2, 0x200);
    ram.u8[0x2000] = 0xf4;
    ram.u8.set([0x0f, 0xff], 0x1000);
    cpu.r16[8] = 0x800;
    expect(cpu.run(10)).toBe(ExitReason.HLT);
    expect(cpu.segSel[1]).toBe(0x200);
    expect(ram.readU16(0x7fa)).toBe(0); // pushed IP = faulting instruction
    expect(ram.readU16(0x7fc)).toBe(0x100);
  });
});
