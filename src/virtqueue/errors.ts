import { VirtkitError } from "../common/errors.js";

/**
 * What went wrong in a virtqueue. Every guest-controlled defect in a ring or a descriptor
 * chain maps to exactly one code; the message names the values involved.
 */
export const QueueErrorCode = {
  /** The queue size is 0, not a power of two, or above the maximum. */
  BAD_SIZE: "BAD_SIZE",
  /** desc/avail/used address high half non-zero, misaligned, or the ring lies outside memory. */
  BAD_RING_ADDRESS: "BAD_RING_ADDRESS",
  /** Activation of a queue whose `ready` is not set. */
  NOT_READY: "NOT_READY",
  /** avail.idx runs more than the queue size ahead of the device's next_avail. */
  AVAIL_IDX_AHEAD: "AVAIL_IDX_AHEAD",
  /** A head index read from the available ring is not below the queue size. */
  HEAD_OUT_OF_RANGE: "HEAD_OUT_OF_RANGE",
  /** A `next` field is not below the queue size (or the indirect table's entry count). */
  NEXT_OUT_OF_RANGE: "NEXT_OUT_OF_RANGE",
  /** The chain visits more descriptors than the table holds: a loop, or longer than the queue. */
  CHAIN_TOO_LONG: "CHAIN_TOO_LONG",
  /** The chain's total length is above 2^32 - 1 bytes. */
  CHAIN_TOO_LARGE: "CHAIN_TOO_LARGE",
  /** A buffer's address has a non-zero high half, or addr+len runs past guest memory. */
  ADDR_OUT_OF_RANGE: "ADDR_OUT_OF_RANGE",
  /** VIRTQ_DESC_F_INDIRECT inside an indirect table. */
  NESTED_INDIRECT: "NESTED_INDIRECT",
  /** VIRTQ_DESC_F_INDIRECT while VIRTIO_F_INDIRECT_DESC was not negotiated. */
  INDIRECT_NOT_NEGOTIATED: "INDIRECT_NOT_NEGOTIATED",
  /** VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT. */
  INDIRECT_WITH_NEXT: "INDIRECT_WITH_NEXT",
  /** An indirect table whose byte length is 0 or not a multiple of 16. */
  INDIRECT_BAD_LENGTH: "INDIRECT_BAD_LENGTH",
  /** An indirect table of more than 65536 entries (the 16-bit `next` cannot address them). */
  INDIRECT_TOO_LARGE: "INDIRECT_TOO_LARGE",
  /** A device-readable descriptor after a device-writable one. */
  READABLE_AFTER_WRITABLE: "READABLE_AFTER_WRITABLE",
  /** ChainReader asked for more bytes than the readable part holds. */
  READ_PAST_END: "READ_PAST_END",
  /** ChainWriter asked to write more bytes than the writable part holds. */
  WRITE_PAST_END: "WRITE_PAST_END",
  /** addUsed with a head index not below the queue size, or undoPop with nothing popped. */
  BAD_USED: "BAD_USED",
  /** Driver side: not enough free descriptors, or a malformed add request. */
  DRIVER_NO_SPACE: "DRIVER_NO_SPACE",
  /** Driver side: a bad buffer request (no segments, readable after writable, too many). */
  DRIVER_BAD_REQUEST: "DRIVER_BAD_REQUEST",
  /** Driver side: the device returned an id that is not an outstanding head. */
  DRIVER_BAD_USED_ID: "DRIVER_BAD_USED_ID",
  /** A saved state that does not fit (size mismatch, values out of range). */
  BAD_STATE: "BAD_STATE",
} as const;
export type QueueErrorCode = (typeof QueueErrorCode)[keyof typeof QueueErrorCode];

/** A virtqueue error: the guest (or a device) broke a rule of section 2.7. */
export class QueueError extends VirtkitError {
  declare readonly code: QueueErrorCode;
  constructor(code: QueueErrorCode, message: string) {
    super(code, message);
  }
}
