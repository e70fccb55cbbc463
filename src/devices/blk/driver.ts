import { VirtkitError } from "../../common/errors.js";
import type { GuestMemory } from "../../common/memory.js";
import type { DriverSegment } from "../../virtqueue/driver.js";
import type { VirtioPciDriver } from "../transport/pci/driver.js";
import { BLK_DISCARD_SEGMENT_SIZE, BLK_REQ_HEADER_SIZE } from "./constants.js";

/** A request as the driver lays it out: its device-readable bytes and its device-writable size. */
export interface BlkRawRequest {
  /** Header (type, reserved, sector) and any data the device reads. */
  readable: Uint8Array;
  /** Bytes the device may write: data for a read or GET_ID, plus the status byte. */
  writableLen: number;
  /**
   * Segment lengths splitting the readable part (the last one takes the rest; a zero length
   * is skipped). Default: one segment. Header and data may share a segment.
   */
  readCuts?: readonly number[];
  /** The same for the writable part (data and status may share a segment). */
  writeCuts?: readonly number[];
  /** Put the segments in an indirect table. */
  indirect?: boolean;
}

/** A request the device gave back. */
export interface BlkCompletion {
  head: number;
  /** The used length the device reported. */
  len: number;
  /** The last writable byte (the status), or -1 when the request had no writable byte. */
  status: number;
  /** The writable bytes before the status. */
  data: Uint8Array;
  /** The tag given to `submit`. */
  tag: number;
}

/** The 16-byte request header. */
export function blkHeader(type: number, sector = 0): Uint8Array {
  const h = new Uint8Array(BLK_REQ_HEADER_SIZE);
  const v = new DataView(h.buffer);
  v.setUint32(0, type >>> 0, true);
  v.setUint32(8, sector >>> 0, true);
  v.setUint32(12, Math.floor(sector / 0x1_0000_0000) >>> 0, true);
  return h;
}

/** struct virtio_blk_discard_write_zeroes entries, concatenated. */
export function blkRanges(ranges: readonly { sector: number; count: number; flags?: number }[]): Uint8Array {
  const out = new Uint8Array(ranges.length * BLK_DISCARD_SEGMENT_SIZE);
  const v = new DataView(out.buffer);
  ranges.forEach((r, i) => {
    const o = i * BLK_DISCARD_SEGMENT_SIZE;
    v.setUint32(o, r.sector >>> 0, true);
    v.setUint32(o + 4, Math.floor(r.sector / 0x1_0000_0000) >>> 0, true);
    v.setUint32(o + 8, r.count >>> 0, true);
    v.setUint32(o + 12, (r.flags ?? 0) >>> 0, true);
  });
  return out;
}

/** Concatenates byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Something the blk test driver cannot do (out of slots, a request larger than a slot). */
export class BlkDriverError extends VirtkitError {
  constructor(message: string) {
    super("BLK_DRIVER", message);
  }
}

interface Outstanding {
  slot: number;
  tag: number;
  writeAddrs: number[];
  writeLens: number[];
  writableLen: number;
}

/**
 * The driver side of virtio-blk for tests and benchmarks: lays requests out in guest memory
 * (any segment layout, direct or indirect), submits them on the queues a `VirtioPciDriver`
 * set up, and collects completions with their status and data. Each in-flight request uses
 * one slot of a DMA area allocated once.
 */
export class BlkTestDriver {
  readonly driver: VirtioPciDriver;
  readonly memory: GuestMemory;
  readonly slotSize: number;
  private readonly base: number;
  private readonly freeSlots: number[] = [];
  private readonly outstanding: Map<number, Outstanding>[] = [];

  constructor(driver: VirtioPciDriver, options: { slots?: number; slotSize?: number } = {}) {
    this.driver = driver;
    this.memory = driver.memory;
    const slots = options.slots ?? 64;
    this.slotSize = options.slotSize ?? 72 * 1024;
    this.base = driver.dma.alloc(slots * this.slotSize, 4096);
    for (let i = slots - 1; i >= 0; i--) this.freeSlots.push(i);
  }

