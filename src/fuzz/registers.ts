/**
 * Hostile register accesses: the common configuration (fields at the right and the wrong
 * widths, status bit soup, queue layout values), ISR, device configuration, notify addresses,
 * the MSI-X table and PBA, and PCI configuration space (command, BARs, the MSI-X control
 * word, the VIRTIO_PCI_CAP_PCI_CFG window), as a driver with nothing to lose would do them.
 * Queue addresses always point at the hostile driver's own memory (or outside memory): a guest
 * that aims its device at another driver's rings breaks that driver, not the host.
 */
import type { PciAccessSize } from "../pci/types.js";
import type { Prng } from "./prng.js";
import type { FuzzWorld } from "./world.js";

/** Offsets and widths of struct virtio_pci_common_cfg. */
const COMMON_FIELDS: readonly [number, PciAccessSize][] = [
  [0, 4],
  [4, 4],
  [8, 4],
  [12, 4],
  [16, 2],
  [18, 2],
  [20, 1],
  [21, 1],
  [22, 2],
  [24, 2],
  [26, 2],
  [28, 2],
  [30, 2],
  [32, 4],
  [36, 4],
  [40, 4],
  [44, 4],
  [48, 4],
  [52, 4],
  [56, 2],
  [58, 2],
  [60, 2],
  [62, 2],
];
const SIZES: readonly PciAccessSize[] = [1, 2, 4];
const PCI_CAP_ID_MSIX = 0x11;
const PCI_CAP_ID_VNDR = 0x09;

function statusValue(rng: Prng, current: number): number {
  switch (rng.int(5)) {
    case 0:
      return 0;
    case 1:
      return current | (1 << rng.int(8));
    case 2:
      return rng.pick([1, 3, 11, 15, 0x4f, 0x8f, 0xff, 0x40, 0x10]);
    default:
      return rng.int(256);
  }
}

/** A value for a BAR 0 write at `offset`: queue addresses never name memory below the hostile region. */
function barValue(w: FuzzWorld, rng: Prng, offset: number, size: PciAccessSize): number {
  if (offset === 20) return statusValue(rng, w.transport.status);
  if (offset >= 32 && offset < 56 && offset % 8 === 0) return w.hostileAddr(rng, 0, rng.chance(0.8) ? 16 : 1);
  if (offset >= 32 && offset < 56 && rng.chance(0.7)) return 0;
  let v = rng.edgyU32();
  if (size === 1) v &= 0xff;
  else if (size === 2) v &= 0xffff;
  // A partial write over a low address half: keep it out of the neighbour's memory.
  if (offset >= 32 && offset < 56 && (offset & 7) < 4) v |= 0x8_0000;
  return v >>> 0;
}

function bar0Offset(w: FuzzWorld, rng: Prng): [number, PciAccessSize] {
  const t = w.transport;
  switch (rng.int(10)) {
    case 0:
    case 1:
    case 2:
    case 3: {
      const [o, s] = rng.pick(COMMON_FIELDS);
      return [o, rng.chance(0.85) ? s : rng.pick(SIZES)];
    }
    case 4:
      return [rng.int(64), rng.pick(SIZES)];
    case 5:
      return [0x1000 + (rng.chance(0.8) ? 0 : rng.int(8)), rng.chance(0.8) ? 1 : rng.pick(SIZES)];
    case 6:
    case 7:
      return [0x2000 + rng.int(t.device.configSize + 8), rng.pick(SIZES)];
    case 8:
      return [0x3000 + (rng.chance(0.7) ? 4 * rng.int(t.numQueues + 2) : rng.int(64)), rng.pick(SIZES)];
    default:
      return [rng.int(0x4000), rng.pick(SIZES)];
  }
}

