/** Data movement: MOV, LEA, XCHG, PUSH/POP, PUSHA/POPA, far-pointer loads, CBW..CDQ, XLAT, ENTER/LEAVE, BCD. */
import type { Cpu, Handler } from "./cpu.js";
import { Vector } from "./fault.js";
import { Cr0, PARITY, REG8, Sreg, type SizeIdx } from "./state.js";

/** MOV Eb,Gb / Ev,Gv (88, 89). */
export function movEG(s: SizeIdx): Handler {
  if (s === 2)
    return (cpu) => {
      cpu.decodeModrm();
      if (cpu.isReg) cpu.r32[cpu.modRm] = cpu.r32[cpu.modReg]!;
      else cpu.write32(cpu.eaSeg, cpu.ea, cpu.r32[cpu.modReg]!);
    };
  if (s === 1)
    return (cpu) => {
      cpu.decodeModrm();
      cpu.writeE16(cpu.r16[cpu.modReg << 1]!);
    };
  return (cpu) => {
    cpu.decodeModrm();
    cpu.writeE8(cpu.r8[REG8[cpu.modReg]!]!);
  };
}

/** MOV Gb,Eb / Gv,Ev (8A, 8B). */
export function movGE(s: SizeIdx): Handler {
  if (s === 2)
    return (cpu) => {
      cpu.decodeModrm();
      cpu.r32[cpu.modReg] = cpu.isReg ? cpu.r32[cpu.modRm]! : cpu.read32(cpu.eaSeg, cpu.ea);
    };
  if (s === 1)
    return (cpu) => {
      cpu.decodeModrm();
      cpu.r16[cpu.modReg << 1] = cpu.readE16();
    };
  return (cpu) => {
    cpu.decodeModrm();
    cpu.r8[REG8[cpu.modReg]!] = cpu.readE8();
  };
}

/** MOV r,imm (B0-BF). */
export function movRI(s: SizeIdx): Handler {
  if (s === 2) return (cpu) => void (cpu.r32[cpu.opcode & 7] = cpu.fetch32());
  if (s === 1) return (cpu) => void (cpu.r16[(cpu.opcode & 7) << 1] = cpu.fetch16());
  return (cpu) => void (cpu.r8[REG8[cpu.opcode & 7]!] = cpu.fetch8());
}

/** MOV Eb,Ib / Ev,Iz (C6 /0, C7 /0). */
export function movEI(s: SizeIdx): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    if (cpu.modReg !== 0) cpu.ud();
    if (s === 2) cpu.writeE32(cpu.fetch32());
    else if (s === 1) cpu.writeE16(cpu.fetch16());
    else cpu.writeE8(cpu.fetch8());
  };
}

/** The offset operand of A0-A3 (address size). */
function moffs(cpu: Cpu): number {
  return cpu.ad32 ? cpu.fetch32() : cpu.fetch16();
}

/** MOV AL/eAX, moffs (A0, A1) and moffs, AL/eAX (A2, A3). */
export function movMoffs(s: SizeIdx, store: boolean): Handler {
  return (cpu) => {
    const off = moffs(cpu);
    const seg = cpu.dataSeg;
    if (store) {
      if (s === 2) cpu.write32(seg, off, cpu.r32[0]!);
      else if (s === 1) cpu.write16(seg, off, cpu.r16[0]!);
      else cpu.write8(seg, off, cpu.r8[0]!);
    } else if (s === 2) cpu.r32[0] = cpu.read32(seg, off);
    else if (s === 1) cpu.r16[0] = cpu.read16(seg, off);
    else cpu.r8[0] = cpu.read8(seg, off);
  };
}

/** MOV Ev,Sw (8C). */
export const movESreg: Handler = (cpu) => {
  cpu.decodeModrm();
  if (cpu.modReg > 5) cpu.ud();
  const v = cpu.segSel[cpu.modReg]!;
  if (cpu.isReg) {
    if (cpu.op32) cpu.r32[cpu.modRm] = v;
    else cpu.r16[cpu.modRm << 1] = v;
  } else cpu.write16(cpu.eaSeg, cpu.ea, v);
};

/** MOV Sw,Ew (8E). Loading SS inhibits interrupts for one instruction. */
export const movSregE: Handler = (cpu) => {
  cpu.decodeModrm();
  const sreg = cpu.modReg;
  if (sreg > 5 || sreg === Sreg.CS) cpu.ud();
  cpu.loadSegment(sreg, cpu.readE16());
  if (sreg === Sreg.SS) {
    cpu.shadow = true;
    cpu.slowCheck = 1;
  }
};

