/**
 * The opcode table: the single source of truth for what the core decodes. One entry per opcode
 * (0x00-0xFF, and 0x100 | xx for 0F xx) with its mnemonic, its operands in SDM letters, its
 * handlers for 16- and 32-bit operand size, and whether LOCK may prefix it. `DISPATCH` is built
 * from it: index = opcode | (operand size 32 ? 0x200 : 0); every hole raises #UD.
 */
import { VirtkitError } from "../common/errors.js";
import type { Handler } from "./cpu.js";
import { AluKind, aluAI, aluEG, aluGE, group1, group3, imulG, incDecReg, testAI, testEG } from "./ops-alu.js";
import { bsx, btG, bswap, cmov, cmpxchg, group8, group9, movx, setcc, xadd } from "./ops-bits.js";
import {
  callNear,
  cliSti,
  farDirect,
  flagOp,
  group4,
  group5,
  hlt,
  int1,
  int3,
  intN,
  into,
  ioDx,
  ioImm,
  iret,
  jccNear,
  jccShort,
  jmpNear,
  jmpShort,
  loop,
  popf,
  pushf,
  retFar,
  retNear,
} from "./ops-control.js";
import {
  aaa,
  aad,
  aam,
  bound,
  cbw,
  cwd,
  daa,
  das,
  enter,
  lahf,
  lea,
  leave,
  loadFarPointer,
  movEG,
  movEI,
  movESreg,
  movGE,
  movMoffs,
  movRI,
  movSregE,
  nop,
  popa,
  popE,
  popR,
  popSreg,
  pusha,
  pushI,
  pushR,
  pushSreg,
  sahf,
  salc,
  xchgAR,
  xchgEG,
  xlat,
} from "./ops-move.js";
import { group2, shxd } from "./ops-shift.js";
import {
  clts,
  cpuid,
  fpuEscape,
  fwait,
  group7,
  invd,
  movCr,
  movDr,
  msr,
  nopEv,
  protectedOnly,
  rdtsc,
  ud,
} from "./ops-system.js";
import { StrKind, stringOp } from "./ops-string.js";
import { Sreg } from "./state.js";

export interface OpcodeEntry {
  /** 0x00-0xFF, or 0x100 | second byte for the 0F map. */
  readonly op: number;
  readonly mnemonic: string;
  /** Operands in the SDM's notation (E/G/I/J/M/O/S, b/w/v/z/p...). */
  readonly operands: string;
  readonly h16: Handler;
  readonly h32: Handler;
  /** LOCK is allowed (with a memory destination; group members are checked by their handler). */
  readonly lock: boolean;
}

const entries: OpcodeEntry[] = [];

function def(
  op: number,
  mnemonic: string,
  operands: string,
  h16: Handler,
  h32: Handler = h16,
  lock = false,
): void {
  entries.push({ op, mnemonic, operands, h16, h32, lock });
}

