/**
 * 32-bit paging (Intel SDM vol. 3, 4.3): two-level tables with 4 KiB pages, 4 MiB pages with
 * CR4.PSE, global pages with CR4.PGE, U/S and R/W checks with CR0.WP, accessed and dirty bits
 * written back as the processor does, #PF with CR2 and the error code. PAE is not implemented.
 *
 * The software TLB is direct-mapped on a key `(linear page << 1) | user`, so a supervisor and a
 * user translation of one page are separate entries (each holds the rights for its privilege).
 * A hit costs one shift, one mask, one typed-array load and one compare: reads and fetches test
 * `rTag`, writes test `wTag`, which is only filled once the page is writable for that privilege
 * and already dirty (so the first write always walks and sets D).
 */
import type { Cpu } from "./cpu.js";
import { Vector } from "./fault.js";
import { AccessKind, type PagingUnit } from "./hooks.js";
import { Cr0 } from "./state.js";

/** Page-directory and page-table entry bits. */
export const Pte = {
  P: 0x1,
  RW: 0x2,
  US: 0x4,
  PWT: 0x8,
  PCD: 0x10,
  A: 0x20,
  D: 0x40,
  /** PS in a PDE (4 MiB page with CR4.PSE), PAT in a PTE. */
  PS: 0x80,
  G: 0x100,
} as const;

/** #PF error code bits. */
export const PfError = { P: 1, W: 2, U: 4, RSVD: 8 } as const;

/** CR4 bits this unit reads. */
export const Cr4 = {
  VME: 0x1,
  PVI: 0x2,
  TSD: 0x4,
  DE: 0x8,
  PSE: 0x10,
  PAE: 0x20,
  MCE: 0x40,
  PGE: 0x80,
} as const;

/** Bits 21:13 of a 4 MiB PDE: physical address bits above 4 GiB (PSE-36) are not supported → reserved. */
const PDE4M_RESERVED = 0x003f_e000;

/** log2 of the number of TLB slots. */
export const TLB_BITS = 13;
const TLB_SIZE = 1 << TLB_BITS;
const TLB_MASK = TLB_SIZE - 1;

export class Paging implements PagingUnit {
  /** Key whose read/fetch translation slot i holds, or -1. */
  private readonly rTag = new Int32Array(TLB_SIZE).fill(-1);
  /** Key whose write translation slot i holds (writable and dirty), or -1. */
  private readonly wTag = new Int32Array(TLB_SIZE).fill(-1);
  /** Physical page base (int32) of slot i. */
  private readonly phys = new Int32Array(TLB_SIZE);
  /** Slot flags: 1 global, 2 from a 4 MiB page. */
  private readonly flags = new Uint8Array(TLB_SIZE);
  /** Slots filled since the last flush (each once), so flushes touch only those. */
  private readonly used = new Int32Array(TLB_SIZE);
  private readonly inUsed = new Uint8Array(TLB_SIZE);
  private usedCount = 0;
  /** TLB slots per 4 MiB region that came from a 4 MiB page (INVLPG must drop them together). */
  private readonly largeIn = new Uint16Array(1024);

  /** Statistics: walks (TLB misses that reached the tables) and flushes. */
  walks = 0;
  flushes = 0;

  constructor(private readonly cpu: Cpu) {}

  /** The hot path: TLB hit or walk, at the CPU's current privilege (CPL 3 = user). */
  translate(linear: number, kind: AccessKind): number {
    const key = ((linear >>> 12) << 1) | (this.cpu.cpl === 3 ? 1 : 0);
    const i = key & TLB_MASK;
    if (kind === AccessKind.WRITE) {
      if (this.wTag[i] === key) return this.phys[i]! | (linear & 0xfff);
    } else if (this.rTag[i] === key) return this.phys[i]! | (linear & 0xfff);
    return this.walk(linear, kind, this.cpu.cpl === 3);
  }

  /**
   * Translation at an explicit privilege: implicit supervisor accesses (descriptor tables, the
   * TSS, the inner stack of a privilege change) use `user = false` whatever the CPL is.
   */
  translateAs(linear: number, kind: AccessKind, user: boolean): number {
    const key = ((linear >>> 12) << 1) | (user ? 1 : 0);
    const i = key & TLB_MASK;
    if (kind === AccessKind.WRITE) {
      if (this.wTag[i] === key) return this.phys[i]! | (linear & 0xfff);
    } else if (this.rTag[i] === key) return this.phys[i]! | (linear & 0xfff);
    return this.walk(linear, kind, user);
  }

  flush(global: boolean): void {
    this.flushes++;
    const used = this.used;
    let keep = 0;
    for (let n = 0; n < this.usedCount; n++) {
      const i = used[n]!;
      if (!global && (this.flags[i]! & 1) !== 0) {
        used[keep++] = i;
        continue;
      }
      this.dropSlot(i);
      this.inUsed[i] = 0;
    }
    this.usedCount = keep;
  }

  invalidatePage(linear: number): void {
    const page = linear >>> 12;
    this.dropKey(page << 1);
    this.dropKey((page << 1) | 1);
    const region = linear >>> 22;
    if (this.largeIn[region] !== 0) {
      // Drop every 4 KiB slice of the 4 MiB page that covers this address.
      for (let n = 0; n < this.usedCount; n++) {
        const i = this.used[n]!;
        if ((this.flags[i]! & 2) === 0) continue;
        const k = this.rTag[i]! >= 0 ? this.rTag[i]! : this.wTag[i]!;
        if (k >= 0 && k >>> 11 === region) this.dropSlot(i);
      }
    }
  }

