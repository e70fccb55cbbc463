import type { PciFunction } from "../../../pci/function.js";
import { PCI_CAP_ID_VNDR } from "../../../pci/regs.js";
import { VIRTIO_PCI_CAP_PCI_CFG } from "./regs.js";

/**
 * Appends a struct virtio_pci_cap (section 4.1.4) to `fn`'s capability list: cap_len,
 * cfg_type, bar, offset and length, followed by `extra` 32-bit words (the notify capability's
 * notify_off_multiplier). cap_len counts the extra words. Read-only for the driver.
 */
export function addVirtioCap(
  fn: PciFunction,
  cfgType: number,
  bar: number,
  offset: number,
  length: number,
  extra: readonly number[] = [],
): number {
  // Body: everything after cap_vndr and cap_next.
  const body = new Uint8Array(14 + 4 * extra.length);
  const dv = new DataView(body.buffer);
  body[0] = 16 + 4 * extra.length; // cap_len
  body[1] = cfgType;
  body[2] = bar;
  dv.setUint32(6, offset, true);
  dv.setUint32(10, length, true);
  extra.forEach((x, i) => {
    dv.setUint32(14 + 4 * i, x, true);
  });
  return fn.addCapability(PCI_CAP_ID_VNDR, body);
}

/**
 * Appends the VIRTIO_PCI_CAP_PCI_CFG capability (struct virtio_pci_cfg_cap, section 4.1.4.9):
 * cap.bar, cap.offset, cap.length and pci_cfg_data are writable; a read of pci_cfg_data runs a
 * read of cap.length bytes at cap.offset of BAR cap.bar and presents it, a write runs the
 * write. A window that is not 1, 2 or 4 bytes, not aligned, or outside the BAR does nothing
 * (reads show the stored bytes) and calls `ignored`.
 */
export function addPciCfgCap(fn: PciFunction, ignored: () => void): number {
  const body = new Uint8Array(18);
  body[0] = 20; // cap_len
  body[1] = VIRTIO_PCI_CAP_PCI_CFG;
  const writable = new Uint8Array(18);
  writable[2] = 0xff; // cap.bar
  writable.fill(0xff, 6, 18); // cap.offset, cap.length, pci_cfg_data
  let at = 0;
  /** The BAR handler and window, when the window is usable. */
  const window = () => {
    const bar = fn.bar(fn.getU8(at + 4));
    const off = fn.getU32(at + 8);
    const len = fn.getU32(at + 12);
    if (!bar || !(len === 1 || len === 2 || len === 4) || off % len !== 0 || off + len > bar.size)
      return null;
    return { bar, off, len: len as 1 | 2 | 4 };
  };
  const mask = (v: number, len: number) => (len === 4 ? v >>> 0 : v & (len === 1 ? 0xff : 0xffff));
  at = fn.addCapability(PCI_CAP_ID_VNDR, body, {
    writable,
    hooks: {
      read: (rel, size) => {
        if (rel < 16) return undefined;
        const w = window();
        if (!w) {
          ignored();
          return undefined;
        }
        const v = mask(w.bar.handler.mmioRead(w.off, w.len), w.len);
        fn.setU32(at + 16, v);
        return rel === 16 && size === 4 ? v : undefined;
      },
      write: (rel) => {
        if (rel < 16) return;
        const w = window();
        if (!w) {
          ignored();
          return;
        }
        w.bar.handler.mmioWrite(w.off, w.len, mask(fn.getU32(at + 16), w.len));
      },
    },
  });
  return at;
}
