/**
 * System instructions: control/debug registers, descriptor-table registers, CPUID, RDTSC,
 * MSRs, cache/TLB control, UD2, multi-byte NOP, and the x87 escape decoding.
 */
import type { Cpu, Handler } from "./cpu.js";
import { CpuStateError, Vector } from "./fault.js";
import { Cr0, Flag, Sreg } from "./state.js";

function requireCpl0(cpu: Cpu): void {
  if ((cpu.flags & Flag.VM) !== 0 || cpu.cpl !== 0) cpu.gp0();
}

/** MOV CR0: PE/PG changes switch the translation and drop the fetch cache. */
export function writeCr0(cpu: Cpu, v: number): void {
  v = (v | Cr0.ET) >>> 0;
  if ((v & Cr0.PG) !== 0 && (v & Cr0.PE) === 0) cpu.gp0();
  if ((v & 0x6000_0000) === 0x2000_0000) cpu.gp0(); // NW (bit 29) without CD (bit 30)
  const old = cpu.cr0;
  cpu.cr0 = v;
  if (((old ^ v) & (Cr0.PE | Cr0.PG | Cr0.WP)) !== 0) {
    if ((v & Cr0.PG) !== 0) {
      if (cpu.pagingUnit === null) {
        cpu.cr0 = old;
        throw new CpuStateError("the guest enabled paging (CR0.PG) but no paging unit is installed");
      }
      cpu.paging = cpu.pagingUnit;
      cpu.pagingUnit.flush(true);
    } else cpu.paging = null;
    if (((old ^ v) & Cr0.PE) !== 0 && (v & Cr0.PE) === 0) {
      // Back to real mode: the caches keep base/limit, every segment becomes read/write.
      for (let s = 0; s < 6; s++) {
        cpu.segAccess[s] = 3;
        cpu.updateFlat(s);
      }
      cpu.cpl = 0;
    }
    cpu.invalidateFetch();
  }
}

export function writeCr3(cpu: Cpu, v: number): void {
  cpu.cr3 = v >>> 0;
  if (cpu.pagingUnit !== null) cpu.pagingUnit.flush(false);
  cpu.invalidateFetch();
}

/**
 * CR4 bits this CPU implements: TSD DE PSE PGE. VME, PVI, PAE, MCE and PCE are not reported in
 * CPUID, so setting them is #GP(0) as on a processor without them.
 */
const CR4_VALID = 0x9c;

export function writeCr4(cpu: Cpu, v: number): void {
  if ((v & ~CR4_VALID) !== 0) cpu.gp0();
  cpu.cr4 = v >>> 0;
  if (cpu.pagingUnit !== null) cpu.pagingUnit.flush(true);
  cpu.invalidateFetch();
}

/** MOV r32,CRn (0F 20) / MOV CRn,r32 (0F 22): the register operand is always the rm field. */
export function movCr(store: boolean): Handler {
  return (cpu) => {
    cpu.decodeModrmRegOnly();
    requireCpl0(cpu);
    const n = cpu.modReg;
    const r = cpu.modRm;
    if (n === 1 || n > 4) cpu.ud();
    if (!store) {
      cpu.r32[r] = n === 0 ? cpu.cr0 : n === 2 ? cpu.cr2 : n === 3 ? cpu.cr3 : cpu.cr4;
      return;
    }
    const v = cpu.r32[r]!;
    if (n === 0) writeCr0(cpu, v);
    else if (n === 2) cpu.cr2 = v;
    else if (n === 3) writeCr3(cpu, v);
    else writeCr4(cpu, v);
  };
}

/** MOV r32,DRn (0F 21) / MOV DRn,r32 (0F 23): stored, no breakpoints are raised. */
export function movDr(store: boolean): Handler {
  return (cpu) => {
    cpu.decodeModrmRegOnly();
    requireCpl0(cpu);
    let n = cpu.modReg;
    if (n === 4 || n === 5) {
      if ((cpu.cr4 & 0x8) !== 0) cpu.ud(); // CR4.DE
      n += 2;
    }
    if (store) cpu.dr[n] = cpu.r32[cpu.modRm]!;
    else
      cpu.r32[cpu.modRm] =
        n === 6 ? (cpu.dr[6]! | 0xffff_0ff0) >>> 0 : n === 7 ? cpu.dr[7]! | 0x400 : cpu.dr[n]!;
  };
}

