/**
 * Memory forms of D8..DF (mod != 3): loads and stores in every format, arithmetic with
 * memory operands, FLDCW/FNSTCW/FNSTSW m16, FLDENV/FNSTENV, FRSTOR/FNSAVE. Memory is read
 * before the state changes, and the state changes only after all writes succeeded.
 */
import { Cmp, compare, Flag } from "./arith.js";
import {
  loadBcd,
  loadF32,
  loadF64,
  loadInt,
  loadInt32,
  storeBcd,
  storeF32,
  storeF64,
  storeInt,
} from "./convert.js";
import { decodeEnv, encodeEnv, envSize, type FpuEnv } from "./env.js";
import { type F80, f80, INDEFINITE } from "./float80.js";
import { type FpuCore, STACK_UNDERFLOW, SW_TOP_MASK } from "./core.js";
import type { FpuInstrInfo } from "./fpu.js";

/** Returns 0 for an invalid encoding, 1 for an executed instruction, 2 for a control one. */
export function execMem(fpu: FpuCore, op: number, reg: number, lin: number, info: FpuInstrInfo): number {
  const h = fpu.host;
  switch (op) {
    case 0: {
      const c = fpu.begin();
      arithMem(fpu, reg, loadF32(h.readU32(lin), c, false));
      return 1;
    }
    case 2: {
      const n = h.readU32(lin) | 0;
      fpu.begin();
      arithMem(fpu, reg, loadInt32(n));
      return 1;
    }
    case 4: {
      const lo = h.readU32(lin);
      const hi = h.readU32(lin + 4);
      const c = fpu.begin();
      arithMem(fpu, reg, loadF64(lo, hi, c, false));
      return 1;
    }
    case 6: {
      const n = (h.readU16(lin) << 16) >> 16;
      fpu.begin();
      arithMem(fpu, reg, loadInt32(n));
      return 1;
    }
    case 1:
      switch (reg) {
        case 0: {
          const bits = h.readU32(lin);
          const c = fpu.begin();
          fpu.load(loadF32(bits, c, true));
          return 1;
        }
        case 2:
        case 3: {
          const c = fpu.begin();
          let bits: number | null = 0xffc00000;
          if (fpu.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
          else bits = storeF32(fpu.st(0), c);
          if (bits === null || fpu.blocked(c.flags)) {
            fpu.raise(c.flags);
            return 1;
          }
          h.writeU32(lin, bits);
          storeDone(fpu, reg === 3);
          return 1;
        }
        case 4:
          loadEnv(fpu, lin, info);
          return 2;
        case 5:
          fpu.cw = (h.readU16(lin) & 0x1f3f) | 0x40;
          fpu.updateSummary();
          return 2;
        case 6:
          storeEnv(fpu, lin, info, false);
          return 2;
        case 7:
          h.writeU16(lin, fpu.cw);
          return 2;
        default:
          return 0;
      }
    case 3:
      switch (reg) {
        case 0: {
          const n = h.readU32(lin) | 0;
          fpu.begin();
          fpu.load(loadInt32(n));
          return 1;
        }
        case 2:
        case 3:
          storeInteger(fpu, lin, 32, reg === 3);
          return 1;
        case 5: {
          const lo = h.readU32(lin);
          const hi = h.readU32(lin + 4);
          const se = h.readU16(lin + 8);
          fpu.begin();
          fpu.load(f80(se, hi, lo));
          return 1;
        }
        case 7: {
          const c = fpu.begin();
          let v: F80 = INDEFINITE;
          if (fpu.isEmpty(0)) {
            c.flags |= STACK_UNDERFLOW;
            if (fpu.blocked(c.flags)) {
              fpu.raise(c.flags);
              return 1;
            }
          } else v = fpu.st(0);
          h.writeU32(lin, v.lo);
          h.writeU32(lin + 4, v.hi);
          h.writeU16(lin + 8, v.se);
          storeDone(fpu, true);
          return 1;
        }
        default:
          return 0;
      }
    case 5:
      switch (reg) {
        case 0: {
          const lo = h.readU32(lin);
          const hi = h.readU32(lin + 4);
          const c = fpu.begin();
          fpu.load(loadF64(lo, hi, c, true));
          return 1;
        }
        case 2:
        case 3: {
          const c = fpu.begin();
          let pair: [number, number] | null = [0, 0xfff80000];
          if (fpu.isEmpty(0)) c.flags |= STACK_UNDERFLOW;
          else pair = storeF64(fpu.st(0), c);
          if (pair === null || fpu.blocked(c.flags)) {
            fpu.raise(c.flags);
            return 1;
          }
          h.writeU32(lin, pair[0]);
          h.writeU32(lin + 4, pair[1]);
          storeDone(fpu, reg === 3);
          return 1;
        }
        case 4:
          restoreImage(fpu, lin, info);
          return 2;
        case 6:
          storeEnv(fpu, lin, info, true);
          return 2;
        case 7:
          h.writeU16(lin, fpu.statusWord());
          return 2;
        default:
          return 0;
      }
    default:
      switch (reg) {
        case 0: {
          const n = (h.readU16(lin) << 16) >> 16;
          fpu.begin();
          fpu.load(loadInt32(n));
          return 1;
        }
        case 2:
        case 3:
          storeInteger(fpu, lin, 16, reg === 3);
          return 1;
        case 4: {
          const b: number[] = [];
          for (let i = 0; i < 10; i++) b.push(h.readU8(lin + i));
          fpu.begin();
          fpu.load(loadBcd(b));
          return 1;
        }
        case 5: {
          const lo = h.readU32(lin);
          const hi = h.readU32(lin + 4);
          fpu.begin();
          fpu.load(loadInt((BigInt(hi | 0) << 32n) | BigInt(lo >>> 0)));
          return 1;
        }
        case 6: {
          const c = fpu.begin();
          let bytes: number[];
          if (fpu.isEmpty(0)) {
            c.flags |= STACK_UNDERFLOW;
            bytes = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];
          } else bytes = storeBcd(fpu.st(0), c);
          if (fpu.blocked(c.flags)) {
            fpu.raise(c.flags);
            return 1;
          }
          for (let i = 0; i < 10; i++) h.writeU8(lin + i, bytes[i]!);
          storeDone(fpu, true);
          return 1;
        }
        case 7:
          storeInteger(fpu, lin, 64, true);
          return 1;
        default:
          return 0;
      }
  }
}

