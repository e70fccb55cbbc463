/**
 * The decoded-instruction cache (icache.ts): self-modifying code, code written into RAM by a
 * device, paging remaps of a code page, faults in the middle of cached runs, and a differential
 * property test that runs random programs with the cache on and off and compares the full state.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { ExitReason } from "./fault.js";
import { writeCr0, writeCr3 } from "./ops-system.js";
import { Pte } from "./paging.js";
import { attachProtectedMode } from "./protected/unit.js";
import { Cr0, Flag, Sreg } from "./state.js";

const GDT = 0x1000;
const IDT = 0x2000;
const HANDLERS = 0x3000; // vector v's handler at HANDLERS + 16 v: hlt
const PD = 0x10000;
const PT = 0x11000;
const CODE = 0x20000;
const DATA = 0x40000;
const STACK = 0x7_0000;
/** A page left not present (accesses fault) and a read-only page. */
const HOLE = 0x50000;
const READ_ONLY = 0x51000;

/** Flat 32-bit protected mode with an IDT whose every handler is HLT; paging optional. */
function setup(decodeCache: boolean, paging = true): { cpu: Cpu; ram: FlatMemory } {
  const ram = new FlatMemory(0x40_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus(), decodeCache });
  attachProtectedMode(cpu);
  ram.writeU32(GDT + 8, 0x0000_ffff);
  ram.writeU32(GDT + 12, 0x00cf_9a00);
  ram.writeU32(GDT + 16, 0x0000_ffff);
  ram.writeU32(GDT + 20, 0x00cf_9200);
  ram.writeU32(GDT + 24, 0x0100_ffff); // 0x18: data, base 0x100 (FS: segment overrides differ)
  ram.writeU32(GDT + 28, 0x00cf_9200);
  cpu.setFlat32(CODE, STACK);
  cpu.r32[2] = 0; // EDX holds the reset signature
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = 8 * 4 - 1;
  for (const s of [Sreg.ES, Sreg.SS, Sreg.DS, Sreg.GS]) cpu.loadSegment(s, 0x10);
  cpu.loadSegment(Sreg.FS, 0x18);
  cpu.idtrBase = IDT;
  cpu.idtrLimit = 256 * 8 - 1;
  for (let v = 0; v < 32; v++) {
    const off = HANDLERS + 16 * v;
    ram.writeU32(IDT + 8 * v, (0x08 << 16) | (off & 0xffff));
    ram.writeU32(IDT + 8 * v + 4, (off & 0xffff_0000) | 0x8e00);
    ram.u8[off] = 0xf4;
  }
  if (paging) {
    // Identity map of the first 2 MiB, except HOLE (not present) and READ_ONLY.
    ram.writeU32(PD, PT | Pte.P | Pte.RW);
    for (let i = 0; i < 512; i++) {
      const a = i * 0x1000;
      ram.writeU32(PT + 4 * i, a === HOLE ? 0 : a | Pte.P | (a === READ_ONLY ? 0 : Pte.RW));
    }
    writeCr3(cpu, PD);
    writeCr0(cpu, cpu.cr0 | Cr0.PG | Cr0.WP);
  }
  return { cpu, ram };
}

/** The architectural state compared between the cached and the uncached CPU. */
function state(cpu: Cpu, ram: FlatMemory): unknown {
  return {
    regs: Array.from(cpu.r32),
    eip: cpu.eip >>> 0,
    eflags: cpu.getEflags() >>> 0,
    cr2: cpu.cr2 >>> 0,
    halted: cpu.halted,
    instructions: cpu.instructions,
    code: Array.from(ram.u8.subarray(CODE, CODE + 0x200)),
    data: Array.from(ram.u8.subarray(DATA, DATA + 0x400)),
    stack: Array.from(ram.u8.subarray(STACK - 0x100, STACK)),
  };
}

/** Which exception handler the CPU halted in (-1: none). */
function vectorOf(cpu: Cpu): number {
  const at = (cpu.eip >>> 0) - 1 - HANDLERS;
  return at >= 0 && at < 16 * 32 && at % 16 === 0 ? at / 16 : -1;
}