/** Group 7 (0F 01): SGDT SIDT LGDT LIDT SMSW LMSW INVLPG. */
export const group7: Handler = (cpu) => {
  cpu.decodeModrm();
  const op = cpu.modReg;
  switch (op) {
    case 0:
    case 1: {
      if (cpu.isReg) cpu.ud();
      const base = op === 0 ? cpu.gdtrBase : cpu.idtrBase;
      const limit = op === 0 ? cpu.gdtrLimit : cpu.idtrLimit;
      cpu.linWrite(cpu.eaSeg, cpu.ea, 6);
      cpu.write16(cpu.eaSeg, cpu.ea, limit);
      // With a 16-bit operand size the 386+ stores the top byte as 0 (the 286 stored FF).
      cpu.write32(cpu.eaSeg, next(cpu, 2), cpu.op32 ? base : base & 0xff_ffff);
      return;
    }
    case 2:
    case 3: {
      if (cpu.isReg) cpu.ud();
      requireCpl0(cpu);
      const limit = cpu.read16(cpu.eaSeg, cpu.ea);
      let base = cpu.read32(cpu.eaSeg, next(cpu, 2));
      if (!cpu.op32) base &= 0xff_ffff;
      if (op === 2) {
        cpu.gdtrBase = base >>> 0;
        cpu.gdtrLimit = limit;
      } else {
        cpu.idtrBase = base >>> 0;
        cpu.idtrLimit = limit;
      }
      return;
    }
    case 4: {
      const msw = cpu.cr0 & 0xffff;
      if (cpu.isReg && cpu.op32) cpu.r32[cpu.modRm] = cpu.cr0;
      else cpu.writeE16(msw);
      return;
    }
    case 6: {
      requireCpl0(cpu);
      const v = cpu.readE16();
      // LMSW can set PE but never clear it; it touches only PE MP EM TS.
      writeCr0(cpu, ((cpu.cr0 & ~0xe) | (v & 0xf) | (cpu.cr0 & Cr0.PE)) >>> 0);
      return;
    }
    case 7:
      if (cpu.isReg) cpu.ud();
      requireCpl0(cpu);
      if (cpu.pagingUnit !== null) cpu.pagingUnit.invalidatePage((cpu.segBase[cpu.eaSeg]! + cpu.ea) | 0);
      cpu.invalidateFetch();
      return;
    default:
      cpu.ud();
  }
};

function next(cpu: Cpu, n: number): number {
  return cpu.ad32 ? (cpu.ea + n) | 0 : (cpu.ea + n) & 0xffff;
}

/** CLTS (0F 06). */
export const clts: Handler = (cpu) => {
  requireCpl0(cpu);
  cpu.cr0 &= ~Cr0.TS;
};

/** INVD/WBINVD (0F 08, 09): no caches are modelled. */
export const invd: Handler = (cpu) => requireCpl0(cpu);

const cpuidOut = new Uint32Array(4);

/** CPUID (0F A2). */
export const cpuid: Handler = (cpu) => {
  cpu.cpuid.query(cpu.r32[0]!, cpuidOut);
  cpu.r32[0] = cpuidOut[0]!;
  cpu.r32[3] = cpuidOut[1]!;
  cpu.r32[1] = cpuidOut[2]!;
  cpu.r32[2] = cpuidOut[3]!;
};

/** RDTSC (0F 31): #GP when CR4.TSD and CPL > 0. */
export const rdtsc: Handler = (cpu) => {
  if ((cpu.cr4 & 0x4) !== 0 && cpu.cpl !== 0) cpu.gp0();
  const t = cpu.cpuid.readTsc();
  cpu.r32[0] = t % 0x1_0000_0000;
  cpu.r32[2] = Math.floor(t / 0x1_0000_0000);
};

/** RDMSR (0F 32) / WRMSR (0F 30). Unknown MSRs #GP(0). */
export function msr(write: boolean): Handler {
  return (cpu) => {
    requireCpl0(cpu);
    const index = cpu.r32[1]! >>> 0;
    if (write) {
      if (!cpu.cpuid.writeMsr(index, cpu.r32[0]!, cpu.r32[2]!)) cpu.gp0();
    } else {
      if (!cpu.cpuid.readMsr(index, cpuidOut)) cpu.gp0();
      cpu.r32[0] = cpuidOut[0]!;
      cpu.r32[2] = cpuidOut[1]!;
    }
  };
}

/** UD2 (0F 0B) and every undefined opcode. */
export const ud: Handler = (cpu) => cpu.ud();

/** NOP Ev (0F 1F /0): decodes and ignores its operand. */
export const nopEv: Handler = (cpu) => {
  cpu.decodeModrm();
};

