import { VirtkitError } from "../../common/errors.js";
import type { DescriptorChain } from "../../virtqueue/chain.js";
import {
  BLK_DISCARD_SEGMENT_SIZE,
  BLK_REQ_HEADER_SIZE,
  SECTOR_SHIFT,
  SECTOR_SIZE,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from "./constants.js";

/** A request the device cannot even answer: no device-writable byte for the status. */
export class BlkRequestError extends VirtkitError {
  constructor(message: string) {
    super("BLK_NO_STATUS_BYTE", message);
  }
}

/** What the device found a request asks for, after every check. */
export type BlkPlan =
  | { kind: "fail"; status: number; reason: string }
  | { kind: "in"; offset: number; length: number }
  | { kind: "out"; offset: number; data: Uint8Array[] }
  | { kind: "flush" }
  | { kind: "get-id" }
  | { kind: "ranges"; type: number; ranges: number[]; unmap: boolean };

/** Limits a request is checked against (from the device's configuration). */
export interface BlkLimits {
  capacitySectors: number;
  readOnly: boolean;
  discard: { maxSectors: number; maxSeg: number } | null;
  writeZeroes: { maxSectors: number; maxSeg: number } | null;
  secureErase: { maxSectors: number; maxSeg: number } | null;
}

function fail(status: number, reason: string): BlkPlan {
  return { kind: "fail", status, reason };
}

/**
 * Zero-copy views of guest memory for bytes [from, to) of the chain's readable part
 * (segments were checked to lie inside guest memory when the chain was popped).
 */
export function readableViews(chain: DescriptorChain, from: number, to: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  for (let i = 0; i < chain.readableCount && pos < to; i++) {
    const len = chain.lens[i]!;
    const s = Math.max(from, pos);
    const e = Math.min(to, pos + len);
    if (e > s) out.push(chain.memory.subarray(chain.addrs[i]! + (s - pos), e - s));
    pos += len;
  }
  return out;
}

/**
 * Checks a request (section 5.2.6) and says what to do. Everything a backend will see is
 * decided here: ranges inside the capacity, data lengths in whole sectors, the status byte
 * present. Throws BlkRequestError only when there is no device-writable byte for a status.
 */
export function parseRequest(chain: DescriptorChain, limits: BlkLimits): BlkPlan {
  const writable = chain.writableLength;
  if (writable < 1) {
    throw new BlkRequestError(
      `virtio-blk request (head ${chain.head}) has no device-writable byte for the status`,
    );
  }
  const readable = chain.readableLength;
  if (readable < BLK_REQ_HEADER_SIZE) {
    return fail(VIRTIO_BLK_S_IOERR, `header is ${readable} bytes, shorter than 16`);
  }
  const r = chain.reader();
  const type = r.readU32();
  r.readU32(); // reserved
  const sector = r.readU64();
  const dataIn = writable - 1;
  const dataOut = readable - BLK_REQ_HEADER_SIZE;
  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const len = type === VIRTIO_BLK_T_IN ? dataIn : dataOut;
      const other = type === VIRTIO_BLK_T_IN ? dataOut : dataIn;
      if (other !== 0) {
        return fail(
          VIRTIO_BLK_S_IOERR,
          `${type === VIRTIO_BLK_T_IN ? "read" : "write"} has ${other} data bytes in the wrong direction`,
        );
      }
      if (len % SECTOR_SIZE !== 0) {
        return fail(VIRTIO_BLK_S_IOERR, `data length ${len} is not a multiple of 512`);
      }
      const first = sector.hi * 0x1_0000_0000 + sector.lo;
      const count = len >> SECTOR_SHIFT;
      if (first + count > limits.capacitySectors) {
        return fail(
          VIRTIO_BLK_S_IOERR,
          `sectors ${first}..${first + count} run past the capacity of ${limits.capacitySectors}`,
        );
      }
      if (type === VIRTIO_BLK_T_IN) return { kind: "in", offset: first * SECTOR_SIZE, length: len };
      if (limits.readOnly) return fail(VIRTIO_BLK_S_IOERR, "write to a read-only disk");
      return {
        kind: "out",
        offset: first * SECTOR_SIZE,
        data: readableViews(chain, BLK_REQ_HEADER_SIZE, readable),
      };
    }
    case VIRTIO_BLK_T_FLUSH:
      if (dataIn !== 0) return fail(VIRTIO_BLK_S_IOERR, `flush has ${dataIn} device-writable data bytes`);
      return { kind: "flush" };
    case VIRTIO_BLK_T_GET_ID:
      if (dataOut !== 0) return fail(VIRTIO_BLK_S_IOERR, `get id has ${dataOut} device-readable data bytes`);
      return { kind: "get-id" };
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
    case VIRTIO_BLK_T_SECURE_ERASE:
      return parseRanges(type, r, dataIn, dataOut, limits);
    default:
      return fail(VIRTIO_BLK_S_UNSUPP, `request type ${type} is not supported`);
  }
}