/** After a successful store: flags, then pop for the popping form. */
function storeDone(fpu: FpuCore, popAfter: boolean): void {
  fpu.raise(fpu.ctx.flags);
  if (popAfter) fpu.pop();
}

function storeInteger(fpu: FpuCore, lin: number, bits: number, popAfter: boolean): void {
  const c = fpu.begin();
  let n: bigint;
  if (fpu.isEmpty(0)) {
    c.flags |= STACK_UNDERFLOW;
    n = -(1n << BigInt(bits - 1));
  } else n = storeInt(fpu.st(0), bits, c);
  if (fpu.blocked(c.flags)) {
    fpu.raise(c.flags);
    return;
  }
  const h = fpu.host;
  if (bits === 16) h.writeU16(lin, Number(n & 0xffffn));
  else if (bits === 32) h.writeU32(lin, Number(n & 0xffffffffn));
  else {
    h.writeU32(lin, Number(n & 0xffffffffn));
    h.writeU32(lin + 4, Number((n >> 32n) & 0xffffffffn));
  }
  storeDone(fpu, popAfter);
}

/** D8/DA/DC/DE memory forms: ST0 op= operand (reg 2/3: compare, 3 pops). */
function arithMem(fpu: FpuCore, reg: number, b: F80): void {
  const c = fpu.ctx;
  // A denormal memory real raised DE on conversion; the x87 reports it only when the
  // operation goes on to use the value (not for a stack fault or a NaN/unsupported ST0).
  if (c.flags & Flag.DE) c.memDenormal = b;
  c.flags &= ~Flag.DE;
  if (fpu.isEmpty(0)) {
    c.flags = STACK_UNDERFLOW;
    if (reg === 2 || reg === 3) fpu.finishCompare(Cmp.Unordered, reg === 3 ? 1 : 0);
    else fpu.commit(0, INDEFINITE, 0);
    return;
  }
  const a = fpu.st(0);
  if (reg === 2 || reg === 3) fpu.finishCompare(compare(a, b, false, c), reg === 3 ? 1 : 0);
  else fpu.commit(0, fpu.compute(reg, a, b), 0);
}

