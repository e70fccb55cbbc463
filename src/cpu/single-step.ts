/**
 * A harness for single-instruction tests in the SingleStepTests JSON format
 * (../shared/cpu-tests/README.md): load the state, run to the HLT, compare registers, memory
 * and the defined flags. No Node APIs: callers load and decompress the files.
 */
import { FlatMemory } from "../common/memory.js";
import { IoBus } from "../machine/io-bus.js";
import { MemoryBus } from "../machine/memory-bus.js";
import { Cpu } from "./cpu.js";
import { ExitReason, Vector } from "./fault.js";
import { Sreg } from "./state.js";

export interface TestRegs {
  ax?: number;
  bx?: number;
  cx?: number;
  dx?: number;
  cs?: number;
  ss?: number;
  ds?: number;
  es?: number;
  sp?: number;
  bp?: number;
  si?: number;
  di?: number;
  ip?: number;
  flags?: number;
}

export interface SingleStepTest {
  idx: number;
  name: string;
  bytes: number[];
  initial: { regs: Required<TestRegs>; ram: [number, number][] };
  final: { regs: TestRegs; ram: [number, number][] };
  exception?: { number: number; flag_address: number };
  hash: string;
}

/** The parts of metadata.json the harness uses. */
export interface OpcodeMeta {
  status?: string;
  "flags-mask"?: number;
  reg?: Record<string, OpcodeMeta>;
}
export interface TestMetadata {
  opcodes: Record<string, OpcodeMeta>;
}

/** `rule` on a pass names the 286-vs-i686 special case the comparison needed. */
export type Outcome =
  | { kind: "pass"; rule?: string }
  | { kind: "skip"; rule: string }
  | { kind: "fail"; diffs: string[] };

/** The documented 286-vs-i686 differences (cpu-tests README), applied as rules. */
export const SkipRule = {
  REVOKED: "hash in revocation_list.txt",
  LOCK_UD: "LOCK on an instruction a 386+ does not allow it on (#UD on i686)",
  TOO_LONG: "longer than 10 bytes (the 286 faults, the 386+ limit is 15)",
  SREG_FS_GS: "8C/8E with FS/GS (#UD on the 286, valid on a 386+)",
} as const;

/** Differences found in the data beyond the README's list, special-cased (compared, not skipped). */
export const SpecialRule = {
  STACK_GP: "stack-segment overrun: the 286 raises #GP (13) where a 386+ raises #SS (12); run with 13",
  STRING_FAULT_REGS:
    "string instruction faulting at offset FFFF: the 286 has already advanced SI/DI/CX, a 386+ leaves them (restartable); SI/DI/CX not compared",
} as const;

const STRING_OPS = new Set([
  0x6c, 0x6d, 0x6e, 0x6f, 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
]);

const REGS16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"] as const;
const SREGS = [
  ["es", Sreg.ES],
  ["cs", Sreg.CS],
  ["ss", Sreg.SS],
  ["ds", Sreg.DS],
] as const;
const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0xf0, 0xf2, 0xf3]);
const LOCK_EG = new Set([
  0x00, 0x01, 0x08, 0x09, 0x10, 0x11, 0x18, 0x19, 0x20, 0x21, 0x28, 0x29, 0x30, 0x31, 0x86, 0x87,
]);

/** True when an i686 accepts LOCK on this (prefix-stripped) instruction: memory destination, lockable op. */
export function lockAllowedOn386(op: number, modrm: number): boolean {
  if (modrm >= 0xc0) return false;
  const reg = (modrm >> 3) & 7;
  if (LOCK_EG.has(op)) return true;
  if (op >= 0x80 && op <= 0x83) return reg !== 7;
  if (op === 0xf6 || op === 0xf7) return reg === 2 || reg === 3;
  if (op === 0xfe) return reg <= 1;
  if (op === 0xff) return reg <= 1;
  return false;
}

export class SingleStepHarness {
  readonly ram = new FlatMemory(0x11_0000);
  readonly cpu = new Cpu({ memory: new MemoryBus(this.ram), io: new IoBus() });
  private readonly masks = new Map<string, number>();

  constructor(
    private readonly metadata: TestMetadata,
    private readonly revoked: ReadonlySet<string> = new Set(),
  ) {}

  /** FLAGS mask of the defined flags for a test file key like "00", "80.4" or "F6.6". */
  flagMask(fileKey: string): number {
    let m = this.masks.get(fileKey);
    if (m !== undefined) return m;
    const [op, reg] = fileKey.toUpperCase().split(".");
    const entry = this.metadata.opcodes[op!];
    const sub = reg !== undefined ? entry?.reg?.[reg] : entry;
    m = sub?.["flags-mask"] ?? 0xffff;
    this.masks.set(fileKey, m);
    return m;
  }

  /** Which skip rule applies to a test, or undefined. */
  skipRule(test: SingleStepTest): string | undefined {
    if (this.revoked.has(test.hash)) return SkipRule.REVOKED;
    const b = test.bytes;
    if (b.length - 1 > 10) return SkipRule.TOO_LONG;
    let i = 0;
    let lock = false;
    while (i < b.length && PREFIXES.has(b[i]!)) {
      if (b[i] === 0xf0) lock = true;
      i++;
    }
    const op = b[i]!;
    const modrm = b[i + 1] ?? 0;
    if (lock && !lockAllowedOn386(op, modrm)) return SkipRule.LOCK_UD;
    if ((op === 0x8c || op === 0x8e) && ((modrm >> 3) & 7) >= 4 && ((modrm >> 3) & 7) <= 5)
      return SkipRule.SREG_FS_GS;
    return undefined;
  }

