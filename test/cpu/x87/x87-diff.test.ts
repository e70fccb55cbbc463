/**
 * Differential test against the host processor's own x87.
 *
 * A C program is generated and compiled with `cc` at test time: for every x87 encoding we
 * execute (register forms D8..DF C0..FF and memory forms through [rsi]) it has one inline-asm
 * block `frstor (img); .byte OP, MODRM; fnsave (img)` with EFLAGS loaded before and read
 * after. The test feeds random states (FRSTOR images with random stack contents, tags, TOP,
 * control words with every rounding and precision control and random masks) and random
 * memory operands (specials: ±0, denormals, infinities, NaNs, unsupported encodings, huge and
 * tiny exponents, rounding ties), then runs the same FRSTOR/op/FNSAVE through `Fpu.exec` and
 * compares the 80-bit registers, control/status/tag words, memory written and EFLAGS.
 * Transcendental results are compared to 50 bits (they are computed in double precision).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlatMemory } from "../../../src/common/memory.js";
import { bitLength, classify, type F80, f80, Kind, unpack } from "../../../src/cpu/x87/float80.js";
import { Fpu, type FpuHost, type FpuInstrInfo } from "../../../src/cpu/x87/fpu.js";

function findCompiler(): string | null {
  if (process.arch !== "x64" && process.arch !== "ia32") return null;
  for (const cc of ["cc", "gcc", "clang"]) {
    const r = spawnSync(cc, ["--version"], { stdio: "ignore" });
    if (r.status === 0) return cc;
  }
  return null;
}

const CC = findCompiler();
if (!CC) console.warn("x87 differential test skipped: no C compiler or not an x86 host");

interface OpEntry {
  opcode: number;
  modrm: number;
  name: string;
}

/** Encodings to test: everything Fpu.exec accepts (except FNSTSW AX, done by the CPU). */
function opTable(): OpEntry[] {
  const mem = new FlatMemory(4096);
  const host = memHost(mem);
  const out: OpEntry[] = [];
  for (let opcode = 0xd8; opcode <= 0xdf; opcode++) {
    for (let reg = 0; reg < 8; reg++) {
      const modrm = (reg << 3) | 6;
      const fpu = new Fpu(host.host);
      if (fpu.exec(opcode, modrm, 0, INFO)) out.push({ opcode, modrm, name: `${hx(opcode)} /${reg} m` });
    }
    for (let modrm = 0xc0; modrm <= 0xff; modrm++) {
      const fpu = new Fpu(host.host);
      if (fpu.exec(opcode, modrm, 0, INFO)) out.push({ opcode, modrm, name: `${hx(opcode)} ${hx(modrm)}` });
    }
  }
  return out;
}

const INFO: FpuInstrInfo = {
  cs: 0x33,
  ip: 0x1000,
  dataSelector: 0x2b,
  dataOffset: 0x2000,
  opSize32: true,
  protectedMode: true,
};

function hx(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, "0");
}

function memHost(mem: FlatMemory): { host: FpuHost; eflags: { v: number } } {
  const eflags = { v: 0x202 };
  return {
    eflags,
    host: {
      readU8: (a) => mem.readU8(a),
      readU16: (a) => mem.readU16(a),
      readU32: (a) => mem.readU32(a),
      writeU8: (a, v) => mem.writeU8(a, v),
      writeU16: (a, v) => mem.writeU16(a, v),
      writeU32: (a, v) => mem.writeU32(a, v),
      getEflags: () => eflags.v,
      setEflags: (v) => {
        eflags.v = v;
      },
    },
  };
}

