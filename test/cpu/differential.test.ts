/**
 * Differential test of 32-bit (and 8/16-bit) integer instructions against the host processor.
 * A small C helper (built at test time with `cc`) runs each instruction with inline assembly
 * on the same inputs (EAX, EBX, ECX, EDX, EFLAGS) and prints the outputs; the core runs the same
 * encoding in flat 32-bit mode. Inputs come from fast-check (edge values weighted). Flags the
 * SDM leaves undefined are masked per instruction.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { FlatMemory } from "../../src/common/memory.js";
import { IoBus } from "../../src/machine/io-bus.js";
import { MemoryBus } from "../../src/machine/memory-bus.js";
import { Cpu } from "../../src/cpu/cpu.js";
import { ExitReason } from "../../src/cpu/fault.js";

const CF = 0x1;
const PF = 0x4;
const AF = 0x10;
const ZF = 0x40;
const SF = 0x80;
const OF = 0x800;
const ARITH = CF | PF | AF | ZF | SF | OF;

type In = [number, number, number, number, number]; // eax ebx ecx edx flags
interface Op {
  name: string;
  asm: string;
  bytes: number[];
  /** Flags to ignore for these inputs (undefined by the SDM). */
  undef?: (i: In) => number;
  /** Registers whose value is undefined (index into eax ebx ecx edx) for these inputs. */
  undefRegs?: (i: In) => number[];
  /** Adjust random inputs into the instruction's valid domain (e.g. no #DE). */
  fix?: (i: In) => In | null;
}

const ops: Op[] = [];
const SUF = ["b", "w", "l"] as const;
const RA = ["%al", "%ax", "%eax"] as const;
const RB = ["%bl", "%bx", "%ebx"] as const;
const RC = ["%cl", "%cx", "%ecx"] as const;
const p66 = (s: number) => (s === 1 ? [0x66] : []);
const WIDTH = [8, 16, 32] as const;

// ALU op Ev,Gv with EAX destination, EBX source.
const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"] as const;
for (let s = 0; s < 3; s++) {
  ALU.forEach((n, k) => {
    const logic = n === "and" || n === "or" || n === "xor";
    ops.push({
      name: `${n}${SUF[s]}`,
      asm: `${n}${SUF[s]} ${RB[s]}, ${RA[s]}`,
      bytes: [...p66(s), k * 8 + (s === 0 ? 0 : 1), 0xd8],
      undef: logic ? () => AF : undefined,
    });
  });
  ops.push({
    name: `test${SUF[s]}`,
    asm: `test${SUF[s]} ${RB[s]}, ${RA[s]}`,
    bytes: [...p66(s), s === 0 ? 0x84 : 0x85, 0xd8],
    undef: () => AF,
  });
  ops.push({
    name: `neg${SUF[s]}`,
    asm: `neg${SUF[s]} ${RA[s]}`,
    bytes: [...p66(s), s === 0 ? 0xf6 : 0xf7, 0xd8],
  });
  ops.push({
    name: `not${SUF[s]}`,
    asm: `not${SUF[s]} ${RA[s]}`,
    bytes: [...p66(s), s === 0 ? 0xf6 : 0xf7, 0xd0],
  });
  // INC/DEC: the 16/32-bit short forms 40/48 (REX prefixes in 64-bit mode) against the host's FF /0 /1.
  ops.push({
    name: `inc${SUF[s]}`,
    asm: `inc${SUF[s]} ${RA[s]}`,
    bytes: s === 0 ? [0xfe, 0xc0] : [...p66(s), 0x40],
  });
  ops.push({
    name: `dec${SUF[s]}`,
    asm: `dec${SUF[s]} ${RA[s]}`,
    bytes: s === 0 ? [0xfe, 0xc8] : [...p66(s), 0x48],
  });
  // Shifts and rotates by CL.
  const SH = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"] as const;
  SH.forEach((n, k) => {
    if (n === "sal") return;
    const w = WIDTH[s];
    ops.push({
      name: `${n}${SUF[s]}`,
      asm: `${n}${SUF[s]} %cl, ${RA[s]}`,
      bytes: [...p66(s), s === 0 ? 0xd2 : 0xd3, 0xc0 | (k << 3)],
      undef: (i) => {
        const c = i[2] & 31;
        if (c === 0) return 0;
        let u = c > 1 ? OF : 0;
        if (k >= 4) u |= AF;
        if ((n === "shl" || n === "shr") && c >= w) u |= CF | OF;
        return u;
      },
    });
  });
  // MUL/IMUL/DIV/IDIV with EBX.
  const MD = ["mul", "imul", "div", "idiv"] as const;
  MD.forEach((n, k) => {
    const div = k >= 2;
    ops.push({
      name: `${n}${SUF[s]}1`,
      asm: `${n}${SUF[s]} ${RB[s]}`,
      bytes: [...p66(s), s === 0 ? 0xf6 : 0xf7, 0xe3 | (k << 3)],
      undef: () => (div ? ARITH : SF | ZF | AF | PF),
      fix: div ? (i) => fixDiv(i, s, k === 3) : undefined,
    });
  });
}