/** One hostile register access; returns what it did. */
export function hostileRegisterAction(w: FuzzWorld, rng: Prng): string {
  const t = w.transport;
  const acc = w.access;
  const kind = rng.weighted([45, 10, 12, 10, 10, 6, 3]);
  switch (kind) {
    case 0: {
      const [o, s] = bar0Offset(w, rng);
      if (rng.chance(0.25)) {
        acc.barRead(0, o, s);
        return `bar0 read 0x${o.toString(16)}/${s}`;
      }
      const v = barValue(w, rng, o, s);
      acc.barWrite(0, o, s, v);
      return `bar0 write 0x${o.toString(16)}/${s} = 0x${v.toString(16)}`;
    }
    case 1: {
      // Straight to the handler, as a bus would for any offset in the BAR (even across its end).
      const b = t.bar(0)!;
      const o = rng.int(0x4000);
      const s = rng.pick(SIZES);
      if (rng.chance(0.5)) b.handler.mmioRead(o, s);
      else b.handler.mmioWrite(o, s, barValue(w, rng, o, s));
      return `bar0 raw 0x${o.toString(16)}/${s}`;
    }
    case 2: {
      // MSI-X table and PBA.
      const b = t.bar(1);
      if (!b) return "no MSI-X BAR";
      const o = rng.chance(0.7) ? 4 * rng.int(64) : rng.chance(0.5) ? 0x800 + rng.int(16) : rng.int(0x1000);
      const s = rng.chance(0.8) ? 4 : rng.pick(SIZES);
      if (rng.chance(0.3)) b.handler.mmioRead(o, s);
      else b.handler.mmioWrite(o, s, (o & 15) === 12 ? rng.int(2) : rng.edgyU32());
      return `msix 0x${o.toString(16)}/${s}`;
    }
    case 3: {
      // Command register: memory decode, bus mastering, INTx disable.
      const v = rng.chance(0.6) ? 0x6 | (rng.chance(0.2) ? 0x400 : 0) : rng.int(0x10000);
      acc.configWrite(4, 2, v);
      return `command = 0x${v.toString(16)}`;
    }
    case 4: {
      // MSI-X message control: enable and function mask.
      const cap = t.capabilities().find((c) => c.id === PCI_CAP_ID_MSIX);
      if (!cap) return "no MSI-X capability";
      const v = rng.chance(0.7) ? rng.pick([0x8000, 0xc000, 0x4000, 0]) : rng.int(0x10000);
      acc.configWrite(cap.offset + 2, 2, v);
      return `msix control = 0x${v.toString(16)}`;
    }
    case 5: {
      // The PCI configuration access window into the BARs.
      const cap = t
        .capabilities()
        .find((c) => c.id === PCI_CAP_ID_VNDR && t.configRead(c.offset + 3, 1) === 5);
      if (!cap) return "no pci cfg capability";
      const bar = rng.chance(0.8) ? 0 : rng.int(8);
      const [o, s] = bar0Offset(w, rng);
      const len = rng.chance(0.85) ? s : rng.edgyU32();
      const off = rng.chance(0.9) ? o : rng.edgyU32();
      acc.configWrite(cap.offset + 4, 1, bar);
      acc.configWrite(cap.offset + 8, 4, off);
      acc.configWrite(cap.offset + 12, 4, len);
      if (rng.chance(0.4)) {
        acc.configRead(cap.offset + 16, rng.pick(SIZES));
        return `pci cfg window read bar ${bar} 0x${off.toString(16)}/${len}`;
      }
      const v = bar === 0 ? barValue(w, rng, off, s) : rng.edgyU32();
      acc.configWrite(cap.offset + 16, 4, v);
      return `pci cfg window write bar ${bar} 0x${off.toString(16)}/${len} = 0x${v.toString(16)}`;
    }
    default: {
      // Anywhere in configuration space (BARs included), or past it.
      const o = rng.chance(0.9) ? rng.int(256) : rng.int(4096);
      const s = rng.pick(SIZES);
      if (rng.chance(0.4)) {
        acc.configRead(o, s);
        return `config read 0x${o.toString(16)}/${s}`;
      }
      const v = rng.edgyU32();
      acc.configWrite(o, s, v);
      return `config write 0x${o.toString(16)}/${s} = 0x${v.toString(16)}`;
    }
  }
}
