import { VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_F_RING_RESET } from "../../device.js";
import {
  VIRTIO_PCI_COMMON_ADM_Q_IDX,
  VIRTIO_PCI_COMMON_ADM_Q_NUM,
  VIRTIO_PCI_COMMON_CFGGENERATION,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_NUMQ,
  VIRTIO_PCI_COMMON_Q_AVAILHI,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCHI,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
  VIRTIO_PCI_COMMON_Q_NDATA,
  VIRTIO_PCI_COMMON_Q_NOFF,
  VIRTIO_PCI_COMMON_Q_RESET,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDHI,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
} from "./regs.js";
import type { VirtioPciTransport } from "./transport.js";

/** Width in bytes of the common configuration field at each offset. */
const FIELD_WIDTH = new Map<number, number>([
  [VIRTIO_PCI_COMMON_DFSELECT, 4],
  [VIRTIO_PCI_COMMON_DF, 4],
  [VIRTIO_PCI_COMMON_GFSELECT, 4],
  [VIRTIO_PCI_COMMON_GF, 4],
  [VIRTIO_PCI_COMMON_MSIX, 2],
  [VIRTIO_PCI_COMMON_NUMQ, 2],
  [VIRTIO_PCI_COMMON_STATUS, 1],
  [VIRTIO_PCI_COMMON_CFGGENERATION, 1],
  [VIRTIO_PCI_COMMON_Q_SELECT, 2],
  [VIRTIO_PCI_COMMON_Q_SIZE, 2],
  [VIRTIO_PCI_COMMON_Q_MSIX, 2],
  [VIRTIO_PCI_COMMON_Q_ENABLE, 2],
  [VIRTIO_PCI_COMMON_Q_NOFF, 2],
  // 64-bit fields: "the device MUST allow driver independent access to high and low 32-bit parts".
  [VIRTIO_PCI_COMMON_Q_DESCLO, 4],
  [VIRTIO_PCI_COMMON_Q_DESCHI, 4],
  [VIRTIO_PCI_COMMON_Q_AVAILLO, 4],
  [VIRTIO_PCI_COMMON_Q_AVAILHI, 4],
  [VIRTIO_PCI_COMMON_Q_USEDLO, 4],
  [VIRTIO_PCI_COMMON_Q_USEDHI, 4],
  [VIRTIO_PCI_COMMON_Q_NDATA, 2],
  [VIRTIO_PCI_COMMON_Q_RESET, 2],
  // VIRTIO_F_ADMIN_VQ is not offered: no administration virtqueues (both read 0).
  [VIRTIO_PCI_COMMON_ADM_Q_IDX, 2],
  [VIRTIO_PCI_COMMON_ADM_Q_NUM, 2],
]);

/**
 * Reads a common configuration field. Returns null for an access of the wrong width or at an
 * offset where no field starts (the caller counts it and reads 0).
 */
export function commonRead(t: VirtioPciTransport, offset: number, size: number): number | null {
  if (FIELD_WIDTH.get(offset) !== size) return null;
  const slot = t.selectedSlot();
  switch (offset) {
    case VIRTIO_PCI_COMMON_DFSELECT:
      return t.deviceFeatureSelect;
    case VIRTIO_PCI_COMMON_DF:
      return t.deviceFeaturesWord(t.deviceFeatureSelect);
    case VIRTIO_PCI_COMMON_GFSELECT:
      return t.driverFeatureSelect;
    case VIRTIO_PCI_COMMON_GF:
      return t.driverFeatureSelect === 0
        ? t.driverFeatures.lo
        : t.driverFeatureSelect === 1
          ? t.driverFeatures.hi
          : 0;
    case VIRTIO_PCI_COMMON_MSIX:
      return t.configMsixVector;
    case VIRTIO_PCI_COMMON_NUMQ:
      return t.numQueues;
    case VIRTIO_PCI_COMMON_STATUS:
      return t.status;
    case VIRTIO_PCI_COMMON_CFGGENERATION:
      return t.configGeneration;
    case VIRTIO_PCI_COMMON_Q_SELECT:
      return t.queueSelect;
    case VIRTIO_PCI_COMMON_ADM_Q_IDX:
      return t.numQueues;
    case VIRTIO_PCI_COMMON_ADM_Q_NUM:
      return 0;
  }
  // Queue fields of a queue_select that names no queue read 0 ("queue_size 0: unavailable").
  if (!slot) return 0;
  const c = slot.config;
  switch (offset) {
    case VIRTIO_PCI_COMMON_Q_SIZE:
      return c.size;
    case VIRTIO_PCI_COMMON_Q_MSIX:
      return slot.msixVector;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
      return slot.enabled ? 1 : 0;
    case VIRTIO_PCI_COMMON_Q_NOFF:
      return t.queueSelect; // notify address = cap.offset + queue_notify_off * multiplier
    case VIRTIO_PCI_COMMON_Q_DESCLO:
      return c.descLo;
    case VIRTIO_PCI_COMMON_Q_DESCHI:
      return c.descHi;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
      return c.availLo;
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
      return c.availHi;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
      return c.usedLo;
    case VIRTIO_PCI_COMMON_Q_USEDHI:
      return c.usedHi;
    case VIRTIO_PCI_COMMON_Q_NDATA:
      return t.queueSelect; // queue_notif_config_data: the trivial choice, the queue index
    case VIRTIO_PCI_COMMON_Q_RESET:
      // The queue reset completes within the write, so it always reads 0 (4.1.4.3.1).
      return 0;
  }
  return null;
}

