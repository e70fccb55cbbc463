import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { CpuFault, Vector } from "./fault.js";
import { AccessKind } from "./hooks.js";
import { Cr4, type Paging, PfError, Pte } from "./paging.js";
import { attachProtectedMode } from "./protected/unit.js";
import { Cr0 } from "./state.js";

const PD = 0x1000;
const PT = 0x2000;

function setup(): { cpu: Cpu; ram: FlatMemory; paging: Paging } {
  const ram = new FlatMemory(0x80_0000);
  const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
  const { paging } = attachProtectedMode(cpu);
  cpu.setFlat32(0, 0);
  cpu.cr3 = PD;
  cpu.cr0 |= Cr0.PG;
  cpu.paging = paging;
  return { cpu, ram, paging };
}

function tr(cpu: Cpu, lin: number, kind: AccessKind): number | { vector: number; code: number; cr2: number } {
  try {
    return cpu.paging!.translate(lin | 0, kind) >>> 0;
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    return { vector: e.vector, code: e.errorCode, cr2: cpu.cr2 };
  }
}

describe("Paging: 4 KiB pages", () => {
  it("translates through PDE and PTE, sets A on reads and D on writes", () => {
    const { cpu, ram } = setup();
    ram.writeU32(PD + 4 * 1, PT | Pte.P | Pte.RW | Pte.US); // 0x400000-0x7fffff
    ram.writeU32(PT + 4 * 5, 0x30_0000 | Pte.P | Pte.RW | Pte.US);
    expect(tr(cpu, 0x40_5123, AccessKind.READ)).toBe(0x30_0123);
    expect(ram.readU32(PD + 4) & Pte.A).toBe(Pte.A);
    expect(ram.readU32(PT + 20) & (Pte.A | Pte.D)).toBe(Pte.A);
    expect(tr(cpu, 0x40_5ffc, AccessKind.WRITE)).toBe(0x30_0ffc);
    expect(ram.readU32(PT + 20) & Pte.D).toBe(Pte.D);
  });

  it("raises #PF with CR2 and the not-present error code", () => {
    const { cpu, ram } = setup();
    expect(tr(cpu, 0x1234_5678, AccessKind.READ)).toEqual({ vector: Vector.PF, code: 0, cr2: 0x1234_5678 });
    ram.writeU32(PD, PT | Pte.P | Pte.RW | Pte.US);
    expect(tr(cpu, 0x3000, AccessKind.WRITE)).toEqual({ vector: Vector.PF, code: PfError.W, cr2: 0x3000 });
    cpu.cpl = 3;
    expect(tr(cpu, 0x3000, AccessKind.FETCH)).toEqual({ vector: Vector.PF, code: PfError.U, cr2: 0x3000 });
  });

  it("applies U/S and R/W from both levels, and CR0.WP for supervisor writes", () => {
    const { cpu, ram } = setup();
    ram.writeU32(PD, PT | Pte.P | Pte.US); // directory entry read-only
    ram.writeU32(PT + 4 * 3, 0x5000 | Pte.P | Pte.RW | Pte.US);
    ram.writeU32(PT + 4 * 4, 0x6000 | Pte.P | Pte.RW); // supervisor page
    cpu.cpl = 3;
    expect(tr(cpu, 0x3000, AccessKind.READ)).toBe(0x5000);
    expect(tr(cpu, 0x3000, AccessKind.WRITE)).toEqual({ vector: 14, code: 7, cr2: 0x3000 });
    expect(tr(cpu, 0x4000, AccessKind.READ)).toEqual({ vector: 14, code: 5, cr2: 0x4000 });
    cpu.cpl = 0;
    expect(tr(cpu, 0x4000, AccessKind.READ)).toBe(0x6000);
    expect(tr(cpu, 0x3000, AccessKind.WRITE)).toBe(0x5000); // WP = 0: supervisor writes anything
    cpu.cr0 |= Cr0.WP;
    cpu.paging!.flush(true);
    expect(tr(cpu, 0x3000, AccessKind.WRITE)).toEqual({ vector: 14, code: 3, cr2: 0x3000 });
  });

  it("user and supervisor translations of one page are cached separately", () => {
    const { cpu, ram } = setup();
    ram.writeU32(PD, PT | Pte.P | Pte.RW | Pte.US);
    ram.writeU32(PT + 4 * 4, 0x6000 | Pte.P | Pte.RW); // supervisor only
    expect(tr(cpu, 0x4000, AccessKind.READ)).toBe(0x6000); // cached for CPL 0
    cpu.cpl = 3;
    expect(tr(cpu, 0x4000, AccessKind.READ)).toEqual({ vector: 14, code: 5, cr2: 0x4000 });
  });
});