function cSource(ops: OpEntry[]): string {
  const cases = ops
    .map(
      (o, i) =>
        `case ${i}: __asm__ volatile("push %[fl]\\n\\tpopfq\\n\\tfrstor (%[img])\\n\\t.byte 0x${hx(o.opcode)},0x${hx(o.modrm)}\\n\\tfnsave (%[img])\\n\\tpushfq\\n\\tpop %[fl]" : [fl] "+r"(fl) : [img] "r"(img), "S"(mem) : "memory", "cc"); break;`,
    )
    .join("\n");
  return `#include <stdio.h>
#include <string.h>
static unsigned char img[112] __attribute__((aligned(16)));
static unsigned char mem[128] __attribute__((aligned(16)));
static int hv(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
static void unhex(const char *s, unsigned char *d, int n) { for (int i = 0; i < n; i++) d[i] = hv(s[2*i]) << 4 | hv(s[2*i+1]); }
static void puthex(const unsigned char *d, int n) { for (int i = 0; i < n; i++) printf("%02x", d[i]); }
int main(void) {
  static char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    unsigned op; unsigned long fl; char ih[300], mh[300];
    if (sscanf(line, "%u %lx %299s %299s", &op, &fl, ih, mh) != 4) return 2;
    unhex(ih, img, 108); unhex(mh, mem, 128);
    switch (op) {
${cases}
    default: return 3;
    }
    puthex(img, 108); putchar(' '); puthex(mem, 128); printf(" %lx\\n", fl);
  }
  return 0;
}
`;
}

// ---- random inputs ----

let seed = 0x12345678;
function rnd(): number {
  // xorshift32
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}
function rint(n: number): number {
  return rnd() % n;
}
function chance(p: number): boolean {
  return rnd() / 0x1_0000_0000 < p;
}

function randomSig(): [number, number] {
  const k = rint(8);
  let hi = rnd();
  let lo = rnd();
  if (k === 0)
    lo = 0; // double-exact-ish
  else if (k === 1) {
    lo = 0;
    hi &= 0xffffff00; // single-exact
  } else if (k === 2) {
    lo = 0x80000000 * rint(2) + (rint(2) ? 0x400 : 0); // ties at 53 bits / 64
    hi = hi & 0xffffff00;
  } else if (k === 3) {
    hi = (hi & 0xffffff00) | 0x80; // tie at 24 bits
    lo = rint(2) ? 0 : 1;
  } else if (k === 4) {
    hi = 0xffffffff;
    lo = rint(2) ? 0xffffffff : 0xfffff800 + rint(0x800);
  }
  return [hi >>> 0, lo >>> 0];
}

function randomF80(): F80 {
  const sign = rint(2) << 15;
  const k = rint(100);
  const [hi, lo] = randomSig();
  if (k < 8) return f80(sign, 0, 0);
  if (k < 14) return f80(sign, hi & 0x7fffffff, lo); // denormal
  if (k < 16) return f80(sign, hi | 0x80000000, lo); // pseudo-denormal
  if (k < 22) return f80(sign | 0x7fff, 0x80000000, 0);
  if (k < 27) return f80(sign | 0x7fff, hi | 0xc0000000, lo); // QNaN
  if (k < 31) return f80(sign | 0x7fff, (hi & 0xbfffffff) | 0x80000000 | (lo === 0 ? 1 : 0), lo); // SNaN
  if (k < 34) return f80(sign | (rint(2) ? 0x7fff : 1 + rint(0x7ffe)), hi & 0x7fffffff, lo); // unsupported
  if (k < 44) {
    // small integers and simple fractions
    const n = 1 + rint(70000);
    const e = 31 - Math.clz32(n);
    return f80(sign | (16383 + e - rint(3)), (n << (31 - e)) >>> 0, 0);
  }
  let exp: number;
  const ek = rint(10);
  if (ek < 5) exp = 16383 - 70 + rint(140);
  else if (ek < 7) exp = 1 + rint(0x7ffe);
  else if (ek < 8) exp = 1 + rint(80);
  else if (ek < 9) exp = 0x7ffe - rint(80);
  else exp = 16383 + (rint(2) ? 1 : -1) * (1000 + rint(200)); // near double/single limits
  return f80(sign | exp, hi | 0x80000000, lo);
}

