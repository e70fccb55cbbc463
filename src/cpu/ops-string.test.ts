/**
 * REP MOVS/STOS with 16-bit addressing against a model of the element loop: the fast path
 * (ops-string.ts) copies whole runs only when SI/DI stay below 64 KiB; runs that wrap, overlap
 * or go backwards must end as the element-by-element definition says.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { ExitReason } from "./fault.js";
import { Flag, Sreg } from "./state.js";

const SEG = 0x1000; // DS = ES: physical 0x10000-0x1ffff
const BASE = SEG << 4;

describe("REP MOVS/STOS, 16-bit addressing", () => {
  it("matches the element loop (wrapping offsets, overlap, both directions, all sizes)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0xa4, 0xa5, 0xaa, 0xab),
        fc.boolean(), // 66: dword elements
        fc.boolean(), // DF
        fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xff00, max: 0xffff })),
        fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xff00, max: 0xffff })),
        fc.integer({ min: 0, max: 600 }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        (op, wide, down, si0, di0, count, eax) => {
          const n = op & 1 ? (wide ? 4 : 2) : 1;
          // Element-aligned offsets: an element never crosses the 64 KiB segment limit.
          const si = si0 & -n & 0xffff;
          const di = di0 & -n & 0xffff;
          const ram = new FlatMemory(0x10_0000);
          for (let i = 0; i < 0x1_0000; i++) ram.u8[BASE + i] = (i * 7 + (i >> 8)) & 0xff;
          const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
          cpu.setRealMode(0x2000, 0);
          cpu.loadSegment(Sreg.DS, SEG);
          cpu.loadSegment(Sreg.ES, SEG);
          const code = [0xf3, ...(wide ? [0x66] : []), op, 0xf4];
          ram.u8.set(code, 0x2_0000);
          cpu.r32[0] = eax;
          cpu.r16[12] = si;
          cpu.r16[14] = di;
          cpu.r16[2] = count;
          if (down) cpu.setEflags(cpu.getEflags() | Flag.DF);
          // The model.
          const seg = ram.u8.slice(BASE, BASE + 0x1_0000);
          const step = down ? -n : n;
          let s = si;
          let d = di;
          for (let k = 0; k < count; k++) {
            for (let b = 0; b < n; b++) seg[d + b] = op <= 0xa5 ? seg[s + b]! : (eax >>> (8 * b)) & 0xff;
            if (op <= 0xa5) s = (s + step) & 0xffff;
            d = (d + step) & 0xffff;
          }
          expect(cpu.run(10)).toBe(ExitReason.HLT);
          expect(cpu.r16[2]).toBe(0);
          expect(cpu.r16[12]).toBe(s);
          expect(cpu.r16[14]).toBe(d);
          expect(Buffer.from(ram.u8.subarray(BASE, BASE + 0x1_0000)).equals(Buffer.from(seg))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