  run(test: SingleStepTest, fileKey: string): Outcome {
    const rule = this.skipRule(test);
    if (rule !== undefined) return { kind: "skip", rule };
    const diffs = this.exec(test, fileKey, Vector.SS, false);
    if (diffs.length === 0) return { kind: "pass" };
    if (test.exception?.number === Vector.GP) {
      if (this.exec(test, fileKey, Vector.GP, false).length === 0)
        return { kind: "pass", rule: SpecialRule.STACK_GP };
      if (STRING_OPS.has(opcodeOf(test.bytes)) && this.exec(test, fileKey, Vector.GP, true).length === 0)
        return { kind: "pass", rule: SpecialRule.STRING_FAULT_REGS };
    }
    return { kind: "fail", diffs };
  }

  private exec(
    test: SingleStepTest,
    fileKey: string,
    stackFaultVector: number,
    skipStringRegs: boolean,
  ): string[] {
    const { cpu, ram } = this;
    const u8 = ram.u8;
    const init = test.initial.regs;
    try {
      for (const [a, v] of test.initial.ram) u8[a] = v;
      cpu.reset();
      cpu.stackFaultVector = stackFaultVector;
      cpu.setRealMode(init.cs, init.ip);
      for (const [name, s] of SREGS)
        cpu.setSegmentCache(s, init[name], init[name] << 4, 0xffff, s === Sreg.CS ? 0x9b : 0x93);
      cpu.setSegmentCache(Sreg.FS, 0, 0, 0xffff, 0x93);
      cpu.setSegmentCache(Sreg.GS, 0, 0, 0xffff, 0x93);
      REGS16.forEach((r, i) => {
        cpu.r32[i] = init[r];
      });
      cpu.eip = init.ip;
      cpu.setEflags(init.flags & 0x0fff);
      const exit = cpu.run(16);
      const diffs: string[] = [];
      if (exit !== ExitReason.HLT) diffs.push(`did not reach HLT (exit ${exit})`);
      this.compare(test, fileKey, diffs, skipStringRegs);
      return diffs;
    } finally {
      for (const [a] of test.initial.ram) u8[a] = 0;
      for (const [a] of test.final.ram) u8[a] = 0;
    }
  }

  private compare(test: SingleStepTest, fileKey: string, diffs: string[], skipStringRegs: boolean): void {
    const { cpu, ram } = this;
    const init = test.initial.regs;
    const fin = test.final.regs;
    const hex = (v: number) => v.toString(16).padStart(4, "0");
    REGS16.forEach((r, i) => {
      if (skipStringRegs && (r === "si" || r === "di" || r === "cx")) return;
      const want = fin[r] ?? init[r];
      const got = cpu.r32[i]!;
      if (want !== got) diffs.push(`${r}: want ${hex(want)} got ${hex(got)}`);
    });
    for (const [name, s] of SREGS) {
      const want = fin[name] ?? init[name];
      if (cpu.segSel[s] !== want) diffs.push(`${name}: want ${hex(want)} got ${hex(cpu.segSel[s]!)}`);
    }
    const wantIp = fin.ip ?? init.ip;
    if (cpu.eip !== wantIp) diffs.push(`ip: want ${hex(wantIp)} got ${hex(cpu.eip)}`);
    let mask = this.flagMask(fileKey);
    const op = fileKey.slice(0, 2).toUpperCase();
    if (op === "9D" || op === "CF") mask &= 0x0fff;
    const wantFlags = (fin.flags ?? init.flags) & mask;
    const gotFlags = cpu.getEflags() & 0xffff & mask;
    if (wantFlags !== gotFlags)
      diffs.push(`flags: want ${hex(wantFlags)} got ${hex(gotFlags)} (mask ${hex(mask)})`);
    const written = new Map<number, number>();
    for (const [a, v] of test.final.ram) written.set(a, v);
    // The FLAGS word an exception pushed: SS:(SP+4) of the handler (flag_address is even-aligned).
    const ss = fin.ss ?? init.ss;
    const flagsAt = test.exception !== undefined ? ss * 16 + (((fin.sp ?? init.sp) + 4) & 0xffff) : -1;
    const flagsHi = ss * 16 + (((fin.sp ?? init.sp) + 5) & 0xffff);
    for (const [a, v] of written) {
      let want = v;
      let got = ram.u8[a]!;
      if (flagsAt >= 0 && (a === flagsAt || a === flagsHi)) {
        const m = a === flagsAt ? mask & 0xff : mask >> 8;
        want &= m;
        got &= m;
      }
      if (want !== got)
        diffs.push(`mem[${a.toString(16)}]: want ${v.toString(16)} got ${ram.u8[a]!.toString(16)}`);
    }
    for (const [a, v] of test.initial.ram) {
      if (written.has(a)) continue;
      if (ram.u8[a] !== v)
        diffs.push(`mem[${a.toString(16)}] changed: want ${v.toString(16)} got ${ram.u8[a]!.toString(16)}`);
    }
  }
}

function opcodeOf(bytes: readonly number[]): number {
  let i = 0;
  while (i < bytes.length && PREFIXES.has(bytes[i]!)) i++;
  return bytes[i] ?? 0;
}
