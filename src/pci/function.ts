import { ConfigError, hex } from "../common/errors.js";
import type { Persist, Resettable } from "../common/persist.js";
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR,
  PCI_CONFIG_SPACE_SIZE,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MULTI_FUNCTION,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_INTERRUPT,
  PCI_STATUS_W1C_BITS,
  PCI_STD_HEADER_SIZEOF,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from "./regs.js";
import type {
  PciAccessSize,
  BarHandler,
  IntxLine,
  BarKind,
  BarDefinition,
  BarInfo,
  BarChangeListener,
  CapabilityHooks,
  CapabilityOptions,
  Capability,
  PciFunctionOptions,
  PciFunctionState,
} from "./types.js";

export type {
  PciAccessSize,
  BarHandler,
  IntxLine,
  BarKind,
  BarDefinition,
  BarInfo,
  BarChangeListener,
  CapabilityHooks,
  CapabilityOptions,
  Capability,
  PciFunctionOptions,
  PciFunctionState,
};

/** Command register bits the guest may write. */
const COMMAND_WRITABLE =
  PCI_COMMAND_IO |
  PCI_COMMAND_MEMORY |
  PCI_COMMAND_MASTER |
  PCI_COMMAND_PARITY |
  PCI_COMMAND_SERR |
  PCI_COMMAND_INTX_DISABLE;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 0x8000_0000;
}

/**
 * One PCI function: a type-0 configuration space of 256 bytes, each byte stored with a mask of
 * the bits the guest may write and a mask of the bits it clears by writing 1 (everything else
 * is read-only), plus the function's BARs, capability list and INTx pin.
 *
 * - BAR sizing works through the masks: the low bits of a BAR below its size are read-only, so
 *   writing all ones reads back the size mask with the type bits.
 * - Memory BARs decode only while Memory Space is on in the command register, I/O BARs only
 *   while I/O Space is on; every change of a BAR's decoded address calls the BAR listeners
 *   (the machine's PCI bus moves the range on its buses).
 * - INTx: `setIntx(level)` drives the pin; the line the bus wired sees it unless Interrupt
 *   Disable is set, and status bit 3 shows the level.
 *
 * Configuration accesses of 1, 2 or 4 bytes at any offset inside the 256 bytes; an access that
 * does not fit reads all ones and is ignored on write. Nothing a guest writes throws.
 */
export class PciFunction implements Persist<PciFunctionState>, Resettable {
  readonly name: string;
  /** Current values. Use `getU*`/`setU*` to change them from the host side. */
  protected readonly data = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  private readonly wmask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  private readonly w1cmask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  /** Power-on values, restored by `reset()`. */
  private readonly initial = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  private readonly barList: (BarInfo | undefined)[] = [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ];
  /** BAR slots taken by the upper half of a 64-bit BAR. */
  private readonly upperHalf = [false, false, false, false, false, false];
  private readonly decoded: (number | null)[] = [null, null, null, null, null, null];
  private readonly caps: Capability[] = [];
  private readonly listeners: BarChangeListener[] = [];
  private nextCapOffset = PCI_STD_HEADER_SIZEOF;
  private intxLevel = false;
  private intxOut = false;
  private intxLine: IntxLine | undefined;
  /** Configuration accesses that did not fit in the 256 bytes or had a bad width. */
  badAccesses = 0;