function fixDiv(i: In, s: number, signed: boolean): In | null {
  const w = BigInt(WIDTH[s]);
  const m = (1n << w) - 1n;
  let d = BigInt(i[1]) & m;
  if (d === 0n) d = 1n;
  const sd = signed && d >> (w - 1n) ? d - (1n << w) : d;
  // Dividend = q * d + r with q in range and |r| < |d|, sign(r) = sign(dividend).
  const qbits = BigInt(i[2] >>> 0) & m;
  let q = signed ? (qbits >> (w - 1n) ? qbits - (1n << w) : qbits) : qbits;
  if (signed && q === -(1n << (w - 1n))) q = q + 1n;
  const ad = sd < 0n ? -sd : sd;
  let r = BigInt(i[3] >>> 0) % ad;
  const prod = q * sd;
  if (signed && prod < 0n) r = -r;
  const n = prod + r;
  if (signed ? n < 0n !== prod < 0n && prod !== 0n : false) return null;
  const n2 = n & ((1n << (2n * w)) - 1n);
  const lo = Number(n2 & m);
  const hi = Number(n2 >> w);
  const out: In = [...i];
  if (s === 0) out[0] = (i[0] & ~0xffff) | (Number(n2) & 0xffff);
  else {
    out[0] = s === 1 ? (i[0] & ~0xffff) | lo : lo;
    out[3] = s === 1 ? (i[3] & ~0xffff) | hi : hi;
  }
  out[1] = s === 2 ? Number(d) : (i[1] & ~Number(m)) | Number(d);
  return out;
}

