/**
 * The x86 core: construction and reset, segment loads and control transfers, interrupt
 * delivery and the run loop. The memory path, fetch, ModR/M decoding and the stack are in
 * access.ts; instruction semantics live in ops-*.ts, dispatched through the opcode table.
 */
import type { IoBus } from "../machine/io-bus.js";
import type { InterruptController } from "../machine/irq.js";
import type { MemoryBus } from "../machine/memory-bus.js";
import { CpuidUnit } from "./cpuid.js";
import { Decoded, decodeInto, EMPTY_RECORD, ICACHE_MASK, ICACHE_MAX_ADDR, newIcache } from "./icache.js";
import { Fpu } from "./x87/fpu.js";
import { CpuAccess } from "./access.js";
import { CpuStateError, ExitReason, InterruptKind, NO_ERROR_CODE, Vector } from "./fault.js";
import type { FpuHost, FpuInstrInfo, ProtectedModeUnit, X87Unit } from "./hooks.js";
import { Cr0, Flag, Sreg } from "./state.js";
import { DISPATCH, LOCKABLE, PREFIX } from "./table.js";

export interface CpuOptions {
  memory: MemoryBus;
  io: IoBus;
  /** The interrupt controller asked at instruction boundaries when IF = 1. */
  interrupts?: InterruptController;
  /** Time source for RDTSC in ns; default: the instruction count (1 instruction = 1 tick). */
  clockNs?: () => number;
  /** Attach the x87 FPU (default true). Without it, escapes are decoded and ignored. */
  fpu?: boolean;
  /** Run through the decoded-instruction cache (default true; icache.ts). False: decode every time. */
  decodeCache?: boolean;
}

export type Handler = (cpu: Cpu) => void;

export class Cpu extends CpuAccess {
  declare readonly io: IoBus;
  declare intc: InterruptController | null;
  declare readonly cpuid: CpuidUnit;
  /** The decoded-instruction cache (icache.ts), direct-mapped by physical address. */
  declare readonly icache: Decoded[];
  /** 1: `run` uses the decoded-instruction cache. */
  declare readonly useIcache: number;

  /** Installed by the protected-mode module; required once CR0.PE is set. */
  protectedMode: ProtectedModeUnit | null = null;
  /** The x87 unit (D8-DF), or null: escapes are then decoded and ignored (no coprocessor). */
  fpu: X87Unit | null = null;
  /**
   * FERR#: called when a waiting x87 instruction finds an unmasked exception pending while
   * CR0.NE = 0 (PC-style error reporting: the machine raises IRQ 13). With CR0.NE = 1 it is #MF.
   */
  ferr: (() => void) | null = null;
  /** Reused for every x87 instruction. */
  readonly fpuInfo: FpuInstrInfo = {
    cs: 0,
    ip: 0,
    dataSelector: 0,
    dataOffset: 0,
    opSize32: false,
    protectedMode: false,
  };
  /** Debug registers DR0-DR7 (stored; breakpoints are not raised). */
  readonly dr = new Uint32Array(8);

  // Run-loop state.
  halted = false;
  shutdown = false;
  /** Interrupts are inhibited for one instruction (after STI, MOV SS, POP SS). */
  shadow = false;
  private trapArmed = false;
  private deliveringException = -1;
  /** Instructions retired since reset. */
  instructions = 0;
  private runCount = 0;
  /** Instructions retired in the current `run` slice (added to `instructions` when it ends). */
  sliceRetired = 0;
  /** The current slice's budget (a fused record runs its second instruction only within it). */
  sliceBudget = 0;

  constructor(options: CpuOptions) {
    super(options.memory);
    this.useIcache = options.decodeCache === false ? 0 : 1;
    this.icache = newIcache();
    this.io = options.io;
    this.intc = options.interrupts ?? null;
    this.cpuid = new CpuidUnit(options.clockNs ?? (() => this.retired + this.runCount));
    if (options.fpu !== false) this.fpu = new Fpu(this.fpuHost());
    else this.cpuid.features &= ~1;
    this.reset();
  }

