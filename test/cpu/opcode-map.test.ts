/**
 * Checks the opcode table against MazeGen's x86reference opcode map (../shared/cpu-tests):
 * every integer/system opcode that exists on the Pentium Pro (proc_start ≤ 07) outside 64-bit
 * mode is in the table, and nothing in the table is newer. Skips with a message when absent.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { OPCODES } from "../../src/cpu/table.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const file = resolve(root, "../shared/cpu-tests/opcode-map/x86reference/x86reference.xml");
const present = existsSync(file);
if (!present) console.warn(`opcode-map test skipped: ${file} is absent`);

/** Opcodes deliberately not decoded on this i686 model, with the reason. */
const NOT_DECODED = new Map<number, string>([
  [0x105, "LOADALL (286 only)"],
  [0x107, "LOADALL (386 only)"],
  [0x124, "MOV r32,TRn (386/486 only; #UD on P6)"],
  [0x126, "MOV TRn,r32 (386/486 only; #UD on P6)"],
  [0x133, "RDPMC: performance counters are not modelled (#UD)"],
  [0x1aa, "RSM: no system-management mode"],
  [0x1b9, "UD1 (#UD by definition)"],
]);

interface MapEntry {
  op: number;
  mnemonic: string;
}

function i686Entries(xml: string, section: "one-byte" | "two-byte", base: number): MapEntry[] {
  const body = xml.slice(xml.indexOf(`<${section}`), xml.indexOf(`</${section}>`));
  const out: MapEntry[] = [];
  for (const chunk of body.split('<pri_opcd value="').slice(1)) {
    const op = Number.parseInt(chunk.slice(0, 2), 16);
    for (const entry of chunk.split("<entry").slice(1)) {
      const head = entry.slice(0, entry.indexOf(">"));
      if (/mode="e"/.test(head)) continue; // 64-bit mode only
      const proc = /<proc_start[^>]*>(\d+)</.exec(entry);
      if (proc !== null && Number(proc[1]) > 7) continue;
      if (/<grp1>(x87fpu|mmx|sse\d?)<\/grp1>/.test(entry) || /<grp1>(prefix|obsol)/.test(entry)) continue;
      if (/<grp2>(prefix)<\/grp2>/.test(entry)) continue;
      const mnem = /<mnem>([^<]+)</.exec(entry);
      if (mnem === null) continue;
      if (/<instr_ext>/.test(entry)) continue; // MMX/SSE
      // A Z operand (register in the opcode's low 3 bits) covers op..op+7.
      const n = /<a>Z<\/a>/.test(entry) ? 8 : 1;
      for (let i = 0; i < n; i++) out.push({ op: base | (op + i), mnemonic: mnem[1]! });
    }
  }
  return out;
}

describe.skipIf(!present)("opcode table vs the x86reference opcode map", () => {
  const xml = present ? readFileSync(file, "utf8") : "";
  const ours = new Set(OPCODES.map((e) => e.op));

  it("decodes every i686 integer and system opcode", () => {
    const wanted = [...i686Entries(xml, "one-byte", 0), ...i686Entries(xml, "two-byte", 0x100)].filter(
      (e) => e.op !== 0x0f && !NOT_DECODED.has(e.op),
    );
    expect(wanted.filter((e) => e.op < 0x100).length).toBeGreaterThan(200);
    expect(wanted.filter((e) => e.op >= 0x100).length).toBeGreaterThan(80);
    const missing = [
      ...new Set(wanted.filter((e) => !ours.has(e.op)).map((e) => `${e.op.toString(16)} ${e.mnemonic}`)),
    ];
    expect(missing).toEqual([]);
  });

  it("decodes nothing that is not in the map for the i686", () => {
    const known = new Set(
      [...i686Entries(xml, "one-byte", 0), ...i686Entries(xml, "two-byte", 0x100)].map((e) => e.op),
    );
    // The x87 escapes and WAIT (the FPU's, filtered out above), and SYSENTER/SYSEXIT: Pentium II
    // (family 6 model 3, the CPUID signature this core reports with SEP).
    for (const op of [0x9b, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0x134, 0x135]) known.add(op);
    const extra = OPCODES.filter((e) => !known.has(e.op)).map((e) => `${e.op.toString(16)} ${e.mnemonic}`);
    expect(extra).toEqual([]);
  });
});
