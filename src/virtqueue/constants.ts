/** Split-ring constants and layout helpers (virtio 1.2 section 2.7). */

/** This marks a buffer as continuing via the next field. */
export const VIRTQ_DESC_F_NEXT = 1;
/** This marks a buffer as device write-only (otherwise device read-only). */
export const VIRTQ_DESC_F_WRITE = 2;
/** This means the buffer contains a list of buffer descriptors. */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** avail.flags: the driver does not want used buffer notifications. */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags: the device does not want available buffer notifications. */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Feature bit: the driver can use descriptors with VIRTQ_DESC_F_INDIRECT. */
export const VIRTIO_F_INDIRECT_DESC = 28;
/** Feature bit: the used_event and avail_event fields. */
export const VIRTIO_F_EVENT_IDX = 29;

/** The largest queue size of a split virtqueue. */
export const VIRTQ_MAX_SIZE = 32768;

/** Bytes of one descriptor (struct virtq_desc). */
export const DESC_SIZE = 16;
/** Alignment of the descriptor table, available ring and used ring. */
export const DESC_ALIGN = 16;
export const AVAIL_ALIGN = 2;
export const USED_ALIGN = 4;

/** Size in bytes of the descriptor table for a queue of `size` entries. */
export function descTableSize(size: number): number {
  return 16 * size;
}

/** Size in bytes of the available ring: flags, idx, ring[size], used_event. */
export function availRingSize(size: number): number {
  return 6 + 2 * size;
}

/** Size in bytes of the used ring: flags, idx, ring[size] of {id, len}, avail_event. */
export function usedRingSize(size: number): number {
  return 6 + 8 * size;
}

/**
 * The spec's vring_need_event (section 2.7.10 / virtio_ring.h): true when moving the index
 * from `old` to `newIdx` passed `eventIdx`, all modulo 2^16.
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, old: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