/** LEA Gv,M (8D). */
export const lea: Handler = (cpu) => {
  cpu.decodeModrm();
  if (cpu.isReg) cpu.ud();
  if (cpu.op32) cpu.r32[cpu.modReg] = cpu.ea;
  else cpu.r16[cpu.modReg << 1] = cpu.ea;
};

/** XCHG Eb,Gb / Ev,Gv (86, 87). */
export function xchgEG(s: SizeIdx): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const a = s === 2 ? cpu.readE32() : s === 1 ? cpu.readE16() : cpu.readE8();
    const b = cpu.getReg(s, cpu.modReg);
    if (s === 2) cpu.writeE32(b);
    else if (s === 1) cpu.writeE16(b);
    else cpu.writeE8(b);
    cpu.setReg(s, cpu.modReg, a);
  };
}

/** XCHG eAX, r (91-97); 90 is NOP (PAUSE with F3). */
export function xchgAR(s: 1 | 2): Handler {
  return (cpu) => {
    const r = cpu.opcode & 7;
    const a = cpu.getReg(s, 0);
    cpu.setReg(s, 0, cpu.getReg(s, r));
    cpu.setReg(s, r, a);
  };
}

export const nop: Handler = () => {};

/** PUSH r (50-57). PUSH SP pushes the value before the decrement. */
export function pushR(s: 1 | 2): Handler {
  if (s === 2) return (cpu) => cpu.push32(cpu.r32[cpu.opcode & 7]!);
  return (cpu) => cpu.push16(cpu.r16[(cpu.opcode & 7) << 1]!);
}

/** POP r (58-5F). */
export function popR(s: 1 | 2): Handler {
  if (s === 2) return (cpu) => void (cpu.r32[cpu.opcode & 7] = cpu.pop32());
  return (cpu) => void (cpu.r16[(cpu.opcode & 7) << 1] = cpu.pop16());
}

/** PUSH Iz (68), PUSH Ib sign-extended (6A). */
export function pushI(byte: boolean): Handler {
  return (cpu) => {
    const v = byte ? (cpu.fetch8() << 24) >> 24 : cpu.fetchImmV();
    cpu.pushV(v);
  };
}

/** PUSH Sreg (06, 0E, 16, 1E, 0F A0, 0F A8). A 32-bit push writes the selector zero-extended. */
export function pushSreg(sreg: number): Handler {
  return (cpu) => cpu.pushV(cpu.segSel[sreg]!);
}

/** POP Sreg (07, 17, 1F, 0F A1, 0F A9). */
export function popSreg(sreg: number): Handler {
  return (cpu) => {
    const sp = cpu.sp;
    const v = cpu.popV();
    try {
      cpu.loadSegment(sreg, v & 0xffff);
    } catch (e) {
      cpu.sp = sp;
      throw e;
    }
    if (sreg === Sreg.SS) {
      cpu.shadow = true;
      cpu.slowCheck = 1;
    }
  };
}

/** POP Ev (8F /0). ESP is incremented before the destination address is used. */
export const popE: Handler = (cpu) => {
  // The effective address is computed with the incremented ESP: pop first, then decode.
  const sp = cpu.sp;
  const v = cpu.popV();
  try {
    cpu.decodeModrm();
    if (cpu.modReg !== 0) cpu.ud();
    if (cpu.op32) cpu.writeE32(v);
    else cpu.writeE16(v);
  } catch (e) {
    cpu.sp = sp;
    throw e;
  }
};

/** PUSHA/PUSHAD (60). */
export const pusha: Handler = (cpu) => {
  const sp = cpu.sp;
  const s = cpu.op32 ? 2 : 1;
  const saved = cpu.getReg(s, 4);
  try {
    for (let r = 0; r < 8; r++) cpu.pushV(r === 4 ? saved : cpu.getReg(s, r));
  } catch (e) {
    cpu.sp = sp;
    throw e;
  }
};

/** POPA/POPAD (61): the stored SP is skipped. */
export const popa: Handler = (cpu) => {
  const sp = cpu.sp;
  const s = cpu.op32 ? 2 : 1;
  const v = new Array<number>(8);
  try {
    for (let r = 7; r >= 0; r--) v[r] = cpu.popV();
  } catch (e) {
    cpu.sp = sp;
    throw e;
  }
  for (let r = 0; r < 8; r++) if (r !== 4) cpu.setReg(s, r, v[r]!);
};