describe("decoded-instruction cache", () => {
  it("sees a store into the next instruction, into the same run and into code run earlier", () => {
    for (const cache of [true, false]) {
      const { cpu, ram } = setup(cache);
      // loop: mov eax, 1 ; add edx, eax ; mov [CODE+14], cl (patches the immediate of the next
      // instruction with the loop count) ; mov ebx, 1 ; mov byte [CODE+1], 3 (patches the
      // first instruction, run and cached before) ; dec ecx ; jnz loop ; hlt
      const code = [
        0xb8,
        1,
        0,
        0,
        0, // +0 mov eax, 1
        0x01,
        0xc2, // +5 add edx, eax
        0x88,
        0x0d,
        0,
        0,
        0,
        0, // +7 mov [CODE+14], cl
        0xbb,
        1,
        0,
        0,
        0, // +13 mov ebx, 1
        0xc6,
        0x05,
        0,
        0,
        0,
        0,
        3, // +18 mov byte [CODE+1], 3
        0x49, // +25 dec ecx
        0x75,
        -28 & 0xff, // +26 jnz +0
        0xf4, // +28 hlt
      ];
      ram.u8.set(code, CODE);
      ram.writeU32(CODE + 9, CODE + 14);
      ram.writeU32(CODE + 20, CODE + 1);
      cpu.r32[1] = 3;
      expect(cpu.run(1000)).toBe(ExitReason.HLT);
      expect(cpu.r32[0]).toBe(3);
      expect(cpu.r32[3]).toBe(1); // the last pass stored CL = 1 into the next instruction
      expect(cpu.r32[2]).toBe(1 + 3 + 3); // first pass ran mov eax, 1; the later ones the patched 3
    }
  });

  it("runs code a device wrote into RAM after the old code was cached", () => {
    const { cpu, ram } = setup(true);
    ram.u8.set([0xb8, 1, 0, 0, 0, 0x83, 0xc0, 0x01, 0xf4], CODE); // mov eax, 1; add eax, 1; hlt
    for (let i = 0; i < 3; i++) {
      cpu.eip = CODE;
      cpu.halted = false;
      expect(cpu.run(100)).toBe(ExitReason.HLT);
      expect(cpu.r32[0]).toBe(2);
    }
    // The device side: writes through the memory object, not through the CPU.
    ram.writeU32(CODE + 1, 40);
    ram.writeFrom(CODE + 5, Uint8Array.from([0x83, 0xe8, 0x02])); // sub eax, 2
    cpu.eip = CODE;
    cpu.halted = false;
    expect(cpu.run(100)).toBe(ExitReason.HLT);
    expect(cpu.r32[0]).toBe(38);
  });

  it("follows a remap of the code page (PTE change with INVLPG, and with a CR3 reload)", () => {
    const { cpu, ram } = setup(true);
    const LIN = 0x30000;
    const A = 0x31000;
    const B = 0x32000;
    ram.u8.set([0xb8, 0xaa, 0, 0, 0, 0xf4], A); // mov eax, 0xaa; hlt
    ram.u8.set([0xb8, 0xbb, 0, 0, 0, 0xf4], B); // mov eax, 0xbb; hlt
    const pte = PT + 4 * (LIN >>> 12);
    const runAt = (): number => {
      cpu.eip = LIN;
      cpu.halted = false;
      expect(cpu.run(100)).toBe(ExitReason.HLT);
      return cpu.r32[0]!;
    };
    ram.writeU32(pte, A | Pte.P | Pte.RW);
    writeCr3(cpu, PD);
    expect(runAt()).toBe(0xaa);
    expect(runAt()).toBe(0xaa);
    // INVLPG (0F 01 /7) run by the CPU from another page.
    ram.writeU32(pte, B | Pte.P | Pte.RW);
    ram.u8.set([0x0f, 0x01, 0x3d, 0, 0, 0, 0, 0xf4], CODE); // invlpg [LIN]; hlt
    ram.writeU32(CODE + 3, LIN);
    cpu.eip = CODE;
    cpu.halted = false;
    expect(cpu.run(100)).toBe(ExitReason.HLT);
    expect(runAt()).toBe(0xbb);
    ram.writeU32(pte, A | Pte.P | Pte.RW);
    writeCr3(cpu, PD);
    expect(runAt()).toBe(0xaa);
  });

  it("leaves EIP, ESP and the registers as the uncached path on a #PF in the middle of a run", () => {
    const results = [true, false].map((cache) => {
      const { cpu, ram } = setup(cache);
      // mov eax, 5; add ebx, eax; push ebx; mov ecx, [esi]; inc edx; hlt — ESI points into HOLE.
      const code = [0xb8, 5, 0, 0, 0, 0x01, 0xc3, 0x53, 0x8b, 0x0e, 0x42, 0xf4];
      ram.u8.set(code, CODE);
      cpu.r32[6] = HOLE + 0x10;
      // Twice: the second pass runs from the cache (the first decoded it).
      for (let pass = 0; pass < 2; pass++) {
        cpu.eip = CODE;
        cpu.r32[4] = STACK;
        cpu.halted = false;
        expect(cpu.run(100)).toBe(ExitReason.HLT);
        expect(vectorOf(cpu)).toBe(14);
        expect(cpu.cr2 >>> 0).toBe(HOLE + 0x10);
        // The fault frame: error code, EIP of the faulting MOV, CS, EFLAGS; below it the push.
        expect(ram.readU32(cpu.r32[4]! + 4)).toBe(CODE + 8);
        expect(cpu.r32[4]).toBe(STACK - 4 - 16);
        expect(cpu.r32[2]).toBe(0); // INC EDX not run
      }
      return state(cpu, ram);
    });
    expect(results[0]).toEqual(results[1]);
  });

  it("faults on a write to a read-only page from a cached store exactly as the decoder does", () => {
    const results = [true, false].map((cache) => {
      const { cpu, ram } = setup(cache);
      // add dword [edi], 1; mov [edi+4], eax; hlt — EDI in READ_ONLY on the second pass.
      ram.u8.set([0x83, 0x07, 0x01, 0x89, 0x47, 0x04, 0xf4], CODE);
      for (const edi of [DATA, READ_ONLY + 8]) {
        cpu.eip = CODE;
        cpu.r32[7] = edi;
        cpu.halted = false;
        cpu.run(100);
      }
      expect(vectorOf(cpu)).toBe(14);
      return state(cpu, ram);
    });
    expect(results[0]).toEqual(results[1]);
  });
});

