import { ConfigError } from "../../../common/errors.js";
import type { PciFunction } from "../../../pci/function.js";
import type { MsiTarget } from "../../../pci/msi.js";
import {
  PCI_CAP_ID_MSIX,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
} from "../../../pci/regs.js";
import type { PciAccessSize } from "../../../pci/types.js";

export interface MsixState {
  /** Table entries as 32-bit words: address lo, address hi, data, vector control. */
  table: number[];
  /** Pending bits, one per vector. */
  pending: number[];
}

/**
 * An MSI-X capability with its table and PBA in one memory BAR (PCI 3.0 section 6.8.2).
 * Entries start masked. A message for a masked vector (or with the function masked) sets its
 * pending bit and goes out when the vector is unmasked. Table accesses must be 32-bit and
 * aligned; anything else is ignored and counted.
 */
export class MsixController {
  readonly vectors: number;
  private readonly fn: PciFunction;
  private readonly capOffset: number;
  private readonly tableOffset: number;
  private readonly pbaOffset: number;
  private readonly table: Uint32Array;
  private readonly pending: Uint8Array;
  private target: MsiTarget | undefined;
  /** Table/PBA accesses of the wrong width or outside the table, ignored. */
  ignoredAccesses = 0;
  /** Messages sent. */
  sent = 0;
  /** Messages dropped: no target connected. */
  dropped = 0;

  constructor(
    fn: PciFunction,
    vectors: number,
    bar: number,
    tableOffset: number,
    pbaOffset: number,
    target?: MsiTarget,
    onControlChange?: () => void,
  ) {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > 2048) {
      throw new ConfigError(`MSI-X vector count must be 1..2048, got ${vectors}`);
    }
    this.fn = fn;
    this.vectors = vectors;
    this.tableOffset = tableOffset;
    this.pbaOffset = pbaOffset;
    this.table = new Uint32Array(vectors * 4);
    this.pending = new Uint8Array(vectors);
    this.target = target;
    // Body after ID and next: message control (2), table offset/BIR (4), PBA offset/BIR (4).
    const body = new Uint8Array(10);
    const dv = new DataView(body.buffer);
    dv.setUint16(0, vectors - 1, true);
    dv.setUint32(2, (tableOffset | bar) >>> 0, true);
    dv.setUint32(6, (pbaOffset | bar) >>> 0, true);
    const writable = new Uint8Array(10);
    writable[1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >>> 8;
    this.capOffset = fn.addCapability(PCI_CAP_ID_MSIX, body, {
      writable,
      hooks: {
        write: () => {
          onControlChange?.();
          this.deliverPending();
        },
      },
    });
    this.resetTable();
  }

  /** Connects where messages go (the machine's interrupt controller). */
  connect(target: MsiTarget | undefined): void {
    this.target = target;
  }

  private get control(): number {
    return this.fn.getU16(this.capOffset + PCI_MSIX_FLAGS);
  }

  /** MSI-X Enable is set in the capability. */
  get enabled(): boolean {
    return (this.control & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }

  /** Function Mask is set in the capability. */
  get functionMasked(): boolean {
    return (this.control & PCI_MSIX_FLAGS_MASKALL) !== 0;
  }

  isMasked(vector: number): boolean {
    return (this.table[vector * 4 + 3]! & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  isPending(vector: number): boolean {
    return this.pending[vector] === 1;
  }

  /**
   * Signals `vector`: sends its message, or sets its pending bit while it (or the function) is
   * masked. A vector outside the table does nothing.
   */
  notify(vector: number): void {
    if (!(vector >= 0 && vector < this.vectors)) return;
    if (this.functionMasked || this.isMasked(vector)) {
      this.pending[vector] = 1;
      return;
    }
    this.send(vector);
  }

  private send(vector: number): void {
    const t = this.target;
    if (!t) {
      this.dropped++;
      return;
    }
    this.sent++;
    t.sendMsi(this.table[vector * 4]!, this.table[vector * 4 + 1]!, this.table[vector * 4 + 2]!);
  }

  /** Sends the pending messages of vectors that are no longer masked. */
  private deliverPending(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.vectors; v++) {
      if (this.pending[v] && !this.isMasked(v)) {
        this.pending[v] = 0;
        this.send(v);
      }
    }
  }

  /** The table and PBA as seen through the BAR (offset relative to the BAR). */
  mmioRead(offset: number, size: PciAccessSize): number {
    const tEnd = this.tableOffset + this.vectors * PCI_MSIX_ENTRY_SIZE;
    if (size === 4 && offset % 4 === 0 && offset >= this.tableOffset && offset < tEnd) {
      return this.table[(offset - this.tableOffset) / 4]!;
    }
    const pEnd = this.pbaOffset + Math.ceil(this.vectors / 64) * 8;
    if (size === 4 && offset % 4 === 0 && offset >= this.pbaOffset && offset < pEnd) {
      const first = (offset - this.pbaOffset) * 8;
      let v = 0;
      for (let i = 0; i < 32 && first + i < this.vectors; i++) if (this.pending[first + i]) v |= 1 << i;
      return v >>> 0;
    }
    this.ignoredAccesses++;
    return 0;
  }

  mmioWrite(offset: number, size: PciAccessSize, value: number): void {
    const tEnd = this.tableOffset + this.vectors * PCI_MSIX_ENTRY_SIZE;
    if (size === 4 && offset % 4 === 0 && offset >= this.tableOffset && offset < tEnd) {
      const word = (offset - this.tableOffset) / 4;
      if (word % 4 === 3) {
        // Vector control: only the mask bit is writable.
        this.table[word] = value & PCI_MSIX_ENTRY_CTRL_MASKBIT;
        this.deliverPending();
      } else {
        this.table[word] = value >>> 0;
      }
      return;
    }
    // The PBA is read-only; everything else holds nothing.
    this.ignoredAccesses++;
  }

  private resetTable(): void {
    this.table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.table[v * 4 + PCI_MSIX_ENTRY_VECTOR_CTRL / 4] = 1;
    this.pending.fill(0);
  }

  /** PCI function reset: entries masked and cleared, nothing pending (the capability is reset by PciFunction). */
  reset(): void {
    this.resetTable();
  }

  save(): MsixState {
    return { table: Array.from(this.table), pending: Array.from(this.pending) };
  }

  restore(s: MsixState): void {
    if (s.table.length !== this.table.length || s.pending.length !== this.pending.length) {
      throw new ConfigError(
        `saved MSI-X state has ${s.pending.length} vectors, this function ${this.vectors}`,
      );
    }
    this.table.set(s.table.map((x) => x >>> 0));
    this.pending.set(s.pending.map((x) => (x ? 1 : 0)));
  }
}