  constructor(options: PciFunctionOptions) {
    this.name = options.name ?? `${hex(options.vendorId, 4)}:${hex(options.deviceId, 4)}`;
    const check = (what: string, v: number | undefined, max: number): number => {
      const x = v ?? 0;
      if (!Number.isInteger(x) || x < 0 || x > max) {
        throw new ConfigError(
          `PCI function ${this.name}: ${what} must be an integer 0..0x${hex(max)}, got ${v}`,
        );
      }
      return x;
    };
    this.init(PCI_VENDOR_ID, 2, check("vendorId", options.vendorId, 0xffff));
    this.init(PCI_DEVICE_ID, 2, check("deviceId", options.deviceId, 0xffff));
    this.init(PCI_REVISION_ID, 1, check("revision", options.revision, 0xff));
    const cls = check("classCode", options.classCode, 0xff_ffff);
    this.init(PCI_CLASS_PROG, 1, cls & 0xff);
    this.init(PCI_CLASS_PROG + 1, 2, cls >>> 8);
    this.init(PCI_SUBSYSTEM_VENDOR_ID, 2, check("subsystemVendorId", options.subsystemVendorId, 0xffff));
    this.init(PCI_SUBSYSTEM_ID, 2, check("subsystemId", options.subsystemId, 0xffff));
    this.init(PCI_HEADER_TYPE, 1, options.multiFunction ? PCI_HEADER_TYPE_MULTI_FUNCTION : 0);
    this.init(PCI_INTERRUPT_PIN, 1, check("interruptPin", options.interruptPin, 4));
    this.setMask(PCI_COMMAND, 2, COMMAND_WRITABLE);
    this.setW1cMask(PCI_STATUS, 2, PCI_STATUS_W1C_BITS);
    this.setMask(PCI_CACHE_LINE_SIZE, 1, 0xff);
    this.setMask(PCI_LATENCY_TIMER, 1, 0xff);
    this.setMask(PCI_INTERRUPT_LINE, 1, 0xff);
  }

  // ---- identity ---------------------------------------------------------------------------

  get vendorId(): number {
    return this.getU16(PCI_VENDOR_ID);
  }
  get deviceId(): number {
    return this.getU16(PCI_DEVICE_ID);
  }
  get classCode(): number {
    return (this.getU32(PCI_REVISION_ID) >>> 8) & 0xff_ffff;
  }
  get interruptPin(): number {
    return this.data[PCI_INTERRUPT_PIN]!;
  }
  get interruptLine(): number {
    return this.data[PCI_INTERRUPT_LINE]!;
  }
  get command(): number {
    return this.getU16(PCI_COMMAND);
  }
  /** Bus Master Enable: a function must not access guest memory while it is off. */
  get busMasterEnabled(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }
  get memorySpaceEnabled(): boolean {
    return (this.command & PCI_COMMAND_MEMORY) !== 0;
  }
  get ioSpaceEnabled(): boolean {
    return (this.command & PCI_COMMAND_IO) !== 0;
  }

  /** Sets or clears the multi-function bit of the header type (the bus does this). */
  setMultiFunction(on: boolean): void {
    const v = (this.data[PCI_HEADER_TYPE]! & 0x7f) | (on ? PCI_HEADER_TYPE_MULTI_FUNCTION : 0);
    this.init(PCI_HEADER_TYPE, 1, v);
  }

  // ---- raw host-side access (no masks, no hooks) --------------------------------------------

