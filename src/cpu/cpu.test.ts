import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import type { InterruptController } from "../machine/irq.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { CPUID_VENDOR } from "./cpuid.js";
import { CpuStateError, ExitReason, Vector } from "./fault.js";
import { Cr0, Flag, Sreg } from "./state.js";
import { OPCODES } from "./table.js";

interface Rig {
  cpu: Cpu;
  ram: FlatMemory;
  io: IoBus;
  bus: MemoryBus;
}

function rig(opts: { interrupts?: InterruptController; clockNs?: () => number } = {}): Rig {
  const ram = new FlatMemory(0x20_0000);
  const bus = new MemoryBus(ram);
  const io = new IoBus();
  const cpu = new Cpu({ memory: bus, io, ...opts });
  return { cpu, ram, io, bus };
}

/** Flat 32-bit code at 0x1000, stack at 0x8000; returns after HLT. */
function flat(code: number[], setup?: (r: Rig) => void): Rig {
  const r = rig();
  r.ram.u8.set([...code, 0xf4], 0x1000);
  r.cpu.setFlat32(0x1000, 0x8000);
  setup?.(r);
  expect(r.cpu.run(100_000)).toBe(ExitReason.HLT);
  return r;
}

/** Real-mode code at 0100:0000 with SS=0 SP=0x800 and IVT vector v → 0200:v*4 (a HLT each). */
function real(code: number[], setup?: (r: Rig) => void): Rig {
  const r = rig();
  for (let v = 0; v < 32; v++) {
    r.ram.writeU16(v * 4, v * 4);
    r.ram.writeU16(v * 4 + 2, 0x200);
    r.ram.u8[0x2000 + v * 4] = 0xf4;
  }
  r.ram.u8.set([...code, 0xf4], 0x1000);
  r.cpu.setRealMode(0x100, 0);
  r.cpu.r16[8] = 0x800;
  setup?.(r);
  expect(r.cpu.run(100_000)).toBe(ExitReason.HLT);
  return r;
}

/** The vector a real-mode test ended in (its handler's HLT), or -1 for the code's own HLT. */
function vectorTaken(r: Rig): number {
  return r.cpu.segSel[Sreg.CS] === 0x200 ? (r.cpu.eip - 1) / 4 : -1;
}

describe("opcode table", () => {
  it("has one entry per opcode and covers the i686 integer one-byte map", () => {
    const ops = OPCODES.map((e) => e.op);
    expect(new Set(ops).size).toBe(ops.length);
    const prefixes = [0x0f, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3];
    const missing: number[] = [];
    for (let op = 0; op < 0x100; op++) if (!prefixes.includes(op) && !ops.includes(op)) missing.push(op);
    // 0F is the escape; 0xD6 SALC and 0xF1 INT1 are present; nothing else may be missing.
    expect(missing.map((m) => m.toString(16))).toEqual([]);
  });
});