function parseRanges(
  type: number,
  r: ReturnType<DescriptorChain["reader"]>,
  dataIn: number,
  dataOut: number,
  limits: BlkLimits,
): BlkPlan {
  const name =
    type === VIRTIO_BLK_T_DISCARD
      ? "discard"
      : type === VIRTIO_BLK_T_WRITE_ZEROES
        ? "write zeroes"
        : "secure erase";
  const lim =
    type === VIRTIO_BLK_T_DISCARD
      ? limits.discard
      : type === VIRTIO_BLK_T_WRITE_ZEROES
        ? limits.writeZeroes
        : limits.secureErase;
  if (limits.readOnly) return fail(VIRTIO_BLK_S_IOERR, `${name} on a read-only disk`);
  if (!lim) return fail(VIRTIO_BLK_S_UNSUPP, `${name} is not supported by this device`);
  if (dataIn !== 0) return fail(VIRTIO_BLK_S_IOERR, `${name} has ${dataIn} device-writable data bytes`);
  if (dataOut % BLK_DISCARD_SEGMENT_SIZE !== 0) {
    return fail(VIRTIO_BLK_S_IOERR, `${name} data length ${dataOut} is not a multiple of 16`);
  }
  const n = dataOut / BLK_DISCARD_SEGMENT_SIZE;
  if (n > lim.maxSeg) return fail(VIRTIO_BLK_S_IOERR, `${name} has ${n} segments, more than ${lim.maxSeg}`);
  const ranges: number[] = [];
  let unmap = false;
  let unsupported: BlkPlan | null = null;
  let ioerr: BlkPlan | null = null;
  for (let i = 0; i < n; i++) {
    const sector = r.readU64();
    const num = r.readU32();
    const flags = r.readU32();
    // Unknown flags make the request UNSUPP (5.2.6.4), whatever else is wrong with it.
    if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) {
      unsupported ??= fail(
        VIRTIO_BLK_S_UNSUPP,
        `${name} segment ${i} has unknown flags 0x${flags.toString(16)}`,
      );
      continue;
    }
    if (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) {
      if (type !== VIRTIO_BLK_T_WRITE_ZEROES) {
        unsupported ??= fail(VIRTIO_BLK_S_UNSUPP, `${name} segment ${i} sets the unmap flag`);
        continue;
      }
      unmap = true;
    }
    const first = sector.hi * 0x1_0000_0000 + sector.lo;
    if (num > lim.maxSectors) {
      ioerr ??= fail(
        VIRTIO_BLK_S_IOERR,
        `${name} segment ${i} has ${num} sectors, more than ${lim.maxSectors}`,
      );
    } else if (first + num > limits.capacitySectors) {
      ioerr ??= fail(
        VIRTIO_BLK_S_IOERR,
        `${name} segment ${i} (sectors ${first}..${first + num}) runs past the capacity of ${limits.capacitySectors}`,
      );
    }
    ranges.push(first * SECTOR_SIZE, num * SECTOR_SIZE);
  }
  if (unsupported) return unsupported;
  if (ioerr) return ioerr;
  return { kind: "ranges", type, ranges, unmap };
}