function randomMemBits(): number {
  const k = rint(10);
  const sign = rint(2) << 31;
  if (k === 0) return sign >>> 0;
  if (k === 1) return (sign | rint(0x800000)) >>> 0;
  if (k === 2) return (sign | 0x7f800000 | (rint(3) === 0 ? 0 : rnd() & 0x7fffff)) >>> 0;
  return rnd();
}

function randomMem(op: OpEntry): Uint8Array {
  const m = new Uint8Array(128);
  for (let i = 0; i < 128; i++) m[i] = rnd() & 0xff;
  const dv = new DataView(m.buffer);
  const reg = (op.modrm >>> 3) & 7;
  const o = op.opcode;
  const real32 = o === 0xd8 || (o === 0xd9 && reg === 0);
  const real64 = o === 0xdc || (o === 0xdd && reg === 0);
  if (real32) dv.setUint32(0, randomMemBits(), true);
  else if (real64) {
    const k = rint(8);
    const s = rint(2) << 31;
    if (k === 0) {
      dv.setUint32(4, s >>> 0, true);
      dv.setUint32(0, 0, true);
    } else if (k === 1) dv.setUint32(4, (s | rint(0x100000)) >>> 0, true);
    else if (k === 2) dv.setUint32(4, (s | 0x7ff00000 | (rint(2) ? rnd() & 0xfffff : 0)) >>> 0, true);
    else if (k === 3) dv.setFloat64(0, (rint(2000) - 1000) / 8, true);
  } else if (
    (o === 0xda || o === 0xde || (o === 0xdb && reg === 0) || (o === 0xdf && (reg === 0 || reg === 5))) &&
    chance(0.5)
  ) {
    dv.setInt32(0, rint(2001) - 1000, true);
    if (o === 0xdf && reg === 5) dv.setInt32(4, -(dv.getInt32(0, true) < 0 ? 1 : 0), true);
  } else if (o === 0xdb && reg === 5) {
    const v = randomF80();
    dv.setUint32(0, v.lo, true);
    dv.setUint32(4, v.hi, true);
    dv.setUint16(8, v.se, true);
  } else if (o === 0xdf && reg === 4) {
    for (let i = 0; i < 9; i++) m[i] = (rint(10) << 4) | rint(10);
    m[9] = rint(2) << 7;
  } else if ((o === 0xd9 && reg === 5) || ((o === 0xd9 || o === 0xdd) && reg === 4)) {
    // FLDCW / FLDENV / FRSTOR: control words with every RC/PC and random reserved bits;
    // status words with random flags, ES and B (recomputed on load).
    dv.setUint16(
      0,
      (chance(0.5) ? rnd() & 0xffff : 0x0040 | (rnd() & 0xf3f)) | (chance(0.7) ? 0x3f : 0),
      true,
    );
    dv.setUint16(4, chance(0.5) ? rnd() & 0xffff : rnd() & 0x7f7f & (dv.getUint16(0, true) | 0xffc0), true);
  }
  return m;
}

function randomImage(): Uint8Array {
  const img = new Uint8Array(108);
  const dv = new DataView(img.buffer);
  const pc = [0, 2, 3, 3, 1][rint(5)]!;
  const rc = rint(4);
  const masks = chance(0.85) ? 0x3f : rnd() & 0x3f;
  const cw = 0x40 | masks | (pc << 8) | (rc << 10);
  dv.setUint32(0, 0xffff0000 | cw, true);
  const top = rint(8);
  const sw =
    (rnd() & 0x4700 & (chance(0.5) ? 0xffff : 0)) | (top << 11) | (rnd() & masks & (chance(0.3) ? 0x3f : 0));
  dv.setUint32(4, 0xffff0000 | sw, true);
  let tw = 0;
  for (let r = 0; r < 8; r++) if (chance(0.25)) tw |= 3 << (2 * r);
  dv.setUint32(8, 0xffff0000 | tw, true);
  for (let i = 0; i < 8; i++) {
    const v = randomF80();
    const o = 28 + i * 10;
    dv.setUint32(o, v.lo, true);
    dv.setUint32(o + 4, v.hi, true);
    dv.setUint16(o + 8, v.se, true);
  }
  return img;
}

