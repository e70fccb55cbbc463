/**
 * The driver side of virtio-net over the PCI test kit, as Linux's virtio_net does it: post
 * receive buffers, send frames with a virtio_net_hdr, collect received frames (merging
 * VIRTIO_NET_F_MRG_RXBUF buffers), and send control commands. For tests and benchmarks of
 * the device, and for people testing their own backends.
 */
import type { GuestMemory } from "../../common/memory.js";
import { u64TestBit } from "../../common/u64.js";
import type { DriverVq, VirtioPciDriver } from "../transport/pci/driver.js";
import {
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_SIZE,
} from "./constants.js";
import { NetError, type PartialChecksum } from "./frame.js";

/** A received frame with the header the device wrote. */
export interface ReceivedFrame {
  flags: number;
  gsoType: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
  frame: Uint8Array;
}

export interface NetDriverOptions {
  /** Bytes of guest memory per buffer slot (default 4096): the most one posted buffer spans. */
  slotSize?: number;
  /** Queue size to set up (default: the device's maximum). */
  queueSize?: number;
}

interface SlotQueue {
  vq: DriverVq;
  base: number;
  free: number[];
  /** Head id -> [slot, segment addresses, segment lengths]. */
  byHead: Map<number, { slot: number; addrs: number[]; lens: number[] }>;
}

/** A virtio-net driver over a `VirtioPciDriver` that `init` already negotiated features on. */
export class NetDriver {
  readonly pci: VirtioPciDriver;
  readonly memory: GuestMemory;
  readonly slotSize: number;
  private readonly queues: SlotQueue[] = [];
  readonly mrg: boolean;

  /**
   * Sets up every queue the negotiated features call for (with MQ all pairs, the control queue
   * with CTRL_VQ) and sets DRIVER_OK. Call `pci.init(features)` first.
   */
  constructor(pci: VirtioPciDriver, options: NetDriverOptions = {}) {
    this.pci = pci;
    this.memory = pci.memory;
    this.slotSize = options.slotSize ?? 4096;
    const f = pci.features;
    this.mrg = u64TestBit(f, VIRTIO_NET_F_MRG_RXBUF);
    const ctrl = u64TestBit(f, VIRTIO_NET_F_CTRL_VQ);
    const mq = ctrl && u64TestBit(f, VIRTIO_NET_F_MQ);
    const pairs = mq ? pci.readConfig(8, 2) : 1;
    const n = 2 * pairs + (ctrl ? 1 : 0);
    for (let i = 0; i < n; i++) {
      const vq = pci.setupQueue(i, options.queueSize);
      const size = vq.queue.size;
      const base = pci.dma.alloc(size * this.slotSize, 4096);
      this.queues.push({
        vq,
        base,
        free: Array.from({ length: size }, (_, k) => size - 1 - k),
        byHead: new Map(),
      });
    }
    pci.driverOk();
  }

  /** Index of the control queue. */
  get ctrlQueue(): number {
    return this.queues.length % 2 === 1 ? this.queues.length - 1 : -1;
  }

  private q(index: number): SlotQueue {
    const q = this.queues[index];
    if (!q) throw new NetError("DRIVER", `queue ${index} is not set up`);
    return q;
  }

  /** Free buffer slots of a queue. */
  freeSlots(index: number): number {
    return this.q(index).free.length;
  }

  private place(q: SlotQueue, lens: readonly number[], gap: number): { slot: number; addrs: number[] } {
    const slot = q.free.pop();
    if (slot === undefined) throw new NetError("DRIVER", `queue ${q.vq.index} has no free slot`);
    const addrs: number[] = [];
    let at = q.base + slot * this.slotSize;
    const end = at + this.slotSize;
    for (const len of lens) {
      if (at + len > end) {
        q.free.push(slot);
        throw new NetError(
          "DRIVER",
          `segments ${lens.join("+")} with gaps do not fit a ${this.slotSize}-byte slot`,
        );
      }
      addrs.push(at);
      at += len + gap;
    }
    return { slot, addrs };
  }

  /** Posts one receive buffer made of segments of these lengths (with `gap` bytes between them). */
  postRx(queue: number, lens: readonly number[], opts: { gap?: number; indirect?: boolean } = {}): number {
    const q = this.q(queue);
    const { slot, addrs } = this.place(q, lens, opts.gap ?? 0);
    const head = q.vq.queue.add(
      lens.map((len, i) => ({ addr: addrs[i]!, len, write: true })),
      opts.indirect ? { indirect: true } : {},
    );
    q.byHead.set(head, { slot, addrs, lens: [...lens] });
    return head;
  }

  /** Notifies the device about queue `queue` if it wants it. */
  kick(queue: number): boolean {
    return this.pci.kick(queue);
  }

