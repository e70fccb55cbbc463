/** String instructions: MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with REP/REPE/REPNE, both address sizes. */
import { alu } from "./ops-alu.js";
import { ioAllowed } from "./ops-control.js";
import type { Cpu, Handler } from "./cpu.js";
import { AccessKind } from "./hooks.js";
import { Flag, Sreg, type SizeIdx } from "./state.js";

export const StrKind = { MOVS: 0, CMPS: 1, STOS: 2, LODS: 3, SCAS: 4, INS: 5, OUTS: 6 } as const;

function rd(cpu: Cpu, s: SizeIdx, seg: number, off: number): number {
  return s === 2 ? cpu.read32(seg, off) : s === 1 ? cpu.read16(seg, off) : cpu.read8(seg, off);
}

function wr(cpu: Cpu, s: SizeIdx, seg: number, off: number, v: number): void {
  if (s === 2) cpu.write32(seg, off, v);
  else if (s === 1) cpu.write16(seg, off, v);
  else cpu.write8(seg, off, v);
}

/** One iteration. SI/DI are updated only after the memory accesses succeed. */
function once(cpu: Cpu, kind: number, s: SizeIdx, delta: number, srcSeg: number): void {
  const ad32 = cpu.ad32;
  const si = ad32 ? cpu.r32[6]! : cpu.r16[12]!;
  const di = ad32 ? cpu.r32[7]! : cpu.r16[14]!;
  let useSi = false;
  let useDi = false;
  switch (kind) {
    case 0:
      wr(cpu, s, Sreg.ES, di, rd(cpu, s, srcSeg, si));
      useSi = useDi = true;
      break;
    case 1:
      alu(cpu, 7, rd(cpu, s, srcSeg, si), rd(cpu, s, Sreg.ES, di), s);
      useSi = useDi = true;
      break;
    case 2:
      wr(cpu, s, Sreg.ES, di, cpu.getReg(s, 0));
      useDi = true;
      break;
    case 3:
      cpu.setReg(s, 0, rd(cpu, s, srcSeg, si));
      useSi = true;
      break;
    case 4:
      alu(cpu, 7, cpu.getReg(s, 0), rd(cpu, s, Sreg.ES, di), s);
      useDi = true;
      break;
    case 5: {
      const port = cpu.r16[4]!;
      const n = 1 << s;
      // The destination is checked before the port is read (a read may have side effects).
      cpu.linWrite(Sreg.ES, di, n);
      cpu.slowCheck = 1;
      wr(cpu, s, Sreg.ES, di, cpu.io.read(port, n as 1 | 2 | 4));
      useDi = true;
      break;
    }
    default: {
      const v = rd(cpu, s, srcSeg, si);
      cpu.slowCheck = 1;
      cpu.io.write(cpu.r16[4]!, (1 << s) as 1 | 2 | 4, v);
      useSi = true;
    }
  }
  if (ad32) {
    if (useSi) cpu.r32[6] = si + delta;
    if (useDi) cpu.r32[7] = di + delta;
  } else {
    if (useSi) cpu.r16[12] = si + delta;
    if (useDi) cpu.r16[14] = di + delta;
  }
}

function segRangeOk(cpu: Cpu, seg: number, off: number, n: number, access: number): boolean {
  const o = off >>> 0;
  return o >= cpu.segMin[seg]! && o + n - 1 <= cpu.segMax[seg]! && (cpu.segAccess[seg]! & access) === access;
}

/**
 * Fast REP MOVS/STOS (DF = 0): page-sized chunks, each translated once (through paging when it
 * is on) and copied/filled in RAM directly. ECX/ESI/EDI (CX/SI/DI with 16-bit addressing, when
 * the whole run stays below 64 KiB so no offset wraps) are updated after every chunk, so a fault
 * (#PF on the next page) leaves a restartable state. Returns true when every iteration is done,
 * false to let the element loop finish from the current registers (an element straddling pages,
 * MMIO, an overlapping forward copy, a segment limit, an offset that would wrap).
 */