// Two- and three-operand IMUL, SHLD/SHRD, bit ops, BSF/BSR, XADD, CMPXCHG, BSWAP, MOVSX/MOVZX.
for (const s of [1, 2]) {
  ops.push({
    name: `imul2${SUF[s]}`,
    asm: `imul${SUF[s]} ${RB[s]}, ${RA[s]}`,
    bytes: [...p66(s), 0x0f, 0xaf, 0xc3],
    undef: () => SF | ZF | AF | PF,
  });
  ops.push({
    name: `imul3${SUF[s]}`,
    asm: s === 2 ? "imull $0x12345, %ebx, %eax" : "imulw $0x1234, %bx, %ax",
    bytes: s === 2 ? [0x69, 0xc3, 0x45, 0x23, 0x01, 0x00] : [0x66, 0x69, 0xc3, 0x34, 0x12],
    undef: () => SF | ZF | AF | PF,
  });
  ops.push({
    name: `imul3b${SUF[s]}`,
    asm: `imul${SUF[s]} $-3, ${RB[s]}, ${RA[s]}`,
    bytes: [...p66(s), 0x6b, 0xc3, 0xfd],
    undef: () => SF | ZF | AF | PF,
  });
  for (const [n, op] of [
    ["shld", 0xa5],
    ["shrd", 0xad],
  ] as const) {
    ops.push({
      name: `${n}${SUF[s]}`,
      asm: `${n}${SUF[s]} %cl, ${RB[s]}, ${RA[s]}`,
      bytes: [...p66(s), 0x0f, op, 0xd8],
      undef: (i) => ((i[2] & 31) === 0 ? 0 : AF | ((i[2] & 31) > 1 ? OF : 0)),
      fix: s === 1 ? (i) => [i[0], i[1], i[2] % 17, i[3], i[4]] : undefined,
    });
  }
  for (const [n, op] of [
    ["bt", 0xa3],
    ["bts", 0xab],
    ["btr", 0xb3],
    ["btc", 0xbb],
  ] as const)
    ops.push({
      name: `${n}${SUF[s]}`,
      asm: `${n}${SUF[s]} ${RB[s]}, ${RA[s]}`,
      bytes: [...p66(s), 0x0f, op, 0xd8],
      undef: () => OF | SF | AF | PF,
    });
  ops.push({
    name: `btimm${SUF[s]}`,
    asm: `btc${SUF[s]} $13, ${RA[s]}`,
    bytes: [...p66(s), 0x0f, 0xba, 0xf8, 13],
    undef: () => OF | SF | AF | PF,
  });
  for (const [n, op] of [
    ["bsf", 0xbc],
    ["bsr", 0xbd],
  ] as const)
    ops.push({
      name: `${n}${SUF[s]}`,
      asm: `${n}${SUF[s]} ${RB[s]}, ${RA[s]}`,
      bytes: [...p66(s), 0x0f, op, 0xc3],
      undef: () => CF | OF | SF | AF | PF,
    });
  ops.push({
    name: `xadd${SUF[s]}`,
    asm: `xadd${SUF[s]} ${RB[s]}, ${RA[s]}`,
    bytes: [...p66(s), 0x0f, 0xc1, 0xd8],
  });
  ops.push({
    name: `cmpxchg${SUF[s]}`,
    asm: `cmpxchg${SUF[s]} ${RB[s]}, ${RC[s]}`,
    bytes: [...p66(s), 0x0f, 0xb1, 0xd9],
  });
}
ops.push({ name: "xaddb", asm: "xaddb %bl, %al", bytes: [0x0f, 0xc0, 0xd8] });
ops.push({ name: "cmpxchgb", asm: "cmpxchgb %bl, %cl", bytes: [0x0f, 0xb0, 0xd9] });
ops.push({ name: "bswap", asm: "bswapl %eax", bytes: [0x0f, 0xc8] });
ops.push({ name: "movsbl", asm: "movsbl %bl, %eax", bytes: [0x0f, 0xbe, 0xc3] });
ops.push({ name: "movswl", asm: "movswl %bx, %eax", bytes: [0x0f, 0xbf, 0xc3] });
ops.push({ name: "movzbl", asm: "movzbl %bl, %eax", bytes: [0x0f, 0xb6, 0xc3] });
ops.push({ name: "movzwl", asm: "movzwl %bx, %eax", bytes: [0x0f, 0xb7, 0xc3] });
ops.push({ name: "movsbw", asm: "movsbw %bl, %ax", bytes: [0x66, 0x0f, 0xbe, 0xc3] });
ops.push({ name: "cwtl", asm: "cwtl", bytes: [0x98] });
ops.push({ name: "cltd", asm: "cltd", bytes: [0x99] });
ops.push({ name: "cbtw", asm: "cbtw", bytes: [0x66, 0x98] });
ops.push({ name: "cwtd", asm: "cwtd", bytes: [0x66, 0x99] });
const CC = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"] as const;
CC.forEach((c, k) => {
  ops.push({ name: `set${c}`, asm: `set${c} %al`, bytes: [0x0f, 0x90 + k, 0xc0] });
  ops.push({ name: `cmov${c}`, asm: `cmov${c}l %ebx, %eax`, bytes: [0x0f, 0x40 + k, 0xc3] });
});
// 32-bit addressing: LEA with SIB forms.
ops.push({
  name: "lea-sib-disp32",
  asm: "leal 0x12345678(%ebx,%ecx,4), %eax",
  bytes: [0x8d, 0x84, 0x8b, 0x78, 0x56, 0x34, 0x12],
});
ops.push({ name: "lea-sib", asm: "leal (%ebx,%ecx), %eax", bytes: [0x8d, 0x04, 0x0b] });
ops.push({ name: "lea-sib-disp8", asm: "leal -8(%ebx,%ecx,8), %eax", bytes: [0x8d, 0x44, 0xcb, 0xf8] });
ops.push({
  name: "lea-nobase",
  asm: "leal 0x100(,%ecx,2), %eax",
  bytes: [0x8d, 0x04, 0x4d, 0x00, 0x01, 0x00, 0x00],
});
ops.push({
  name: "lea-disp32",
  asm: "leal 0x7fffffff(%edx), %eax",
  bytes: [0x8d, 0x82, 0xff, 0xff, 0xff, 0x7f],
});
// A compare-and-branch pair through the lazy flags fast path: cmp then setcc.
CC.forEach((c, k) => {
  ops.push({
    name: `cmp-set${c}`,
    asm: `cmpl %ebx, %eax\n\tset${c} %cl`,
    bytes: [0x39, 0xd8, 0x0f, 0x90 + k, 0xc1],
  });
  ops.push({
    name: `cmpb-set${c}`,
    asm: `cmpb %bl, %al\n\tset${c} %cl`,
    bytes: [0x38, 0xd8, 0x0f, 0x90 + k, 0xc1],
  });
  ops.push({ name: `dec-set${c}`, asm: `decl %eax\n\tset${c} %cl`, bytes: [0x48, 0x0f, 0x90 + k, 0xc1] });
});