  /**
   * Queues one frame for transmission (header and frame in `split` segments, or header and
   * frame apart when `split` is not given) and kicks. With `csum`, NEEDS_CSUM is set.
   */
  send(
    queue: number,
    frame: Uint8Array,
    opts: { csum?: PartialChecksum; split?: readonly number[]; kick?: boolean; header?: Uint8Array } = {},
  ): number {
    const q = this.q(queue);
    this.reclaimTx(queue);
    const hdr = opts.header ?? new Uint8Array(VIRTIO_NET_HDR_SIZE);
    if (!opts.header && opts.csum) {
      hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      hdr[6] = opts.csum.start & 0xff;
      hdr[7] = opts.csum.start >>> 8;
      hdr[8] = opts.csum.offset & 0xff;
      hdr[9] = opts.csum.offset >>> 8;
    }
    const bytes = new Uint8Array(hdr.length + frame.length);
    bytes.set(hdr);
    bytes.set(frame, hdr.length);
    const lens = opts.split ?? [hdr.length, frame.length];
    const { slot, addrs } = this.place(q, lens, 0);
    let at = 0;
    lens.forEach((len, i) => {
      this.memory.writeFrom(addrs[i]!, bytes.subarray(at, at + len));
      at += len;
    });
    if (at !== bytes.length) {
      q.free.push(slot);
      throw new NetError("DRIVER", `split ${lens.join("+")} does not cover ${bytes.length} bytes`);
    }
    const head = q.vq.queue.add(lens.map((len, i) => ({ addr: addrs[i]!, len, write: false })));
    q.byHead.set(head, { slot, addrs, lens: [...lens] });
    if (opts.kick !== false) this.kick(queue);
    return head;
  }

  /** Collects finished transmit buffers. Returns how many. */
  reclaimTx(queue: number): number {
    const q = this.q(queue);
    let n = 0;
    for (let u = q.vq.queue.getUsed(); u !== null; u = q.vq.queue.getUsed()) {
      const b = q.byHead.get(u.id);
      if (b) q.free.push(b.slot);
      q.byHead.delete(u.id);
      n++;
    }
    return n;
  }

  private readUsed(q: SlotQueue): { bytes: Uint8Array } | null {
    const u = q.vq.queue.getUsed();
    if (u === null) return null;
    const b = q.byHead.get(u.id);
    if (!b) throw new NetError("DRIVER", `used id ${u.id} is not a buffer this driver posted`);
    q.byHead.delete(u.id);
    q.free.push(b.slot);
    const total = b.lens.reduce((s, l) => s + l, 0);
    if (u.len > total)
      throw new NetError("DRIVER", `device wrote ${u.len} bytes into a ${total}-byte buffer`);
    const out = new Uint8Array(u.len);
    let at = 0;
    for (let i = 0; i < b.lens.length && at < u.len; i++) {
      const n = Math.min(b.lens[i]!, u.len - at);
      this.memory.readInto(b.addrs[i]!, out.subarray(at, at + n));
      at += n;
    }
    return { bytes: out };
  }

  /** The next received frame, num_buffers buffers merged, or null. */
  receive(queue: number): ReceivedFrame | null {
    const q = this.q(queue);
    const first = this.readUsed(q);
    if (first === null) return null;
    const b = first.bytes;
    if (b.length < VIRTIO_NET_HDR_SIZE)
      throw new NetError("DRIVER", `used length ${b.length} is below the header size`);
    const numBuffers = b[10]! | (b[11]! << 8);
    const parts = [b.subarray(VIRTIO_NET_HDR_SIZE)];
    for (let i = 1; i < numBuffers; i++) {
      const next = this.readUsed(q);
      if (next === null) throw new NetError("DRIVER", `num_buffers ${numBuffers} but only ${i} buffers used`);
      parts.push(next.bytes);
    }
    const len = parts.reduce((s, p) => s + p.length, 0);
    const frame = new Uint8Array(len);
    let at = 0;
    for (const p of parts) {
      frame.set(p, at);
      at += p.length;
    }
    return {
      flags: b[0]!,
      gsoType: b[1]!,
      csumStart: b[6]! | (b[7]! << 8),
      csumOffset: b[8]! | (b[9]! << 8),
      numBuffers,
      frame,
    };
  }

  /**
   * Sends a control command and returns the ack byte (VIRTIO_NET_OK or VIRTIO_NET_ERR), or
   * null when the device did not use the buffer.
   */
  command(cls: number, cmd: number, data: Uint8Array = new Uint8Array(0)): number | null {
    const index = this.ctrlQueue;
    if (index < 0) throw new NetError("DRIVER", "no control queue negotiated");
    const q = this.q(index);
    const req = new Uint8Array(2 + data.length);
    req[0] = cls;
    req[1] = cmd;
    req.set(data, 2);
    const { slot, addrs } = this.place(q, [req.length, 1], 0);
    this.memory.writeFrom(addrs[0]!, req);
    this.memory.writeU8(addrs[1]!, 0xee);
    const head = q.vq.queue.add([
      { addr: addrs[0]!, len: req.length, write: false },
      { addr: addrs[1]!, len: 1, write: true },
    ]);
    q.byHead.set(head, { slot, addrs, lens: [req.length, 1] });
    this.pci.notify(index);
    const u = q.vq.queue.getUsed();
    if (u === null) return null;
    q.byHead.delete(u.id);
    q.free.push(slot);
    return this.memory.readU8(addrs[1]!);
  }
}