function fastRep(cpu: Cpu, kind: number, s: SizeIdx, srcSeg: number): boolean {
  if ((cpu.flags & Flag.DF) !== 0) return false;
  const ad32 = cpu.ad32;
  const movs = kind === StrKind.MOVS;
  let count = ad32 ? cpu.r32[1]! >>> 0 : cpu.r16[2]!;
  if (count > 0x1000_0000) return false;
  const total = count << s;
  if (!ad32 && (cpu.r16[14]! + total > 0x1_0000 || (movs && cpu.r16[12]! + total > 0x1_0000))) return false;
  if (!segRangeOk(cpu, Sreg.ES, ad32 ? cpu.r32[7]! : cpu.r16[14]!, total, 2)) return false;
  if (movs && !segRangeOk(cpu, srcSeg, ad32 ? cpu.r32[6]! : cpu.r16[12]!, total, 1)) return false;
  const u8 = cpu.ramU8;
  const kinds = cpu.pageKind;
  const v = movs ? 0 : cpu.getReg(s, 0);
  const byteFill =
    s === 0 || (s === 1 && (v & 0xff) === v >>> 8) || (s === 2 && v === (((v & 0xff) * 0x0101_0101) | 0));
  while (count > 0) {
    const di = ad32 ? cpu.r32[7]! : cpu.r16[14]!;
    const si = ad32 ? cpu.r32[6]! : cpu.r16[12]!;
    const dlin = (cpu.segBase[Sreg.ES]! + di) | 0;
    let room = 0x1000 - (dlin & 0xfff);
    let slin = 0;
    if (movs) {
      slin = (cpu.segBase[srcSeg]! + si) | 0;
      room = Math.min(room, 0x1000 - (slin & 0xfff));
    }
    const elems = Math.min(count, room >>> s);
    if (elems === 0) return false;
    const bytes = elems << s;
    const dst = cpu.translate(dlin, AccessKind.WRITE) >>> 0;
    if (kinds[dst >>> 12] !== 0) return false;
    if (movs) {
      const src = cpu.translate(slin, AccessKind.READ) >>> 0;
      if (kinds[src >>> 12] !== 0) return false;
      // A forward copy onto its own source replicates element by element: leave it to the loop.
      if (dst > src && dst < src + bytes) return false;
      u8.copyWithin(dst, src, src + bytes);
      if (ad32) cpu.r32[6] = si + bytes;
      else cpu.r16[12] = si + bytes;
    } else if (byteFill) u8.fill(v & 0xff, dst, dst + bytes);
    else {
      const view = cpu.ramView;
      for (let o = 0; o < bytes; o += 1 << s) {
        if (s === 2) view.setInt32(dst + o, v, true);
        else view.setUint16(dst + o, v, true);
      }
    }
    count -= elems;
    if (ad32) {
      cpu.r32[7] = di + bytes;
      cpu.r32[1] = count;
    } else {
      cpu.r16[14] = di + bytes;
      cpu.r16[2] = count;
    }
  }
  return true;
}

export function stringOp(kind: number, s: SizeIdx): Handler {
  const cmp = kind === StrKind.CMPS || kind === StrKind.SCAS;
  return (cpu) => {
    const n = 1 << s;
    const delta = (cpu.flags & Flag.DF) !== 0 ? -n : n;
    const srcSeg = cpu.dataSeg;
    if ((kind === StrKind.INS || kind === StrKind.OUTS) && !ioAllowed(cpu, cpu.r16[4]!, n)) cpu.gp0();
    if (cpu.rep === 0) {
      once(cpu, kind, s, delta, srcSeg);
      return;
    }
    const ad32 = cpu.ad32;
    if ((kind === StrKind.MOVS || kind === StrKind.STOS) && fastRep(cpu, kind, s, srcSeg)) return;
    let count = ad32 ? cpu.r32[1]! >>> 0 : cpu.r16[2]!;
    if (count === 0) return;
    const repe = cpu.rep === 2;
    while (count !== 0) {
      once(cpu, kind, s, delta, srcSeg);
      count = ad32 ? count - 1 : (count - 1) & 0xffff;
      if (ad32) cpu.r32[1] = count;
      else cpu.r16[2] = count;
      if (cmp && cpu.getZF() !== repe) break;
    }
  };
}