  /** Power-on/RESET state: real mode at F000:FFF0 with CS base 0xFFFF0000. */
  reset(): void {
    this.r32.fill(0);
    this.r32[2] = 0x0000_0633; // EDX: family 6 model 3 stepping 3 (matches CPUID)
    this.cr0 = Cr0.ET;
    this.cr2 = this.cr3 = this.cr4 = 0;
    this.cpl = 0;
    this.paging = null;
    this.setEflags(0x2);
    for (let s = 0; s < 6; s++) this.setSegmentCache(s, 0, 0, 0xffff, 0x93);
    this.setSegmentCache(Sreg.CS, 0xf000, 0xffff_0000, 0xffff, 0x9b);
    this.eip = 0xfff0;
    this.gdtrBase = this.idtrBase = 0;
    this.gdtrLimit = 0xffff;
    this.idtrLimit = 0x3ff;
    this.halted = this.shutdown = this.shadow = this.trapArmed = false;
    this.nmiPending = this.nmiBlocked = false;
    this.deliveringException = -1;
    this.slowCheck = 1;
    this.fetchLen = 0;
    this.cpuid.reset();
    this.dr.fill(0);
    this.dr[6] = 0xffff_0ff0;
    this.dr[7] = 0x400;
    this.fpu?.reset();
  }

  /** The memory/flags interface for the x87 unit: linear accesses through the CPU's translation. */
  fpuHost(): FpuHost {
    return {
      readU8: (a) => this.readLin8(a | 0),
      readU16: (a) => this.readLin16(a | 0),
      readU32: (a) => this.readLin32(a | 0) >>> 0,
      writeU8: (a, v) => this.writeLin8(a | 0, v),
      writeU16: (a, v) => this.writeLin16(a | 0, v),
      writeU32: (a, v) => this.writeLin32(a | 0, v),
      getEflags: () => this.getEflags(),
      setEflags: (v) => this.setEflags(v),
    };
  }

  /** Real mode with every segment register loaded as a real-mode selector (base = sel * 16). */
  setRealMode(cs: number, ip: number): void {
    this.cr0 &= ~(Cr0.PE | Cr0.PG);
    this.paging = null;
    this.cpl = 0;
    for (let s = 0; s < 6; s++) {
      const sel = s === Sreg.CS ? cs : this.segSel[s]!;
      this.setSegmentCache(s, sel, sel << 4, 0xffff, s === Sreg.CS ? 0x9b : 0x93);
    }
    this.eip = ip;
    this.fetchLen = 0;
    this.halted = this.shutdown = false;
  }

  /**
   * Flat 32-bit protected mode at CPL 0, no paging: CS = 0x08 (code, 4 GiB, D=1), the other
   * segments 0x10 (data, 4 GiB, B=1). Used by tests and benchmarks before a GDT exists.
   */
  setFlat32(eip: number, esp: number): void {
    this.cr0 = (this.cr0 | Cr0.PE) & ~Cr0.PG;
    this.paging = null;
    this.cpl = 0;
    for (let s = 0; s < 6; s++) {
      if (s === Sreg.CS) this.setSegmentCache(s, 0x08, 0, 0xffff_ffff, 0xc09b);
      else this.setSegmentCache(s, 0x10, 0, 0xffff_ffff, 0xc093);
    }
    this.eip = eip | 0;
    this.r32[4] = esp;
    this.fetchLen = 0;
    this.halted = this.shutdown = false;
  }

  get protectedModeActive(): boolean {
    return (this.cr0 & Cr0.PE) !== 0 && (this.flags & Flag.VM) === 0;
  }

  /** NMI latched (`nmi()`) and not yet delivered; NMIs blocked from delivery until the next IRET. */
  nmiPending = false;
  nmiBlocked = false;