  /** Free request slots. */
  get freeCount(): number {
    return this.freeSlots.length;
  }

  /** Lays out and adds a request on queue `q` (no notify). Returns the head. */
  submit(q: number, req: BlkRawRequest, tag = 0): number {
    const vq = this.driver.queues[q];
    if (!vq) throw new BlkDriverError(`queue ${q} is not set up`);
    const readSegs = cut(req.readable.length, req.readCuts);
    const writeSegs = cut(req.writableLen, req.writeCuts);
    // 8 bytes of gap after every segment: a device that runs past a segment shows up.
    const need = req.readable.length + req.writableLen + 8 * (readSegs.length + writeSegs.length);
    if (need > this.slotSize)
      throw new BlkDriverError(`request of ${need} bytes exceeds the ${this.slotSize}-byte slot`);
    const slot = this.freeSlots.pop();
    if (slot === undefined) throw new BlkDriverError("no free request slot");
    let at = this.base + slot * this.slotSize;
    this.memory.fill(at, this.slotSize, 0xa5);
    const segs: DriverSegment[] = [];
    let off = 0;
    for (const len of readSegs) {
      this.memory.writeFrom(at, req.readable.subarray(off, off + len));
      segs.push({ addr: at, len, write: false });
      off += len;
      at += len + 8;
    }
    const writeAddrs: number[] = [];
    const writeLens: number[] = [];
    for (const len of writeSegs) {
      segs.push({ addr: at, len, write: true });
      writeAddrs.push(at);
      writeLens.push(len);
      at += len + 8;
    }
    if (segs.length === 0) segs.push({ addr: at, len: 0, write: false });
    let head: number;
    try {
      head = vq.queue.add(segs, req.indirect ? { indirect: true } : {});
    } catch (e) {
      this.freeSlots.push(slot);
      throw e;
    }
    let m = this.outstanding[q];
    if (!m) {
      m = new Map();
      this.outstanding[q] = m;
    }
    m.set(head, { slot, tag, writeAddrs, writeLens, writableLen: req.writableLen });
    return head;
  }

  /** Notifies the device when the queue wants it. */
  kick(q: number): boolean {
    return this.driver.kick(q);
  }

  /** Collects every completion published on queue `q`. */
  collect(q: number): BlkCompletion[] {
    const vq = this.driver.queues[q];
    if (!vq) throw new BlkDriverError(`queue ${q} is not set up`);
    const out: BlkCompletion[] = [];
    for (let u = vq.queue.getUsed(); u !== null; u = vq.queue.getUsed()) {
      const o = this.outstanding[q]?.get(u.id);
      if (!o) throw new BlkDriverError(`queue ${q}: completion for head ${u.id} that was not submitted`);
      this.outstanding[q]!.delete(u.id);
      const bytes = new Uint8Array(o.writableLen);
      let at = 0;
      for (let i = 0; i < o.writeAddrs.length; i++) {
        this.memory.readInto(o.writeAddrs[i]!, bytes.subarray(at, at + o.writeLens[i]!));
        at += o.writeLens[i]!;
      }
      this.freeSlots.push(o.slot);
      out.push({
        head: u.id,
        len: u.len,
        status: o.writableLen > 0 ? bytes[o.writableLen - 1]! : -1,
        data: bytes.subarray(0, Math.max(0, o.writableLen - 1)),
        tag: o.tag,
      });
    }
    return out;
  }

  /** Requests submitted on queue `q` and not collected. */
  pending(q: number): number {
    return this.outstanding[q]?.size ?? 0;
  }
}

/** Splits `total` bytes by `cuts` (the last segment takes the rest; zero lengths dropped). */
function cut(total: number, cuts: readonly number[] | undefined): number[] {
  const out: number[] = [];
  let left = total;
  for (const c of cuts ?? []) {
    const n = Math.min(c, left);
    if (n > 0) out.push(n);
    left -= n;
  }
  if (left > 0) out.push(left);
  return out;
}