/** LES/LDS (C4, C5), LSS/LFS/LGS (0F B2, B4, B5): Gv, Mp. */
export function loadFarPointer(sreg: number): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    if (cpu.isReg) cpu.ud();
    const seg = cpu.eaSeg;
    let off: number;
    let sel: number;
    if (cpu.op32) {
      off = cpu.read32(seg, cpu.ea);
      sel = cpu.read16(seg, (cpu.ea + 4) | 0);
    } else {
      off = cpu.read16(seg, cpu.ea);
      sel = cpu.read16(seg, cpu.ad32 ? (cpu.ea + 2) | 0 : (cpu.ea + 2) & 0xffff);
    }
    cpu.loadSegment(sreg, sel);
    cpu.setReg(cpu.op32 ? 2 : 1, cpu.modReg, off);
    if (sreg === Sreg.SS) {
      cpu.shadow = true;
      cpu.slowCheck = 1;
    }
  };
}

/** CBW/CWDE (98). */
export const cbw: Handler = (cpu) => {
  if (cpu.op32) cpu.r32[0] = (cpu.r16[0]! << 16) >> 16;
  else cpu.r16[0] = (cpu.r8[0]! << 24) >> 24;
};

/** CWD/CDQ (99). */
export const cwd: Handler = (cpu) => {
  if (cpu.op32) cpu.r32[2] = (cpu.r32[0]! | 0) < 0 ? 0xffff_ffff : 0;
  else cpu.r16[4] = cpu.r16[0]! & 0x8000 ? 0xffff : 0;
};

/** SAHF (9E): SF ZF AF PF CF from AH. */
export const sahf: Handler = (cpu) => {
  cpu.materializeFlags();
  cpu.flags = (cpu.flags & ~0xd5) | (cpu.r8[1]! & 0xd5);
};

/** LAHF (9F). */
export const lahf: Handler = (cpu) => {
  cpu.r8[1] = (cpu.getEflags() & 0xd5) | 0x02;
};

/** XLAT (D7): AL = [seg:(E)BX + AL]. */
export const xlat: Handler = (cpu) => {
  const off = cpu.ad32 ? (cpu.r32[3]! + cpu.r8[0]!) | 0 : (cpu.r16[6]! + cpu.r8[0]!) & 0xffff;
  cpu.r8[0] = cpu.read8(cpu.dataSeg, off);
};

/** SALC (D6, undocumented): AL = CF ? FF : 00. */
export const salc: Handler = (cpu) => {
  cpu.r8[0] = cpu.getCF() ? 0xff : 0;
};

/** LEAVE (C9). */
export const leave: Handler = (cpu) => {
  const bp = cpu.stackBig ? cpu.r32[5]! : cpu.r16[10]!;
  const v = cpu.op32 ? cpu.read32(Sreg.SS, bp) : cpu.read16(Sreg.SS, bp);
  cpu.sp = cpu.stackBig ? (bp + (cpu.op32 ? 4 : 2)) | 0 : (bp + (cpu.op32 ? 4 : 2)) & 0xffff;
  cpu.setReg(cpu.op32 ? 2 : 1, 5, v);
};

/** ENTER Iw, Ib (C8). */
export const enter: Handler = (cpu) => {
  const size = cpu.fetch16();
  const level = cpu.fetch8() & 31;
  const s = cpu.op32 ? 2 : 1;
  const step = cpu.op32 ? 4 : 2;
  const sp0 = cpu.sp;
  const bp0 = cpu.getReg(s, 5);
  try {
    cpu.pushV(bp0);
    const frame = cpu.sp;
    if (level > 0) {
      let bp = cpu.stackBig ? cpu.r32[5]! : cpu.r16[10]!;
      for (let i = 1; i < level; i++) {
        bp = cpu.stackBig ? (bp - step) | 0 : (bp - step) & 0xffff;
        cpu.pushV(cpu.op32 ? cpu.read32(Sreg.SS, bp) : cpu.read16(Sreg.SS, bp));
      }
      cpu.pushV(frame);
    }
    const nsp = cpu.stackBig ? (cpu.sp - size) | 0 : (cpu.sp - size) & 0xffff;
    // The final stack pointer must be writable (checked on the 386 as a write at the new top).
    if (size > 0) cpu.linWrite(Sreg.SS, nsp, 1);
    cpu.setReg(s, 5, frame);
    cpu.sp = nsp;
  } catch (e) {
    cpu.sp = sp0;
    cpu.setReg(s, 5, bp0);
    throw e;
  }
};

