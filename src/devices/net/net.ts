import type { U64 } from "../../common/u64.js";
import { u64FromBits, u64TestBit } from "../../common/u64.js";
import type { DescriptorChain } from "../../virtqueue/chain.js";
import type { ChainWriter } from "../../virtqueue/cursor.js";
import type { NetCounters, VirtioNetOptions, VirtioNetState } from "./types.js";
export type { NetCounters, VirtioNetOptions, VirtioNetState } from "./types.js";
import { DEFAULT_OFFERED, defaultSchedule, zeroCounters } from "./types.js";
import { type DeviceContext, type VirtioDevice, type VirtioDeviceHost, VirtioDeviceId } from "../device.js";
import { DROP_SINK, deliverTo, type FrameSink, type NetBackend } from "./backend.js";
import {
  ETH_HLEN,
  VIRTIO_NET_CFG_DUPLEX,
  VIRTIO_NET_CFG_MAC,
  VIRTIO_NET_CFG_MAX_VIRTQUEUE_PAIRS,
  VIRTIO_NET_CFG_MTU,
  VIRTIO_NET_CFG_SPEED,
  VIRTIO_NET_CFG_STATUS,
  VIRTIO_NET_CONFIG_SIZE,
  VIRTIO_NET_DUPLEX_FULL,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_SIZE,
  VIRTIO_NET_S_ANNOUNCE,
  VIRTIO_NET_S_LINK_UP,
} from "./constants.js";
import { type CtrlTarget, drainCtrlQueue } from "./ctrl.js";
import { RxFilter } from "./filter.js";
import {
  completeChecksum,
  flowHash,
  formatMac,
  NetError,
  type PartialChecksum,
  parseMac,
  partialChecksumFits,
  randomMac,
} from "./frame.js";

/** What was negotiated, resolved once at activation. */
interface Active {
  ctx: DeviceContext;
  csum: boolean;
  guestCsum: boolean;
  mrg: boolean;
  mtu: boolean;
  ctrlRx: boolean;
  ctrlRxExtra: boolean;
  macAddr: boolean;
  announce: boolean;
  mq: boolean;
  /** Queue pairs that exist (max_virtqueue_pairs with MQ, else 1). */
  pairsExist: number;
  /** Index of the control queue, -1 without VIRTIO_NET_F_CTRL_VQ. */
  ctrlQueue: number;
}

/**
 * virtio-net (section 5.1): receiveq/transmitq pairs and a control queue, the 12-byte
 * virtio_net_hdr of VIRTIO_F_VERSION_1, checksum offload both ways, mergeable receive
 * buffers, the RX filter and MAC table, link status, MTU, speed/duplex, multiqueue with
 * flow steering. Frames go to and come from a `NetBackend`.
 */
export class VirtioNet implements VirtioDevice<VirtioNetState> {
  readonly deviceId = VirtioDeviceId.NET;
  readonly name = "net";
  readonly features: U64;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = VIRTIO_NET_CONFIG_SIZE;
  readonly maxQueuePairs: number;
  readonly mtu: number;
  /** The MAC given at construction (the one reset goes back to). */
  readonly permanentMac: Uint8Array;
  counters: NetCounters = zeroCounters();
  readonly filter = new RxFilter();
  private readonly ctrlTarget: CtrlTarget;

  private macAddr: Uint8Array;
  private link: boolean;
  private announcePending = false;
  private speed: number;
  private duplex: number;
  private pairs = 1;
  private readonly txBudget: number;
  private readonly schedule: (fn: () => void) => void;
  private host: VirtioDeviceHost | null = null;
  private active: Active | null = null;
  private backend: NetBackend | null = null;
  private tx: FrameSink = DROP_SINK;
  private readonly sink: FrameSink;
  private readonly txBuf: Uint8Array;
  private readonly rxBuf: Uint8Array;
  private readonly txHdr = new Uint8Array(VIRTIO_NET_HDR_SIZE);
  private readonly rxHdr = new Uint8Array(VIRTIO_NET_HDR_SIZE);
  private readonly txCsum: PartialChecksum = { start: 0, offset: 0 };
  /** Flow hash bucket -> queue pair a flow was last sent on. */
  private readonly steering = new Int16Array(256).fill(-1);
  private readonly txPending = new Set<number>();
  private txScheduled = false;
  /** Bumped on reset so that a scheduled transmit turn of an earlier life does nothing. */
  private epoch = 0;

