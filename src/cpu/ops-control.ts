/** Control transfer, flags, interrupts, HLT and port I/O. */
import { incDecE } from "./ops-alu.js";
import type { Cpu, Handler } from "./cpu.js";
import { InterruptKind, NO_ERROR_CODE, Vector } from "./fault.js";
import { Flag, Sreg } from "./state.js";

/** Jcc rel8 (70-7F), one handler per condition. */
export function jccShort(cc: number): Handler {
  return (cpu) => {
    const rel = (cpu.fetch8() << 24) >> 24;
    if (cpu.cond(cc)) cpu.jumpNear(cpu.eip + rel);
  };
}

/** Jcc rel16/32 (0F 80-8F). */
export function jccNear(cc: number): Handler {
  return (cpu) => {
    const rel = cpu.op32 ? cpu.fetch32() | 0 : (cpu.fetch16() << 16) >> 16;
    if (cpu.cond(cc)) cpu.jumpNear(cpu.eip + rel);
  };
}

/** JMP rel8 (EB). */
export const jmpShort: Handler = (cpu) => {
  const rel = (cpu.fetch8() << 24) >> 24;
  cpu.jumpNear(cpu.eip + rel);
};

/** JMP rel16/32 (E9). */
export const jmpNear: Handler = (cpu) => {
  const rel = cpu.op32 ? cpu.fetch32() | 0 : (cpu.fetch16() << 16) >> 16;
  cpu.jumpNear(cpu.eip + rel);
};

/** CALL rel16/32 (E8). */
export const callNear: Handler = (cpu) => {
  const rel = cpu.op32 ? cpu.fetch32() | 0 : (cpu.fetch16() << 16) >> 16;
  const ret = cpu.eip;
  const target = cpu.op32 ? (ret + rel) | 0 : (ret + rel) & 0xffff;
  if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
  cpu.pushV(ret);
  cpu.eip = target;
};

/** RET (C3) and RET Iw (C2). */
export function retNear(imm: boolean): Handler {
  return (cpu) => {
    const n = imm ? cpu.fetch16() : 0;
    const sp = cpu.sp;
    const target = cpu.popV();
    if (target >>> 0 > cpu.segMax[Sreg.CS]!) {
      cpu.sp = sp;
      cpu.gp0();
    }
    cpu.eip = target;
    if (n !== 0) cpu.sp = cpu.stackBig ? (cpu.sp + n) | 0 : (cpu.sp + n) & 0xffff;
  };
}

/** RETF (CB) and RETF Iw (CA). */
export function retFar(imm: boolean): Handler {
  return (cpu) => cpu.returnFar(imm ? cpu.fetch16() : 0);
}

/** CALL ptr16:16/32 (9A), JMP ptr16:16/32 (EA). */
export function farDirect(call: boolean): Handler {
  return (cpu) => {
    const off = cpu.fetchImmV();
    const sel = cpu.fetch16();
    if (call) cpu.callFar(sel, off);
    else cpu.jumpFar(sel, off);
  };
}

/** LOOPNE/LOOPE/LOOP (E0-E2) and JCXZ/JECXZ (E3); the counter is CX or ECX by address size. */
export const loop: Handler = (cpu) => {
  if (cpu.opcode === 0xe2 && cpu.ad32 !== 0) {
    // LOOP with ECX, the common form.
    const rel = (cpu.fetch8() << 24) >> 24;
    const count = (cpu.r32[1]! - 1) | 0;
    cpu.r32[1] = count;
    if (count !== 0) cpu.jumpNear(cpu.eip + rel);
    return;
  }
  const rel = (cpu.fetch8() << 24) >> 24;
  const op = cpu.opcode;
  let count: number;
  if (op === 0xe3) count = cpu.ad32 ? cpu.r32[1]! : cpu.r16[2]!;
  else if (cpu.ad32) count = cpu.r32[1] = cpu.r32[1]! - 1;
  else count = cpu.r16[2] = cpu.r16[2]! - 1;
  let take: boolean;
  if (op === 0xe3) take = count === 0;
  else if (op === 0xe2) take = count !== 0;
  else take = count !== 0 && cpu.getZF() === (op === 0xe1);
  if (take) cpu.jumpNear(cpu.eip + rel);
};

