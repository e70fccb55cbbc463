import { hex } from "../common/errors.js";
import type { GuestMemory } from "../common/memory.js";
import type { Persist } from "../common/persist.js";
import { DescriptorChain } from "./chain.js";
import {
  availRingSize,
  descTableSize,
  isPowerOfTwo,
  usedRingSize,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from "./constants.js";
import { QueueError } from "./errors.js";

/** Where a running queue lives and what was negotiated. Addresses are below 2^32. */
export interface VirtQueueLayout {
  size: number;
  desc: number;
  avail: number;
  used: number;
  eventIdx: boolean;
  indirect: boolean;
}

/** A running queue's state as a plain object (layout plus the host-side cursors). */
export interface VirtQueueState extends VirtQueueLayout {
  nextAvail: number;
  nextUsed: number;
  /** used.idx at the last flushUsed (the `old` of vring_need_event). */
  signalledUsed: number;
  /** False until the first flush after activation/restore: the first flush always interrupts. */
  signalledValid: boolean;
  notificationsEnabled: boolean;
  /** Chains popped since the last undo point (bounds undoPop). */
  inFlight: number;
}

const MAX_INDIRECT_ENTRIES = 65536;

/**
 * A running split virtqueue, device side (section 2.7). The host keeps next_avail and next_used
 * itself and never re-reads them from guest memory; avail.idx is read once per `pop` and
 * checked against the queue size. Everything read from the guest is validated before use.
 */
export class VirtQueue implements Persist<VirtQueueState> {
  readonly memory: GuestMemory;
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  private readonly mask: number;
  private readonly descView: DataView;
  private readonly availView: DataView;
  private readonly usedView: DataView;
  private nextAvail = 0;
  private nextUsed = 0;
  private signalledUsed = 0;
  private signalledValid = false;
  private notificationsEnabled = true;
  private inFlight = 0;

  constructor(memory: GuestMemory, layout: VirtQueueLayout) {
    const { size, desc, avail, used } = layout;
    if (!isPowerOfTwo(size) || size > VIRTQ_MAX_SIZE) {
      throw new QueueError("BAD_SIZE", `queue size must be a power of two up to 32768, got ${size}`);
    }
    this.memory = memory;
    this.size = size;
    this.mask = size - 1;
    this.desc = desc;
    this.avail = avail;
    this.used = used;
    this.eventIdx = layout.eventIdx;
    this.indirect = layout.indirect;
    this.descView = view(memory, desc, descTableSize(size), "descriptor table");
    this.availView = view(memory, avail, availRingSize(size), "available ring");
    this.usedView = view(memory, used, usedRingSize(size), "used ring");
  }

  /** The device's next_avail cursor (mod 2^16). */
  get nextAvailIdx(): number {
    return this.nextAvail;
  }

  /** The device's next_used cursor (mod 2^16): the used.idx the next flush publishes. */
  get nextUsedIdx(): number {
    return this.nextUsed;
  }

  /** avail.idx as the driver last wrote it, checked: never more than `size` ahead. */
  private availIdx(): number {
    const idx = this.availView.getUint16(2, true);
    const pending = (idx - this.nextAvail) & 0xffff;
    if (pending > this.size) {
      throw new QueueError(
        "AVAIL_IDX_AHEAD",
        `avail idx ${idx} is ${pending} ahead of next_avail ${this.nextAvail}, more than queue size ${this.size}`,
      );
    }
    return idx;
  }

  /** Number of chains the driver has made available and the device has not popped. */
  pending(): number {
    return (this.availIdx() - this.nextAvail) & 0xffff;
  }

  /** True when at least one chain is waiting. */
  hasPending(): boolean {
    return this.availIdx() !== this.nextAvail;
  }

  /**
   * Takes the next available chain, walked and validated, or null when none is waiting.
   * A defect in the ring or the chain throws a QueueError and leaves next_avail unchanged.
   */
  pop(): DescriptorChain | null {
    const idx = this.availIdx();
    if (idx === this.nextAvail) return null;
    const head = this.availView.getUint16(4 + 2 * (this.nextAvail & this.mask), true);
    if (head >= this.size) {
      throw new QueueError(
        "HEAD_OUT_OF_RANGE",
        `available ring entry ${this.nextAvail & this.mask} holds head ${head}, not below queue size ${this.size}`,
      );
    }
    const chain = this.walk(head);
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    this.inFlight++;
    if (this.eventIdx && this.notificationsEnabled) {
      this.usedView.setUint16(4 + 8 * this.size, this.nextAvail, true);
    }
    return chain;
  }

  /** Puts back the most recently popped chain: the next pop returns it again. */
  undoPop(): void {
    if (this.inFlight === 0) throw new QueueError("BAD_USED", "undoPop without a chain popped");
    this.inFlight--;
    this.nextAvail = (this.nextAvail - 1) & 0xffff;
    if (this.eventIdx && this.notificationsEnabled) {
      this.usedView.setUint16(4 + 8 * this.size, this.nextAvail, true);
    }
  }

  private walk(head: number): DescriptorChain {
    const mem = this.memory;
    const memSize = mem.size;
    const addrs: number[] = [];
    const lens: number[] = [];
    let table = this.descView;
    let tableLen = this.size;
    let inIndirect = false;
    let i = head;
    let count = 0;
    let visited = 0;
    let readableCount = 0;
    let readableLength = 0;
    let writableLength = 0;
    for (;;) {
      if (++visited > tableLen) {
        throw new QueueError(
          "CHAIN_TOO_LONG",
          `chain from head ${head} visits more than ${tableLen} descriptors${inIndirect ? " of its indirect table" : ""} (a loop or longer than the ${inIndirect ? "table" : "queue"})`,
        );
      }
      count++;
      const o = i * 16;
      const addr = table.getUint32(o, true);
      const addrHi = table.getUint32(o + 4, true);
      const len = table.getUint32(o + 8, true);
      const flags = table.getUint16(o + 12, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (inIndirect) {
          throw new QueueError(
            "NESTED_INDIRECT",
            `descriptor ${i} of the indirect table of head ${head} is itself indirect`,
          );
        }
        if (!this.indirect) {
          throw new QueueError(
            "INDIRECT_NOT_NEGOTIATED",
            `descriptor ${i} (head ${head}) is indirect but VIRTIO_F_INDIRECT_DESC was not negotiated`,
          );
        }
        if (flags & VIRTQ_DESC_F_NEXT) {
          throw new QueueError(
            "INDIRECT_WITH_NEXT",
            `descriptor ${i} (head ${head}) sets both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT`,
          );
        }
        if (len === 0 || len % 16 !== 0) {
          throw new QueueError(
            "INDIRECT_BAD_LENGTH",
            `indirect table of descriptor ${i} (head ${head}) has length ${len}, not a non-zero multiple of 16`,
          );
        }
        if (len / 16 > MAX_INDIRECT_ENTRIES) {
          throw new QueueError(
            "INDIRECT_TOO_LARGE",
            `indirect table of descriptor ${i} (head ${head}) has ${len / 16} entries, more than 65536`,
          );
        }
        checkAddr(addr, addrHi, len, memSize, i, head);
        const bytes = mem.subarray(addr, len);
        table = new DataView(bytes.buffer, bytes.byteOffset, len);
        tableLen = len / 16;
        inIndirect = true;
        visited = 0;
        i = 0;
        continue;
      }
      checkAddr(addr, addrHi, len, memSize, i, head);
      if (flags & VIRTQ_DESC_F_WRITE) {
        writableLength += len;
      } else {
        if (addrs.length > readableCount) {
          throw new QueueError(
            "READABLE_AFTER_WRITABLE",
            `descriptor ${i} (head ${head}) is device-readable but follows a device-writable one`,
          );
        }
        readableCount++;
        readableLength += len;
      }
      addrs.push(addr);
      lens.push(len);
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      const next = table.getUint16(o + 14, true);
      if (next >= tableLen) {
        throw new QueueError(
          "NEXT_OUT_OF_RANGE",
          `descriptor ${i} (head ${head}) has next ${next}, not below ${tableLen}${inIndirect ? " (indirect table entries)" : " (queue size)"}`,
        );
      }
      i = next;
    }
    if (readableLength + writableLength > 0xffff_ffff) {
      throw new QueueError(
        "CHAIN_TOO_LARGE",
        `chain from head ${head} is ${readableLength + writableLength} bytes long, more than 2^32 - 1`,
      );
    }
    return new DescriptorChain(mem, head, addrs, lens, readableCount, readableLength, writableLength, count);
  }

  /**
   * Writes a used ring element for chain `head` with `len` bytes written. The element is
   * visible to the driver only after `flushUsed` publishes used.idx (ring entry before idx).
   */
  addUsed(head: number, len: number): void {
    if (!(Number.isInteger(head) && head >= 0 && head < this.size)) {
      throw new QueueError("BAD_USED", `addUsed head ${head} is not below queue size ${this.size}`);
    }
    const o = 4 + 8 * (this.nextUsed & this.mask);
    this.usedView.setUint32(o, head, true);
    this.usedView.setUint32(o + 4, len >>> 0, true);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    if (this.inFlight > 0) this.inFlight--;
  }

  /**
   * Publishes used.idx and says whether the driver must be notified: with VIRTIO_F_EVENT_IDX
   * when the new entries passed used_event (vring_need_event), otherwise unless avail.flags
   * has VIRTQ_AVAIL_F_NO_INTERRUPT. False when nothing was added since the last flush.
   */
  flushUsed(): boolean {
    const newIdx = this.nextUsed;
    const old = this.signalledUsed;
    this.usedView.setUint16(2, newIdx, true);
    const valid = this.signalledValid;
    this.signalledUsed = newIdx;
    this.signalledValid = true;
    if (newIdx === old) return false;
    if (this.eventIdx) {
      if (!valid) return true;
      const usedEvent = this.availView.getUint16(4 + 2 * this.size, true);
      return vringNeedEvent(usedEvent, newIdx, old);
    }
    return (this.availView.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Asks the driver for available buffer notifications again (used.flags = 0, and with
   * VIRTIO_F_EVENT_IDX avail_event = next_avail) and re-checks: true when buffers arrived
   * while notifications were off, so the caller must drain again.
   */
  enableNotification(): boolean {
    this.notificationsEnabled = true;
    if (this.eventIdx) {
      this.usedView.setUint16(4 + 8 * this.size, this.nextAvail, true);
    } else {
      this.usedView.setUint16(0, 0, true);
    }
    return this.hasPending();
  }

  /**
   * Tells the driver notifications are not needed: VIRTQ_USED_F_NO_NOTIFY without
   * VIRTIO_F_EVENT_IDX; with it, avail_event simply stops following next_avail (flags stay 0).
   */
  disableNotification(): void {
    this.notificationsEnabled = false;
    if (!this.eventIdx) this.usedView.setUint16(0, VIRTQ_USED_F_NO_NOTIFY, true);
  }

  /** Back to a fresh queue: cursors 0, notifications on. Guest memory is not touched. */
  reset(): void {
    this.nextAvail = 0;
    this.nextUsed = 0;
    this.signalledUsed = 0;
    this.signalledValid = false;
    this.notificationsEnabled = true;
    this.inFlight = 0;
  }

  save(): VirtQueueState {
    return {
      size: this.size,
      desc: this.desc,
      avail: this.avail,
      used: this.used,
      eventIdx: this.eventIdx,
      indirect: this.indirect,
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
      signalledUsed: this.signalledUsed,
      signalledValid: this.signalledValid,
      notificationsEnabled: this.notificationsEnabled,
      inFlight: this.inFlight,
    };
  }

  /** Restores cursors saved from a queue with the same layout. */
  restore(s: VirtQueueState): void {
    if (
      s.size !== this.size ||
      s.desc !== this.desc ||
      s.avail !== this.avail ||
      s.used !== this.used ||
      s.eventIdx !== this.eventIdx ||
      s.indirect !== this.indirect
    ) {
      throw new QueueError("BAD_STATE", "saved queue state has a different layout or features");
    }
    for (const k of ["nextAvail", "nextUsed", "signalledUsed"] as const) {
      const v = s[k];
      if (!(Number.isInteger(v) && v >= 0 && v <= 0xffff)) {
        throw new QueueError("BAD_STATE", `saved queue ${k} ${v} is not a 16-bit index`);
      }
    }
    if (!(Number.isInteger(s.inFlight) && s.inFlight >= 0 && s.inFlight <= this.size)) {
      throw new QueueError("BAD_STATE", `saved queue inFlight ${s.inFlight} is out of range`);
    }
    this.nextAvail = s.nextAvail;
    this.nextUsed = s.nextUsed;
    this.signalledUsed = s.signalledUsed;
    this.signalledValid = s.signalledValid === true;
    this.notificationsEnabled = s.notificationsEnabled !== false;
    this.inFlight = s.inFlight;
  }

  /** A queue built from a saved state (layout and cursors). */
  static fromState(memory: GuestMemory, s: VirtQueueState): VirtQueue {
    const q = new VirtQueue(memory, s);
    q.restore(s);
    return q;
  }
}

function view(memory: GuestMemory, addr: number, len: number, what: string): DataView {
  if (!memory.inRange(addr, len)) {
    throw new QueueError(
      "BAD_RING_ADDRESS",
      `${what} 0x${hex(addr)}+0x${hex(len)} lies outside guest memory (size 0x${hex(memory.size)})`,
    );
  }
  const b = memory.subarray(addr, len);
  return new DataView(b.buffer, b.byteOffset, len);
}

function checkAddr(
  addr: number,
  addrHi: number,
  len: number,
  memSize: number,
  i: number,
  head: number,
): void {
  if (addrHi !== 0 || addr + len > memSize) {
    throw new QueueError(
      "ADDR_OUT_OF_RANGE",
      `descriptor ${i} (head ${head}) buffer 0x${hex(addrHi)}${hex(addr, 8)}+0x${hex(len)} lies outside guest memory (size 0x${hex(memSize)})`,
    );
  }
}
