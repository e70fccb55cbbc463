/**
 * The 82093AA I/O APIC (Intel datasheet 290566) at 0xFEC00000: the indirect register window
 * (IOREGSEL at +0x00, IOWIN at +0x10), the ID, version (0x170011: version 0x11, 24 pins) and
 * arbitration registers, and 24 redirection entries. Each input pin is edge- or level-triggered
 * per its entry; a level-triggered pin that is delivered sets Remote IRR, which the local APIC's
 * EOI broadcast for the entry's vector clears, and a pin still asserted then is delivered again.
 *
 * Inputs are logical: `setIrq(pin, true)` means "asserted", whatever the entry's polarity bit
 * says (QEMU treats the pins the same way); the polarity bit is stored for the guest to read.
 * An edge that arrives while its pin is masked is latched and delivered on unmask, as QEMU does.
 */
import { ConfigError } from "../../common/errors.js";
import type { Persist, Resettable } from "../../common/persist.js";
import { checkInt, checkObject } from "../chipset/util.js";
import type { AccessSize } from "../io-bus.js";
import type { IrqSink } from "../irq.js";
import type { MmioHandler } from "../memory-bus.js";

export const IOAPIC_DEFAULT_BASE = 0xfec0_0000;
export const IOAPIC_PINS = 24;
/** Version 0x11, maximum redirection entry 23. */
export const IOAPIC_VERSION = 0x0017_0011;
export const IOREGSEL = 0x00;
export const IOWIN = 0x10;

/** Redirection entry bits (low dword). */
export const Redir = {
  VECTOR: 0xff,
  DELIVERY_MODE_SHIFT: 8,
  DEST_LOGICAL: 1 << 11,
  DELIVERY_STATUS: 1 << 12,
  POLARITY_LOW: 1 << 13,
  REMOTE_IRR: 1 << 14,
  LEVEL: 1 << 15,
  MASKED: 1 << 16,
} as const;

/** Guest-writable bits of a redirection entry's low dword (delivery status and remote IRR are read-only). */
const REDIR_WRITABLE_LO = 0x0001_afff;

/** Where the I/O APIC sends interrupt messages (the local APIC bus). */
export interface ApicMessageSink {
  /** Returns false when no APIC took the message. */
  deliverMessage(dest: number, logical: boolean, vector: number, mode: number, level: boolean): boolean;
}

export interface IoApicState {
  id: number;
  regsel: number;
  /** Per pin: [low dword, high dword]. */
  redir: [number, number][];
  /** Pin levels as last driven (bit n = pin n asserted). */
  levels: number;
  /** Edges seen on pins that were masked, delivered on unmask. */
  pendingEdges: number;
}

function powerOn(): IoApicState {
  return {
    id: 0,
    regsel: 0,
    redir: Array.from({ length: IOAPIC_PINS }, (): [number, number] => [Redir.MASKED, 0]),
    levels: 0,
    pendingEdges: 0,
  };
}

export class IoApic implements MmioHandler, IrqSink, Persist<IoApicState>, Resettable {
  private s: IoApicState = powerOn();
  private readonly logged = new Set<string>();
  /** Messages sent, per pin (tests, diagnostics). */
  readonly delivered = new Array<number>(IOAPIC_PINS).fill(0);

  constructor(
    private readonly sink: ApicMessageSink,
    private readonly log?: (message: string) => void,
  ) {}