  /** The NMI input (an edge): delivered at the next instruction boundary whatever IF is. */
  nmi(): void {
    this.nmiPending = true;
    this.slowCheck = 1;
  }

  /** Tell the CPU the interrupt controller's state may have changed (device raised a line). */
  notifyInterrupt(): void {
    this.slowCheck = 1;
  }

  // ---- segments, control transfer, interrupts --------------------------------------------------

  /** The one place segment registers are loaded. Real/V86 mode here; protected mode in its unit. */
  loadSegment(sreg: number, selector: number): void {
    selector &= 0xffff;
    if ((this.cr0 & Cr0.PE) === 0) {
      this.segSel[sreg] = selector;
      this.segBase[sreg] = selector << 4;
      this.updateFlat(sreg);
      if (sreg === Sreg.CS) this.fetchLen = 0;
      return;
    }
    if ((this.flags & Flag.VM) !== 0) {
      this.setSegmentCache(sreg, selector, selector << 4, 0xffff, sreg === Sreg.CS ? 0xf3 | 0x8 : 0xf3);
      return;
    }
    this.pm().loadSegment(sreg, selector);
  }

  pm(): ProtectedModeUnit {
    if (this.protectedMode === null)
      throw new CpuStateError("the guest is in protected mode but no protected-mode unit is installed");
    return this.protectedMode;
  }

  /** Sets EIP for a near transfer, masked to the operand size, checked against the CS limit. */
  jumpNear(target: number): void {
    target = this.op32 ? target | 0 : target & 0xffff;
    if (target >>> 0 > this.segMax[Sreg.CS]!) this.gp0();
    this.eip = target;
  }

  jumpFar(selector: number, offset: number): void {
    if (this.protectedModeActive) this.pm().jumpFar(selector, offset);
    else {
      if (offset >>> 0 > this.segMax[Sreg.CS]!) this.gp0();
      this.loadSegment(Sreg.CS, selector);
      this.eip = offset;
    }
  }

  callFar(selector: number, offset: number): void {
    if (this.protectedModeActive) {
      this.pm().callFar(selector, offset);
      return;
    }
    if (offset >>> 0 > this.segMax[Sreg.CS]!) this.gp0();
    const sp = this.sp;
    try {
      this.pushV(this.segSel[Sreg.CS]!);
      this.pushV(this.eip);
    } catch (e) {
      this.sp = sp;
      throw e;
    }
    this.loadSegment(Sreg.CS, selector);
    this.eip = offset;
  }

  returnFar(popBytes: number): void {
    if (this.protectedModeActive) {
      this.pm().returnFar(popBytes);
      return;
    }
    const sp = this.sp;
    const ip = this.popV();
    const cs = this.popV();
    if (ip >>> 0 > this.segMax[Sreg.CS]!) {
      this.sp = sp;
      this.gp0();
    }
    this.loadSegment(Sreg.CS, cs);
    this.eip = ip;
    this.sp = this.stackBig ? (this.r32[4]! + popBytes) | 0 : (this.r16[8]! + popBytes) & 0xffff;
  }

  iret(): void {
    if (this.nmiBlocked) {
      // IRET ends NMI blocking (SDM vol. 3, 6.7.1).
      this.nmiBlocked = false;
      if (this.nmiPending) this.slowCheck = 1;
    }
    if ((this.cr0 & Cr0.PE) !== 0) {
      this.pm().iret();
      return;
    }
    const sp = this.sp;
    const ip = this.popV();
    const cs = this.popV() & 0xffff;
    const fl = this.popV();
    if (ip >>> 0 > this.segMax[Sreg.CS]!) {
      this.sp = sp;
      this.gp0();
    }
    this.loadSegment(Sreg.CS, cs);
    this.eip = ip;
    if (this.op32) this.setEflagsChecked(fl, 0x25_7fd5);
    else this.setEflagsChecked((this.flags & 0xffff_0000) | fl, 0x7fd5);
  }