describe("decoded-instruction cache: fused compare-and-branch", () => {
  it("does not fuse a memory write with the branch it may rewrite (add [ebx], al turns JZ into JNZ)", () => {
    for (const cache of [true, false]) {
      const { cpu, ram } = setup(cache);
      // mov ebx, CODE+9; mov al, 1; add [ebx], al; jz +1; inc ecx; hlt
      ram.u8.set([0xbb, ...le32(CODE + 9), 0xb0, 0x01, 0x00, 0x03, 0x74, 0x01, 0x41, 0xf4], CODE);
      cpu.r32[1] = 0;
      cpu.eip = CODE;
      expect(cpu.run(100)).toBe(ExitReason.HLT);
      expect(ram.u8[CODE + 9]).toBe(0x75);
      expect(cpu.r32[1]).toBe(0); // the rewritten JNZ was taken
    }
  });

  it("counts the pair as two instructions: a budget of 1 stops at the Jcc, a single-step trap lands between them", () => {
    for (const cache of [true, false]) {
      const { cpu, ram } = setup(cache);
      // cmp eax, ebx; jz +1; inc ecx; hlt
      ram.u8.set([0x39, 0xd8, 0x74, 0x01, 0x41, 0xf4], CODE);
      cpu.r32[0] = cpu.r32[3] = cpu.r32[1] = 0;
      for (let pass = 0; pass < 2; pass++) {
        cpu.eip = CODE;
        const before = cpu.instructions;
        expect(cpu.run(1)).toBe(ExitReason.BUDGET);
        expect(cpu.eip).toBe(CODE + 2);
        expect(cpu.instructions - before).toBe(1);
        expect(cpu.run(1)).toBe(ExitReason.BUDGET);
        expect(cpu.eip).toBe(CODE + 5); // taken: INC ECX skipped
        expect(cpu.instructions - before).toBe(2);
        cpu.eip = CODE;
        expect(cpu.run(2)).toBe(ExitReason.BUDGET);
        expect(cpu.eip).toBe(CODE + 5);
        expect(cpu.instructions - before).toBe(4);
      }
      expect(cpu.r32[1]).toBe(0);
      // Single-step: the #DB after the CMP is delivered before the Jcc runs.
      cpu.eip = CODE;
      cpu.setEflags(cpu.getEflags() | Flag.TF);
      expect(cpu.run(100)).toBe(ExitReason.HLT);
      expect(vectorOf(cpu)).toBe(1);
      expect(ram.readU32(cpu.r32[4]!)).toBe(CODE + 2); // the frame's EIP: the Jcc
    }
  });
});