/**
 * Puts in-domain operands into ST0 and ST1 (and marks them valid) so the transcendental cores
 * are exercised, not only their special cases: trig arguments up to 2^64, F2XM1 in -1..1,
 * logarithm arguments around 1 and FYL2XP1 arguments in its small domain.
 */
function moderateOperands(img: Uint8Array, modrm: number): void {
  const dv = new DataView(img.buffer);
  const trig = modrm === 0xf2 || modrm >= 0xfb;
  const put = (i: number, expLo: number, expHi: number) => {
    const [hi, lo] = randomSig();
    const exp = 16383 + expLo + rint(expHi - expLo + 1);
    dv.setUint32(28 + i * 10, lo, true);
    dv.setUint32(28 + i * 10 + 4, (hi | 0x80000000) >>> 0, true);
    dv.setUint16(28 + i * 10 + 8, (rint(2) << 15) | exp, true);
  };
  if (trig) put(0, -12, 64);
  else if (modrm === 0xf0) put(0, -40, -1);
  else if (modrm === 0xf9) put(0, -40, -3);
  else put(0, -6, 20);
  if (modrm === 0xf1) dv.setUint16(28 + 8, dv.getUint16(28 + 8, true) & 0x7fff, true); // log2 of a positive x
  put(1, -6, 20);
  const top = (dv.getUint16(4, true) >>> 11) & 7;
  let tw = dv.getUint16(8, true);
  tw &= ~(3 << (2 * top)) & ~(3 << (2 * ((top + 1) & 7)));
  dv.setUint16(8, tw, true);
}

function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

interface Case {
  op: number;
  eflags: number;
  img: Uint8Array;
  mem: Uint8Array;
}

// ---- emulator side ----

const IMG = 0x100;
const MEM = 0x400;

function emulate(ops: OpEntry[], c: Case): { img: Uint8Array; mem: Uint8Array; eflags: number } {
  const memory = new FlatMemory(0x1000);
  const { host, eflags } = memHost(memory);
  eflags.v = c.eflags;
  memory.writeFrom(IMG, c.img);
  memory.writeFrom(MEM, c.mem);
  const fpu = new Fpu(host);
  expect(fpu.exec(0xdd, 0x26, IMG, INFO)).toBe(true); // FRSTOR
  const op = ops[c.op]!;
  expect(fpu.exec(op.opcode, op.modrm, MEM, INFO)).toBe(true);
  expect(fpu.exec(0xdd, 0x36, IMG, INFO)).toBe(true); // FNSAVE
  return {
    img: memory.subarray(IMG, 108).slice(),
    mem: memory.subarray(MEM, 128).slice(),
    eflags: eflags.v,
  };
}

const TRANSCENDENTAL = new Set([0xf0, 0xf1, 0xf2, 0xf3, 0xf9, 0xfb, 0xfe, 0xff]);

function isTranscendental(op: OpEntry): boolean {
  return op.opcode === 0xd9 && TRANSCENDENTAL.has(op.modrm);
}

function readF80(b: Uint8Array, o: number): F80 {
  const dv = new DataView(b.buffer, b.byteOffset);
  return f80(dv.getUint16(o + 8, true), dv.getUint32(o + 4, true), dv.getUint32(o, true));
}

/** Agreement required of transcendental results (they are computed in double precision). */
const TOLERANCE_BITS = Number(process.env.X87_DIFF_TOLERANCE_BITS ?? 50);

