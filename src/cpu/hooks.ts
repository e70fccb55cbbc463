/**
 * The extension points for protected mode and paging. The core (real mode, flat 32-bit) runs
 * without them; `Cpu` calls a unit only when the guest enters the state it handles.
 */
import type { InterruptKind } from "./fault.js";

/** What kind of access a linear address is translated for. */
export const AccessKind = { READ: 0, WRITE: 1, FETCH: 2 } as const;
export type AccessKind = (typeof AccessKind)[keyof typeof AccessKind];

/**
 * Linear → physical translation while CR0.PG = 1. `translate` throws the CPU's preallocated
 * `CpuFault` (#PF, after setting CR2) when the access is not allowed. It is called for every
 * access that does not cross a page (crossing accesses call it once per byte), so it should be
 * a TLB lookup keyed by `linear >>> 12` with the walk on a miss. The CPU's privilege for U/S
 * checks is `cpu.cpl`.
 */
export interface PagingUnit {
  translate(linear: number, kind: AccessKind): number;
  /** MOV CR3 (global = false) or a CR0/CR4 change (global = true): drop cached translations. */
  flush(global: boolean): void;
  /** INVLPG. */
  invalidatePage(linear: number): void;
}

/**
 * Protected-mode behaviour: everything that depends on descriptors. Called by the core when
 * CR0.PE = 1 (and for V86 mode, EFLAGS.VM = 1, where the unit decides). Each method either
 * completes or throws the CPU's `CpuFault` before changing architectural state.
 */
export interface ProtectedModeUnit {
  /** MOV/POP Sreg, LDS/LES/LFS/LGS/LSS: descriptor-checked load into the segment cache. */
  loadSegment(sreg: number, selector: number): void;
  /** JMP ptr16:16/32 and JMP m16:16/32 (cpu.op32 gives the operand size). */
  jumpFar(selector: number, offset: number): void;
  /** CALL far (call gates, privilege change). Return address is cpu.eip. */
  callFar(selector: number, offset: number): void;
  /** RET far / RET far imm16. */
  returnFar(popBytes: number): void;
  /** IRET/IRETD (task return, outer level, V86 return). */
  iret(): void;
  /** Exception/interrupt delivery through the IDT. */
  deliverInterrupt(vector: number, kind: InterruptKind, errorCode: number): void;
  /** Port access check when CPL > IOPL or in V86 mode: the TSS I/O permission bitmap. */
  ioAllowed(port: number, size: number): boolean;
  /**
   * The instructions that only exist for protected mode: 0F 00 (SLDT/STR/LLDT/LTR/VERR/VERW),
   * LAR (0F 02), LSL (0F 03), ARPL (63), SYSENTER (0F 34), SYSEXIT (0F 35). `opcode` is the
   * one-byte opcode or 0x100 | second byte for 0F xx; the ModR/M byte (when the instruction has
   * one) is already decoded into the CPU's modrm fields. Returns false for an invalid encoding (#UD).
   */
  execute(opcode: number): boolean;
}

/** What the core passes to the x87 unit for FNSTENV/FNSAVE (the last instruction and operand pointers). */
export interface FpuInstrInfo {
  cs: number;
  ip: number;
  dataSelector: number;
  dataOffset: number;
  opSize32: boolean;
  protectedMode: boolean;
}

/** The x87 unit as the core drives it (src/cpu/x87/fpu.ts implements it). */
export interface X87Unit {
  /** Executes D8-DF with its ModR/M byte; `linear` is the memory operand's address. False = #UD. */
  exec(opcode: number, modrm: number, linear: number, info: FpuInstrInfo): boolean;
  reset(): void;
  statusWord(): number;
  /** An unmasked exception is pending (status word ES): the next waiting instruction reports it. */
  hasPendingException(): boolean;
}

/** Memory and flags access the core gives the x87 unit (linear addresses, through translation). */
export interface FpuHost {
  readU8(linear: number): number;
  readU16(linear: number): number;
  readU32(linear: number): number;
  writeU8(linear: number, v: number): void;
  writeU16(linear: number, v: number): void;
  writeU32(linear: number, v: number): void;
  getEflags(): number;
  setEflags(v: number): void;
}