// ---- differential property test -----------------------------------------------------------------

const REGS_FOR_MEMORY = [3, 6, 7]; // EBX, ESI, EDI point into DATA (or anywhere after arithmetic)

/** A random ModR/M operand: register, [reg], [reg+d8], [reg+d32], [disp32], SIB forms. */
const modrmArb = fc
  .record({
    mod: fc.integer({ min: 0, max: 3 }),
    reg: fc.integer({ min: 0, max: 7 }),
    rm: fc.integer({ min: 0, max: 7 }),
    sib: fc.integer({ min: 0, max: 255 }),
    d8: fc.integer({ min: 0, max: 255 }),
    d32: fc.integer({ min: 0, max: 0x3ff }),
  })
  .map(({ mod, reg, rm, sib, d8, d32 }) => {
    const out = [(mod << 6) | (reg << 3) | rm];
    if (mod !== 3 && rm === 4) out.push(sib);
    const base = mod !== 3 && rm === 4 ? sib & 7 : rm;
    if (mod === 1) out.push(d8);
    else if (mod === 2 || (mod === 0 && base === 5)) {
      const d = mod === 0 ? DATA + d32 : d32;
      out.push(d & 0xff, (d >>> 8) & 0xff, (d >>> 16) & 0xff, d >>> 24);
    }
    return out;
  });

const imm8 = fc.integer({ min: 0, max: 255 });
const imm32 = fc
  .integer({ min: 0, max: 0xffff_ffff })
  .map((v) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]);