/** INT Ib (CD). */
export const intN: Handler = (cpu) => {
  const n = cpu.fetch8();
  cpu.deliverInterrupt(n, InterruptKind.SOFTWARE, NO_ERROR_CODE);
};

/** INT3 (CC). */
export const int3: Handler = (cpu) =>
  cpu.deliverInterrupt(Vector.BP, InterruptKind.SOFTWARE_EXCEPTION, NO_ERROR_CODE);

/** INT1/ICEBP (F1): a #DB trap. */
export const int1: Handler = (cpu) => cpu.deliverInterrupt(Vector.DB, InterruptKind.EXCEPTION, NO_ERROR_CODE);

/** INTO (CE). */
export const into: Handler = (cpu) => {
  if (cpu.getOF()) cpu.deliverInterrupt(Vector.OF, InterruptKind.SOFTWARE_EXCEPTION, NO_ERROR_CODE);
};

/** IRET/IRETD (CF). */
export const iret: Handler = (cpu) => cpu.iret();

/** HLT (F4): privileged. */
export const hlt: Handler = (cpu) => {
  if (cpu.cpl !== 0) cpu.gp0();
  cpu.halt();
};

function iopl(cpu: Cpu): number {
  return (cpu.flags >> 12) & 3;
}

/** CLI (FA) / STI (FB): IOPL-checked in protected mode. STI delays interrupts by one instruction. */
export function cliSti(set: boolean): Handler {
  return (cpu) => {
    if (cpu.protectedModeActive && cpu.cpl > iopl(cpu)) cpu.gp0();
    if ((cpu.flags & Flag.VM) !== 0 && iopl(cpu) < 3) cpu.gp0();
    if (set) {
      if ((cpu.flags & Flag.IF) === 0) {
        cpu.shadow = true;
        cpu.slowCheck = 1;
      }
      cpu.flags |= Flag.IF;
    } else cpu.flags &= ~Flag.IF;
  };
}

/** CLC CMC STC CLD STD (F8, F5, F9, FC, FD). */
export const flagOp: Handler = (cpu) => {
  switch (cpu.opcode) {
    case 0xf5:
      cpu.setCF(cpu.getCF() === 0);
      return;
    case 0xf8:
      cpu.setCF(false);
      return;
    case 0xf9:
      cpu.setCF(true);
      return;
    case 0xfc:
      cpu.flags &= ~Flag.DF;
      return;
    default:
      cpu.flags |= Flag.DF;
  }
};

/** PUSHF/PUSHFD (9C). VM and RF are pushed as 0. */
export const pushf: Handler = (cpu) => {
  if ((cpu.flags & Flag.VM) !== 0 && iopl(cpu) < 3) cpu.gp0();
  const f = cpu.getEflags();
  if (cpu.op32) cpu.push32(f & ~(Flag.VM | Flag.RF));
  else cpu.push16(f & 0xffff);
};

/** POPF/POPFD (9D) with the protected-mode rules for IOPL and IF. */
export const popf: Handler = (cpu) => {
  if ((cpu.flags & Flag.VM) !== 0 && iopl(cpu) < 3) cpu.gp0();
  const v = cpu.popV();
  let writable = cpu.op32 ? 0x24_7fd5 : 0x7fd5; // never VM, RF, VIF, VIP here
  if (cpu.protectedModeActive) {
    if (cpu.cpl > 0) writable &= ~Flag.IOPL;
    if (cpu.cpl > iopl(cpu)) writable &= ~Flag.IF;
  } else if ((cpu.flags & Flag.VM) !== 0) writable &= ~Flag.IOPL;
  cpu.setEflagsChecked(v, writable);
};

