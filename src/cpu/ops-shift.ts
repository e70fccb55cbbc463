/** Shifts and rotates (group 2: C0, C1, D0-D3) and SHLD/SHRD. */
import { writeE } from "./ops-alu.js";
import type { Cpu, Handler } from "./cpu.js";
import { ARITH_FLAGS, Flag, Lazy, PARITY, SIZE_MASK, SIZE_SIGN, type SizeIdx } from "./state.js";

const BITS = [8, 16, 32] as const;

/** Result flags of a shift: SF/ZF/PF from r, CF and OF as given, AF cleared. */
function shiftFlags(cpu: Cpu, r: number, s: SizeIdx, cf: number, of: boolean): void {
  cpu.setArith(cf, PARITY[r & 0xff] !== 0, false, r === 0, (r & SIZE_SIGN[s]) !== 0, of);
}

/** Rotates change only CF and OF. */
function rotFlags(cpu: Cpu, cf: number, of: boolean): void {
  cpu.materializeFlags();
  cpu.flags = (cpu.flags & ~(Flag.CF | Flag.OF)) | (cf ? Flag.CF : 0) | (of ? Flag.OF : 0);
}

/** Applies shift/rotate `op` (the ModR/M reg field) to a with a masked count; returns the result. */
export function shift(cpu: Cpu, op: number, a: number, count: number, s: SizeIdx): number {
  count &= 0x1f;
  if (count === 0) return a;
  const bits = BITS[s];
  const mask = SIZE_MASK[s];
  const sign = SIZE_SIGN[s];
  switch (op) {
    case 0: {
      // ROL
      const c = count & (bits - 1);
      const r = c === 0 ? a : ((a << c) | (a >>> (bits - c))) & mask;
      const cf = r & 1;
      rotFlags(cpu, cf, ((r & sign) !== 0) !== (cf !== 0));
      return r;
    }
    case 1: {
      // ROR
      const c = count & (bits - 1);
      const r = c === 0 ? a : ((a >>> c) | (a << (bits - c))) & mask;
      const cf = (r & sign) !== 0 ? 1 : 0;
      rotFlags(cpu, cf, ((r & sign) !== 0) !== ((r & (sign >>> 1)) !== 0));
      return r;
    }
    case 2: {
      // RCL: through CF, period bits+1
      const c = s === 2 ? count : count % (bits + 1);
      let r = a;
      let cf = cpu.getCF();
      for (let i = 0; i < c; i++) {
        const out = (r & sign) !== 0 ? 1 : 0;
        r = ((r << 1) | cf) & mask;
        cf = out;
      }
      rotFlags(cpu, cf, ((r & sign) !== 0) !== (cf !== 0));
      return r;
    }
    case 3: {
      // RCR
      const c = s === 2 ? count : count % (bits + 1);
      let r = a;
      let cf = cpu.getCF();
      const of = ((a & sign) !== 0) !== (cf !== 0);
      for (let i = 0; i < c; i++) {
        const out = r & 1;
        r = (r >>> 1) | (cf ? sign : 0);
        cf = out;
      }
      rotFlags(cpu, cf, c === 1 ? of : ((r & sign) !== 0) !== ((r & (sign >>> 1)) !== 0));
      return r;
    }
    case 4:
    case 6: {
      // SHL/SAL
      const r = count < 32 ? (a << count) & mask : 0;
      const cf = count <= bits ? (a >>> (bits - count)) & 1 : 0;
      shiftFlags(cpu, r, s, cf, ((r & sign) !== 0) !== (cf !== 0));
      return r;
    }
    case 5: {
      // SHR
      const r = count < 32 ? (a >>> count) & mask : 0;
      const cf = (a >>> (count - 1)) & 1;
      shiftFlags(cpu, r, s, cf, count === 1 ? (a & sign) !== 0 : false);
      return r;
    }
    default: {
      // SAR
      const sh = 32 - bits;
      const sa = (a << sh) >> sh;
      const r = (sa >> count) & mask;
      const cf = (sa >> (count - 1)) & 1;
      shiftFlags(cpu, r, s, cf, false);
      return r;
    }
  }
}

/** SHL/SHR/SAR flags at 32 bits: SF/ZF/PF from r (int32), CF and OF as given, AF cleared. */
function shiftFlags32(cpu: Cpu, r: number, cf: number, of: boolean): void {
  cpu.flags =
    (cpu.flags & ~ARITH_FLAGS) |
    cf |
    PARITY[r & 0xff]! |
    (r === 0 ? Flag.ZF : 0) |
    (r < 0 ? Flag.SF : 0) |
    (of ? Flag.OF : 0);
  cpu.lazyOp = Lazy.NONE;
}

/**
 * `shift` at 32 bits with a masked, non-zero count, on int32 values (no size tables); RCL/RCR
 * go to the generic code.
 */
export function shift32(cpu: Cpu, op: number, a: number, count: number): number {
  switch (op) {
    case 0: {
      const r = (a << count) | (a >>> (32 - count));
      const cf = r & 1;
      rotFlags(cpu, cf, r < 0 !== (cf !== 0));
      return r;
    }
    case 1: {
      const r = (a >>> count) | (a << (32 - count));
      rotFlags(cpu, r < 0 ? 1 : 0, r < 0 !== ((r & 0x4000_0000) !== 0));
      return r;
    }
    case 4:
    case 6: {
      const r = a << count;
      const cf = (a >>> (32 - count)) & 1;
      shiftFlags32(cpu, r, cf, r < 0 !== (cf !== 0));
      return r;
    }
    case 5: {
      const r = (a >>> count) | 0;
      shiftFlags32(cpu, r, (a >>> (count - 1)) & 1, count === 1 && a < 0);
      return r;
    }
    case 7: {
      const r = a >> count;
      shiftFlags32(cpu, r, (a >> (count - 1)) & 1, false);
      return r;
    }
    default:
      return shift(cpu, op, a, count, 2) | 0;
  }
}

