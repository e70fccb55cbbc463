import type { Persist } from "../../common/persist.js";
import type { AccessSize, IoBus, IoHandler } from "../io-bus.js";

/**
 * The ACPI fixed-hardware PM1a register blocks (ACPI 6.4 section 4.8.3.1), on I/O ports:
 *   base+0  PM1_STS (16 bits, write 1 to clear)
 *   base+2  PM1_EN  (16 bits)
 *   base+4  PM1_CNT (16 bits): SCI_EN (bit 0, reads 1: the machine is always in ACPI mode,
 *           the FADT has no SMI_CMD), BM_RLD (1), GBL_RLS (2, write-only), SLP_TYP (12:10),
 *           SLP_EN (13, write-only).
 * Writing SLP_EN with the SLP_TYP of \_S5 (the DSDT's package) calls `onPowerOff`, which is
 * what Linux's `poweroff` ends with (acpi_enter_sleep_state(S5): SLP_TYP written, then SLP_TYP
 * with SLP_EN). SLP_EN with another SLP_TYP (a sleep state this machine does not have) is
 * ignored and counted. The PM timer, GPE blocks and SCI are not implemented.
 */
export const ACPI_PM_BASE = 0x600;
/** Ports the block occupies: PM1_STS, PM1_EN, PM1_CNT. */
export const ACPI_PM_LENGTH = 6;
export const PM1_EVT_LEN = 4;
export const PM1_CNT_LEN = 2;

export const PM1_STS_TMR = 1 << 0;
export const PM1_STS_BM = 1 << 4;
export const PM1_STS_GBL = 1 << 5;
export const PM1_STS_PWRBTN = 1 << 8;
export const PM1_STS_SLPBTN = 1 << 9;
export const PM1_STS_RTC = 1 << 10;
export const PM1_STS_WAK = 1 << 15;
export const PM1_EN_WRITABLE = (1 << 0) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 10);
export const PM1_CNT_SCI_EN = 1 << 0;
export const PM1_CNT_BM_RLD = 1 << 1;
export const PM1_CNT_GBL_RLS = 1 << 2;
export const PM1_CNT_SLP_TYP_SHIFT = 10;
export const PM1_CNT_SLP_TYP_MASK = 7 << 10;
export const PM1_CNT_SLP_EN = 1 << 13;

/** SLP_TYP of \_S5 in this machine's DSDT (any 3-bit value would do; the DSDT and this agree). */
export const S5_SLP_TYP = 5;

export interface AcpiPmState {
  sts: number;
  en: number;
  cnt: number;
}

export interface AcpiPmOptions {
  /** The guest entered S5 (soft off). */
  onPowerOff: () => void;
  /** The I/O base (default 0x600); the FADT must name the same. */
  base?: number;
  /** SLP_TYP that means S5 (default S5_SLP_TYP). */
  s5SlpTyp?: number;
}

export class AcpiPm implements IoHandler, Persist<AcpiPmState> {
  readonly base: number;
  readonly s5SlpTyp: number;
  /** SLP_EN writes with a SLP_TYP other than S5's. */
  unsupportedSleeps = 0;
  /** Times S5 was entered. */
  powerOffs = 0;
  private sts = 0;
  private en = 0;
  private cnt = PM1_CNT_SCI_EN;
  private readonly onPowerOff: () => void;

  constructor(options: AcpiPmOptions) {
    this.base = options.base ?? ACPI_PM_BASE;
    this.s5SlpTyp = (options.s5SlpTyp ?? S5_SLP_TYP) & 7;
    this.onPowerOff = options.onPowerOff;
  }

  /** Claims the block's ports (base .. base+5) on `io`. */
  register(io: IoBus): void {
    io.register(this.base, ACPI_PM_LENGTH, this, "ACPI PM1a");
  }

  /** PM1_CNT as the guest reads it. */
  get control(): number {
    return this.cnt;
  }

  private readByte(off: number): number {
    const reg = off < 2 ? this.sts : off < 4 ? this.en : off < 6 ? this.cnt : -1;
    if (reg < 0) return 0xff;
    return (reg >>> (8 * (off & 1))) & 0xff;
  }

  ioRead(port: number, size: AccessSize): number {
    const off = port - this.base;
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.readByte(off + i) << (8 * i);
    return v >>> 0;
  }

  ioWrite(port: number, size: AccessSize, value: number): void {
    const off = port - this.base;
    // bytes of each 16-bit register this access covers, as (value, byte mask)
    const regs = [
      [0, 0],
      [0, 0],
      [0, 0],
    ];
    for (let i = 0; i < size; i++) {
      const o = off + i;
      if (o < 0 || o >= ACPI_PM_LENGTH) continue;
      const r = regs[o >> 1]!;
      const shift = 8 * (o & 1);
      r[0]! |= ((value >>> (8 * i)) & 0xff) << shift;
      r[1]! |= 0xff << shift;
    }
    const [sts, en, cnt] = regs as [[number, number], [number, number], [number, number]];
    if (sts[1]) this.sts &= ~(sts[0] & sts[1]);
    if (en[1]) this.en = ((this.en & ~en[1]) | (en[0] & en[1])) & PM1_EN_WRITABLE;
    if (cnt[1]) this.writeControl(((this.cnt & ~cnt[1]) | (cnt[0] & cnt[1])) & 0xffff);
  }

  private writeControl(v: number): void {
    // SCI_EN stays set; GBL_RLS and SLP_EN are write-only (read 0)
    this.cnt = (v & (PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP_MASK | 0x200)) | PM1_CNT_SCI_EN;
    if (!(v & PM1_CNT_SLP_EN)) return;
    const typ = (v & PM1_CNT_SLP_TYP_MASK) >>> PM1_CNT_SLP_TYP_SHIFT;
    if (typ === this.s5SlpTyp) {
      this.powerOffs++;
      this.onPowerOff();
    } else {
      this.unsupportedSleeps++;
    }
  }

  reset(): void {
    this.sts = 0;
    this.en = 0;
    this.cnt = PM1_CNT_SCI_EN;
  }

  save(): AcpiPmState {
    return { sts: this.sts, en: this.en, cnt: this.cnt };
  }

  restore(s: AcpiPmState): void {
    this.sts = s.sts & 0xffff;
    this.en = s.en & PM1_EN_WRITABLE;
    this.cnt = (s.cnt & (PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP_MASK | 0x200)) | PM1_CNT_SCI_EN;
  }
}