/** True when a and b agree to TOLERANCE_BITS bits (or are the same special). */
function close(a: F80, b: F80): boolean {
  if (a.se === b.se && a.hi === b.hi && a.lo === b.lo) return true;
  const ka = classify(a.se, a.hi, a.lo);
  const kb = classify(b.se, b.hi, b.lo);
  const fin = (k: Kind) => k === Kind.Normal || k === Kind.Denormal;
  if (!fin(ka) || !fin(kb)) return false;
  if (a.se >>> 15 !== b.se >>> 15) return false;
  const A = unpack(a);
  const B = unpack(b);
  const e = Math.min(A.e, B.e);
  const ma = A.m << BigInt(A.e - e);
  const mb = B.m << BigInt(B.e - e);
  const d = ma > mb ? ma - mb : mb - ma;
  const big = ma > mb ? ma : mb;
  return bitLength(big) - bitLength(d) >= TOLERANCE_BITS;
}

function describeDiff(
  op: OpEntry,
  c: Case,
  host: string[],
  emu: { img: Uint8Array; mem: Uint8Array; eflags: number },
): string {
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset);
  const hImg = Buffer.from(host[0]!, "hex");
  const regs = (b: Uint8Array) =>
    Array.from({ length: 8 }, (_, i) => {
      const v = readF80(b, 28 + i * 10);
      return `${v.se.toString(16).padStart(4, "0")}:${v.hi.toString(16).padStart(8, "0")}${v.lo.toString(16).padStart(8, "0")}`;
    }).join(" ");
  return [
    `op ${op.name}`,
    ` in : cw ${dv(c.img).getUint16(0, true).toString(16)} sw ${dv(c.img).getUint16(4, true).toString(16)} tw ${dv(c.img).getUint16(8, true).toString(16)} fl ${c.eflags.toString(16)} regs ${regs(c.img)} mem ${toHex(c.mem.subarray(0, 16))}`,
    ` hw : cw ${dv(hImg).getUint16(0, true).toString(16)} sw ${dv(hImg).getUint16(4, true).toString(16)} tw ${dv(hImg).getUint16(8, true).toString(16)} fl ${host[2]} regs ${regs(hImg)} mem ${host[1]!.slice(0, 32)}`,
    ` emu: cw ${dv(emu.img).getUint16(0, true).toString(16)} sw ${dv(emu.img).getUint16(4, true).toString(16)} tw ${dv(emu.img).getUint16(8, true).toString(16)} fl ${emu.eflags.toString(16)} regs ${regs(emu.img)} mem ${toHex(emu.mem.subarray(0, 16))}`,
  ].join("\n");
}

/** Status-word bits a given instruction leaves undefined (SDM): not compared. */
function swIgnore(op: OpEntry): number {
  if (isTranscendental(op)) return 0x4100 | 0x200 | (op.modrm === 0xf2 || op.modrm >= 0xfb ? 0 : 0x400);
  return 0;
}