describe("flat 32-bit execution", () => {
  it("runs a counted loop", () => {
    // mov ecx,10; xor eax,eax; L: add eax,ecx; loop L
    const { cpu } = flat([0xb9, 10, 0, 0, 0, 0x31, 0xc0, 0x01, 0xc8, 0xe2, 0xfc]);
    expect(cpu.r32[0]).toBe(55);
    expect(cpu.r32[1]).toBe(0);
  });

  it("INC/DEC short forms (REX bytes in 64-bit mode) keep CF and set OF at the sign boundary", () => {
    // stc; mov eax,0x7fffffff; inc eax (40); dec ecx (49) with ecx=0
    const { cpu } = flat([0xf9, 0xb8, 0xff, 0xff, 0xff, 0x7f, 0x40], (r) => {
      r.cpu.r32[1] = 0;
    });
    expect(cpu.r32[0]! >>> 0).toBe(0x8000_0000);
    const f = cpu.getEflags();
    expect(f & Flag.CF).toBe(Flag.CF);
    expect(f & Flag.OF).toBe(Flag.OF);
    const r2 = flat([0xf8, 0x49], (r) => {
      r.cpu.r32[1] = 0;
    });
    expect(r2.cpu.r32[1]).toBe(-1);
    expect(r2.cpu.getEflags() & (Flag.CF | Flag.SF | Flag.ZF)).toBe(Flag.SF);
  });

  it("PUSHAD/POPAD push the original ESP and skip it on pop", () => {
    const code = [0x60, 0x31, 0xc0, 0x31, 0xdb, 0x89, 0xe5, 0x61];
    const { cpu, ram } = flat(code, (r) => {
      for (let i = 0; i < 8; i++) if (i !== 4) r.cpu.r32[i] = 0x1111_1111 * (i + 1);
    });
    expect(ram.readU32(0x8000 - 20)).toBe(0x8000); // ESP slot (5th push)
    expect(ram.readU32(0x8000 - 4)).toBe(0x1111_1111); // EAX first
    expect(cpu.r32[0]).toBe(0x1111_1111);
    expect(cpu.r32[3]).toBe(0x4444_4444);
    expect(cpu.r32[5]).toBe(0x6666_6666); // EBP restored, not the value moved in
    expect(cpu.r32[4]).toBe(0x8000);
  });

  it("BCD instructions work in 32-bit code (invalid in 64-bit mode)", () => {
    // mov al,0x19; add al,0x28; daa → 0x47 ; mov bl,al
    let { cpu } = flat([0xb0, 0x19, 0x04, 0x28, 0x27]);
    expect(cpu.r8[0]).toBe(0x47);
    // mov al,0x47; sub al,0x19; das → 0x28
    ({ cpu } = flat([0xb0, 0x47, 0x2c, 0x19, 0x2f]));
    expect(cpu.r8[0]).toBe(0x28);
    // mov ax,0x0009; add al,3; aaa → AX=0x0102, CF=1
    ({ cpu } = flat([0x66, 0xb8, 0x09, 0x00, 0x04, 0x03, 0x37]));
    expect(cpu.r16[0]).toBe(0x0102);
    expect(cpu.getCF()).toBe(1);
    // mov al,77; aam → AH=7 AL=7; aad → AL=77
    ({ cpu } = flat([0xb0, 77, 0xd4, 0x0a]));
    expect(cpu.r16[0]).toBe(0x0707);
    ({ cpu } = flat([0x66, 0xb8, 0x07, 0x07, 0xd5, 0x0a]));
    expect(cpu.r16[0]).toBe(77);
  });

  it("string moves: REP MOVSD, overlapping REP MOVSB, REPE CMPSB and 16-bit addressing (67)", () => {
    const { ram, cpu } = flat(
      [
        0xbe,
        0x00,
        0x40,
        0,
        0, // mov esi,0x4000
        0xbf,
        0x00,
        0x50,
        0,
        0, // mov edi,0x5000
        0xb9,
        0x04,
        0,
        0,
        0, // mov ecx,4
        0xf3,
        0xa5, // rep movsd
        0xbe,
        0x00,
        0x40,
        0,
        0, // mov esi,0x4000
        0xbf,
        0x01,
        0x40,
        0,
        0, // mov edi,0x4001 (overlap: replicates the first byte)
        0xb9,
        0x08,
        0,
        0,
        0, // mov ecx,8
        0xf3,
        0xa4, // rep movsb
        0xbe,
        0x00,
        0x50,
        0,
        0, // mov esi,0x5000
        0xbf,
        0x00,
        0x60,
        0,
        0, // mov edi,0x6000
        0xb9,
        0x10,
        0,
        0,
        0, // mov ecx,16
        0xf3,
        0xa6, // repe cmpsb
      ],
      (r) => {
        for (let i = 0; i < 16; i++) r.ram.u8[0x4000 + i] = i + 1;
        for (let i = 0; i < 16; i++) r.ram.u8[0x6000 + i] = i === 5 ? 0 : i + 1;
      },
    );
    for (let i = 0; i < 16; i++) expect(ram.u8[0x5000 + i]).toBe(i + 1);
    for (let i = 0; i < 9; i++) expect(ram.u8[0x4000 + i]).toBe(1);
    expect(cpu.r32[1]).toBe(10); // stopped after the 6th byte
    expect(cpu.r32[6]).toBe(0x5006);
    // addr16 in 32-bit code: 67 E2 uses CX
    const r2 = flat([0x67, 0xe2, 0xfd], (r) => {
      r.cpu.r32[1] = 0x1_0003;
    });
    expect(r2.cpu.r32[1]).toBe(0x1_0000);
  });

  it("ENTER with nesting, LEAVE, CMPXCHG8B both ways, BT with a negative bit offset, XLAT", () => {
    // enter 8,2 ; leave
    const e = flat([0xc8, 0x08, 0x00, 0x02], (r) => {
      r.cpu.r32[5] = 0x9000;
      r.ram.writeU32(0x9000 - 4, 0xabcd);
    });
    expect(e.cpu.r32[5]).toBe(0x8000 - 4);
    expect(e.ram.readU32(0x8000 - 4)).toBe(0x9000); // old EBP
    expect(e.ram.readU32(0x8000 - 8)).toBe(0xabcd); // copied frame pointer
    expect(e.ram.readU32(0x8000 - 12)).toBe(0x8000 - 4); // new frame
    expect(e.cpu.r32[4]).toBe(0x8000 - 12 - 8);
    // cmpxchg8b [0x3000]
    const c = flat([0x0f, 0xc7, 0x0d, 0x00, 0x30, 0, 0], (r) => {
      r.ram.writeU32(0x3000, 1);
      r.ram.writeU32(0x3004, 2);
      r.cpu.r32[0] = 1;
      r.cpu.r32[2] = 2;
      r.cpu.r32[3] = 7;
      r.cpu.r32[1] = 8;
    });
    expect([c.ram.readU32(0x3000), c.ram.readU32(0x3004), c.cpu.getZF()]).toEqual([7, 8, true]);
    const c2 = flat([0x0f, 0xc7, 0x0d, 0x00, 0x30, 0, 0], (r) => {
      r.ram.writeU32(0x3000, 5);
      r.ram.writeU32(0x3004, 6);
    });
    expect([c2.cpu.r32[0], c2.cpu.r32[2], c2.cpu.getZF()]).toEqual([5, 6, false]);
    // bts [0x3010], eax with eax = -1 → bit 31 of the dword at 0x300c
    const b = flat([0x0f, 0xab, 0x05, 0x10, 0x30, 0, 0], (r) => {
      r.cpu.r32[0] = -1;
    });
    expect(b.ram.readU32(0x300c)).toBe(0x8000_0000);
    // xlat: al = [ebx+al]
    const x = flat([0xd7], (r) => {
      r.cpu.r32[3] = 0x3000;
      r.cpu.r32[0] = 5;
      r.ram.u8[0x3005] = 0x99;
    });
    expect(x.cpu.r8[0]).toBe(0x99);
  });

  it("CPUID, RDTSC from the injected clock, RDMSR/WRMSR", () => {
    let ns = 0;
    const r = rig({ clockNs: () => ns });
    r.ram.u8.set([0x0f, 0xa2, 0xf4, 0x0f, 0x31, 0xf4], 0x1000);
    r.cpu.setFlat32(0x1000, 0x8000);
    r.cpu.r32[0] = 0;
    r.cpu.run(10);
    const vendor = [r.cpu.r32[3]!, r.cpu.r32[2]!, r.cpu.r32[1]!]
      .map((w) => String.fromCharCode(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24))
      .join("");
    expect(vendor).toBe(CPUID_VENDOR);
    expect(r.cpu.r32[0]).toBeGreaterThanOrEqual(1);
    r.cpu.r32[0] = 1;
    r.cpu.eip = 0x1000;
    r.cpu.halted = false;
    r.cpu.run(10);
    expect(r.cpu.r32[0]).toBe(0x633);
    expect(r.cpu.r32[2]! & ((1 << 15) | (1 << 8) | (1 << 4) | 1)).toBe((1 << 15) | (1 << 8) | (1 << 4) | 1);
    ns = 5_000_000_000;
    r.cpu.eip = 0x1003;
    r.cpu.halted = false;
    r.cpu.run(10);
    expect(r.cpu.r32[2]! * 0x1_0000_0000 + (r.cpu.r32[0]! >>> 0)).toBe(5_000_000_000);
    // WRMSR SYSENTER_EIP then RDMSR
    const m = flat([0x0f, 0x30, 0x31, 0xc0, 0x0f, 0x32], (s) => {
      s.cpu.r32[1] = 0x176;
      s.cpu.r32[0] = 0x1234;
    });
    expect(m.cpu.r32[0]).toBe(0x1234);
  });

  it("I/O instructions reach the bus; REP INSB fills memory", () => {
    const r = rig();
    const seen: number[] = [];
    r.io.register(
      0x60,
      4,
      {
        ioRead: (p) => p & 0xff,
        ioWrite: (_p, _s, v) => void seen.push(v),
      },
      "test",
    );
    // in al,0x61; out 0x60,al; mov dx,0x62; mov edi,0x3000; mov ecx,3; rep insb
    r.ram.u8.set(
      [
        0xe4, 0x61, 0xe6, 0x60, 0x66, 0xba, 0x62, 0x00, 0xbf, 0x00, 0x30, 0, 0, 0xb9, 3, 0, 0, 0, 0xf3, 0x6c,
        0xf4,
      ],
      0x1000,
    );
    r.cpu.setFlat32(0x1000, 0x8000);
    expect(r.cpu.run(100)).toBe(ExitReason.HLT);
    expect(seen).toEqual([0x61]);
    expect([...r.ram.u8.subarray(0x3000, 0x3004)]).toEqual([0x62, 0x62, 0x62, 0]);
  });

  it("reads and writes MMIO through the memory bus, also for code fetch", () => {
    const r = rig();
    const writes: [number, number, number][] = [];
    r.bus.addMmio(
      0x10_0000,
      0x1000,
      {
        mmioRead: (off, size) => (off === 0 ? 0x90 : 0x1234_5678 & (size === 4 ? -1 : (1 << (8 * size)) - 1)),
        mmioWrite: (off, size, v) => void writes.push([off, size, v]),
      },
      "dev",
    );
    // mov eax,[0x100010]; mov [0x100020],eax
    r.ram.u8.set([0xa1, 0x10, 0x00, 0x10, 0x00, 0xa3, 0x20, 0x00, 0x10, 0x00, 0xf4], 0x1000);
    r.cpu.setFlat32(0x1000, 0x8000);
    expect(r.cpu.run(100)).toBe(ExitReason.HLT);
    expect(r.cpu.r32[0]).toBe(0x1234_5678);
    expect(writes).toEqual([[0x20, 4, 0x1234_5678]]);
  });

  it("far transfers and segment loads in protected mode need the protected-mode unit (typed error)", () => {
    const r = rig();
    r.ram.u8.set([0x8e, 0xd8, 0xf4], 0x1000); // mov ds,ax
    r.cpu.setFlat32(0x1000, 0x8000);
    expect(() => r.cpu.run(10)).toThrow(CpuStateError);
  });
});