/** BOUND Gv,Ma (62): #BR when the index is outside [lower, upper]. */
export const bound: Handler = (cpu) => {
  cpu.decodeModrm();
  if (cpu.isReg) cpu.ud();
  const seg = cpu.eaSeg;
  let idx: number;
  let lo: number;
  let hi: number;
  if (cpu.op32) {
    idx = cpu.r32[cpu.modReg]! | 0;
    lo = cpu.read32(seg, cpu.ea) | 0;
    hi = cpu.read32(seg, (cpu.ea + 4) | 0) | 0;
  } else {
    idx = (cpu.r16[cpu.modReg << 1]! << 16) >> 16;
    lo = (cpu.read16(seg, cpu.ea) << 16) >> 16;
    hi = (cpu.read16(seg, cpu.ad32 ? (cpu.ea + 2) | 0 : (cpu.ea + 2) & 0xffff) << 16) >> 16;
  }
  if (idx < lo || idx > hi) cpu.raise(Vector.BR);
};

// ---- BCD -----------------------------------------------------------------------------------------

function setSZP(cpu: Cpu, r: number, cf: boolean, af: boolean, of = false): void {
  cpu.setArith(cf ? 1 : 0, PARITY[r] !== 0, af, r === 0, (r & 0x80) !== 0, of);
}

/** DAA (27). */
export const daa: Handler = (cpu) => {
  const old = cpu.r8[0]!;
  const oldCf = cpu.getCF() !== 0;
  const oldAf = cpu.getAF();
  let al = old;
  let af = false;
  let cf = false;
  if ((al & 0xf) > 9 || oldAf) {
    cf = oldCf || al + 6 > 0xff;
    al = (al + 6) & 0xff;
    af = true;
  }
  if (old > 0x99 || oldCf) {
    al = (al + 0x60) & 0xff;
    cf = true;
  }
  cpu.r8[0] = al;
  setSZP(cpu, al, cf, af, (old & 0x80) === 0 && (al & 0x80) !== 0);
};

/** DAS (2F). */
export const das: Handler = (cpu) => {
  const old = cpu.r8[0]!;
  const oldCf = cpu.getCF() !== 0;
  const oldAf = cpu.getAF();
  let al = old;
  let af = false;
  let cf = false;
  if ((al & 0xf) > 9 || oldAf) {
    cf = oldCf || al < 6;
    al = (al - 6) & 0xff;
    af = true;
  }
  if (old > 0x99 || oldCf) {
    al = (al - 0x60) & 0xff;
    cf = true;
  }
  cpu.r8[0] = al;
  setSZP(cpu, al, cf, af, (old & 0x80) !== 0 && (al & 0x80) === 0);
};

/** AAA (37) / AAS (3F). */
export function aaa(sub: boolean): Handler {
  return (cpu) => {
    const adjust = (cpu.r8[0]! & 0xf) > 9 || cpu.getAF();
    if (adjust) {
      if (sub) {
        cpu.r16[0] = (cpu.r16[0]! - 6) & 0xffff;
        cpu.r8[1] = (cpu.r8[1]! - 1) & 0xff;
      } else {
        cpu.r16[0] = (cpu.r16[0]! + 0x106) & 0xffff;
      }
    }
    cpu.r8[0] = cpu.r8[0]! & 0xf;
    const al = cpu.r8[0]!;
    setSZP(cpu, al, adjust, adjust);
  };
}

/** AAM Ib (D4): #DE on 0. */
export const aam: Handler = (cpu) => {
  const base = cpu.fetch8();
  if (base === 0) cpu.raise(Vector.DE);
  const al = cpu.r8[0]!;
  cpu.r8[1] = Math.floor(al / base);
  cpu.r8[0] = al % base;
  setSZP(cpu, cpu.r8[0]!, false, false);
};

/** AAD Ib (D5). */
export const aad: Handler = (cpu) => {
  const base = cpu.fetch8();
  const al = (cpu.r8[0]! + cpu.r8[1]! * base) & 0xff;
  cpu.r16[0] = al;
  setSZP(cpu, al, false, false);
};

/** Checks the state every x87 instruction needs: #NM when CR0.EM or CR0.TS is set. */
export function fpuAvailable(cpu: Cpu): void {
  if ((cpu.cr0 & (Cr0.EM | Cr0.TS)) !== 0) cpu.raise(Vector.NM);
}