function env(fpu: FpuCore): FpuEnv {
  return {
    cw: fpu.cw,
    sw: fpu.statusWord(),
    tw: fpu.tagWord(),
    fip: fpu.fip,
    fcs: fpu.fcs,
    fop: fpu.fop,
    fdp: fpu.fdp,
    fds: fpu.fds,
  };
}

/** FNSTENV (then masks all exceptions) or FNSAVE (environment + registers, then FNINIT). */
function storeEnv(fpu: FpuCore, lin: number, info: FpuInstrInfo, withRegs: boolean): void {
  const n = envSize(info.opSize32);
  const total = withRegs ? n + 80 : n;
  const img = fpu.buf.subarray(0, total);
  img.fill(0);
  encodeEnv(env(fpu), info.opSize32, info.protectedMode, img);
  if (withRegs) {
    for (let i = 0; i < 8; i++) {
      const v = fpu.st(i);
      const o = n + i * 10;
      for (let b = 0; b < 4; b++) {
        img[o + b] = (v.lo >>> (8 * b)) & 0xff;
        img[o + 4 + b] = (v.hi >>> (8 * b)) & 0xff;
      }
      img[o + 8] = v.se & 0xff;
      img[o + 9] = v.se >>> 8;
    }
  }
  writeImage(fpu, lin, img);
  if (withRegs) fpu.reset();
  else {
    fpu.cw |= 0x3f;
    fpu.updateSummary();
  }
}

/** Writes an image: the last byte first (so a fault on a second page comes before any write). */
function writeImage(fpu: FpuCore, lin: number, img: Uint8Array): void {
  const h = fpu.host;
  h.writeU8(lin + img.length - 1, img[img.length - 1]!);
  for (let o = 0; o < img.length; o++) h.writeU8(lin + o, img[o]!);
}

function readImage(fpu: FpuCore, lin: number, len: number): Uint8Array {
  const img = fpu.buf.subarray(0, len);
  for (let o = 0; o < len; o++) img[o] = fpu.host.readU8(lin + o);
  return img;
}

function loadEnv(fpu: FpuCore, lin: number, info: FpuInstrInfo): void {
  const img = readImage(fpu, lin, envSize(info.opSize32));
  applyEnv(fpu, img, info);
}

function applyEnv(fpu: FpuCore, img: Uint8Array, info: FpuInstrInfo): void {
  const env = decodeEnv(img, info.opSize32, info.protectedMode);
  fpu.cw = (env.cw & 0x1f3f) | 0x40;
  fpu.top = (env.sw >>> 11) & 7;
  fpu.sw = env.sw & ~SW_TOP_MASK & 0xffff;
  for (let r = 0; r < 8; r++) fpu.empty[r] = ((env.tw >>> (2 * r)) & 3) === 3 ? 1 : 0;
  fpu.fip = env.fip;
  fpu.fcs = env.fcs;
  fpu.fop = env.fop;
  fpu.fdp = env.fdp;
  fpu.fds = env.fds;
  fpu.updateSummary();
}

/** FRSTOR: every byte is read before any state changes. */
function restoreImage(fpu: FpuCore, lin: number, info: FpuInstrInfo): void {
  const n = envSize(info.opSize32);
  const img = readImage(fpu, lin, n + 80);
  const regs: F80[] = [];
  for (let i = 0; i < 8; i++) {
    const o = n + i * 10;
    const lo = (img[o]! | (img[o + 1]! << 8) | (img[o + 2]! << 16) | (img[o + 3]! << 24)) >>> 0;
    const hi = (img[o + 4]! | (img[o + 5]! << 8) | (img[o + 6]! << 16) | (img[o + 7]! << 24)) >>> 0;
    regs.push(f80(img[o + 8]! | (img[o + 9]! << 8), hi, lo));
  }
  applyEnv(fpu, img.subarray(0, n), info);
  for (let i = 0; i < 8; i++) {
    const r = (fpu.top + i) & 7;
    fpu.se[r] = regs[i]!.se;
    fpu.hi[r] = regs[i]!.hi;
    fpu.lo[r] = regs[i]!.lo;
  }
}