function compareCase(ops: OpEntry[], c: Case, hostLine: string): string | null {
  const op = ops[c.op]!;
  const host = hostLine.split(" ");
  const hImg = Buffer.from(host[0]!, "hex");
  const hMem = Buffer.from(host[1]!, "hex");
  const hFl = Number.parseInt(host[2]!, 16);
  const emu = emulate(ops, c);
  const hd = new DataView(hImg.buffer, hImg.byteOffset);
  const ed = new DataView(emu.img.buffer, emu.img.byteOffset);
  const bad = (): string => describeDiff(op, c, host, emu);
  // FNSAVE leaves CW 0x37F, so the interesting words are in the saved image.
  if (hd.getUint32(0, true) !== ed.getUint32(0, true)) return `${bad()}\n cw differs`;
  const ign = swIgnore(op);
  if ((hd.getUint32(4, true) & ~ign) !== (ed.getUint32(4, true) & ~ign)) return `${bad()}\n sw differs`;
  if (hd.getUint32(8, true) !== ed.getUint32(8, true)) return `${bad()}\n tw differs`;
  const tw = hd.getUint16(8, true);
  const top = (hd.getUint16(4, true) >>> 11) & 7;
  for (let i = 0; i < 8; i++) {
    if (((tw >>> (2 * ((top + i) & 7))) & 3) === 3) continue;
    const a = readF80(hImg, 28 + i * 10);
    const b = readF80(emu.img, 28 + i * 10);
    const same = a.se === b.se && a.hi === b.hi && a.lo === b.lo;
    if (!same && !(isTranscendental(op) && close(a, b))) return `${bad()}\n ST${i} differs`;
  }
  const reg = (op.modrm >>> 3) & 7;
  const isEnvStore = op.modrm < 0xc0 && (op.opcode === 0xd9 || op.opcode === 0xdd) && reg === 6;
  for (let i = 0; i < 128; i++) {
    if (isEnvStore && i >= 12 && i < 28) continue;
    if (hMem[i] !== emu.mem[i]) return `${bad()}\n mem[${i}] differs`;
  }
  if ((hFl & 0x8d5) !== (emu.eflags & 0x8d5)) return `${bad()}\n eflags differ`;
  return null;
}

describe.skipIf(!CC)("x87 against the host processor", () => {
  let dir = "";
  let exe = "";
  let ops: OpEntry[] = [];

  beforeAll(() => {
    ops = opTable();
    dir = mkdtempSync(join(tmpdir(), "virtkit-x87-"));
    writeFileSync(join(dir, "x87.c"), cSource(ops));
    exe = join(dir, "x87");
    execFileSync(CC!, ["-O1", "-mno-red-zone", "-o", exe, join(dir, "x87.c")], { stdio: "pipe" });
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const PER_OP = Number(process.env.X87_DIFF_PER_OP ?? 150);
  const DETAIL = Number(process.env.X87_DIFF_DETAIL ?? 4);
  /** Restricts the run to encodings whose name starts with this (e.g. "D9 F8"). */
  const ONLY = process.env.X87_DIFF_ONLY ?? "";

  for (let opcode = 0xd8; opcode <= 0xdf; opcode++) {
    it(`opcode ${hx(opcode)}: registers, flags and memory match the host bit for bit`, () => {
      seed = 0x9e3779b9 ^ (opcode * 0x01000193);
      const cases: Case[] = [];
      ops.forEach((o, idx) => {
        if (o.opcode !== opcode || (ONLY && !o.name.startsWith(ONLY))) return;
        for (let n = 0; n < PER_OP; n++) {
          const fl = (rnd() & 0x8d5) | 0x202;
          const img = randomImage();
          if (isTranscendental(o) && chance(0.6)) moderateOperands(img, o.modrm);
          cases.push({ op: idx, eflags: fl, img, mem: randomMem(o) });
        }
      });
      const input = cases
        .map((c) => `${c.op} ${c.eflags.toString(16)} ${toHex(c.img)} ${toHex(c.mem)}`)
        .join("\n");
      const out = execFileSync(exe, { input: `${input}\n`, maxBuffer: 256 * 1024 * 1024 })
        .toString()
        .trim()
        .split("\n");
      expect(out.length).toBe(cases.length);
      const failures: string[] = [];
      const byKind = new Map<string, number>();
      let failed = 0;
      cases.forEach((c, i) => {
        const d = compareCase(ops, c, out[i]!);
        if (d) {
          failed++;
          const kind = `${ops[c.op]!.name}:${d.slice(d.lastIndexOf("\n") + 1).trim()}`;
          byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
          if (failures.length < DETAIL) failures.push(d);
        }
      });
      const kinds = [...byKind].map(([k, n]) => `${k} ×${n}`).join(", ");
      expect(`${failed} of ${cases.length} differ (${kinds})\n${failures.join("\n\n")}`).toBe(
        `0 of ${cases.length} differ ()\n`,
      );
    });
  }
});