/** SHL/SHR/SAR flags at 16 bits: SF/ZF/PF from r (0..0xFFFF), CF and OF as given, AF cleared. */
function shiftFlags16(cpu: Cpu, r: number, cf: number, of: boolean): void {
  cpu.flags =
    (cpu.flags & ~ARITH_FLAGS) |
    cf |
    PARITY[r & 0xff]! |
    (r === 0 ? Flag.ZF : 0) |
    ((r & 0x8000) !== 0 ? Flag.SF : 0) |
    (of ? Flag.OF : 0);
  cpu.lazyOp = Lazy.NONE;
}

/**
 * `shift` at 16 bits with a masked, non-zero count (1..31) on a 16-bit value, without the size
 * tables; RCL/RCR go to the generic code. Used by the 16-bit decode cache (icache16.ts); the
 * table handlers keep the generic `shift`, so the differential test compares the two.
 */
export function shift16(cpu: Cpu, op: number, a: number, count: number): number {
  switch (op) {
    case 0: {
      const c = count & 15;
      const r = c === 0 ? a : ((a << c) | (a >>> (16 - c))) & 0xffff;
      const cf = r & 1;
      rotFlags(cpu, cf, ((r & 0x8000) !== 0) !== (cf !== 0));
      return r;
    }
    case 1: {
      const c = count & 15;
      const r = c === 0 ? a : ((a >>> c) | (a << (16 - c))) & 0xffff;
      const cf = (r & 0x8000) !== 0 ? 1 : 0;
      rotFlags(cpu, cf, (cf !== 0) !== ((r & 0x4000) !== 0));
      return r;
    }
    case 4:
    case 6: {
      const r = (a << count) & 0xffff;
      const cf = count <= 16 ? (a >>> (16 - count)) & 1 : 0;
      shiftFlags16(cpu, r, cf, ((r & 0x8000) !== 0) !== (cf !== 0));
      return r;
    }
    case 5: {
      const r = a >>> count;
      shiftFlags16(cpu, r, (a >>> (count - 1)) & 1, count === 1 && (a & 0x8000) !== 0);
      return r;
    }
    case 7: {
      const sa = (a << 16) >> 16;
      const r = (sa >> count) & 0xffff;
      shiftFlags16(cpu, r, (sa >> (count - 1)) & 1, false);
      return r;
    }
    default:
      return shift(cpu, op, a, count, 1);
  }
}

/** Group 2 with the count from Ib (C0/C1), 1 (D0/D1) or CL (D2/D3). */
export function group2(s: SizeIdx, countFrom: "ib" | "one" | "cl"): Handler {
  if (s === 2)
    return (cpu) => {
      cpu.decodeModrm();
      const a = cpu.isReg !== 0 ? cpu.r32[cpu.modRm]! : cpu.read32(cpu.eaSeg, cpu.ea);
      const count = (countFrom === "ib" ? cpu.fetch8() : countFrom === "one" ? 1 : cpu.r8[4]!) & 0x1f;
      if (count === 0) return;
      const r = shift32(cpu, cpu.modReg, a, count);
      if (cpu.isReg !== 0) cpu.r32[cpu.modRm] = r;
      else cpu.write32(cpu.eaSeg, cpu.ea, r);
    };
  return (cpu) => {
    cpu.decodeModrm();
    const a = s === 1 ? cpu.readE16() : cpu.readE8();
    const count = countFrom === "ib" ? cpu.fetch8() : countFrom === "one" ? 1 : cpu.r8[4]!;
    const r = shift(cpu, cpu.modReg, a, count, s);
    if ((count & 0x1f) !== 0) writeE(cpu, s, r);
  };
}

/** SHLD (0F A4 Ib, 0F A5 CL) and SHRD (0F AC, 0F AD). */
export function shxd(s: 1 | 2, right: boolean, countFrom: "ib" | "cl"): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const a = s === 2 ? cpu.readE32() : cpu.readE16();
    const b = cpu.getReg(s, cpu.modReg);
    const count = (countFrom === "ib" ? cpu.fetch8() : cpu.r8[4]!) & 0x1f;
    if (count === 0) return;
    let r: number;
    let cf: number;
    if (s === 2) {
      if (right) {
        r = (a >>> count) | (b << (32 - count));
        cf = (a >>> (count - 1)) & 1;
      } else {
        r = (a << count) | (b >>> (32 - count));
        cf = (a >>> (32 - count)) & 1;
      }
    } else {
      // 16-bit: shift the 32-bit concatenation (counts above 16 give the i686 pattern of a:b:a).
      if (right) {
        const v = (a & 0xffff) + (b & 0xffff) * 0x1_0000 + (a & 0xffff) * 0x1_0000_0000;
        r = Math.floor(v / 2 ** count) & 0xffff;
        cf = Math.floor(v / 2 ** (count - 1)) & 1;
      } else {
        const v = ((a & 0xffff) * 0x1_0000_0000 + (b & 0xffff) * 0x1_0000 + (a & 0xffff)) * 2 ** count;
        r = Math.floor(v / 0x1_0000_0000) & 0xffff;
        cf = Math.floor(v / 0x1_0000_0000_0000) & 1;
      }
    }
    const sign = SIZE_SIGN[s];
    shiftFlags(cpu, r, s, cf, ((r ^ a) & sign) !== 0);
    writeE(cpu, s, r);
  };
}
