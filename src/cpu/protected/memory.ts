/**
 * Linear-address access at an explicit privilege, for the protected-mode unit: descriptor
 * tables, the TSS and the inner stack of a privilege change are "implicit supervisor" accesses
 * (SDM 4.6) whatever the CPL is, while the outer stack of a far return is read at the caller's
 * privilege. Translation goes through the paging unit while CR0.PG = 1; RAM is accessed
 * directly, anything else through the memory bus.
 */
import type { Cpu } from "../cpu.js";
import { AccessKind } from "../hooks.js";
import type { Paging } from "../paging.js";

export class LinearAccess {
  constructor(
    private readonly cpu: Cpu,
    private readonly paging: Paging,
  ) {}

  private phys(lin: number, kind: AccessKind, user: boolean): number {
    return this.cpu.paging === null ? lin : this.paging.translateAs(lin, kind, user);
  }

  read8(lin: number, user: boolean): number {
    const p = this.phys(lin, AccessKind.READ, user);
    const cpu = this.cpu;
    if (cpu.pageKind[p >>> 12] === 0) return cpu.ramU8[p >>> 0]!;
    return cpu.bus.read(p >>> 0, 1);
  }

  read16(lin: number, user: boolean): number {
    if ((lin & 0xfff) === 0xfff) return this.read8(lin, user) | (this.read8((lin + 1) | 0, user) << 8);
    const p = this.phys(lin, AccessKind.READ, user);
    const cpu = this.cpu;
    if (cpu.pageKind[p >>> 12] === 0) return cpu.ramView.getUint16(p >>> 0, true);
    return cpu.bus.read(p >>> 0, 2);
  }

  /** A 32-bit read (int32). */
  read32(lin: number, user: boolean): number {
    if ((lin & 0xfff) > 0xffc) return this.read16(lin, user) | (this.read16((lin + 2) | 0, user) << 16);
    const p = this.phys(lin, AccessKind.READ, user);
    const cpu = this.cpu;
    if (cpu.pageKind[p >>> 12] === 0) return cpu.ramView.getInt32(p >>> 0, true);
    return cpu.bus.read(p >>> 0, 4) | 0;
  }

  write8(lin: number, v: number, user: boolean): void {
    const p = this.phys(lin, AccessKind.WRITE, user);
    const cpu = this.cpu;
    if (cpu.pageKind[p >>> 12] === 0) cpu.ramU8[p >>> 0] = v;
    else cpu.bus.write(p >>> 0, 1, v & 0xff);
  }

  write16(lin: number, v: number, user: boolean): void {
    if ((lin & 0xfff) === 0xfff) {
      this.phys(lin, AccessKind.WRITE, user);
      this.phys((lin + 1) | 0, AccessKind.WRITE, user);
      this.write8(lin, v, user);
      this.write8((lin + 1) | 0, v >>> 8, user);
      return;
    }
    const p = this.phys(lin, AccessKind.WRITE, user);
    const cpu = this.cpu;
    if (cpu.pageKind[p >>> 12] === 0) cpu.ramView.setUint16(p >>> 0, v & 0xffff, true);
    else cpu.bus.write(p >>> 0, 2, v & 0xffff);
  }

  write32(lin: number, v: number, user: boolean): void {
    if ((lin & 0xfff) > 0xffc) {
      this.phys(lin, AccessKind.WRITE, user);
      this.phys((lin + 3) | 0, AccessKind.WRITE, user);
      this.write16(lin, v, user);
      this.write16((lin + 2) | 0, v >>> 16, user);
      return;
    }
    const p = this.phys(lin, AccessKind.WRITE, user);
    const cpu = this.cpu;
    if (cpu.pageKind[p >>> 12] === 0) cpu.ramView.setInt32(p >>> 0, v, true);
    else cpu.bus.write(p >>> 0, 4, v >>> 0);
  }

  /** Checks that [lin, lin+len) may be written at this privilege (all pages), writing nothing. */
  probeWrite(lin: number, len: number, user: boolean): void {
    if (this.cpu.paging === null || len <= 0) return;
    this.paging.translateAs(lin, AccessKind.WRITE, user);
    const last = (lin + len - 1) | 0;
    if ((last ^ lin) >>> 12 !== 0) this.paging.translateAs(last, AccessKind.WRITE, user);
  }
}
