/**
 * Protected-mode delivery corner cases driven from TypeScript (tables written directly into RAM,
 * a few hand-encoded instructions): triple fault → SHUTDOWN, NMI blocking until IRET, the MOV SS
 * interrupt shadow, task gates reported as unsupported, #PF CR2 for delivery faults.
 */
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import type { InterruptController } from "../machine/irq.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { CpuStateError, ExitReason } from "./fault.js";
import { Pte } from "./paging.js";
import { attachProtectedMode } from "./protected/unit.js";
import { Cr0, Sreg } from "./state.js";

const GDT = 0x1000;
const IDT = 0x2000;
const HANDLERS = 0x3000; // vector v's handler at HANDLERS + 16 v
const CODE = 0x8000;

function setup(): { cpu: Cpu; ram: FlatMemory } {
  const ram = new FlatMemory(0x40_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
  attachProtectedMode(cpu);
  const desc = (i: number, lo: number, hi: number) => {
    ram.writeU32(GDT + 8 * i, lo);
    ram.writeU32(GDT + 8 * i + 4, hi);
  };
  desc(1, 0x0000_ffff, 0x00cf_9a00); // 0x08 code
  desc(2, 0x0000_ffff, 0x00cf_9200); // 0x10 data
  desc(3, 0, 0x0000_e500 | 0); // 0x18 task gate (selector 0)
  cpu.setFlat32(CODE, 0x7_0000);
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = 8 * 4 - 1;
  for (const s of [Sreg.ES, Sreg.SS, Sreg.DS, Sreg.FS, Sreg.GS]) cpu.loadSegment(s, 0x10);
  cpu.idtrBase = IDT;
  cpu.idtrLimit = 256 * 8 - 1;
  for (let v = 0; v < 256; v++) {
    gate(ram, v, HANDLERS + 16 * v, 0x8e00);
    ram.u8[HANDLERS + 16 * v] = 0xf4; // hlt
  }
  return { cpu, ram };
}

function gate(ram: FlatMemory, v: number, off: number, attr: number, sel = 0x08): void {
  ram.writeU32(IDT + 8 * v, (sel << 16) | (off & 0xffff));
  ram.writeU32(IDT + 8 * v + 4, (off & 0xffff_0000) | attr);
}

function handlerOf(cpu: Cpu): number {
  return (cpu.eip - 1 - HANDLERS) / 16;
}

describe("exception delivery corner cases", () => {
  it("a fault while delivering #DF shuts the CPU down (triple fault)", () => {
    const { cpu, ram } = setup();
    ram.writeU32(IDT + 8 * 13 + 4, 0); // #GP gate absent → #NP → #DF
    ram.writeU32(IDT + 8 * 8 + 4, 0); // #DF gate absent → shutdown
    ram.u8.set([0x0f, 0x0b], CODE); // ud2 (benign: its gate works)
    ram.u8.set([0x8e, 0xd8], HANDLERS + 16 * 6); // handler 6: mov ds, ax (AX = 0x60: beyond the GDT)
    cpu.r32[0] = 0x60;
    expect(cpu.run(100)).toBe(ExitReason.SHUTDOWN);
    expect(cpu.shutdown).toBe(true);
  });

  it("#DF is delivered with error code 0 when its gate works", () => {
    const { cpu, ram } = setup();
    ram.writeU32(IDT + 8 * 13 + 4, 0);
    ram.u8.set([0x8e, 0xd8], CODE); // mov ds, ax → #GP(0x60) → #NP → #DF
    cpu.r32[0] = 0x60;
    expect(cpu.run(100)).toBe(ExitReason.HLT);
    expect(handlerOf(cpu)).toBe(8);
    expect(ram.readU32(cpu.r32[4]! >>> 0)).toBe(0); // error code
    expect(ram.readU32((cpu.r32[4]! + 4) >>> 0)).toBe(CODE); // the faulting instruction
  });

  it("#PF on the stack while delivering #GP escalates to #DF and shutdown, CR2 = the first push", () => {
    const { cpu, ram } = setup();
    // Identity paging with the page below ESP absent.
    ram.writeU32(0x10_0000, 0x10_1000 | Pte.P | Pte.RW);
    for (let i = 0; i < 1024; i++) ram.writeU32(0x10_1000 + 4 * i, (i << 12) | Pte.P | Pte.RW);
    ram.writeU32(0x10_1000 + 4 * 0x6f, 0);
    cpu.cr3 = 0x10_0000;
    cpu.cr0 |= Cr0.PG;
    cpu.paging = cpu.pagingUnit;
    // #GP → its first push faults (#PF, delivered serially) → the #PF's push faults (#PF + #PF =
    // #DF) → the #DF's push faults: shutdown. CR2 names the first push's address.
    ram.u8.set([0x8e, 0xd8], CODE);
    cpu.r32[0] = 0x60;
    expect(cpu.run(100)).toBe(ExitReason.SHUTDOWN);
    expect(cpu.cr2 >>> 0).toBe(0x6_fffc);
  });

  it("a task gate in the IDT stops the CPU with a clear CpuStateError", () => {
    const { cpu, ram } = setup();
    gate(ram, 0x40, 0, 0x8500, 0x18);
    ram.u8.set([0xcd, 0x40], CODE); // int 0x40
    let error: unknown;
    try {
      cpu.run(10);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CpuStateError);
    expect(String(error)).toMatch(/task gate in the IDT \(vector 64\) is not supported \(at CS:EIP 8:8000\)/);
  });

  it("JMP to a task gate or TSS stops with a clear CpuStateError", () => {
    const { cpu, ram } = setup();
    ram.u8.set([0xea, 0, 0, 0, 0, 0x18, 0], CODE); // jmp 0x18:0
    expect(() => cpu.run(10)).toThrow(/task switch \(JMP through a task gate/);
  });
});

describe("control registers", () => {
  it("MOV CR0 raises #GP(0) for PG without PE and for NW without CD; CD without NW is accepted", () => {
    for (const [value, faults] of [
      [0x8000_0010, true], // PG, no PE
      [0x2000_0011, true], // NW, no CD
      [0x4000_0011, false], // CD alone
      [0x6000_0011, false], // CD and NW
    ] as const) {
      const { cpu, ram } = setup();
      ram.u8.set([0x0f, 0x22, 0xc0, 0xf4], CODE); // mov cr0, eax; hlt
      cpu.r32[0] = value;
      cpu.run(10);
      if (faults) {
        expect(handlerOf(cpu)).toBe(13);
        expect(ram.readU32(cpu.r32[4]! >>> 0)).toBe(0);
        expect(cpu.cr0 >>> 0).toBe(0x11);
      } else {
        expect(cpu.eip).toBe(CODE + 4);
        expect(cpu.cr0 >>> 0).toBe(value);
      }
    }
  });
});

describe("NMI and interrupt shadows", () => {
  it("NMI is delivered with IF = 0 and blocked until the handler's IRET", () => {
    const { cpu, ram } = setup();
    ram.u8.set([0xeb, 0xfe], CODE); // jmp $
    ram.u8.set([0x43, 0x90, 0x90, 0xcf], HANDLERS + 16 * 2); // inc ebx; nop; nop; iret
    cpu.nmi();
    cpu.run(1); // delivery, then inc ebx
    expect(cpu.r32[3]).toBe(1);
    cpu.nmi();
    cpu.run(2); // nop nop: still blocked
    expect(cpu.r32[3]).toBe(1);
    expect(cpu.eip).toBe(HANDLERS + 32 + 3);
    cpu.run(1); // iret
    expect(cpu.eip).toBe(CODE);
    cpu.run(1); // the second NMI now
    expect(cpu.r32[3]).toBe(2);
  });

  it("MOV SS holds an external interrupt for one instruction", () => {
    const { cpu, ram } = setup();
    let pending = false;
    const intc: InterruptController = {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        return 0x30;
      },
    };
    cpu.intc = intc;
    cpu.setEflags(0x202);
    // mov ss, ax; inc ecx; inc ecx; jmp $
    ram.u8.set([0x8e, 0xd0, 0x41, 0x41, 0xeb, 0xfe], CODE);
    cpu.r32[0] = 0x10;
    cpu.run(1); // mov ss
    pending = true;
    cpu.notifyInterrupt();
    cpu.run(1); // shadowed: inc ecx runs
    expect(cpu.r32[1]).toBe(1);
    expect(pending).toBe(true);
    cpu.run(1); // now the interrupt, then the handler's hlt
    expect(pending).toBe(false);
    expect(handlerOf(cpu)).toBe(0x30);
    expect(cpu.r32[1]).toBe(1);
  });
});