/**
 * Writes a common configuration field. Returns false when the write was ignored: wrong width,
 * no field there, a read-only field, or a field that may not change now.
 */
export function commonWrite(t: VirtioPciTransport, offset: number, size: number, value: number): boolean {
  if (FIELD_WIDTH.get(offset) !== size) return false;
  value >>>= 0;
  switch (offset) {
    case VIRTIO_PCI_COMMON_DFSELECT:
      t.deviceFeatureSelect = value;
      return true;
    case VIRTIO_PCI_COMMON_GFSELECT:
      t.driverFeatureSelect = value;
      return true;
    case VIRTIO_PCI_COMMON_GF:
      // 3.1.1: "The driver MUST NOT accept new feature bits after this step" (FEATURES_OK).
      if (t.status & VIRTIO_CONFIG_S_FEATURES_OK) return false;
      if (t.driverFeatureSelect === 0) t.driverFeatures = { lo: value, hi: t.driverFeatures.hi };
      else if (t.driverFeatureSelect === 1) t.driverFeatures = { lo: t.driverFeatures.lo, hi: value };
      else return false;
      return true;
    case VIRTIO_PCI_COMMON_MSIX:
      t.configMsixVector = t.mapVector(value);
      return true;
    case VIRTIO_PCI_COMMON_STATUS:
      t.writeStatus(value & 0xff);
      return true;
    case VIRTIO_PCI_COMMON_Q_SELECT:
      t.queueSelect = value & 0xffff;
      return true;
  }
  const slot = t.selectedSlot();
  if (!slot) return false;
  if (offset === VIRTIO_PCI_COMMON_Q_MSIX) {
    slot.msixVector = t.mapVector(value & 0xffff);
    return true;
  }
  if (offset === VIRTIO_PCI_COMMON_Q_RESET) {
    if (value !== 1 || !t.negotiated(VIRTIO_F_RING_RESET)) return false;
    t.resetQueue(slot);
    return true;
  }
  // Queue layout fields: only before DRIVER_OK (or while the queue is reset), and not while enabled.
  if (!t.queueWritable(slot)) return false;
  const c = slot.config;
  switch (offset) {
    case VIRTIO_PCI_COMMON_Q_SIZE:
      if (slot.enabled || !c.isValidSize(value)) return false;
      c.setSize(value);
      return true;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
      // "The driver MUST NOT write a 0 to queue_enable."
      if (value !== 1) return false;
      if (!slot.enabled) t.enableQueue(slot);
      return true;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
      if (slot.enabled) return false;
      c.setDesc(value, c.descHi);
      return true;
    case VIRTIO_PCI_COMMON_Q_DESCHI:
      if (slot.enabled) return false;
      c.setDesc(c.descLo, value);
      return true;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
      if (slot.enabled) return false;
      c.setAvail(value, c.availHi);
      return true;
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
      if (slot.enabled) return false;
      c.setAvail(c.availLo, value);
      return true;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
      if (slot.enabled) return false;
      c.setUsed(value, c.usedHi);
      return true;
    case VIRTIO_PCI_COMMON_Q_USEDHI:
      if (slot.enabled) return false;
      c.setUsed(c.usedLo, value);
      return true;
  }
  // device_feature, num_queues, config_generation, queue_notify_off, queue_notif_config_data:
  // read-only for the driver.
  return false;
}