  /** POPF/IRET flag load: only the bits in `writable` change (VM/RF/IOPL/IF rules by the caller). */
  setEflagsChecked(v: number, writable: number): void {
    const old = this.getEflags();
    this.setEflags((old & ~writable) | (v & writable));
  }

  /**
   * The one delivery path for exceptions and interrupts: IVT in real mode; the protected-mode
   * unit (IDT, gates, privilege change) otherwise. EIP must already be the return address.
   */
  deliverInterrupt(vector: number, kind: InterruptKind, errorCode: number): void {
    if ((this.cr0 & Cr0.PE) !== 0) {
      this.pm().deliverInterrupt(vector, kind, errorCode);
      return;
    }
    if (vector * 4 + 3 > this.idtrLimit) this.gp0();
    const fl = this.getEflags();
    const sp = this.sp;
    try {
      this.push16(fl);
      this.push16(this.segSel[Sreg.CS]!);
      this.push16(this.eip);
    } catch (e) {
      this.sp = sp;
      throw e;
    }
    this.setEflags(fl & ~(Flag.IF | Flag.TF | Flag.AC | Flag.RF));
    const entry = (this.idtrBase + vector * 4) | 0;
    const ip = this.readLin16(entry);
    const cs = this.readLin16((entry + 2) | 0);
    this.loadSegment(Sreg.CS, cs);
    this.eip = ip;
    this.halted = false;
  }

  // ---- the run loop ----------------------------------------------------------------------------

  /** Executes one instruction (prefixes, opcode, operands). */
  step(): void {
    let b = this.fetch8();
    if (this.decodeDirty) this.resetDecode();
    if (PREFIX[b] !== 0) b = this.prefixes(b);
    else if (b === 0x0f) b = 0x100 | this.fetch8();
    this.opcode = b;
    if ((b & 0xf0) === 0x70) {
      // Jcc rel8 inline (as jccShort): ~15% of ordinary code, and a megamorphic handler call
      // costs ~4 ns here (see ARCHITECTURE.md).
      const rel = (this.fetch8() << 24) >> 24;
      if (this.cond(b & 15)) this.jumpNear(this.eip + rel);
    } else DISPATCH[this.op32 ? b | 0x200 : b]!(this);
    if (this.postStep !== 0) this.afterStep();
  }

  /** Back to the default operand/address size and no prefixes. */
  private resetDecode(): void {
    this.op32 = this.ad32 = this.codeBig;
    this.segOvr = -1;
    this.rep = 0;
    this.lock = 0;
    this.decodeDirty = 0;
    this.postStep = this.codeBig ? 0 : 1;
  }

  /** Consumes prefix bytes starting with `b`; returns the opcode (0x100 | xx for 0F xx). */
  private prefixes(b: number): number {
    this.decodeDirty = 1;
    while (PREFIX[b] !== 0) {
      switch (b) {
        case 0x26:
          this.segOvr = Sreg.ES;
          break;
        case 0x2e:
          this.segOvr = Sreg.CS;
          break;
        case 0x36:
          this.segOvr = Sreg.SS;
          break;
        case 0x3e:
          this.segOvr = Sreg.DS;
          break;
        case 0x64:
          this.segOvr = Sreg.FS;
          break;
        case 0x65:
          this.segOvr = Sreg.GS;
          break;
        case 0x66:
          this.op32 = this.codeBig ^ 1;
          break;
        case 0x67:
          this.ad32 = this.codeBig ^ 1;
          break;
        case 0xf0:
          this.lock = 1;
          break;
        case 0xf2:
          this.rep = 1;
          break;
        default:
          this.rep = 2;
      }
      if (this.eip - this.instrStart > 3 && !this.lengthGuard) {
        // Many prefixes: close the fetch window so the 15-byte limit is checked (#GP).
        this.lengthGuard = true;
        this.postStep |= 2;
        this.fetchLen = 0;
      }
      b = this.fetch8();
    }
    if (b === 0x0f) b = 0x100 | this.fetch8();
    if (this.lock && LOCKABLE[b] === 0) this.ud();
    return b;
  }

