/** Two-byte integer instructions: BT*, BSF/BSR, BSWAP, SETcc, CMOVcc, MOVZX/MOVSX, XADD, CMPXCHG, CMPXCHG8B. */
import { alu, writeE } from "./ops-alu.js";
import type { Cpu, Handler } from "./cpu.js";
import { Flag, Lazy, type SizeIdx } from "./state.js";

function readE(cpu: Cpu, s: SizeIdx): number {
  return s === 2 ? cpu.readE32() : s === 1 ? cpu.readE16() : cpu.readE8();
}

/** 0 BT, 1 BTS, 2 BTR, 3 BTC on a value; sets CF; returns the new value. */
function bitOp(cpu: Cpu, op: number, v: number, bit: number): number {
  const m = 1 << bit;
  cpu.setCF((v & m) !== 0);
  if (op === 1) return v | m;
  if (op === 2) return v & ~m;
  if (op === 3) return v ^ m;
  return v;
}

/** BT/BTS/BTR/BTC Ev,Gv (0F A3, AB, B3, BB): a memory operand is addressed by the signed bit offset. */
export function btG(op: number, s: 1 | 2): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const bits = s === 2 ? 32 : 16;
    const off = cpu.getReg(s, cpu.modReg);
    if (cpu.isReg) {
      const v = readE(cpu, s);
      const r = bitOp(cpu, op, v, off & (bits - 1));
      if (op !== 0) writeE(cpu, s, r);
      return;
    }
    const signed = s === 2 ? off | 0 : (off << 16) >> 16;
    const disp = Math.floor(signed / bits) * (bits / 8);
    cpu.ea = cpu.ad32 ? (cpu.ea + disp) | 0 : (cpu.ea + disp) & 0xffff;
    const v = readE(cpu, s);
    const r = bitOp(cpu, op, v, off & (bits - 1));
    if (op !== 0) writeE(cpu, s, r);
  };
}

/** Group 8 (0F BA): BT/BTS/BTR/BTC Ev,Ib. */
export function group8(s: 1 | 2): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    if (cpu.modReg < 4) cpu.ud();
    const op = cpu.modReg - 4;
    if (cpu.lock && op === 0) cpu.ud();
    const bit = cpu.fetch8() & (s === 2 ? 31 : 15);
    const r = bitOp(cpu, op, readE(cpu, s), bit);
    if (op !== 0) writeE(cpu, s, r);
  };
}

/** BSF (0F BC) / BSR (0F BD): ZF=1 and the destination unchanged when the source is 0. */
export function bsx(reverse: boolean, s: 1 | 2): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const v = readE(cpu, s);
    cpu.materializeFlags();
    if (v === 0) {
      cpu.flags |= Flag.ZF;
      return;
    }
    const idx = reverse ? 31 - Math.clz32(v) : 31 - Math.clz32(v & -v);
    cpu.setReg(s, cpu.modReg, idx);
    cpu.lazyOp = Lazy.LOGIC;
    cpu.lazyRes = idx;
    cpu.lazySize = s;
    cpu.materializeFlags(); // ZF=0 (idx may be 0, so ZF is forced below)
    cpu.flags &= ~Flag.ZF;
  };
}

/** BSWAP r32 (0F C8-CF). With a 16-bit operand size the result is undefined; i686 gives 0. */
export const bswap: Handler = (cpu) => {
  const r = cpu.opcode & 7;
  if (!cpu.op32) {
    cpu.r16[r << 1] = 0;
    return;
  }
  const v = cpu.r32[r]!;
  cpu.r32[r] = (v >>> 24) | ((v >>> 8) & 0xff00) | ((v << 8) & 0xff_0000) | (v << 24);
};

/** SETcc Eb (0F 90-9F). */
export const setcc: Handler = (cpu) => {
  cpu.decodeModrm();
  cpu.writeE8(cpu.cond(cpu.opcode & 0xf) ? 1 : 0);
};

/** CMOVcc Gv,Ev (0F 40-4F): the source is always read (it may fault). */
export function cmov(s: 1 | 2): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const v = readE(cpu, s);
    if (cpu.cond(cpu.opcode & 0xf)) cpu.setReg(s, cpu.modReg, v);
  };
}

/** MOVZX/MOVSX Gv, Eb/Ew (0F B6, B7, BE, BF). */
export function movx(src: 0 | 1, signed: boolean, s: 1 | 2): Handler {
  if (s === 2) return src === 0 ? (signed ? movsx32b : movzx32b) : signed ? movsx32w : movzx32w;
  return (cpu) => {
    cpu.decodeModrm();
    let v = src === 0 ? cpu.readE8() : cpu.readE16();
    if (signed) v = src === 0 ? (v << 24) >> 24 : (v << 16) >> 16;
    cpu.setReg(s, cpu.modReg, v);
  };
}

// The 32-bit forms, each its own function (own JIT feedback; common in kernel code).
const movzx32b: Handler = (cpu) => {
  cpu.decodeModrm();
  cpu.r32[cpu.modReg] = cpu.readE8();
};
const movsx32b: Handler = (cpu) => {
  cpu.decodeModrm();
  cpu.r32[cpu.modReg] = (cpu.readE8() << 24) >> 24;
};
const movzx32w: Handler = (cpu) => {
  cpu.decodeModrm();
  cpu.r32[cpu.modReg] = cpu.readE16();
};
const movsx32w: Handler = (cpu) => {
  cpu.decodeModrm();
  cpu.r32[cpu.modReg] = (cpu.readE16() << 16) >> 16;
};

/** XADD Eb,Gb / Ev,Gv (0F C0, C1). */
export function xadd(s: SizeIdx): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const a = readE(cpu, s);
    const b = cpu.getReg(s, cpu.modReg);
    const r = alu(cpu, 0, a, b, s);
    writeE(cpu, s, r);
    cpu.setReg(s, cpu.modReg, a);
  };
}

/** CMPXCHG Eb,Gb / Ev,Gv (0F B0, B1). The destination is written in both cases (as the CPU does). */
export function cmpxchg(s: SizeIdx): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const d = readE(cpu, s);
    const acc = cpu.getReg(s, 0);
    alu(cpu, 7, acc, d, s);
    if (acc === d) writeE(cpu, s, cpu.getReg(s, cpu.modReg));
    else {
      writeE(cpu, s, d);
      cpu.setReg(s, 0, d);
    }
  };
}

/** Group 9 (0F C7): CMPXCHG8B Mq (/1). */
export const group9: Handler = (cpu) => {
  cpu.decodeModrm();
  if (cpu.modReg !== 1 || cpu.isReg) cpu.ud();
  const seg = cpu.eaSeg;
  const ea = cpu.ea;
  const hiOff = cpu.ad32 ? (ea + 4) | 0 : (ea + 4) & 0xffff;
  cpu.linWrite(seg, ea, 8);
  const lo = cpu.read32(seg, ea);
  const hi = cpu.read32(seg, hiOff);
  cpu.materializeFlags();
  if (lo === cpu.r32[0] && hi === cpu.r32[2]) {
    cpu.write32(seg, ea, cpu.r32[3]!);
    cpu.write32(seg, hiOff, cpu.r32[1]!);
    cpu.flags |= Flag.ZF;
  } else {
    cpu.write32(seg, ea, lo);
    cpu.write32(seg, hiOff, hi);
    cpu.r32[0] = lo;
    cpu.r32[2] = hi;
    cpu.flags &= ~Flag.ZF;
  }
};
