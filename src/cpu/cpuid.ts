/**
 * CPUID, the time-stamp counter and the model-specific registers. The TSC comes from an
 * injectable clock (ns) so tests and record/replay can make it deterministic.
 */

/** CPUID.1:EDX feature bits this core reports. */
export const Feature = {
  FPU: 1 << 0,
  VME: 1 << 1,
  DE: 1 << 2,
  PSE: 1 << 3,
  TSC: 1 << 4,
  MSR: 1 << 5,
  PAE: 1 << 6,
  MCE: 1 << 7,
  CX8: 1 << 8,
  APIC: 1 << 9,
  SEP: 1 << 11,
  MTRR: 1 << 12,
  PGE: 1 << 13,
  MCA: 1 << 14,
  CMOV: 1 << 15,
} as const;

export const Msr = {
  TSC: 0x10,
  APIC_BASE: 0x1b,
  SYSENTER_CS: 0x174,
  SYSENTER_ESP: 0x175,
  SYSENTER_EIP: 0x176,
} as const;

/** Pentium Pro class: family 6, model 3, stepping 3. */
export const CPUID_SIGNATURE = 0x0633;

/** The vendor string (leaf 0, EBX EDX ECX): our own, so guests take their generic paths. */
export const CPUID_VENDOR = "VirtkitX86VM";
/** The brand string (leaves 0x80000002-0x80000004, 48 bytes, NUL-padded). */
export const CPUID_BRAND = "Virtkit interpreted x86 (i686 class)";

function packAscii(s: string, bytes: number): Uint32Array {
  const out = new Uint32Array(bytes / 4);
  for (let i = 0; i < s.length && i < bytes; i++)
    out[i >> 2] = out[i >> 2]! | ((s.charCodeAt(i) & 0xff) << (8 * (i & 3)));
  return out;
}
const VENDOR = packAscii(CPUID_VENDOR, 12);
const BRAND = packAscii(CPUID_BRAND, 48);

/** An MSR implemented outside the CPU (the machine's local APIC owns IA32_APIC_BASE). */
export interface MsrHandler {
  /** The value as [lo, hi]. */
  read(out: Uint32Array): void;
  /** Returns false to raise #GP (reserved bits). */
  write(lo: number, hi: number): boolean;
}

export class CpuidUnit {
  /**
   * CPUID.1:EDX. Default: what the integer core, the x87 unit and the protected-mode and
   * paging units (src/cpu/protected, src/cpu/paging.ts) implement: FPU, PSE, TSC, MSR, CX8,
   * SEP, PGE, CMOV. Absent: VME (no V86 mode), DE (debug registers hold values only), PAE,
   * MCE, MTRR, MCA, PAT, MMX, FXSR, SSE. The machine adds APIC when it has a local APIC.
   */
  features: number =
    Feature.FPU |
    Feature.PSE |
    Feature.TSC |
    Feature.MSR |
    Feature.CX8 |
    Feature.SEP |
    Feature.PGE |
    Feature.CMOV;
  /** TSC ticks per second. */
  tscHz = 1_000_000_000;
  private tscOffset = 0;
  /** MSRs other than the TSC that software may read back (SYSENTER_*, APIC_BASE...). */
  readonly msrs = new Map<number, { lo: number; hi: number }>();

  /** MSRs handled by the machine (kept across `reset`). */
  readonly msrHandlers = new Map<number, MsrHandler>();

  constructor(private readonly clockNs: () => number) {}

  reset(): void {
    this.tscOffset = -this.ticks();
    this.msrs.clear();
    this.msrs.set(Msr.SYSENTER_CS, { lo: 0, hi: 0 });
    this.msrs.set(Msr.SYSENTER_ESP, { lo: 0, hi: 0 });
    this.msrs.set(Msr.SYSENTER_EIP, { lo: 0, hi: 0 });
  }

  private ticks(): number {
    return Math.floor((this.clockNs() * this.tscHz) / 1e9);
  }

  /** The 64-bit TSC as a double (exact below 2^53). */
  readTsc(): number {
    return this.ticks() + this.tscOffset;
  }

  /** CPUID leaf `eax` (subleaf `ecx`): writes [eax, ebx, ecx, edx] into out. */
  query(leaf: number, out: Uint32Array): void {
    switch (leaf >>> 0) {
      case 0:
        out[0] = 2;
        out[1] = VENDOR[0]!;
        out[3] = VENDOR[1]!;
        out[2] = VENDOR[2]!;
        return;
      case 1:
        out[0] = CPUID_SIGNATURE;
        out[1] = 0; // brand index 0, no CLFLUSH, one logical processor, APIC ID 0
        out[2] = 0;
        out[3] = this.features;
        return;
      case 2:
        // One iteration; descriptor 0x00 = no cache information.
        out[0] = 0x0000_0001;
        out[1] = out[2] = out[3] = 0;
        return;
      case 0x8000_0000:
        out[0] = 0x8000_0004;
        out[1] = VENDOR[0]!;
        out[3] = VENDOR[1]!;
        out[2] = VENDOR[2]!;
        return;
      case 0x8000_0001:
        // Extended signature; no extended features (no NX, no long mode, no SYSCALL).
        out[0] = CPUID_SIGNATURE;
        out[1] = out[2] = out[3] = 0;
        return;
      case 0x8000_0002:
      case 0x8000_0003:
      case 0x8000_0004: {
        const k = ((leaf >>> 0) - 0x8000_0002) * 4;
        for (let i = 0; i < 4; i++) out[i] = BRAND[k + i]!;
        return;
      }
      default:
        // Intel: an unsupported leaf returns the highest basic leaf's data.
        this.query(2, out);
    }
  }

  /** RDMSR. Returns false for an MSR this CPU does not have (#GP). */
  readMsr(index: number, out: Uint32Array): boolean {
    if (index === Msr.TSC) {
      const t = this.readTsc();
      out[0] = t >>> 0;
      out[1] = Math.floor(t / 0x1_0000_0000) >>> 0;
      return true;
    }
    const h = this.msrHandlers.get(index);
    if (h !== undefined) {
      h.read(out);
      return true;
    }
    const v = this.msrs.get(index);
    if (v === undefined) return false;
    out[0] = v.lo;
    out[1] = v.hi;
    return true;
  }

  /** WRMSR. Returns false for an MSR this CPU does not have (#GP). */
  writeMsr(index: number, lo: number, hi: number): boolean {
    if (index === Msr.TSC) {
      this.tscOffset = hi * 0x1_0000_0000 + (lo >>> 0) - this.ticks();
      return true;
    }
    const h = this.msrHandlers.get(index);
    if (h !== undefined) return h.write(lo >>> 0, hi >>> 0);
    if (!this.msrs.has(index)) return false;
    this.msrs.set(index, { lo: lo >>> 0, hi: hi >>> 0 });
    return true;
  }
}