/** True when port I/O of `size` bytes at `port` is allowed (CPL ≤ IOPL, else the TSS bitmap). */
export function ioAllowed(cpu: Cpu, port: number, size: number): boolean {
  const inV86 = (cpu.flags & Flag.VM) !== 0;
  if (!inV86 && (!cpu.protectedModeActive || cpu.cpl <= iopl(cpu))) return true;
  return cpu.pm().ioAllowed(port, size);
}

function portIn(cpu: Cpu, port: number): void {
  const size = cpu.opcode & 1 ? (cpu.op32 ? 4 : 2) : 1;
  if (!ioAllowed(cpu, port, size)) cpu.gp0();
  cpu.slowCheck = 1;
  const v = cpu.io.read(port, size);
  if (size === 4) cpu.r32[0] = v;
  else if (size === 2) cpu.r16[0] = v;
  else cpu.r8[0] = v;
}

function portOut(cpu: Cpu, port: number): void {
  const size = cpu.opcode & 1 ? (cpu.op32 ? 4 : 2) : 1;
  if (!ioAllowed(cpu, port, size)) cpu.gp0();
  cpu.slowCheck = 1;
  const v = size === 4 ? cpu.r32[0]! : size === 2 ? cpu.r16[0]! : cpu.r8[0]!;
  cpu.io.write(port, size, v);
}

/** IN AL/eAX, Ib (E4, E5); OUT Ib, AL/eAX (E6, E7). */
export const ioImm: Handler = (cpu) => {
  const port = cpu.fetch8();
  if (cpu.opcode & 2) portOut(cpu, port);
  else portIn(cpu, port);
};

/** IN AL/eAX, DX (EC, ED); OUT DX, AL/eAX (EE, EF). */
export const ioDx: Handler = (cpu) => {
  if (cpu.opcode & 2) portOut(cpu, cpu.r16[4]!);
  else portIn(cpu, cpu.r16[4]!);
};

/** Group 4 (FE): INC/DEC Eb. */
export const group4: Handler = (cpu) => {
  cpu.decodeModrm();
  if (cpu.modReg > 1) cpu.ud();
  incDecE(cpu, 0, cpu.modReg === 1);
};

/** Group 5 (FF): INC, DEC, CALL near, CALL far, JMP near, JMP far, PUSH. */
export const group5: Handler = (cpu) => {
  cpu.decodeModrm();
  const op = cpu.modReg;
  if (cpu.lock && op > 1) cpu.ud();
  const s = cpu.op32 ? 2 : 1;
  switch (op) {
    case 0:
    case 1:
      incDecE(cpu, s, op === 1);
      return;
    case 2: {
      const target = s === 2 ? cpu.readE32() : cpu.readE16();
      if (target >>> 0 > cpu.segMax[Sreg.CS]!) cpu.gp0();
      cpu.pushV(cpu.eip);
      cpu.eip = target;
      return;
    }
    case 4:
      cpu.jumpNear(s === 2 ? cpu.readE32() : cpu.readE16());
      return;
    case 3:
    case 5: {
      if (cpu.isReg) cpu.ud();
      const off = s === 2 ? cpu.read32(cpu.eaSeg, cpu.ea) : cpu.read16(cpu.eaSeg, cpu.ea);
      const selOff = cpu.ad32 ? (cpu.ea + (s === 2 ? 4 : 2)) | 0 : (cpu.ea + (s === 2 ? 4 : 2)) & 0xffff;
      const sel = cpu.read16(cpu.eaSeg, selOff);
      if (op === 3) cpu.callFar(sel, off);
      else cpu.jumpFar(sel, off);
      return;
    }
    case 6:
      cpu.pushV(s === 2 ? cpu.readE32() : cpu.readE16());
      return;
    default:
      cpu.ud();
  }
};