/** One instruction of the cached forms (and a few that the decoder keeps, prefixes included). */
const instrArb: fc.Arbitrary<number[]> = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 7 }), fc.constantFrom(1, 3), modrmArb)
    .map(([k, lo, m]) => [k * 8 + lo, ...m]),
  fc.tuple(fc.integer({ min: 0, max: 7 }), imm32).map(([k, i]) => [k * 8 + 5, ...i]),
  // Byte forms: op Eb,Gb / Gb,Eb / AL,Ib, group 1 Eb,Ib, TEST, MOV Eb,Ib; SETcc, CMOVcc.
  fc
    .tuple(fc.integer({ min: 0, max: 7 }), fc.constantFrom(0, 2), modrmArb)
    .map(([k, lo, m]) => [k * 8 + lo, ...m]),
  fc.tuple(fc.integer({ min: 0, max: 7 }), imm8).map(([k, i]) => [k * 8 + 4, i]),
  fc.tuple(fc.constantFrom(0x80, 0x82, 0xc6), modrmArb, imm8).map(([op, m, i]) => [op, ...m, i]),
  fc.tuple(fc.constantFrom(0x84), modrmArb).map(([op, m]) => [op, ...m]),
  imm8.map((i) => [0xa8, i]),
  fc.tuple(fc.integer({ min: 0x40, max: 0x4f }), modrmArb).map(([op, m]) => [0x0f, op, ...m]),
  fc.tuple(fc.integer({ min: 0x90, max: 0x9f }), modrmArb).map(([op, m]) => [0x0f, op, ...m]),
  fc.integer({ min: 0x40, max: 0x5f }).map((op) => [op]),
  fc.tuple(fc.constantFrom(0x69, 0xc7), modrmArb, imm32).map(([op, m, i]) => [op, ...m, ...i]),
  fc.tuple(fc.constantFrom(0x6b, 0x83, 0xc1), modrmArb, imm8).map(([op, m, i]) => [op, ...m, i]),
  fc.tuple(fc.constantFrom(0x81), modrmArb, imm32).map(([op, m, i]) => [op, ...m, ...i]),
  fc
    .tuple(fc.constantFrom(0x85, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0xd1, 0xff, 0x01), modrmArb)
    .map(([op, m]) => [op, ...m]),
  fc.tuple(fc.constantFrom(0xb6, 0xb7, 0xbe, 0xbf, 0xaf), modrmArb).map(([op, m]) => [0x0f, op, ...m]),
  fc.tuple(fc.integer({ min: 0xb8, max: 0xbf }), imm32).map(([op, i]) => [op, ...i]),
  // Jcc/JMP/LOOP rel8 and Jcc rel32, short forward or backward hops.
  fc
    .tuple(fc.integer({ min: 0x70, max: 0x7f }), fc.integer({ min: -12, max: 8 }))
    .map(([op, r]) => [op, r & 0xff]),
  fc.tuple(fc.constantFrom(0xeb, 0xe2), fc.integer({ min: -12, max: 8 })).map(([op, r]) => [op, r & 0xff]),
  fc
    .tuple(fc.integer({ min: 0x80, max: 0x8f }), fc.integer({ min: -12, max: 8 }))
    .map(([op, r]) => [0x0f, op, r & 0xff, r < 0 ? 0xff : 0, r < 0 ? 0xff : 0, r < 0 ? 0xff : 0]),
  // Flag-setting register forms followed by Jcc rel8, JMP rel8 or LOOP (fused into one record,
  // icache-fused.ts).
  fc
    .tuple(
      fc.oneof(
        fc
          .tuple(
            fc.integer({ min: 0, max: 7 }),
            fc.constantFrom(0, 1, 3, 0x85, 0x84),
            fc.integer({ min: 0, max: 63 }),
          )
          .map(([k, lo, m]) => [lo >= 0x84 ? lo : k * 8 + lo, 0xc0 | m]),
        fc
          .tuple(fc.constantFrom(0x80, 0x83), fc.integer({ min: 0, max: 63 }), imm8)
          .map(([op, m, i]) => [op, 0xc0 | m, i]),
        fc.tuple(fc.integer({ min: 0, max: 63 }), imm32).map(([m, i]) => [0x81, 0xc0 | m, ...i]),
        fc.tuple(fc.integer({ min: 0, max: 7 }), imm8).map(([k, i]) => [k * 8 + 4, i]),
        fc.tuple(fc.integer({ min: 0, max: 7 }), imm32).map(([k, i]) => [k * 8 + 5, ...i]),
        imm8.map((i) => [0xa8, i]),
        fc.integer({ min: 0x40, max: 0x4f }).map((op) => [op]),
        // Memory operands: CMP/TEST and register destinations fuse, the others do not.
        fc
          .tuple(fc.integer({ min: 0, max: 7 }), fc.constantFrom(0, 1, 2, 3, 0x84, 0x85), modrmArb)
          .map(([k, lo, m]) => [lo >= 0x84 ? lo : k * 8 + lo, ...m]),
        fc.tuple(fc.constantFrom(0x80, 0x83), modrmArb, imm8).map(([op, m, i]) => [op, ...m, i]),
      ),
      fc.oneof(fc.integer({ min: 0x70, max: 0x7f }), fc.constantFrom(0xeb, 0xe2)),
      fc.integer({ min: -14, max: 8 }),
    )
    .map(([first, op, r]) => [...first, op, r & 0xff]),
  // String instructions with prefixes in any order (REP/REPNE, 66, 67, a segment; four
  // prefixes are left to the decoder), after a small count in ECX; CLD/STD.
  fc
    .tuple(
      fc.integer({ min: 0, max: 40 }),
      fc.constantFrom(0xf2, 0xf3),
      fc.constantFrom(0x26, 0x2e, 0x64),
      fc.constantFrom(0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf),
    )
    .chain(([n, rep, seg, op]) =>
      fc.shuffledSubarray([rep, 0x66, 0x67, seg]).map((pre) => [0xb9, n, 0, 0, 0, ...pre, op]),
    ),
  fc.constantFrom<number[]>([0xfc], [0xfd]),
  fc.constant<number[]>([0xe8, 2, 0, 0, 0]), // call +2
  fc.constant<number[]>([0xc3]),
  // A store into the program itself (self-modifying code): mov byte/dword [CODE + k], imm.
  fc.tuple(fc.integer({ min: 0, max: 0x60 }), imm8).map(([k, v]) => [0xc6, 0x05, ...le32(CODE + k), v]),
  fc.tuple(fc.integer({ min: 0, max: 0x60 }), imm32).map(([k, v]) => [0xc7, 0x05, ...le32(CODE + k), ...v]),
  // Prefixed forms the cache leaves to the decoder.
  fc
    .tuple(fc.constantFrom(0x66, 0x2e, 0x64), fc.constantFrom(0x01, 0x89, 0x8b), modrmArb)
    .map(([p, op, m]) => [p, op, ...m]),
);

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}

