/**
 * Property test: MOV Sreg in protected mode against a reference model written from the SDM's
 * MOV pseudo-code (vol. 2), over random descriptors, selectors, CPLs and segment registers:
 * the same fault and error code, or the same segment cache (base, byte-granular limit,
 * attributes) with the accessed bit written back.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { CpuFault, Vector } from "./fault.js";
import { attachProtectedMode } from "./protected/unit.js";
import { Sreg } from "./state.js";

const GDT = 0x1000;
const LDT = 0x2000;

type Outcome = { fault: [number, number] } | { base: number; limit: number; attr: number };

function reference(
  sreg: number,
  sel: number,
  cpl: number,
  lo: number,
  hi: number,
  inTable: boolean,
): Outcome | null {
  const idx = sel & 0xfffc;
  const rpl = sel & 3;
  const present = ((hi >>> 15) & 1) === 1;
  const dpl = (hi >>> 13) & 3;
  const s = ((hi >>> 12) & 1) === 1;
  const type = (hi >>> 8) & 0xf;
  const code = s && (type & 8) !== 0;
  const data = s && !code;
  const gp = (c: number): Outcome => ({ fault: [Vector.GP, c] });
  if (sreg === Sreg.SS) {
    if (idx === 0) return gp(0);
    if (!inTable) return gp(idx);
    if (rpl !== cpl || !(data && (type & 2) !== 0) || dpl !== cpl) return gp(idx);
    if (!present) return { fault: [Vector.SS, idx] };
  } else {
    if (idx === 0) return null; // a null selector loads an unusable segment
    if (!inTable) return gp(idx);
    if (!(data || (code && (type & 2) !== 0))) return gp(idx);
    if ((data || (type & 4) === 0) && (rpl > dpl || cpl > dpl)) return gp(idx);
    if (!present) return { fault: [Vector.NP, idx] };
  }
  let limit = (lo & 0xffff) | (hi & 0xf_0000);
  if ((hi >>> 23) & 1) limit = limit * 4096 + 4095;
  const base = ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff00_0000)) >>> 0;
  return { base, limit, attr: ((hi >>> 8) & 0xff) | 1 | (((hi >>> 20) & 0xf) << 12) };
}

describe("MOV Sreg in protected mode (property, against the SDM pseudo-code)", () => {
  it("faults with the same vector and error code, or loads the same cache", () => {
    const ram = new FlatMemory(0x10_0000);
    const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
    attachProtectedMode(cpu);
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(
        fc.constantFrom(Sreg.ES, Sreg.SS, Sreg.DS, Sreg.FS, Sreg.GS),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 1, max: 40 }),
        (sreg, cpl, selRaw, lo, hi, tableEntries) => {
          cpu.setFlat32(0, 0x8000);
          cpu.cpl = cpl;
          cpu.gdtrBase = GDT;
          cpu.gdtrLimit = tableEntries * 8 - 1;
          cpu.ldtrSel = 0x28;
          cpu.ldtrBase = LDT;
          cpu.ldtrLimit = tableEntries * 8 - 1;
          // Bias towards selectors inside the table.
          const sel = selRaw & (selRaw & 0x8000 ? 0xffff : 0x7f);
          const idx = sel & 0xfff8;
          const table = sel & 4 ? LDT : GDT;
          const inTable = idx + 7 <= tableEntries * 8 - 1;
          if (inTable) {
            ram.writeU32(table + idx, lo);
            ram.writeU32(table + idx + 4, hi);
          }
          const want = reference(sreg, sel, cpl, lo >>> 0, hi >>> 0, inTable);
          let got: Outcome | null;
          try {
            cpu.loadSegment(sreg, sel);
            got =
              (sel & 0xfffc) === 0
                ? null
                : { base: cpu.segBase[sreg]! >>> 0, limit: cpu.segLimit[sreg]!, attr: cpu.segAttr[sreg]! };
            if ((sel & 0xfffc) === 0) expect(cpu.segAccess[sreg]).toBe(0);
            else {
              expect(cpu.segSel[sreg]).toBe(sel);
              expect(ram.readU32(table + idx + 4) & 0x100).toBe(0x100); // accessed bit written back
            }
          } catch (e) {
            if (!(e instanceof CpuFault)) throw e;
            got = { fault: [e.vector, e.errorCode] };
          }
          expect(got).toEqual(want);
          const kind = got === null ? "null" : "fault" in got ? `fault ${got.fault[0]}` : "loaded";
          seen.set(kind, (seen.get(kind) ?? 0) + 1);
        },
      ),
      // A fixed seed: the same 3000 cases every run, chosen so every outcome below occurs (with a
      // random seed, #SS is rare enough that the coverage check failed now and then).
      { numRuns: 3000, seed: 1 },
    );
    // Every outcome was exercised: loads, null loads, #GP, #NP and #SS.
    expect([...seen.keys()].sort()).toEqual(["fault 11", "fault 12", "fault 13", "loaded", "null"]);
  });
});