describe("faults, interrupts and exits", () => {
  it("#UD for undefined opcodes and LOCK on a register or non-lockable instruction", () => {
    expect(vectorTaken(real([0x0f, 0xff]))).toBe(Vector.UD);
    expect(vectorTaken(real([0xf0, 0x01, 0xc0]))).toBe(Vector.UD); // lock add ax,ax
    expect(vectorTaken(real([0xf0, 0x8b, 0x07]))).toBe(Vector.UD); // lock mov ax,[bx]
    expect(vectorTaken(real([0xf0, 0x01, 0x07]))).toBe(-1); // lock add [bx],ax
    expect(vectorTaken(real([0x0f, 0x0b]))).toBe(Vector.UD); // ud2
  });

  it("#GP for an instruction longer than 15 bytes; 15 bytes run", () => {
    const pre14 = new Array<number>(14).fill(0x3e);
    expect(vectorTaken(real([...pre14, 0x90]))).toBe(-1);
    const pre15 = new Array<number>(15).fill(0x3e);
    expect(vectorTaken(real([...pre15, 0x90]))).toBe(Vector.GP);
  });

  it("#DE pushes the faulting instruction's address; INT n pushes the next one", () => {
    const d = real([0x31, 0xdb, 0xf7, 0xf3]); // xor bx,bx; div bx
    expect(vectorTaken(d)).toBe(Vector.DE);
    expect(d.ram.readU16(0x800 - 6)).toBe(2);
    const i = real([0xcd, 0x05]);
    expect(vectorTaken(i)).toBe(5);
    expect(i.ram.readU16(0x800 - 6)).toBe(2);
  });

  it("a real-mode word access at offset FFFF faults (#GP, #SS on the stack); FFFE and an unreal segment do not", () => {
    const ds = (s: Rig) => {
      s.cpu.loadSegment(Sreg.DS, 0x300);
      s.ram.writeU16(0x3000 + 0xfffe, 0xbeef);
      s.ram.writeU16(0x3000 + 0x1_0000, 0x1234);
    };
    expect(vectorTaken(real([0xbb, 0xff, 0xff, 0x8b, 0x07], ds))).toBe(Vector.GP); // mov ax, [bx]
    expect(vectorTaken(real([0xbb, 0xff, 0xff, 0x89, 0x07], ds))).toBe(Vector.GP); // mov [bx], ax
    expect(vectorTaken(real([0xbc, 0xff, 0xff, 0x58]))).toBe(Vector.SS); // mov sp, ffff; pop ax
    const ok = real([0xbb, 0xfe, 0xff, 0x8b, 0x07], ds);
    expect(vectorTaken(ok)).toBe(-1);
    expect(ok.cpu.r16[0]).toBe(0xbeef);
    const unreal = real([0xbb, 0xff, 0xff, 0x8b, 0x07], (s) => {
      ds(s);
      s.cpu.segMax[Sreg.DS] = 0xffff_ffff;
      s.cpu.updateFlat(Sreg.DS);
    });
    expect(vectorTaken(unreal)).toBe(-1);
    expect(unreal.cpu.r16[0]).toBe(0x34be);
  });

  it("a fault while delivering a fault is a double fault; a third is shutdown", () => {
    const r = rig();
    r.ram.u8.set([0x0f, 0x0b], 0x1000);
    r.cpu.setRealMode(0x100, 0);
    r.cpu.idtrLimit = 0; // every vector is outside the IVT: #UD → #GP → #DF → shutdown
    expect(r.cpu.run(10)).toBe(ExitReason.SHUTDOWN);
  });

  it("takes an external interrupt at a boundary when IF=1, after the STI shadow, and wakes HLT", () => {
    let pending = true;
    const intc: InterruptController = {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        return 0x08;
      },
    };
    const r = rig({ interrupts: intc });
    r.ram.writeU16(8 * 4, 0);
    r.ram.writeU16(8 * 4 + 2, 0x300);
    r.ram.u8.set([0x41, 0xf4], 0x3000); // inc cx; hlt
    // sti; inc ax; inc ax; hlt
    r.ram.u8.set([0xfb, 0x40, 0x40, 0xf4], 0x1000);
    r.cpu.setRealMode(0x100, 0);
    r.cpu.r16[8] = 0x800;
    expect(r.cpu.run(100)).toBe(ExitReason.HLT);
    // The instruction after STI ran before the interrupt.
    expect(r.cpu.r16[0]).toBe(1);
    expect(r.cpu.r16[2]).toBe(1);
    expect(r.ram.readU16(0x800 - 6)).toBe(2); // return IP: the second inc ax
    // HLT with IF=1 and nothing pending stays halted; a new request wakes it.
    r.cpu.setEflags(r.cpu.getEflags() | Flag.IF);
    expect(r.cpu.run(100)).toBe(ExitReason.HLT);
    pending = true;
    r.cpu.notifyInterrupt();
    expect(r.cpu.run(100)).toBe(ExitReason.HLT);
    expect(r.cpu.r16[2]).toBe(2);
  });

  it("single-steps with TF: #DB after each instruction", () => {
    const r = real([0x40, 0x40], (s) => s.cpu.setEflags(s.cpu.getEflags() | Flag.TF));
    expect(vectorTaken(r)).toBe(Vector.DB);
    expect(r.cpu.r16[0]).toBe(1);
    expect(r.ram.readU16(0x800 - 6)).toBe(1);
  });

  it("a budget exit resumes where it stopped", () => {
    const r = rig();
    r.ram.u8.set([0x40, 0x40, 0x40, 0xf4], 0x1000);
    r.cpu.setFlat32(0x1000, 0x8000);
    expect(r.cpu.run(2)).toBe(ExitReason.BUDGET);
    expect(r.cpu.r32[0]).toBe(2);
    expect(r.cpu.run(10)).toBe(ExitReason.HLT);
    expect(r.cpu.r32[0]).toBe(3);
  });
});