  getU8(offset: number): number {
    return this.data[offset]!;
  }
  getU16(offset: number): number {
    return this.data[offset]! | (this.data[offset + 1]! << 8);
  }
  getU32(offset: number): number {
    return (this.getU16(offset) | (this.getU16(offset + 2) << 16)) >>> 0;
  }
  /** Host-side store of `size` bytes, ignoring the masks (for a device updating its own registers). */
  setBytes(offset: number, size: number, value: number): void {
    this.checkHostRange(offset, size);
    for (let i = 0; i < size; i++) this.data[offset + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  }
  setU8(offset: number, value: number): void {
    this.setBytes(offset, 1, value);
  }
  setU16(offset: number, value: number): void {
    this.setBytes(offset, 2, value);
  }
  setU32(offset: number, value: number): void {
    this.setBytes(offset, 4, value >>> 0);
  }
  /** Sets the guest-writable bits of `size` bytes from `offset` (little-endian mask). */
  setMask(offset: number, size: number, mask: number): void {
    this.checkHostRange(offset, size);
    for (let i = 0; i < size; i++) this.wmask[offset + i] = Math.floor(mask / 2 ** (8 * i)) & 0xff;
  }
  /** Sets the write-1-to-clear bits of `size` bytes from `offset` (little-endian mask). */
  setW1cMask(offset: number, size: number, mask: number): void {
    this.checkHostRange(offset, size);
    for (let i = 0; i < size; i++) this.w1cmask[offset + i] = Math.floor(mask / 2 ** (8 * i)) & 0xff;
  }
  /** Writes a power-on value: the current value and the one `reset()` restores. */
  protected init(offset: number, size: number, value: number): void {
    this.setBytes(offset, size, value);
    this.initial.set(this.data.subarray(offset, offset + size), offset);
  }

  private checkHostRange(offset: number, size: number): void {
    if (
      !Number.isInteger(offset) ||
      !Number.isInteger(size) ||
      offset < 0 ||
      size < 1 ||
      offset + size > 256
    ) {
      throw new ConfigError(
        `PCI function ${this.name}: config range 0x${hex(offset)}+${size} is outside 256 bytes`,
      );
    }
  }

  // ---- BARs -------------------------------------------------------------------------------

  /** Declares BAR `index` (0..5; a 64-bit BAR takes `index` and `index + 1`). */
  addBar(index: number, def: BarDefinition): BarInfo {
    const name = def.name ?? `BAR${index}`;
    const where = `PCI function ${this.name} ${name}`;
    if (!Number.isInteger(index) || index < 0 || index > 5)
      throw new ConfigError(`${where}: BAR index must be 0..5`);
    const slots = def.kind === "mem64" ? 2 : 1;
    if (index + slots > 6) throw new ConfigError(`${where}: a 64-bit BAR needs index 0..4`);
    for (let i = index; i < index + slots; i++) {
      if (this.barList[i] || this.upperHalf[i])
        throw new ConfigError(`${where}: BAR slot ${i} is already used`);
    }
    if (!isPowerOfTwo(def.size)) throw new ConfigError(`${where}: size ${def.size} is not a power of two`);
    if (def.kind === "io") {
      if (def.size < 4 || def.size > 256)
        throw new ConfigError(`${where}: an I/O BAR is 4 to 256 bytes, got ${def.size}`);
      if (def.prefetchable) throw new ConfigError(`${where}: an I/O BAR cannot be prefetchable`);
    } else if (def.size < 4096) {
      throw new ConfigError(
        `${where}: a memory BAR must be at least 4096 bytes (page-mapped), got ${def.size}`,
      );
    }
    const bar: BarInfo = {
      index,
      kind: def.kind,
      size: def.size,
      prefetchable: def.prefetchable ?? false,
      handler: def.handler,
      name,
    };
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    if (def.kind === "io") {
      this.init(off, 4, PCI_BASE_ADDRESS_SPACE_IO);
      // x86 ports are 16 bits: the upper half of an I/O BAR is hardwired to 0.
      this.setMask(off, 4, ~(def.size - 1) & 0xfffc);
    } else {
      const flags =
        (def.kind === "mem64" ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
        (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
      this.init(off, 4, flags);
      this.setMask(off, 4, (~(def.size - 1) & 0xffff_fff0) >>> 0);
      if (def.kind === "mem64") {
        this.init(off + 4, 4, 0);
        this.setMask(off + 4, 4, 0xffff_ffff);
        this.upperHalf[index + 1] = true;
      }
    }
    this.barList[index] = bar;
    return bar;
  }

  bar(index: number): BarInfo | undefined {
    return this.barList[index];
  }

  bars(): BarInfo[] {
    return this.barList.filter((b): b is BarInfo => b !== undefined);
  }

  /** The address programmed in a BAR (memory: may be >= 4 GiB for a 64-bit BAR), decode or not. */
  barAddress(index: number): number {
    const bar = this.barList[index];
    if (!bar) return 0;
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    const lo = this.getU32(off);
    if (bar.kind === "io") return lo & 0xfffc;
    const base = (lo & 0xffff_fff0) >>> 0;
    return bar.kind === "mem64" ? this.getU32(off + 4) * 0x1_0000_0000 + base : base;
  }

  /**
   * Where the BAR decodes now, or null: decode enabled for its kind, a non-zero address, and the
   * whole BAR below 4 GiB (memory) or 64 Ki (ports).
   */
  barMapping(index: number): number | null {
    const bar = this.barList[index];
    if (!bar) return null;
    const cmd = this.command;
    const addr = this.barAddress(index);
    if (addr === 0) return null;
    if (bar.kind === "io") return cmd & PCI_COMMAND_IO && addr + bar.size <= 0x1_0000 ? addr : null;
    return cmd & PCI_COMMAND_MEMORY && addr + bar.size <= 0x1_0000_0000 ? addr : null;
  }

  /** The decoded address the listeners were last told about. */
  decodedAddress(index: number): number | null {
    return this.decoded[index] ?? null;
  }

  /** Host-side (firmware) programming of a BAR's address. Notifies listeners if decode changes. */
  setBarAddress(index: number, address: number): void {
    const bar = this.barList[index];
    if (!bar) throw new ConfigError(`PCI function ${this.name}: no BAR ${index}`);
    if (!Number.isSafeInteger(address) || address < 0 || address % bar.size !== 0) {
      throw new ConfigError(
        `PCI function ${this.name} ${bar.name}: address 0x${hex(address)} is not aligned to its size`,
      );
    }
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    const keep = this.getU32(off) & (bar.kind === "io" ? 0x3 : 0xf);
    if (bar.kind === "io") {
      if (address + bar.size > 0x1_0000)
        throw new ConfigError(`${bar.name}: I/O address 0x${hex(address)} is above 64 Ki`);
      this.setU32(off, address | keep);
    } else {
      if (bar.kind === "mem32" && address + bar.size > 0x1_0000_0000) {
        throw new ConfigError(
          `PCI function ${this.name} ${bar.name}: 32-bit BAR address 0x${hex(address)} is above 4 GiB`,
        );
      }
      this.setU32(off, (address % 0x1_0000_0000) | keep);
      if (bar.kind === "mem64") this.setU32(off + 4, Math.floor(address / 0x1_0000_0000));
    }
    this.updateDecode();
  }

  /** Host-side (firmware) write of the command register. */
  setCommand(value: number): void {
    this.setU16(PCI_COMMAND, value & COMMAND_WRITABLE);
    this.updateDecode();
    this.updateIntx();
  }

  addBarListener(listener: BarChangeListener): void {
    this.listeners.push(listener);
  }

  removeBarListener(listener: BarChangeListener): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  /** Recomputes every BAR's decoded address and tells the listeners about the changes. */
  private updateDecode(): void {
    for (let i = 0; i < 6; i++) {
      const bar = this.barList[i];
      if (!bar) continue;
      const now = this.barMapping(i);
      const before = this.decoded[i] ?? null;
      if (now === before) continue;
      this.decoded[i] = now;
      for (const l of this.listeners) l(this, bar, before, now);
    }
  }

  // ---- capabilities ------------------------------------------------------------------------

  /**
   * Appends a capability: its ID, a next pointer (chained by the builder) and `body` (the bytes
   * after the next pointer). Returns its offset in configuration space.
   */
  addCapability(id: number, body: Uint8Array, options: CapabilityOptions = {}): number {
    if (!Number.isInteger(id) || id < 0 || id > 0xff)
      throw new ConfigError(`PCI function ${this.name}: bad capability ID ${id}`);
    const length = 2 + body.length;
    const offset = this.nextCapOffset;
    if (offset + length > PCI_CONFIG_SPACE_SIZE) {
      throw new ConfigError(
        `PCI function ${this.name}: capability 0x${hex(id, 2)} of ${length} bytes does not fit (next free offset 0x${hex(offset)})`,
      );
    }
    for (const [what, m] of [
      ["writable", options.writable],
      ["writeOneToClear", options.writeOneToClear],
    ] as const) {
      if (m && m.length !== body.length) {
        throw new ConfigError(
          `PCI function ${this.name}: capability 0x${hex(id, 2)} ${what} mask length ${m.length} != body ${body.length}`,
        );
      }
    }
    this.init(offset, 1, id);
    this.init(offset + 1, 1, 0);
    for (let i = 0; i < body.length; i++) {
      this.init(offset + 2 + i, 1, body[i]!);
      this.wmask[offset + 2 + i] = options.writable?.[i] ?? 0;
      this.w1cmask[offset + 2 + i] = options.writeOneToClear?.[i] ?? 0;
    }
    const last = this.caps[this.caps.length - 1];
    if (last) this.init(last.offset + 1, 1, offset);
    else this.init(PCI_CAPABILITY_LIST, 1, offset);
    this.init(PCI_STATUS, 2, this.getU16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
    this.caps.push({ id, offset, length, hooks: options.hooks });
    this.nextCapOffset = (offset + length + 3) & ~3;
    return offset;
  }

  capabilities(): readonly Capability[] {
    return this.caps;
  }

  private capAt(offset: number): Capability | undefined {
    for (const c of this.caps) if (offset >= c.offset && offset < c.offset + c.length) return c;
    return undefined;
  }

  // ---- configuration access from the guest -------------------------------------------------

  configRead(offset: number, size: PciAccessSize): number {
    if (
      !(size === 1 || size === 2 || size === 4) ||
      !(offset >= 0 && offset + size <= PCI_CONFIG_SPACE_SIZE)
    ) {
      this.badAccesses++;
      return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
    }
    const cap = offset >= PCI_STD_HEADER_SIZEOF ? this.capAt(offset) : undefined;
    if (cap?.hooks?.read) {
      const v = cap.hooks.read(offset - cap.offset, size);
      if (v !== undefined) return size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff);
    }
    if (size === 1) return this.data[offset]!;
    if (size === 2) return this.getU16(offset);
    return this.getU32(offset);
  }

  configWrite(offset: number, size: PciAccessSize, value: number): void {
    if (
      !(size === 1 || size === 2 || size === 4) ||
      !(offset >= 0 && offset + size <= PCI_CONFIG_SPACE_SIZE)
    ) {
      this.badAccesses++;
      return;
    }
    value >>>= 0;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      const wm = this.wmask[o]!;
      this.data[o] = ((this.data[o]! & ~wm) | (b & wm)) & ~(b & this.w1cmask[o]!);
    }
    const end = offset + size;
    if (offset < PCI_COMMAND + 2 && end > PCI_COMMAND) {
      this.updateDecode();
      this.updateIntx();
    } else if (offset < PCI_BASE_ADDRESS_0 + 24 && end > PCI_BASE_ADDRESS_0) {
      this.updateDecode();
    }
    if (offset >= PCI_STD_HEADER_SIZEOF) {
      const cap = this.capAt(offset);
      cap?.hooks?.write?.(offset - cap.offset, size, value);
    }
  }

  // ---- INTx --------------------------------------------------------------------------------

  /** Wires the function's INTx pin (the bus does this). */
  connectIntx(line: IntxLine | undefined): void {
    if (this.intxLine && this.intxOut) this.intxLine.set(false);
    this.intxLine = line;
    this.intxOut = false;
    this.updateIntx();
  }

  /** Drives the INTx pin. Ignored (with the level remembered) for a function without a pin. */
  setIntx(level: boolean): void {
    this.intxLevel = level;
    this.updateIntx();
  }

  get intxAsserted(): boolean {
    return this.intxLevel;
  }

  private updateIntx(): void {
    const status = this.getU16(PCI_STATUS);
    this.setU16(PCI_STATUS, this.intxLevel ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT);
    const out = this.intxLevel && this.interruptPin !== 0 && (this.command & PCI_COMMAND_INTX_DISABLE) === 0;
    if (out === this.intxOut) return;
    this.intxOut = out;
    this.intxLine?.set(out);
  }

  // ---- reset and state ---------------------------------------------------------------------

  /** Back to power-on values: decode off, BARs 0, Interrupt Line 0. The INTx level is kept. */
  reset(): void {
    this.data.set(this.initial);
    this.updateDecode();
    this.updateIntx();
  }

  save(): PciFunctionState {
    return { config: Array.from(this.data), intx: this.intxLevel };
  }

  restore(state: PciFunctionState): void {
    if (!Array.isArray(state.config) || state.config.length !== PCI_CONFIG_SPACE_SIZE) {
      throw new ConfigError(`PCI function ${this.name}: saved config must have 256 bytes`);
    }
    for (let i = 0; i < PCI_CONFIG_SPACE_SIZE; i++) this.data[i] = state.config[i]! & 0xff;
    this.intxLevel = state.intx === true;
    this.updateDecode();
    this.updateIntx();
  }
}