  /** Number of slots holding a translation (tests, statistics). */
  get size(): number {
    let n = 0;
    for (let k = 0; k < this.usedCount; k++) if (this.rTag[this.used[k]!]! >= 0) n++;
    return n;
  }

  private dropKey(key: number): void {
    const i = key & TLB_MASK;
    if (this.rTag[i] === key || this.wTag[i] === key) this.dropSlot(i);
  }

  private dropSlot(i: number): void {
    if ((this.flags[i]! & 2) !== 0) {
      const k = this.rTag[i]! >= 0 ? this.rTag[i]! : this.wTag[i]!;
      if (k >= 0) this.largeIn[k >>> 11]!--;
    }
    this.rTag[i] = -1;
    this.wTag[i] = -1;
    this.flags[i] = 0;
  }

  private readPhys32(addr: number): number {
    const cpu = this.cpu;
    if (cpu.pageKind[addr >>> 12] === 0) return cpu.ramView.getInt32(addr >>> 0, true);
    return cpu.bus.read(addr >>> 0, 4) | 0;
  }

  private writePhys32(addr: number, v: number): void {
    const cpu = this.cpu;
    if (cpu.pageKind[addr >>> 12] === 0) cpu.ramView.setInt32(addr >>> 0, v, true);
    else cpu.bus.write(addr >>> 0, 4, v >>> 0);
  }

  private pageFault(linear: number, code: number): never {
    this.cpu.cr2 = linear >>> 0;
    return this.cpu.raise(Vector.PF, code);
  }

  /** The table walk (SDM 4.3) with the access checks of 4.6, A/D updates, and the TLB fill. */
  private walk(linear: number, kind: AccessKind, user: boolean): number {
    this.walks++;
    const cpu = this.cpu;
    const write = kind === AccessKind.WRITE;
    const ecode = (write ? PfError.W : 0) | (user ? PfError.U : 0);
    const pdeAddr = (cpu.cr3 & 0xffff_f000) + ((linear >>> 22) << 2);
    let pde = this.readPhys32(pdeAddr);
    if ((pde & Pte.P) === 0) this.pageFault(linear, ecode);
    const wp = (cpu.cr0 & Cr0.WP) !== 0;
    let base: number;
    let rights: number;
    let global: boolean;
    let large = false;
    let dirty: boolean;
    if ((pde & Pte.PS) !== 0 && (cpu.cr4 & Cr4.PSE) !== 0) {
      if ((pde & PDE4M_RESERVED) !== 0) this.pageFault(linear, ecode | PfError.P | PfError.RSVD);
      rights = pde;
      this.check(linear, rights, user, write, wp, ecode);
      const upd = pde | Pte.A | (write ? Pte.D : 0);
      if (upd !== pde) {
        this.writePhys32(pdeAddr, upd);
        pde = upd;
      }
      base = (pde & 0xffc0_0000) | (linear & 0x003f_f000);
      global = (pde & Pte.G) !== 0;
      dirty = (pde & Pte.D) !== 0;
      large = true;
    } else {
      const pteAddr = (pde & 0xffff_f000) + (((linear >>> 12) & 0x3ff) << 2);
      if ((pde & Pte.A) === 0) {
        pde |= Pte.A;
        this.writePhys32(pdeAddr, pde);
      }
      let pte = this.readPhys32(pteAddr);
      if ((pte & Pte.P) === 0) this.pageFault(linear, ecode);
      rights = pde & pte;
      this.check(linear, rights, user, write, wp, ecode);
      const upd = pte | Pte.A | (write ? Pte.D : 0);
      if (upd !== pte) {
        this.writePhys32(pteAddr, upd);
        pte = upd;
      }
      base = pte & 0xffff_f000;
      global = (pte & Pte.G) !== 0;
      dirty = (pte & Pte.D) !== 0;
    }
    // Fill the slot for this privilege.
    const key = ((linear >>> 12) << 1) | (user ? 1 : 0);
    const i = key & TLB_MASK;
    if (this.rTag[i]! >= 0 || this.wTag[i]! >= 0) this.dropSlot(i);
    const writable = user ? (rights & Pte.RW) !== 0 : !wp || (rights & Pte.RW) !== 0;
    this.rTag[i] = key;
    this.wTag[i] = writable && dirty ? key : -1;
    this.phys[i] = base;
    this.flags[i] = (global && (cpu.cr4 & Cr4.PGE) !== 0 ? 1 : 0) | (large ? 2 : 0);
    if (large) this.largeIn[linear >>> 22]!++;
    if (this.inUsed[i] === 0) {
      this.inUsed[i] = 1;
      this.used[this.usedCount++] = i;
    }
    return base | (linear & 0xfff);
  }

  /** U/S and R/W rules for 32-bit paging without SMEP/SMAP (SDM 4.6.1). */
  private check(
    linear: number,
    rights: number,
    user: boolean,
    write: boolean,
    wp: boolean,
    ecode: number,
  ): void {
    if (user) {
      if ((rights & Pte.US) === 0 || (write && (rights & Pte.RW) === 0))
        this.pageFault(linear, ecode | PfError.P);
    } else if (write && wp && (rights & Pte.RW) === 0) this.pageFault(linear, ecode | PfError.P);
  }
}