describe("Paging: 4 MiB pages, global pages, TLB", () => {
  it("maps 4 MiB pages with CR4.PSE and ignores PS without it", () => {
    const { cpu, ram } = setup();
    ram.writeU32(PD + 4 * 2, 0x40_0000 | Pte.P | Pte.RW | Pte.PS);
    cpu.cr4 = Cr4.PSE;
    expect(tr(cpu, 0x80_1234, AccessKind.WRITE)).toBe(0x40_1234);
    expect(ram.readU32(PD + 8) & (Pte.A | Pte.D)).toBe(Pte.A | Pte.D);
    // Reserved bits 21:13 of a 4 MiB PDE: RSVD fault.
    ram.writeU32(PD + 4 * 3, 0x40_2000 | Pte.P | Pte.PS);
    expect(tr(cpu, 0xc0_0000, AccessKind.READ)).toEqual({
      vector: 14,
      code: PfError.P | PfError.RSVD,
      cr2: 0xc0_0000,
    });
    // Without PSE the PDE points at a page table (at 0x400000 here, all zero: not present).
    cpu.cr4 = 0;
    cpu.paging!.flush(true);
    expect(tr(cpu, 0x80_1234, AccessKind.READ)).toEqual({ vector: 14, code: 0, cr2: 0x80_1234 });
  });

  it("keeps stale translations until INVLPG or a CR3 write; global ones survive CR3 writes", () => {
    const { cpu, ram, paging } = setup();
    cpu.cr4 = Cr4.PGE;
    ram.writeU32(PD, PT | Pte.P | Pte.RW);
    ram.writeU32(PT + 4 * 1, 0x10_0000 | Pte.P | Pte.RW);
    ram.writeU32(PT + 4 * 2, 0x20_0000 | Pte.P | Pte.RW | Pte.G);
    expect(tr(cpu, 0x1000, AccessKind.READ)).toBe(0x10_0000);
    expect(tr(cpu, 0x2000, AccessKind.READ)).toBe(0x20_0000);
    ram.writeU32(PT + 4 * 1, 0x11_0000 | Pte.P | Pte.RW);
    ram.writeU32(PT + 4 * 2, 0x21_0000 | Pte.P | Pte.RW | Pte.G);
    expect(tr(cpu, 0x1000, AccessKind.READ)).toBe(0x10_0000); // stale, as on hardware
    paging.flush(false); // MOV CR3
    expect(tr(cpu, 0x1000, AccessKind.READ)).toBe(0x11_0000);
    expect(tr(cpu, 0x2000, AccessKind.READ)).toBe(0x20_0000); // global survives
    paging.invalidatePage(0x2abc);
    expect(tr(cpu, 0x2000, AccessKind.READ)).toBe(0x21_0000);
    ram.writeU32(PT + 4 * 2, 0x22_0000 | Pte.P | Pte.RW | Pte.G);
    paging.flush(true); // CR4 write
    expect(tr(cpu, 0x2000, AccessKind.READ)).toBe(0x22_0000);
  });

  it("INVLPG drops every slice of a 4 MiB page", () => {
    const { cpu, ram, paging } = setup();
    cpu.cr4 = Cr4.PSE;
    ram.writeU32(PD + 4, 0x40_0000 | Pte.P | Pte.RW | Pte.PS);
    expect(tr(cpu, 0x40_0000, AccessKind.READ)).toBe(0x40_0000);
    expect(tr(cpu, 0x7f_f000, AccessKind.READ)).toBe(0x7f_f000);
    ram.writeU32(PD + 4, 0 | Pte.P | Pte.RW | Pte.PS);
    paging.invalidatePage(0x40_0000);
    expect(tr(cpu, 0x7f_f000, AccessKind.READ)).toBe(0x3f_f000);
  });

  it("a write after a read-only fill walks again and sets D", () => {
    const { cpu, ram } = setup();
    ram.writeU32(PD, PT | Pte.P | Pte.RW);
    ram.writeU32(PT + 4 * 7, 0x7000 | Pte.P | Pte.RW);
    tr(cpu, 0x7000, AccessKind.READ);
    expect(ram.readU32(PT + 28) & Pte.D).toBe(0);
    tr(cpu, 0x7004, AccessKind.WRITE);
    expect(ram.readU32(PT + 28) & Pte.D).toBe(Pte.D);
  });

  it("matches a reference walk for random tables and accesses (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 15 }), fc.nat(0x1ff)), {
          minLength: 1,
          maxLength: 24,
        }),
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 7 }),
            fc.integer({ min: 0, max: 15 }),
            fc.nat(2),
            fc.boolean(),
            fc.boolean(),
          ),
          { minLength: 1, maxLength: 40 },
        ),
        (ptes, accesses) => {
          const { cpu, ram, paging } = setup();
          cpu.cr4 = Cr4.PSE;
          // Eight directory entries: even ones point at page tables, odd ones are 4 MiB pages.
          for (let d = 0; d < 8; d++) {
            if (d % 2 === 0) ram.writeU32(PD + 4 * d, (0x10_000 + d * 0x1000) | Pte.P | Pte.RW | Pte.US);
            else
              ram.writeU32(
                PD + 4 * d,
                0x40_0000 | Pte.P | Pte.PS | (d & 2 ? Pte.US : 0) | (d & 4 ? Pte.RW : 0),
              );
          }
          for (const [d, p, bits] of ptes) {
            if (d % 2 === 0) ram.writeU32(0x10_000 + d * 0x1000 + 4 * p, ((p + 0x50) << 12) | (bits & 0x7));
          }
          for (const [d, p, kind, user, wp] of accesses) {
            const lin = (d << 22) | (p << 12) | 0x10;
            cpu.cpl = user ? 3 : 0;
            if (wp !== ((cpu.cr0 & Cr0.WP) !== 0)) {
              cpu.cr0 ^= Cr0.WP;
              paging.flush(true);
            }
            const expected = reference(ram, lin, kind as AccessKind, user, wp);
            const got = tr(cpu, lin, kind as AccessKind);
            if (expected >= 0) expect(got).toBe(expected);
            else expect(got).toEqual({ vector: 14, code: -1 - expected, cr2: lin >>> 0 });
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

/** A straightforward reading of SDM 4.3/4.6 (no TLB), for the property test: phys, or -1 - the #PF code. */
function reference(ram: FlatMemory, lin: number, kind: AccessKind, user: boolean, wp: boolean): number {
  const write = kind === AccessKind.WRITE;
  const code = (write ? 2 : 0) | (user ? 4 : 0);
  const pde = ram.readU32(PD + 4 * (lin >>> 22));
  if (!(pde & Pte.P)) return -1 - code;
  let rights: number;
  let phys: number;
  if (pde & Pte.PS) {
    rights = pde;
    phys = (pde & 0xffc0_0000) | (lin & 0x3f_ffff);
  } else {
    const pte = ram.readU32((pde & 0xffff_f000) + 4 * ((lin >>> 12) & 0x3ff));
    if (!(pte & Pte.P)) return -1 - code;
    rights = pde & pte;
    phys = (pte & 0xffff_f000) | (lin & 0xfff);
  }
  const ok = user
    ? (rights & Pte.US) !== 0 && (!write || (rights & Pte.RW) !== 0)
    : !write || !wp || (rights & Pte.RW) !== 0;
  return ok ? phys >>> 0 : -1 - (code | 1);
}