/** Instructions handled by the protected-mode unit (#UD in real mode and V86 mode). */
export function protectedOnly(hasModrm: boolean): Handler {
  return (cpu) => {
    if (!cpu.protectedModeActive) cpu.ud();
    if (hasModrm) cpu.decodeModrm();
    if (!cpu.pm().execute(cpu.opcode)) cpu.ud();
  };
}

/** A waiting x87 instruction found an unmasked exception pending: #MF (CR0.NE) or FERR#. */
function fpuError(cpu: Cpu): void {
  if ((cpu.cr0 & Cr0.NE) !== 0) cpu.raise(Vector.MF);
  if (cpu.ferr !== null) cpu.ferr();
}

/** WAIT/FWAIT (9B): #NM when CR0.MP and CR0.TS are both set; reports pending x87 exceptions. */
export const fwait: Handler = (cpu) => {
  if ((cpu.cr0 & (Cr0.MP | Cr0.TS)) === (Cr0.MP | Cr0.TS)) cpu.raise(Vector.NM);
  if (cpu.fpu?.hasPendingException()) fpuError(cpu);
};

/** The x87 control instructions that do not wait (no pending-exception check). */
function nonWaiting(op: number, modrm: number): boolean {
  const reg = (modrm >> 3) & 7;
  if (op === 0xdb) return modrm >= 0xe0 && modrm <= 0xe4; // FNENI FNDISI FNCLEX FNINIT FNSETPM
  if (op === 0xd9) return modrm < 0xc0 && (reg === 6 || reg === 7); // FNSTENV FNSTCW
  if (op === 0xdd) return modrm < 0xc0 && (reg === 6 || reg === 7); // FNSAVE FNSTSW m16
  return op === 0xdf && modrm === 0xe0; // FNSTSW AX
}

/** Size in bytes of an x87 memory operand (op D8-DF, reg = ModR/M reg), negative when it is stored. */
export function x87MemOperand(op: number, reg: number, op32: boolean): number {
  const env = op32 ? 28 : 14;
  switch (op) {
    case 0xd8:
      return 4;
    case 0xd9:
      return [4, 4, -4, -4, env, 2, -env, -2][reg]!;
    case 0xda:
      return 4;
    case 0xdb:
      return [4, -4, -4, -4, 4, 10, 4, -10][reg]!;
    case 0xdc:
      return 8;
    case 0xdd:
      return [8, -8, -8, -8, env + 80, 8, -(env + 80), -2][reg]!;
    case 0xde:
      return 2;
    default:
      return [2, -2, -2, -2, 10, 8, -10, -8][reg]!;
  }
}

/**
 * x87 escape (D8-DF): #NM when CR0.EM or CR0.TS; FNSTSW AX (DF E0) here; everything else goes
 * to the attached FPU with the operand's linear address. Without an FPU the escape is decoded
 * and ignored, as a processor with no coprocessor does.
 */
export const fpuEscape: Handler = (cpu) => {
  cpu.decodeModrm();
  if ((cpu.cr0 & (Cr0.EM | Cr0.TS)) !== 0) cpu.raise(Vector.NM);
  if (!cpu.isReg) {
    // Segment limit and access check for the whole operand (the unit then uses linear addresses).
    const n = x87MemOperand(cpu.opcode, cpu.modReg, cpu.op32 !== 0);
    if (n > 0) cpu.linRead(cpu.eaSeg, cpu.ea, n);
    else cpu.linWrite(cpu.eaSeg, cpu.ea, -n);
  }
  const fpu = cpu.fpu;
  if (fpu === null) return;
  const modrm = (cpu.isReg ? 0xc0 : 0) | (cpu.modReg << 3) | cpu.modRm;
  if (fpu.hasPendingException() && !nonWaiting(cpu.opcode, modrm)) fpuError(cpu);
  if (cpu.opcode === 0xdf && modrm === 0xe0) {
    cpu.r16[0] = fpu.statusWord();
    return;
  }
  const info = cpu.fpuInfo;
  info.cs = cpu.segSel[Sreg.CS]!;
  info.ip = cpu.instrStart >>> 0;
  info.opSize32 = cpu.op32 !== 0;
  info.protectedMode = cpu.protectedModeActive;
  let linear = 0;
  if (!cpu.isReg) {
    linear = (cpu.segBase[cpu.eaSeg]! + cpu.ea) >>> 0;
    info.dataSelector = cpu.segSel[cpu.eaSeg]!;
    info.dataOffset = cpu.ea >>> 0;
  }
  if (!fpu.exec(cpu.opcode, modrm, linear, info)) cpu.ud();
};