// ---- one-byte map ----------------------------------------------------------------------------------
const ALU_NAMES = ["ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP"] as const;
for (let k = 0; k < 8; k++) {
  const base = k * 8;
  const name = ALU_NAMES[k]!;
  const lockable = k !== AluKind.CMP;
  def(base, name, "Eb,Gb", aluEG(k, 0), aluEG(k, 0), lockable);
  def(base + 1, name, "Ev,Gv", aluEG(k, 1), aluEG(k, 2), lockable);
  def(base + 2, name, "Gb,Eb", aluGE(k, 0));
  def(base + 3, name, "Gv,Ev", aluGE(k, 1), aluGE(k, 2));
  def(base + 4, name, "AL,Ib", aluAI(k, 0));
  def(base + 5, name, "eAX,Iz", aluAI(k, 1), aluAI(k, 2));
}
const SEG_PUSH: [number, number][] = [
  [0x06, Sreg.ES],
  [0x0e, Sreg.CS],
  [0x16, Sreg.SS],
  [0x1e, Sreg.DS],
];
for (const [op, s] of SEG_PUSH) {
  def(op, "PUSH", "Sreg", pushSreg(s));
  if (s !== Sreg.CS) def(op + 1, "POP", "Sreg", popSreg(s));
}
def(0x27, "DAA", "", daa);
def(0x2f, "DAS", "", das);
def(0x37, "AAA", "", aaa(false));
def(0x3f, "AAS", "", aaa(true));
for (let r = 0; r < 8; r++) {
  def(0x40 + r, "INC", "Zv", incDecReg(1, false), incDecReg(2, false));
  def(0x48 + r, "DEC", "Zv", incDecReg(1, true), incDecReg(2, true));
  def(0x50 + r, "PUSH", "Zv", pushR(1), pushR(2));
  def(0x58 + r, "POP", "Zv", popR(1), popR(2));
}
def(0x60, "PUSHA", "", pusha);
def(0x61, "POPA", "", popa);
def(0x62, "BOUND", "Gv,Ma", bound);
def(0x63, "ARPL", "Ew,Gw", protectedOnly(true));
def(0x68, "PUSH", "Iz", pushI(false));
def(0x69, "IMUL", "Gv,Ev,Iz", imulG(1, 2), imulG(2, 2));
def(0x6a, "PUSH", "Ib", pushI(true));
def(0x6b, "IMUL", "Gv,Ev,Ib", imulG(1, 1), imulG(2, 1));
def(0x6c, "INSB", "", stringOp(StrKind.INS, 0));
def(0x6d, "INS", "", stringOp(StrKind.INS, 1), stringOp(StrKind.INS, 2));
def(0x6e, "OUTSB", "", stringOp(StrKind.OUTS, 0));
def(0x6f, "OUTS", "", stringOp(StrKind.OUTS, 1), stringOp(StrKind.OUTS, 2));
for (let c = 0; c < 16; c++) def(0x70 + c, "Jcc", "Jb", jccShort(c));
def(0x80, "GRP1", "Eb,Ib", group1(0, false), group1(0, false), true);
def(0x81, "GRP1", "Ev,Iz", group1(1, false), group1(2, false), true);
def(0x82, "GRP1", "Eb,Ib", group1(0, false), group1(0, false), true);
def(0x83, "GRP1", "Ev,Ib", group1(1, true), group1(2, true), true);
def(0x84, "TEST", "Eb,Gb", testEG(0));
def(0x85, "TEST", "Ev,Gv", testEG(1), testEG(2));
def(0x86, "XCHG", "Eb,Gb", xchgEG(0), xchgEG(0), true);
def(0x87, "XCHG", "Ev,Gv", xchgEG(1), xchgEG(2), true);
def(0x88, "MOV", "Eb,Gb", movEG(0));
def(0x89, "MOV", "Ev,Gv", movEG(1), movEG(2));
def(0x8a, "MOV", "Gb,Eb", movGE(0));
def(0x8b, "MOV", "Gv,Ev", movGE(1), movGE(2));
def(0x8c, "MOV", "Ev,Sw", movESreg);
def(0x8d, "LEA", "Gv,M", lea);
def(0x8e, "MOV", "Sw,Ew", movSregE);
def(0x8f, "POP", "Ev", popE);
def(0x90, "NOP", "", nop);
for (let r = 1; r < 8; r++) def(0x90 + r, "XCHG", "Zv,eAX", xchgAR(1), xchgAR(2));
def(0x98, "CBW", "", cbw);
def(0x99, "CWD", "", cwd);
def(0x9a, "CALLF", "Ap", farDirect(true));
def(0x9b, "WAIT", "", fwait);
def(0x9c, "PUSHF", "", pushf);
def(0x9d, "POPF", "", popf);
def(0x9e, "SAHF", "", sahf);
def(0x9f, "LAHF", "", lahf);
def(0xa0, "MOV", "AL,Ob", movMoffs(0, false));
def(0xa1, "MOV", "eAX,Ov", movMoffs(1, false), movMoffs(2, false));
def(0xa2, "MOV", "Ob,AL", movMoffs(0, true));
def(0xa3, "MOV", "Ov,eAX", movMoffs(1, true), movMoffs(2, true));
const STR: [number, string, number][] = [
  [0xa4, "MOVS", StrKind.MOVS],
  [0xa6, "CMPS", StrKind.CMPS],
  [0xaa, "STOS", StrKind.STOS],
  [0xac, "LODS", StrKind.LODS],
  [0xae, "SCAS", StrKind.SCAS],
];
for (const [op, name, kind] of STR) {
  def(op, `${name}B`, "", stringOp(kind, 0));
  def(op + 1, name, "", stringOp(kind, 1), stringOp(kind, 2));
}
def(0xa8, "TEST", "AL,Ib", testAI(0));
def(0xa9, "TEST", "eAX,Iz", testAI(1), testAI(2));
for (let r = 0; r < 8; r++) {
  def(0xb0 + r, "MOV", "Zb,Ib", movRI(0));
  def(0xb8 + r, "MOV", "Zv,Iv", movRI(1), movRI(2));
}
def(0xc0, "GRP2", "Eb,Ib", group2(0, "ib"));
def(0xc1, "GRP2", "Ev,Ib", group2(1, "ib"), group2(2, "ib"));
def(0xc2, "RET", "Iw", retNear(true));
def(0xc3, "RET", "", retNear(false));
def(0xc4, "LES", "Gv,Mp", loadFarPointer(Sreg.ES));
def(0xc5, "LDS", "Gv,Mp", loadFarPointer(Sreg.DS));
def(0xc6, "MOV", "Eb,Ib", movEI(0));
def(0xc7, "MOV", "Ev,Iz", movEI(1), movEI(2));
def(0xc8, "ENTER", "Iw,Ib", enter);
def(0xc9, "LEAVE", "", leave);
def(0xca, "RETF", "Iw", retFar(true));
def(0xcb, "RETF", "", retFar(false));
def(0xcc, "INT3", "", int3);
def(0xcd, "INT", "Ib", intN);
def(0xce, "INTO", "", into);
def(0xcf, "IRET", "", iret);
def(0xd0, "GRP2", "Eb,1", group2(0, "one"));
def(0xd1, "GRP2", "Ev,1", group2(1, "one"), group2(2, "one"));
def(0xd2, "GRP2", "Eb,CL", group2(0, "cl"));
def(0xd3, "GRP2", "Ev,CL", group2(1, "cl"), group2(2, "cl"));
def(0xd4, "AAM", "Ib", aam);
def(0xd5, "AAD", "Ib", aad);
def(0xd6, "SALC", "", salc);
def(0xd7, "XLAT", "", xlat);
for (let op = 0xd8; op <= 0xdf; op++) def(op, "ESC", "x87", fpuEscape);
def(0xe0, "LOOPNE", "Jb", loop);
def(0xe1, "LOOPE", "Jb", loop);
def(0xe2, "LOOP", "Jb", loop);
def(0xe3, "JCXZ", "Jb", loop);
def(0xe4, "IN", "AL,Ib", ioImm);
def(0xe5, "IN", "eAX,Ib", ioImm);
def(0xe6, "OUT", "Ib,AL", ioImm);
def(0xe7, "OUT", "Ib,eAX", ioImm);
def(0xe8, "CALL", "Jz", callNear);
def(0xe9, "JMP", "Jz", jmpNear);
def(0xea, "JMPF", "Ap", farDirect(false));
def(0xeb, "JMP", "Jb", jmpShort);
def(0xec, "IN", "AL,DX", ioDx);
def(0xed, "IN", "eAX,DX", ioDx);
def(0xee, "OUT", "DX,AL", ioDx);
def(0xef, "OUT", "DX,eAX", ioDx);
def(0xf1, "INT1", "", int1);
def(0xf4, "HLT", "", hlt);
def(0xf5, "CMC", "", flagOp);
def(0xf6, "GRP3", "Eb", group3(0), group3(0), true);
def(0xf7, "GRP3", "Ev", group3(1), group3(2), true);
def(0xf8, "CLC", "", flagOp);
def(0xf9, "STC", "", flagOp);
def(0xfa, "CLI", "", cliSti(false));
def(0xfb, "STI", "", cliSti(true));
def(0xfc, "CLD", "", flagOp);
def(0xfd, "STD", "", flagOp);
def(0xfe, "GRP4", "Eb", group4, group4, true);
def(0xff, "GRP5", "Ev", group5, group5, true);