  constructor(options: VirtioNetOptions = {}) {
    const pairs = options.queuePairs ?? 1;
    if (!(Number.isInteger(pairs) && pairs >= 1 && pairs <= 127)) {
      throw new NetError(
        "BAD_OPTION",
        `queuePairs must be 1..127 (the transport's queue limit), got ${pairs}`,
      );
    }
    const mtu = options.mtu ?? 1500;
    if (!(Number.isInteger(mtu) && mtu >= 68 && mtu <= 65535)) {
      throw new NetError("BAD_OPTION", `mtu must be 68..65535, got ${mtu}`);
    }
    const qs = options.queueSize ?? 256;
    this.maxQueuePairs = pairs;
    this.ctrlTarget = {
      filter: this.filter,
      maxQueuePairs: pairs,
      setMac: (mac) => {
        this.macAddr = mac;
      },
      ackAnnounce: () => {
        this.announcePending = false;
      },
      setQueuePairs: (n) => {
        this.pairs = n;
      },
    };
    this.mtu = mtu;
    this.permanentMac = options.mac !== undefined ? parseMac(options.mac) : randomMac();
    this.macAddr = this.permanentMac.slice();
    this.link = options.linkUp ?? true;
    this.speed = options.speed ?? 10000;
    this.duplex = options.duplex ?? VIRTIO_NET_DUPLEX_FULL;
    this.txBudget = options.txBudget ?? 128;
    if (!(Number.isInteger(this.txBudget) && this.txBudget >= 1)) {
      throw new NetError("BAD_OPTION", `txBudget must be a positive integer, got ${options.txBudget}`);
    }
    this.schedule = options.schedule ?? defaultSchedule;
    const withhold = new Set(options.withhold ?? []);
    const offered = DEFAULT_OFFERED.filter((b) => !withhold.has(b));
    if (pairs > 1 && !withhold.has(VIRTIO_NET_F_MQ)) offered.push(VIRTIO_NET_F_MQ);
    this.features = u64FromBits(...offered);
    const sizes: number[] = [];
    for (let i = 0; i < pairs; i++) sizes.push(qs, qs);
    if (offered.includes(VIRTIO_NET_F_CTRL_VQ)) sizes.push(64);
    this.queueMaxSizes = sizes;
    this.txBuf = new Uint8Array(65535 + ETH_HLEN + 4);
    this.rxBuf = new Uint8Array(65535 + ETH_HLEN + 4);
    this.sink = {
      acceptsPartialChecksum: true,
      deliver: (frame, csum) => this.receive(frame, csum),
    };
    if (options.backend) this.connect(options.backend);
  }

  // ---- host API ----------------------------------------------------------------------------

  /** Plugs the NIC into a backend (unplugging it from the previous one). */
  connect(backend: NetBackend): void {
    this.disconnect();
    this.backend = backend;
    this.tx = backend.connect(this.sink);
  }

  disconnect(): void {
    this.backend?.disconnect();
    this.backend = null;
    this.tx = DROP_SINK;
  }

  /** The current MAC address (VIRTIO_NET_CTRL_MAC_ADDR_SET changes it). */
  get mac(): string {
    return formatMac(this.macAddr);
  }

  get linkUp(): boolean {
    return this.link;
  }

  /** Cable in or out: VIRTIO_NET_S_LINK_UP changes and the driver gets a configuration change. */
  setLinkUp(up: boolean): void {
    if (this.link === up) return;
    this.link = up;
    this.host?.configChanged();
  }

  /** Asks the driver to announce itself (VIRTIO_NET_S_ANNOUNCE), as after a migration. */
  announce(): void {
    this.announcePending = true;
    this.host?.configChanged();
  }

  /** Changes speed (Mbit/s, 0xffffffff unknown) and duplex (0 half, 1 full, 0xff unknown). */
  setSpeedDuplex(speed: number, duplex: number): void {
    if (!(Number.isInteger(speed) && speed >= 0 && speed <= 0xffff_ffff)) {
      throw new NetError("BAD_OPTION", `speed must be a 32-bit unsigned value, got ${speed}`);
    }
    this.speed = speed;
    this.duplex = duplex & 0xff;
    this.host?.configChanged();
  }

  /** Queue pairs in use (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET). */
  get queuePairs(): number {
    return this.pairs;
  }

  // ---- VirtioDevice ------------------------------------------------------------------------

  attach(host: VirtioDeviceHost): void {
    this.host = host;
  }