  /** 16-bit code: IP wraps at 64 KiB (a fetch beyond the limit faulted already); end of a long instruction. */
  private afterStep(): void {
    if (!this.codeBig) this.eip &= 0xffff;
    if (this.lengthGuard) this.endLengthGuard();
  }

  private endLengthGuard(): void {
    this.lengthGuard = false;
    this.postStep = this.codeBig ? 0 : 1;
    this.fetchLen = 0;
  }

  /**
   * Runs until `budget` instructions have retired or the CPU exits (HLT with nothing to wake it,
   * shutdown). Faults are caught here once and delivered.
   */
  run(budget: number): ExitReason {
    this.sliceRetired = 0;
    this.sliceBudget = budget;
    this.slowCheck = 1;
    const icache = this.icache;
    const mask = ICACHE_MASK;
    const view = this.ramView;
    const useCache = this.useIcache;
    // Cached physical addresses: 16 readable bytes from each; none without the cache.
    const ramEnd = useCache !== 0 ? Math.min(this.ramU8.length - 16, ICACHE_MAX_ADDR) : -1;
    while (true) {
      try {
        // The fetch window and CS.D in locals: cached handlers change neither (MMIO sets
        // slowCheck, faults leave through the catch), so they are reloaded only after the
        // decoder, a boundary or opening a window.
        let wStart = this.fetchStart;
        let wLen = this.fetchLen;
        let wAdj = this.fetchAdj;
        let bigTag = this.codeBig << 31;
        while (this.sliceRetired < budget) {
          if (this.slowCheck) {
            this.instrStart = this.eip;
            const exit = this.boundary();
            if (exit >= 0) return this.endSlice(exit as ExitReason);
            wStart = this.fetchStart;
            wLen = this.fetchLen;
            wAdj = this.fetchAdj;
            bigTag = this.codeBig << 31;
          }
          const eip = this.eip;
          this.instrStart = eip;
          let off = (eip - wStart) >>> 0;
          if (off >= wLen && useCache !== 0) {
            // Open the window here (faults as the fetch would), so the cache serves this one too.
            this.openFetchWindow(eip);
            wStart = this.fetchStart;
            wLen = this.fetchLen;
            wAdj = this.fetchAdj;
            off = (eip - wStart) >>> 0;
          }
          const p = (eip + wAdj) | 0;
          if (off < wLen && p >>> 0 <= ramEnd) {
            // The decoded-instruction cache (icache.ts): the record for this physical address
            // and CS.D runs while RAM still holds its bytes; else the instruction is decoded
            // again. A record that is not cached has a length no window holds.
            let d = icache[p & mask]!;
            if (
              d.tag !== (p | bigTag) ||
              (view.getInt32(p, true) & d.m0) !== d.w0 ||
              (d.m1 !== 0 && (view.getInt32(p + 4, true) & d.m1) !== d.w1)
            )
              d = this.decodeAt(p, off);
            if (off + d.len <= wLen) {
              this.eip = (eip + d.len) & d.ipMask;
              d.run!(this, d);
              this.sliceRetired++;
              continue;
            }
          }
          this.step();
          this.sliceRetired++;
          wStart = this.fetchStart;
          wLen = this.fetchLen;
          wAdj = this.fetchAdj;
          bigTag = this.codeBig << 31;
        }
        return this.endSlice(ExitReason.BUDGET);
      } catch (e) {
        if (e !== this.fault) {
          this.endSlice(ExitReason.BUDGET);
          throw e;
        }
        this.sliceRetired++;
        if (this.lengthGuard) this.endLengthGuard();
        this.eip = this.instrStart;
        this.exception(this.fault.vector, this.fault.errorCode);
        if (this.shutdown) return this.endSlice(ExitReason.SHUTDOWN);
      }
    }
  }