  /** An input pin changed. Pins outside 0..23 are a wiring bug of the host. */
  setIrq(pin: number, level: boolean): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS)
      throw new ConfigError(`I/O APIC: no input pin ${pin} (0..${IOAPIC_PINS - 1})`);
    const mask = 1 << pin;
    const was = (this.s.levels & mask) !== 0;
    if (level) this.s.levels |= mask;
    else this.s.levels &= ~mask;
    const lo = this.s.redir[pin]![0];
    if ((lo & Redir.LEVEL) !== 0) {
      if (level) this.service(pin);
    } else if (level && !was) {
      this.s.pendingEdges |= mask;
      this.service(pin);
    }
  }

  /** Sends pin `pin`'s message if it is due: unmasked, and asserted (level, remote IRR clear) or an edge pending. */
  private service(pin: number): void {
    const s = this.s;
    const mask = 1 << pin;
    const entry = s.redir[pin]!;
    const lo = entry[0];
    if ((lo & Redir.MASKED) !== 0) return;
    const levelTriggered = (lo & Redir.LEVEL) !== 0;
    if (levelTriggered) {
      if ((s.levels & mask) === 0 || (lo & Redir.REMOTE_IRR) !== 0) return;
    } else {
      if ((s.pendingEdges & mask) === 0) return;
      s.pendingEdges &= ~mask;
    }
    const mode = (lo >>> Redir.DELIVERY_MODE_SHIFT) & 7;
    const taken = this.sink.deliverMessage(
      entry[1] >>> 24,
      (lo & Redir.DEST_LOGICAL) !== 0,
      lo & Redir.VECTOR,
      mode,
      levelTriggered,
    );
    this.delivered[pin]!++;
    // Remote IRR is set when a level interrupt is accepted (fixed and lowest-priority modes)
    if (levelTriggered && taken && (mode === 0 || mode === 1)) entry[0] = (lo | Redir.REMOTE_IRR) >>> 0;
  }

  /** The local APIC's EOI broadcast: clears Remote IRR of level entries with `vector`, re-delivers asserted pins. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const entry = this.s.redir[pin]!;
      if ((entry[0] & Redir.VECTOR) !== vector || (entry[0] & Redir.REMOTE_IRR) === 0) continue;
      entry[0] = (entry[0] & ~Redir.REMOTE_IRR) >>> 0;
      this.service(pin);
    }
  }

  mmioRead(offset: number, size: AccessSize): number {
    if (size !== 4 || (offset !== IOREGSEL && offset !== IOWIN)) {
      this.logOnce(`r${offset}.${size}`, `ioapic: ${size}-byte read at +0x${offset.toString(16)}: 0`);
      return 0;
    }
    return offset === IOREGSEL ? this.s.regsel : this.readRegister(this.s.regsel);
  }

  mmioWrite(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || (offset !== IOREGSEL && offset !== IOWIN)) {
      this.logOnce(`w${offset}.${size}`, `ioapic: ${size}-byte write at +0x${offset.toString(16)} ignored`);
      return;
    }
    if (offset === IOREGSEL) this.s.regsel = value & 0xff;
    else this.writeRegister(this.s.regsel, value >>> 0);
  }

  readRegister(index: number): number {
    const s = this.s;
    if (index === 0x00) return (s.id & 0xf) << 24;
    if (index === 0x01) return IOAPIC_VERSION;
    if (index === 0x02) return (s.id & 0xf) << 24; // arbitration ID: the APIC ID after reset
    if (index >= 0x10 && index < 0x10 + 2 * IOAPIC_PINS) {
      const entry = s.redir[(index - 0x10) >> 1]!;
      return entry[index & 1]! >>> 0;
    }
    this.logOnce(`reg${index}`, `ioapic: read of reserved register 0x${index.toString(16)}: 0`);
    return 0;
  }

  writeRegister(index: number, value: number): void {
    const s = this.s;
    if (index === 0x00) {
      s.id = (value >>> 24) & 0xf;
      return;
    }
    if (index === 0x01 || index === 0x02) return; // read-only
    if (index >= 0x10 && index < 0x10 + 2 * IOAPIC_PINS) {
      const pin = (index - 0x10) >> 1;
      const entry = s.redir[pin]!;
      if ((index & 1) === 1) {
        entry[1] = (value & 0xff00_0000) >>> 0;
        return;
      }
      entry[0] = ((entry[0] & ~REDIR_WRITABLE_LO) | (value & REDIR_WRITABLE_LO)) >>> 0;
      // an edge entry has no remote IRR (datasheet: undefined for edge; cleared here)
      if ((entry[0] & Redir.LEVEL) === 0) entry[0] = (entry[0] & ~Redir.REMOTE_IRR) >>> 0;
      this.service(pin);
      return;
    }
    this.logOnce(`wreg${index}`, `ioapic: write of reserved register 0x${index.toString(16)} ignored`);
  }

  /** A redirection entry as two dwords (tests, diagnostics). */
  entry(pin: number): [number, number] {
    const e = this.s.redir[pin];
    if (!e) throw new ConfigError(`I/O APIC: no pin ${pin}`);
    return [e[0], e[1]];
  }

  private logOnce(key: string, message: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.log?.(message);
  }

  reset(): void {
    this.s = powerOn();
  }

  save(): IoApicState {
    const s = this.s;
    return { ...s, redir: s.redir.map((e): [number, number] => [e[0], e[1]]) };
  }

  restore(state: IoApicState): void {
    const o = checkObject(state, "ioapic");
    const redir = o.redir;
    if (!Array.isArray(redir) || redir.length !== IOAPIC_PINS)
      throw new ConfigError(`bad saved state: ioapic.redir is not ${IOAPIC_PINS} entries`);
    this.s = {
      id: checkInt(o.id, "ioapic.id", 0, 15),
      regsel: checkInt(o.regsel, "ioapic.regsel", 0, 255),
      redir: redir.map((e, i): [number, number] => {
        if (!Array.isArray(e) || e.length !== 2) throw new ConfigError(`bad saved state: ioapic.redir[${i}]`);
        return [
          checkInt(e[0], `ioapic.redir[${i}][0]`, 0, 0xffff_ffff),
          checkInt(e[1], `ioapic.redir[${i}][1]`, 0, 0xffff_ffff),
        ];
      }),
      levels: checkInt(o.levels, "ioapic.levels", 0, 0xff_ffff),
      pendingEdges: checkInt(o.pendingEdges, "ioapic.pendingEdges", 0, 0xff_ffff),
    };
  }
}