describe("x87 escapes", () => {
  it("FLD1, FADD, FISTP and FNSTSW AX go through the FPU", () => {
    // fninit; fld1; fadd st0,st0; fistp dword [0x3000]; fnstsw ax
    const { ram, cpu } = flat([0xdb, 0xe3, 0xd9, 0xe8, 0xd8, 0xc0, 0xdb, 0x1d, 0x00, 0x30, 0, 0, 0xdf, 0xe0]);
    expect(ram.readU32(0x3000)).toBe(2);
    expect(cpu.r16[0]! & 0x3800).toBe(0); // TOP back to 0
  });

  it("#NM when CR0.TS or CR0.EM is set; WAIT only with MP and TS", () => {
    expect(vectorTaken(real([0xd9, 0xe8], (r) => void (r.cpu.cr0 |= Cr0.TS)))).toBe(Vector.NM);
    expect(vectorTaken(real([0xd9, 0xe8], (r) => void (r.cpu.cr0 |= Cr0.EM)))).toBe(Vector.NM);
    expect(vectorTaken(real([0x9b], (r) => void (r.cpu.cr0 |= Cr0.TS)))).toBe(-1);
    expect(vectorTaken(real([0x9b], (r) => void (r.cpu.cr0 |= Cr0.TS | Cr0.MP)))).toBe(Vector.NM);
  });

  it("an unmasked x87 exception is reported by the next waiting instruction (#MF with CR0.NE, else FERR#)", () => {
    // fninit; fldcw [cs:0x40] (ZM cleared); fld1; fldz; fdivp st1,st0; fwait
    const code = [0xdb, 0xe3, 0x2e, 0xd9, 0x2e, 0x40, 0x00, 0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9, 0x9b];
    const withNe = real(code, (r) => {
      r.ram.writeU16(0x1040, 0x037b);
      r.cpu.cr0 |= Cr0.NE;
    });
    expect(vectorTaken(withNe)).toBe(Vector.MF);
    let ferr = 0;
    const noNe = real(code, (r) => {
      r.ram.writeU16(0x1040, 0x037b);
      r.cpu.ferr = () => void ferr++;
    });
    expect(vectorTaken(noNe)).toBe(-1);
    expect(ferr).toBe(1);
  });
});

