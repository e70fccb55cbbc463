/**
 * A stack frame being built by a far CALL through a gate or an interrupt: pushes go to memory
 * (limit-checked against the stack segment, translated at the stack's privilege) while the
 * CPU's registers stay untouched until the whole transfer has succeeded.
 */
import type { Cpu } from "../cpu.js";
import { Vector } from "../fault.js";
import { Sreg } from "../state.js";
import type { Descriptor } from "./descriptors.js";
import type { LinearAccess } from "./memory.js";

export class StackFrame {
  base = 0;
  /** Lowest and highest valid offsets (expand-down aware). */
  min = 0;
  max = 0;
  /** SS.B: ESP (true) or SP. */
  big = false;
  esp = 0;
  user = false;
  /** The #SS error code for a limit violation. */
  errorCode = 0;

  constructor(
    private readonly cpu: Cpu,
    private readonly mem: LinearAccess,
  ) {}

  /** The current stack (SS cache and ESP) at the current privilege. */
  onCurrent(ext: number): this {
    const cpu = this.cpu;
    this.base = cpu.segBase[Sreg.SS]!;
    this.min = cpu.segMin[Sreg.SS]!;
    this.max = cpu.segMax[Sreg.SS]!;
    this.big = cpu.stackBig !== 0;
    this.esp = cpu.r32[4]!;
    this.user = cpu.cpl === 3;
    this.errorCode = ext;
    return this;
  }

  /** A new stack described by `d` (already checked), starting at `esp`. */
  onNew(d: Descriptor, esp: number, user: boolean, errorCode: number): this {
    this.base = d.base;
    const big = (d.attr & 0x4000) !== 0;
    if (d.isData && (d.type & 4) !== 0) {
      this.min = (d.limit + 1) >>> 0;
      this.max = big ? 0xffff_ffff : 0xffff;
    } else {
      this.min = 0;
      this.max = d.limit >>> 0;
    }
    this.big = big;
    this.esp = esp | 0;
    this.user = user;
    this.errorCode = errorCode;
    return this;
  }

  private next(size: number): number {
    const sp = this.big ? (this.esp - size) | 0 : (this.esp - size) & 0xffff;
    const o = sp >>> 0;
    if (o < this.min || o + size - 1 > this.max) this.cpu.raise(Vector.SS, this.errorCode);
    this.esp = this.big ? sp : (this.esp & ~0xffff) | sp;
    return (this.base + sp) | 0;
  }

  push(v: number, size: number): void {
    const lin = this.next(size);
    if (size === 4) this.mem.write32(lin, v, this.user);
    else this.mem.write16(lin, v, this.user);
  }

  /**
   * Checks that `bytes` more can be pushed in `size`-byte pushes (limit, then paging) before
   * anything is written. A #PF names the first push that would touch the absent page, as the
   * processor's own pushes would.
   */
  probe(bytes: number, size: number): void {
    const sp = this.big ? (this.esp - bytes) | 0 : (this.esp - bytes) & 0xffff;
    const o = sp >>> 0;
    if (o < this.min || o + bytes - 1 > this.max) this.cpu.raise(Vector.SS, this.errorCode);
    const top = (this.base + this.esp - size) | 0;
    this.mem.probeWrite(top, size, this.user);
    const topPage = top & ~0xfff;
    const bottom = (this.base + sp) | 0;
    if ((bottom & ~0xfff) !== topPage) {
      // The highest push that lies (at least partly) below the top push's page.
      const k = Math.floor(((top + size - topPage) | 0) / size);
      this.mem.probeWrite((top - k * size) | 0, size, this.user);
    }
  }
}