/** Real mode: CS = CODE >> 4, DS = ES = DATA >> 4, SS:SP just below STACK; IVT handlers are HLT. */
function setupReal(decodeCache: boolean): { cpu: Cpu; ram: FlatMemory } {
  const ram = new FlatMemory(0x40_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus(), decodeCache });
  cpu.setRealMode(CODE >> 4, 0);
  cpu.r32[2] = 0;
  cpu.loadSegment(Sreg.DS, DATA >> 4);
  cpu.loadSegment(Sreg.ES, DATA >> 4);
  cpu.loadSegment(Sreg.SS, (STACK - 0x1_0000) >> 4);
  cpu.r32[4] = 0xfff0;
  for (let v = 0; v < 32; v++) {
    ram.writeU16(4 * v, 16 * v);
    ram.writeU16(4 * v + 2, HANDLERS >> 4);
    ram.u8[HANDLERS + 16 * v] = 0xf4;
  }
  return { cpu, ram };
}

/**
 * Shifts and rotates (C1 Ib, D1, D3 CL; every group-2 kind, register and memory operands), each
 * followed by PUSHF so every result's flags reach the compared stack, between loads of random
 * 16-bit (real mode) or 32-bit values into registers.
 */
function shiftArb(real: boolean): fc.Arbitrary<number[]> {
  const imm = real ? fc.integer({ min: 0, max: 0xffff }).map((v) => [v & 0xff, v >>> 8]) : imm32;
  return fc.oneof(
    fc.tuple(fc.integer({ min: 0xb8, max: 0xbf }), imm).map(([op, i]) => (op === 0xbc ? [] : [op, ...i])),
    fc
      .tuple(fc.constantFrom(0xc1, 0xd1, 0xd3), modrmArb, fc.integer({ min: 0, max: 33 }))
      .map(([op, m, i]) => [op, ...m, ...(op === 0xc1 ? [i] : []), 0x9c]),
    fc
      .tuple(fc.constantFrom(0x66), fc.constantFrom(0xc1, 0xd1), modrmArb, imm8)
      .map(([p, op, m, i]) => [p, op, ...m, ...(op === 0xc1 ? [i] : []), 0x9c]),
  );
}

function differential(real: boolean, instr: fc.Arbitrary<number[]> = instrArb): void {
  fc.assert(
    fc.property(
      fc.array(instr, { minLength: 1, maxLength: 24 }),
      fc.array(
        fc.oneof(
          fc.integer({ min: 0, max: 15 }),
          fc.integer({ min: DATA, max: DATA + 0x3f0 }),
          fc.integer({ min: 0, max: 0xffff_ffff }),
        ),
        { minLength: 8, maxLength: 8 },
      ),
      fc.array(fc.integer({ min: 0, max: 0x3f0 }), { minLength: 3, maxLength: 3 }),
      fc.integer({ min: 1, max: 9 }),
      (prog, regs, ptrs, slice) => {
        const code = prog.flat();
        code.push(0xf4);
        const end: unknown[] = [];
        for (const cache of [true, false]) {
          const { cpu, ram } = real ? setupReal(cache) : setup(cache);
          ram.u8.set(code, CODE);
          for (let i = 0; i < 0x400; i += 4) ram.writeU32(DATA + i, (i * 0x9e37_79b9) >>> 0);
          for (let r = 0; r < 8; r++) if (r !== 4) cpu.r32[r] = real ? regs[r]! & 0x3ff : regs[r]!;
          REGS_FOR_MEMORY.forEach((r, k) => {
            cpu.r32[r] = (real ? 0 : DATA) + ptrs[k]!;
          });
          let error = "";
          try {
            // Small slices, and the whole program twice (the second pass runs from the cache).
            for (let pass = 0; pass < 2; pass++) {
              cpu.eip = real ? 0 : CODE;
              cpu.halted = false;
              for (let n = 0; n < 400 && !cpu.halted; n += slice) cpu.run(slice);
            }
          } catch (e) {
            error = String(e);
          }
          end.push({ error, state: state(cpu, ram) });
        }
        expect(end[0]).toEqual(end[1]);
      },
    ),
    { numRuns: 300 },
  );
}

describe("decoded-instruction cache: differential", () => {
  it("random programs leave the same state with the cache on and off (flat 32-bit, paging)", () => {
    differential(false);
  });
  it("random programs leave the same state with the cache on and off (real mode)", () => {
    differential(true);
  });
  it("shift and rotate forms (each result's flags pushed) agree with the cache on and off", () => {
    differential(false, shiftArb(false));
    differential(true, shiftArb(true));
  });
});