  private configBytes(): Uint8Array {
    const b = new Uint8Array(VIRTIO_NET_CONFIG_SIZE);
    const v = new DataView(b.buffer);
    b.set(this.macAddr, VIRTIO_NET_CFG_MAC);
    v.setUint16(
      VIRTIO_NET_CFG_STATUS,
      (this.link ? VIRTIO_NET_S_LINK_UP : 0) | (this.announcePending ? VIRTIO_NET_S_ANNOUNCE : 0),
      true,
    );
    v.setUint16(VIRTIO_NET_CFG_MAX_VIRTQUEUE_PAIRS, this.maxQueuePairs, true);
    v.setUint16(VIRTIO_NET_CFG_MTU, this.mtu, true);
    v.setUint32(VIRTIO_NET_CFG_SPEED, this.speed, true);
    b[VIRTIO_NET_CFG_DUPLEX] = this.duplex;
    return b;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    const b = this.configBytes();
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (b[offset + i] ?? 0);
    return v;
  }

  /** "All of the device configuration fields are read-only for the driver." */
  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    const f = ctx.features;
    const has = (b: number) => u64TestBit(f, b) && u64TestBit(this.features, b);
    const ctrl = has(VIRTIO_NET_F_CTRL_VQ);
    const mq = ctrl && has(VIRTIO_NET_F_MQ);
    const pairsExist = mq ? this.maxQueuePairs : 1;
    this.active = {
      ctx,
      csum: has(VIRTIO_NET_F_CSUM),
      guestCsum: has(VIRTIO_NET_F_GUEST_CSUM),
      mrg: has(VIRTIO_NET_F_MRG_RXBUF),
      mtu: has(VIRTIO_NET_F_MTU),
      ctrlRx: ctrl && has(VIRTIO_NET_F_CTRL_RX),
      ctrlRxExtra: ctrl && has(VIRTIO_NET_F_CTRL_RX_EXTRA),
      macAddr: ctrl && has(VIRTIO_NET_F_CTRL_MAC_ADDR),
      announce: ctrl && has(VIRTIO_NET_F_GUEST_ANNOUNCE),
      mq,
      pairsExist,
      ctrlQueue: ctrl ? 2 * pairsExist : -1,
    };
    this.pairs = 1;
  }

  reset(): void {
    this.stop();
    this.pairs = 1;
    this.macAddr = this.permanentMac.slice();
    this.announcePending = false;
    this.filter.reset();
    this.steering.fill(-1);
  }

  onQueueNotify(queue: number): void {
    const a = this.active;
    if (!a) return;
    try {
      if (queue === a.ctrlQueue) {
        this.processCtrl(a, queue);
        return;
      }
      // Receive queues: frames that arrive with no buffer are dropped, so a refill has nothing to wait for.
      if (queue % 2 === 0 || queue >= 2 * a.pairsExist) return;
      if (this.processTx(a, queue)) this.deferTx(queue);
    } catch (e) {
      // The transport sets DEVICE_NEEDS_RESET: stop until the driver resets the device.
      this.stop();
      throw e;
    }
  }

  /** After a guest error: no more transmit turns, frames from the network dropped. */
  private stop(): void {
    this.active = null;
    this.epoch++;
    this.txPending.clear();
    this.txScheduled = false;
  }

  private fail(a: Active, e: unknown): void {
    this.stop();
    a.ctx.fail(e instanceof Error ? e : new Error(String(e)));
  }

  onQueueReset(queue: number): void {
    this.txPending.delete(queue);
  }

  // ---- transmit ----------------------------------------------------------------------------

  /** One turn on transmit queue `q`: at most txBudget buffers. Returns true when buffers are left. */
  private processTx(a: Active, q: number): boolean {
    const vq = a.ctx.queues[q];
    if (!vq) return false;
    let n = 0;
    let used = false;
    let more = false;
    vq.disableNotification();
    for (;;) {
      const chain = vq.pop();
      if (chain === null) {
        if (vq.enableNotification()) continue;
        break;
      }
      this.transmit(a, chain, q >> 1);
      vq.addUsed(chain.head, 0);
      used = true;
      if (++n >= this.txBudget) {
        if (vq.hasPending()) {
          more = true;
          this.counters.txBudgetExhausted++;
        } else if (vq.enableNotification()) {
          more = true;
        }
        break;
      }
    }
    if (used && vq.flushUsed()) a.ctx.interrupt.signalQueue(q);
    return more;
  }

  private deferTx(q: number): void {
    this.txPending.add(q);
    if (this.txScheduled) return;
    this.txScheduled = true;
    const epoch = this.epoch;
    this.schedule(() => {
      if (epoch !== this.epoch) return;
      this.txScheduled = false;
      const a = this.active;
      if (!a) return;
      // Round robin: every pending queue gets one turn before any gets a second.
      const queues = [...this.txPending];
      this.txPending.clear();
      for (const q of queues) {
        try {
          if (this.processTx(a, q)) this.txPending.add(q);
        } catch (e) {
          this.fail(a, e);
          return;
        }
      }
      if (this.txPending.size > 0) {
        const first = this.txPending.values().next().value as number;
        this.deferTx(first);
      }
    });
  }

  private transmit(a: Active, chain: DescriptorChain, pair: number): void {
    const r = chain.reader();
    if (r.remaining < VIRTIO_NET_HDR_SIZE) {
      throw new NetError(
        "TX_HEADER_SHORT",
        `transmit buffer (head ${chain.head}) has ${r.remaining} readable bytes, less than the ${VIRTIO_NET_HDR_SIZE}-byte virtio_net_hdr`,
      );
    }
    r.readInto(this.txHdr);
    const h = this.txHdr;
    const flags = h[0]!;
    const gsoType = h[1]!;
    const len = r.remaining;
    const maxLen = a.mtu ? this.mtu + ETH_HLEN + 4 : this.txBuf.length;
    if (len < ETH_HLEN || len > maxLen || gsoType !== VIRTIO_NET_HDR_GSO_NONE) {
      this.counters.txDroppedInvalid++;
      return;
    }
    const frame = this.txBuf.subarray(0, len);
    r.readInto(frame);
    let csum: PartialChecksum | null = null;
    if (a.csum && flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      csum = this.txCsum;
      csum.start = h[6]! | (h[7]! << 8);
      csum.offset = h[8]! | (h[9]! << 8);
      if (!partialChecksumFits(csum, len)) {
        this.counters.txDroppedInvalid++;
        return;
      }
    }
    if (!this.link) {
      this.counters.txDroppedLinkDown++;
      return;
    }
    if (this.pairs > 1) this.steering[flowHash(frame) & 255] = pair;
    this.counters.txFrames++;
    this.counters.txBytes += len;
    deliverTo(this.tx, frame, csum);
  }

  // ---- receive -----------------------------------------------------------------------------

  /** A frame from the network. Returns false when it was dropped (and counted). */
  private receive(frame: Uint8Array, csum: PartialChecksum | null): boolean {
    const a = this.active;
    const c = this.counters;
    if (!a || !this.link || frame.length < ETH_HLEN) {
      c.rxDroppedNotReady++;
      return false;
    }
    if (!this.filter.accepts(frame, this.macAddr)) {
      c.rxDroppedFiltered++;
      return false;
    }
    // Longer than any frame this device takes (no GSO offered; the same bound as transmit):
    // dropped, never copied past the receive scratch buffer. Found by the fuzzer.
    if (frame.length > this.rxBuf.length) {
      c.rxDroppedTooLarge++;
      return false;
    }
    if (a.mtu && frame.length > this.mtu + ETH_HLEN + (frame[12] === 0x81 && frame[13] === 0 ? 4 : 0)) {
      c.rxDroppedTooLarge++;
      return false;
    }
    const q = this.rxQueueFor(a, frame);
    const vq = q < 0 ? null : a.ctx.queues[q];
    if (!vq) {
      c.rxDroppedNoBuffer++;
      return false;
    }
    if (csum !== null && !partialChecksumFits(csum, frame.length)) {
      c.rxDroppedInvalid++;
      return false;
    }
    let data = frame;
    const h = this.rxHdr;
    h.fill(0);
    if (csum !== null) {
      if (a.guestCsum) {
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h[6] = csum.start & 0xff;
        h[7] = csum.start >>> 8;
        h[8] = csum.offset & 0xff;
        h[9] = csum.offset >>> 8;
      } else {
        data = this.rxBuf.subarray(0, frame.length);
        data.set(frame);
        completeChecksum(data, csum);
      }
    }
    const total = VIRTIO_NET_HDR_SIZE + data.length;
    try {
      if (!a.mrg) {
        const chain = vq.pop();
        if (chain === null) {
          c.rxDroppedNoBuffer++;
          return false;
        }
        if (chain.writableLength < total) {
          // Never truncated: the buffer stays posted for a frame that fits.
          vq.undoPop();
          c.rxDroppedTooLarge++;
          return false;
        }
        h[10] = 1; // num_buffers
        const w = chain.writer();
        w.write(h);
        w.write(data);
        vq.addUsed(chain.head, total);
      } else if (!this.receiveMergeable(vq, h, data, total)) {
        c.rxDroppedNoBuffer++;
        return false;
      }
    } catch (e) {
      this.fail(a, e);
      return false;
    }
    c.rxFrames++;
    c.rxBytes += data.length;
    if (vq.flushUsed()) a.ctx.interrupt.signalQueue(q);
    return true;
  }

  /** VIRTIO_NET_F_MRG_RXBUF: as many buffers as the frame needs, all but the last filled. */
  private receiveMergeable(
    vq: NonNullable<DeviceContext["queues"][number]>,
    h: Uint8Array,
    data: Uint8Array,
    total: number,
  ): boolean {
    const first = vq.pop();
    if (first === null) return false;
    if (first.writableLength >= total) {
      // The common case: one buffer holds header and frame.
      h[10] = 1;
      h[11] = 0;
      const w = first.writer();
      w.write(h);
      w.write(data);
      vq.addUsed(first.head, total);
      return true;
    }
    const chains: DescriptorChain[] = [first];
    let room = first.writableLength;
    if (room < VIRTIO_NET_HDR_SIZE) {
      throw new NetError(
        "RX_BUFFER_TOO_SMALL",
        `receive buffer (head ${first.head}) has ${room} writable bytes; with VIRTIO_NET_F_MRG_RXBUF each buffer must hold at least the ${VIRTIO_NET_HDR_SIZE}-byte header`,
      );
    }
    while (room < total) {
      const chain = vq.pop();
      if (chain === null) break;
      chains.push(chain);
      if (chain.writableLength < VIRTIO_NET_HDR_SIZE) {
        throw new NetError(
          "RX_BUFFER_TOO_SMALL",
          `receive buffer (head ${chain.head}) has ${chain.writableLength} writable bytes; with VIRTIO_NET_F_MRG_RXBUF each buffer must hold at least the ${VIRTIO_NET_HDR_SIZE}-byte header`,
        );
      }
      room += chain.writableLength;
    }
    if (room < total) {
      for (let i = 0; i < chains.length; i++) vq.undoPop();
      return false;
    }
    h[10] = chains.length & 0xff;
    h[11] = chains.length >>> 8;
    let at = 0;
    for (let i = 0; i < chains.length; i++) {
      const chain = chains[i]!;
      const w: ChainWriter = chain.writer();
      let written = 0;
      if (i === 0) {
        w.write(h);
        written = VIRTIO_NET_HDR_SIZE;
      }
      const n = Math.min(w.remaining, data.length - at);
      w.write(data.subarray(at, at + n));
      at += n;
      vq.addUsed(chain.head, written + n);
    }
    return true;
  }

  private rxQueueFor(a: Active, frame: Uint8Array): number {
    const pairs = this.pairs;
    if (pairs <= 1) return 0;
    const h = flowHash(frame);
    const s = this.steering[h & 255]!;
    const first = s >= 0 && s < pairs ? s : h % pairs;
    // "If the destination receive queue is being reset, the device SHOULD re-select another."
    for (let i = 0; i < pairs; i++) {
      const p = (first + i) % pairs;
      if (a.ctx.queues[2 * p]) return 2 * p;
    }
    return -1;
  }

  // ---- control queue -----------------------------------------------------------------------

  private processCtrl(a: Active, q: number): void {
    const vq = a.ctx.queues[q];
    if (vq && drainCtrlQueue(vq, this.ctrlTarget, a, this.counters) && vq.flushUsed()) {
      a.ctx.interrupt.signalQueue(q);
    }
  }

  // ---- state -------------------------------------------------------------------------------

  save(): VirtioNetState {
    return {
      mac: formatMac(this.macAddr),
      linkUp: this.link,
      announce: this.announcePending,
      speed: this.speed,
      duplex: this.duplex,
      queuePairs: this.pairs,
      filter: this.filter.save(),
      counters: { ...this.counters },
    };
  }

  restore(s: VirtioNetState): void {
    this.macAddr = parseMac(s.mac);
    this.link = s.linkUp === true;
    this.announcePending = s.announce === true;
    this.speed = s.speed >>> 0;
    this.duplex = s.duplex & 0xff;
    const p = s.queuePairs;
    this.pairs = Number.isInteger(p) && p >= 1 && p <= this.maxQueuePairs ? p : 1;
    this.filter.restore(s.filter);
    this.counters = { ...zeroCounters(), ...s.counters };
  }
}