// ---- two-byte map (0F xx) --------------------------------------------------------------------------
const X = 0x100;
def(X | 0x00, "GRP6", "Ew", protectedOnly(true));
def(X | 0x01, "GRP7", "M", group7);
def(X | 0x02, "LAR", "Gv,Ew", protectedOnly(true));
def(X | 0x03, "LSL", "Gv,Ew", protectedOnly(true));
def(X | 0x06, "CLTS", "", clts);
def(X | 0x08, "INVD", "", invd);
def(X | 0x09, "WBINVD", "", invd);
def(X | 0x0b, "UD2", "", ud);
// 0F 0D and 0F 18-1F: the P6 reserved/hint NOPs (NOP Ev).
def(X | 0x0d, "NOP", "Ev", nopEv);
for (let op = 0x18; op <= 0x1f; op++) def(X | op, "NOP", "Ev", nopEv);
def(X | 0x20, "MOV", "Rd,Cd", movCr(false));
def(X | 0x21, "MOV", "Rd,Dd", movDr(false));
def(X | 0x22, "MOV", "Cd,Rd", movCr(true));
def(X | 0x23, "MOV", "Dd,Rd", movDr(true));
def(X | 0x30, "WRMSR", "", msr(true));
def(X | 0x31, "RDTSC", "", rdtsc);
def(X | 0x32, "RDMSR", "", msr(false));
def(X | 0x34, "SYSENTER", "", protectedOnly(false));
def(X | 0x35, "SYSEXIT", "", protectedOnly(false));
for (let c = 0; c < 16; c++) {
  def(X | (0x40 + c), "CMOVcc", "Gv,Ev", cmov(1), cmov(2));
  def(X | (0x80 + c), "Jcc", "Jz", jccNear(c));
  def(X | (0x90 + c), "SETcc", "Eb", setcc);
}
def(X | 0xa0, "PUSH", "FS", pushSreg(Sreg.FS));
def(X | 0xa1, "POP", "FS", popSreg(Sreg.FS));
def(X | 0xa2, "CPUID", "", cpuid);
def(X | 0xa3, "BT", "Ev,Gv", btG(0, 1), btG(0, 2));
def(X | 0xa4, "SHLD", "Ev,Gv,Ib", shxd(1, false, "ib"), shxd(2, false, "ib"));
def(X | 0xa5, "SHLD", "Ev,Gv,CL", shxd(1, false, "cl"), shxd(2, false, "cl"));
def(X | 0xa8, "PUSH", "GS", pushSreg(Sreg.GS));
def(X | 0xa9, "POP", "GS", popSreg(Sreg.GS));
def(X | 0xab, "BTS", "Ev,Gv", btG(1, 1), btG(1, 2), true);
def(X | 0xac, "SHRD", "Ev,Gv,Ib", shxd(1, true, "ib"), shxd(2, true, "ib"));
def(X | 0xad, "SHRD", "Ev,Gv,CL", shxd(1, true, "cl"), shxd(2, true, "cl"));
def(X | 0xaf, "IMUL", "Gv,Ev", imulG(1, 0), imulG(2, 0));
def(X | 0xb0, "CMPXCHG", "Eb,Gb", cmpxchg(0), cmpxchg(0), true);
def(X | 0xb1, "CMPXCHG", "Ev,Gv", cmpxchg(1), cmpxchg(2), true);
def(X | 0xb2, "LSS", "Gv,Mp", loadFarPointer(Sreg.SS));
def(X | 0xb3, "BTR", "Ev,Gv", btG(2, 1), btG(2, 2), true);
def(X | 0xb4, "LFS", "Gv,Mp", loadFarPointer(Sreg.FS));
def(X | 0xb5, "LGS", "Gv,Mp", loadFarPointer(Sreg.GS));
def(X | 0xb6, "MOVZX", "Gv,Eb", movx(0, false, 1), movx(0, false, 2));
def(X | 0xb7, "MOVZX", "Gv,Ew", movx(1, false, 1), movx(1, false, 2));
def(X | 0xba, "GRP8", "Ev,Ib", group8(1), group8(2), true);
def(X | 0xbb, "BTC", "Ev,Gv", btG(3, 1), btG(3, 2), true);
def(X | 0xbc, "BSF", "Gv,Ev", bsx(false, 1), bsx(false, 2));
def(X | 0xbd, "BSR", "Gv,Ev", bsx(true, 1), bsx(true, 2));
def(X | 0xbe, "MOVSX", "Gv,Eb", movx(0, true, 1), movx(0, true, 2));
def(X | 0xbf, "MOVSX", "Gv,Ew", movx(1, true, 1), movx(1, true, 2));
def(X | 0xc0, "XADD", "Eb,Gb", xadd(0), xadd(0), true);
def(X | 0xc1, "XADD", "Ev,Gv", xadd(1), xadd(2), true);
def(X | 0xc7, "GRP9", "Mq", group9, group9, true);
for (let r = 0; r < 8; r++) def(X | (0xc8 + r), "BSWAP", "Zd", bswap);

/** Every opcode the core decodes. */
export const OPCODES: readonly OpcodeEntry[] = entries;

/** Handler per (opcode | 0x200 for 32-bit operand size). */
export const DISPATCH: Handler[] = new Array<Handler>(0x400).fill(ud);
/** 1 where LOCK may prefix the opcode. */
export const LOCKABLE = new Uint8Array(0x200);
/** 1 for prefix bytes. */
export const PREFIX = new Uint8Array(0x100);
for (const p of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]) PREFIX[p] = 1;

for (const e of entries) {
  if (DISPATCH[e.op] !== ud && e.op !== 0x0b + X)
    throw new VirtkitError("CPU_TABLE", `opcode table: duplicate entry ${e.op.toString(16)}`);
  DISPATCH[e.op] = e.h16;
  DISPATCH[e.op | 0x200] = e.h32;
  if (e.lock) LOCKABLE[e.op] = 1;
}