  /** A decode-cache miss or stale record at physical `p` (window offset `off`): decodes into its slot. */
  private decodeAt(p: number, off: number): Decoded {
    let d = this.icache[p & ICACHE_MASK]!;
    if (d === EMPTY_RECORD) {
      d = new Decoded();
      this.icache[p & ICACHE_MASK] = d;
    }
    decodeInto(this, d, p, this.codeBig, this.fetchLen - off);
    return d;
  }

  private endSlice(exit: ExitReason): ExitReason {
    this.instructions += this.sliceRetired;
    this.sliceRetired = 0;
    return exit;
  }

  /**
   * Instructions retired since reset, counted live (also in the middle of `run`, when a device
   * or RDTSC asks): a clock derived from the instruction count reads it.
   */
  get retired(): number {
    return this.instructions + this.sliceRetired;
  }

  /** Delivers a fault, escalating to #DF and shutdown when delivery itself faults. */
  private exception(vector: number, errorCode: number): void {
    let v = vector;
    let code = errorCode;
    for (;;) {
      if (this.deliveringException === Vector.DF) {
        this.shutdown = true;
        this.halted = true;
        this.deliveringException = -1;
        return;
      }
      if (this.deliveringException >= 0 && becomesDoubleFault(this.deliveringException, v)) {
        v = Vector.DF;
        code = 0;
      }
      this.deliveringException = v;
      try {
        this.deliverInterrupt(v, InterruptKind.EXCEPTION, code);
        this.deliveringException = -1;
        this.trapArmed = false;
        return;
      } catch (e) {
        if (e !== this.fault) {
          this.deliveringException = -1;
          throw e;
        }
        // The fault raised during delivery: delivered next (serially or as #DF, above).
        v = this.fault.vector;
        code = this.fault.errorCode;
      }
    }
  }

  /** Work at an instruction boundary. Returns an ExitReason to stop, or -1 to go on. */
  private boundary(): number {
    this.slowCheck = 0;
    if (this.shutdown) return ExitReason.SHUTDOWN;
    if (this.trapArmed) {
      this.trapArmed = false;
      this.exception(Vector.DB, NO_ERROR_CODE);
      if (this.shutdown) return ExitReason.SHUTDOWN;
    }
    if (this.shadow) {
      this.shadow = false;
      this.slowCheck = 1; // look again after the next instruction
    } else if (this.nmiPending && !this.nmiBlocked) {
      this.nmiPending = false;
      this.nmiBlocked = true;
      this.halted = false;
      this.deliverInterrupt(Vector.NMI, InterruptKind.EXTERNAL, NO_ERROR_CODE);
    } else if ((this.flags & Flag.IF) !== 0 && this.intc !== null && this.intc.hasInterrupt()) {
      const vector = this.intc.acknowledge();
      this.halted = false;
      this.deliverInterrupt(vector, InterruptKind.EXTERNAL, NO_ERROR_CODE);
    }
    if (this.halted) {
      this.slowCheck = 1;
      return ExitReason.HLT;
    }
    if ((this.flags & Flag.TF) !== 0) {
      this.trapArmed = true;
      this.slowCheck = 1;
    }
    return -1;
  }

  /** HLT: stop at this boundary; `run` returns HLT until an interrupt arrives. */
  halt(): void {
    this.halted = true;
    this.slowCheck = 1;
  }
}

/**
 * SDM vol. 3, table 6-5: an exception raised while delivering `first` becomes a double fault
 * when both are contributory (#DE #TS #NP #SS #GP), or `first` is #PF and the second is #PF or
 * contributory; otherwise the second one is simply delivered.
 */
function becomesDoubleFault(first: number, second: number): boolean {
  const contributory = second === Vector.DE || (second >= Vector.TS && second <= Vector.GP);
  if (first === Vector.PF) return contributory || second === Vector.PF;
  return contributory && (first === Vector.DE || (first >= Vector.TS && first <= Vector.GP));
}