function cSource(): string {
  const cases = ops
    .map(
      (o, id) =>
        `    case ${id}: __asm__ volatile("push %[f]\\n\\tpopfq\\n\\t${o.asm.replace(/%/g, "%%").replace(/\n/g, "\\n")}\\n\\tpushfq\\n\\tpop %[f]" : "+a"(a), "+b"(b), "+c"(c), "+d"(d), [f] "+r"(f) :: "cc", "memory"); break;`,
    )
    .join("\n");
  return `#include <stdio.h>
#include <stdint.h>
int main(void) {
  unsigned id, a0, b0, c0, d0, f0;
  while (scanf("%u %x %x %x %x %x", &id, &a0, &b0, &c0, &d0, &f0) == 6) {
    uint32_t a = a0, b = b0, c = c0, d = d0;
    uint64_t f = f0;
    switch (id) {
${cases}
    }
    printf("%x %x %x %x %x\\n", a, b, c, d, (unsigned)f);
  }
  return 0;
}
`;
}

const hasCc = spawnSync("cc", ["--version"]).status === 0;
if (!hasCc) console.warn("differential CPU test skipped: no C compiler (cc) on this host");
const isX86 = process.arch === "x64";
if (!isX86) console.warn(`differential CPU test skipped: host is ${process.arch}, not x86-64`);

const edge = fc.oneof(
  fc.constantFrom(
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    31,
    32,
    16,
    8,
  ),
  fc.integer({ min: 0, max: 0xffff_ffff }),
  fc.integer({ min: 0, max: 0x3f }),
);
const input = fc
  .tuple(edge, edge, edge, edge, fc.integer({ min: 0, max: ARITH }))
  .map(([a, b, c, d, f]) => [a >>> 0, b >>> 0, c >>> 0, d >>> 0, (f & ARITH) | 2] as In);

describe.skipIf(!hasCc || !isX86)("differential test against the host CPU", () => {
  const dir = mkdtempSync(join(tmpdir(), "virtkit-cpu-diff-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const exe = join(dir, "x86ref");

  it("builds the reference helper", () => {
    writeFileSync(join(dir, "x86ref.c"), cSource());
    execFileSync("cc", ["-O1", "-mno-red-zone", "-o", exe, join(dir, "x86ref.c")], { stdio: "pipe" });
  });

  it("matches the host on random operands for every instruction", () => {
    const N = 300;
    const cases: { id: number; inp: In }[] = [];
    const seed = 0x5eed;
    const samples = fc.sample(input, { numRuns: N * ops.length, seed });
    let k = 0;
    ops.forEach((op, id) => {
      for (let n = 0; n < N; n++) {
        const raw = samples[k++]!;
        const inp = op.fix ? op.fix(raw) : raw;
        if (inp !== null) cases.push({ id, inp });
      }
    });
    const stdin = cases
      .map(
        (c) =>
          `${c.id} ${c.inp
            .slice(0, 5)
            .map((v) => v.toString(16))
            .join(" ")}`,
      )
      .join("\n");
    const out = execFileSync(exe, [], { input: `${stdin}\n`, maxBuffer: 1 << 28 })
      .toString()
      .trim()
      .split("\n");
    expect(out.length).toBe(cases.length);

    const ram = new FlatMemory(0x10_0000);
    const cpu = new Cpu({ memory: new MemoryBus(ram), io: new IoBus() });
    const failures: string[] = [];
    const perOp = new Map<number, number>();
    cases.forEach((c, n) => {
      const op = ops[c.id]!;
      const want = out[n]!.split(" ").map((h) => Number.parseInt(h, 16) >>> 0);
      ram.u8.set([...op.bytes, 0xf4], 0x1000);
      cpu.setFlat32(0x1000, 0x8000);
      cpu.r32[0] = c.inp[0];
      cpu.r32[3] = c.inp[1];
      cpu.r32[1] = c.inp[2];
      cpu.r32[2] = c.inp[3];
      cpu.setEflags(c.inp[4]);
      const exit = cpu.run(10);
      const got = [
        cpu.r32[0]! >>> 0,
        cpu.r32[3]! >>> 0,
        cpu.r32[1]! >>> 0,
        cpu.r32[2]! >>> 0,
        cpu.getEflags() & ARITH,
      ];
      const mask = ARITH & ~(op.undef ? op.undef(c.inp) : 0);
      const diffs: string[] = [];
      if (exit !== ExitReason.HLT) diffs.push(`exit ${exit}`);
      ["eax", "ebx", "ecx", "edx"].forEach((r, i) => {
        if (got[i] !== want[i]) diffs.push(`${r} want ${want[i]!.toString(16)} got ${got[i]!.toString(16)}`);
      });
      if ((got[4]! & mask) !== (want[4]! & mask))
        diffs.push(`flags want ${(want[4]! & mask).toString(16)} got ${(got[4]! & mask).toString(16)}`);
      if (diffs.length > 0) {
        const seen = perOp.get(c.id) ?? 0;
        perOp.set(c.id, seen + 1);
        if (seen < 2)
          failures.push(`${op.name} in=${c.inp.map((v) => v.toString(16)).join(",")}: ${diffs.join("; ")}`);
      }
    });
    expect(failures).toEqual([]);
  });
});