describe("segment forms in real mode (invalid in 64-bit mode)", () => {
  it("PUSH/POP ES, SS, DS, PUSH CS, LES/LDS, MOV Sreg", () => {
    // push cs; pop es; push 0x1234 (68); pop ds; les bx,[0x10]; mov ax,es
    const r = real([0x0e, 0x07, 0x68, 0x34, 0x12, 0x1f, 0xc4, 0x1e, 0x10, 0x00, 0x8c, 0xc0], (s) => {
      s.ram.writeU16(0x12340 + 0x10, 0xbeef);
      s.ram.writeU16(0x12340 + 0x12, 0x5678);
    });
    expect(vectorTaken(r)).toBe(-1);
    expect(r.cpu.segSel[Sreg.DS]).toBe(0x1234);
    expect(r.cpu.r16[6]).toBe(0xbeef);
    expect(r.cpu.r16[0]).toBe(0x5678);
    expect(r.cpu.segBase[Sreg.ES]).toBe(0x56780);
  });
});

describe("property: 16-bit ALU results equal 32-bit results masked", () => {
  it("ADD/SUB/AND/XOR with 66 prefix match the low half of the 32-bit result", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.nat(3),
        (a, b, k) => {
          const op = [0x01, 0x29, 0x21, 0x31][k]!;
          const r16 = flat([0x66, op, 0xd8], (r) => {
            r.cpu.r32[0] = a;
            r.cpu.r32[3] = b;
          });
          const r32 = flat([op, 0xd8], (r) => {
            r.cpu.r32[0] = a;
            r.cpu.r32[3] = b;
          });
          expect(r16.cpu.r16[0]).toBe(r32.cpu.r32[0]! & 0xffff);
        },
      ),
      { numRuns: 50 },
    );
  });
});
