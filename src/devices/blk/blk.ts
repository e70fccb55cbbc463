import { ConfigError } from "../../common/errors.js";
import type { U64 } from "../../common/u64.js";
import { u64FromBits, u64TestBit } from "../../common/u64.js";
import type { DescriptorChain } from "../../virtqueue/chain.js";
import { type DeviceContext, type VirtioDevice, type VirtioDeviceHost, VirtioDeviceId } from "../device.js";
import type { BlockBackend, MaybePromise } from "./backend.js";
import {
  BLK_CONFIG_SIZE,
  BlkConfig,
  SECTOR_SIZE,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SECURE_ERASE,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_SECURE_ERASE,
} from "./constants.js";
import { type BlkLimits, type BlkPlan, parseRequest } from "./request.js";

/** Limits of one of the range commands (DISCARD, WRITE_ZEROES, SECURE_ERASE). */
export interface BlkRangeLimits {
  /** Most sectors in one segment (default 0x3fffff, 2 GiB). */
  maxSectors?: number;
  /** Most segments in one request (default 1). */
  maxSeg?: number;
  /** discard/secure erase sector alignment reported to the driver (default 8 sectors). */
  alignment?: number;
}

export interface VirtioBlkOptions {
  backend: BlockBackend;
  /** The GET_ID string: ASCII, at most 20 bytes (default: empty, all NULs). */
  id?: string;
  /** Request queues; more than 1 offers VIRTIO_BLK_F_MQ (default 1). */
  queues?: number;
  /** Size of each queue (default 256). */
  queueSize?: number;
  /** seg_max (default queueSize - 2, as QEMU). */
  segMax?: number;
  /** size_max in bytes; given: VIRTIO_BLK_F_SIZE_MAX is offered. */
  sizeMax?: number;
  /** blk_size, the logical block size (default 512); VIRTIO_BLK_F_BLK_SIZE is always offered. */
  blkSize?: number;
  /** Given: VIRTIO_BLK_F_TOPOLOGY with these fields. */
  topology?: { physicalBlockExp: number; alignmentOffset: number; minIoSize: number; optIoSize: number };
  /** Cache mode after reset: true writeback (default), false writethrough. */
  writeback?: boolean;
  /** Present the disk read-only even if the backend can write (VIRTIO_BLK_F_RO). */
  readOnly?: boolean;
  /** false: do not offer VIRTIO_BLK_F_DISCARD (default on for a writable disk). */
  discard?: BlkRangeLimits | false;
  /** false: do not offer VIRTIO_BLK_F_WRITE_ZEROES (default on for a writable disk). */
  writeZeroes?: BlkRangeLimits | false;
  /** false: do not offer VIRTIO_BLK_F_SECURE_ERASE (default on for a writable disk). */
  secureErase?: BlkRangeLimits | false;
}

export interface VirtioBlkState {
  /** The cache mode byte (0 writethrough, 1 writeback). */
  writeback: number;
}

/** Counters, for logs and tests. */
export interface VirtioBlkStats {
  requests: number;
  ok: number;
  ioerr: number;
  unsupp: number;
  bytesRead: number;
  bytesWritten: number;
  /** Completions that arrived after a reset (device or queue) and were dropped. */
  staleCompletions: number;
}

const DEFAULT_RANGE_MAX_SECTORS = 0x3f_ffff;

function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}

/** IOERR for a backend read that returned the wrong number of bytes (a backend bug), else OK. */
function dataStatus(plan: BlkPlan, data: Uint8Array | null): number {
  if (plan.kind === "in" && (data === null || data.length !== plan.length)) return VIRTIO_BLK_S_IOERR;
  return VIRTIO_BLK_S_OK;
}

/** Runs `ops` in order; stays synchronous while every op finishes at once. */
function sequence(ops: readonly (() => MaybePromise<void>)[], from = 0): MaybePromise<void> {
  for (let i = from; i < ops.length; i++) {
    const r = ops[i]!();
    if (isPromise(r)) return r.then(() => sequence(ops, i + 1));
  }
  return undefined;
}

/**
 * virtio-blk (section 5.2). Requests are checked (request.ts) before the backend sees them;
 * a backend that throws or rejects completes the request with VIRTIO_BLK_S_IOERR. A backend
 * that returns a promise completes later: the used buffer is written from the promise's
 * resolution, after checking that neither the device nor the queue was reset meanwhile (such
 * a completion is dropped and counted). Requests on different queues, or behind one
 * asynchronous backend, are in flight together and complete in the order the backend finishes.
 */
export class VirtioBlk implements VirtioDevice<VirtioBlkState> {
  readonly deviceId = VirtioDeviceId.BLOCK;
  readonly name = "blk";
  readonly features: U64;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = BLK_CONFIG_SIZE;
  readonly backend: BlockBackend;
  readonly stats: VirtioBlkStats = {
    requests: 0,
    ok: 0,
    ioerr: 0,
    unsupp: 0,
    bytesRead: 0,
    bytesWritten: 0,
    staleCompletions: 0,
  };
  private readonly config = new Uint8Array(BLK_CONFIG_SIZE);
  private readonly configView = new DataView(this.config.buffer);
  private readonly id: Uint8Array;
  private readonly limits: BlkLimits;
  private readonly initialWriteback: number;
  private ctx: DeviceContext | null = null;
  private host: VirtioDeviceHost | null = null;
  /** Bumped by reset: completions from an older epoch are dropped. */
  private epoch = 0;
  private readonly queueEpochs: number[];
  private inFlight = 0;
  private drainWaiters: (() => void)[] = [];
  private readonly flushPending = new Set<number>();
  private flushScheduled = false;

  constructor(options: VirtioBlkOptions) {
    const backend = options.backend;
    this.backend = backend;
    if (
      !Number.isSafeInteger(backend.capacity) ||
      backend.capacity < 0 ||
      backend.capacity % SECTOR_SIZE !== 0
    ) {
      throw new ConfigError(`virtio-blk backend capacity ${backend.capacity} is not a multiple of 512`);
    }
    const queues = options.queues ?? 1;
    if (!Number.isInteger(queues) || queues < 1 || queues > 1024) {
      throw new ConfigError(`virtio-blk queues must be 1..1024, got ${queues}`);
    }
    const queueSize = options.queueSize ?? 256;
    this.queueMaxSizes = new Array<number>(queues).fill(queueSize);
    this.queueEpochs = new Array<number>(queues).fill(0);
    const id = options.id ?? "";
    if (id.length > VIRTIO_BLK_ID_BYTES || !/^[\x20-\x7e]*$/.test(id)) {
      throw new ConfigError(
        `virtio-blk id must be at most 20 printable ASCII characters, got ${JSON.stringify(id)}`,
      );
    }
    this.id = new Uint8Array(VIRTIO_BLK_ID_BYTES);
    for (let i = 0; i < id.length; i++) this.id[i] = id.charCodeAt(i);
    const readOnly = backend.readOnly || options.readOnly === true;
    const range = (o: BlkRangeLimits | false | undefined) =>
      readOnly || o === false
        ? null
        : {
            maxSectors: o?.maxSectors ?? DEFAULT_RANGE_MAX_SECTORS,
            maxSeg: o?.maxSeg ?? 1,
            alignment: o?.alignment ?? 8,
          };
    const discard = range(options.discard);
    const writeZeroes = range(options.writeZeroes);
    const secureErase = range(options.secureErase);
    this.limits = {
      capacitySectors: backend.capacity / SECTOR_SIZE,
      readOnly,
      discard,
      writeZeroes,
      secureErase,
    };
    const bits = [VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE];
    if (options.sizeMax !== undefined) bits.push(VIRTIO_BLK_F_SIZE_MAX);
    if (options.topology) bits.push(VIRTIO_BLK_F_TOPOLOGY);
    if (readOnly) bits.push(VIRTIO_BLK_F_RO);
    if (queues > 1) bits.push(VIRTIO_BLK_F_MQ);
    if (discard) bits.push(VIRTIO_BLK_F_DISCARD);
    if (writeZeroes) bits.push(VIRTIO_BLK_F_WRITE_ZEROES);
    if (secureErase) bits.push(VIRTIO_BLK_F_SECURE_ERASE);
    this.features = u64FromBits(...bits);

    const c = this.configView;
    c.setUint32(BlkConfig.capacity, this.limits.capacitySectors >>> 0, true);
    c.setUint32(BlkConfig.capacity + 4, Math.floor(this.limits.capacitySectors / 0x1_0000_0000), true);
    c.setUint32(BlkConfig.size_max, (options.sizeMax ?? 0) >>> 0, true);
    c.setUint32(BlkConfig.seg_max, (options.segMax ?? Math.max(1, queueSize - 2)) >>> 0, true);
    const blkSize = options.blkSize ?? SECTOR_SIZE;
    if (!(Number.isInteger(blkSize) && blkSize >= SECTOR_SIZE && (blkSize & (blkSize - 1)) === 0)) {
      throw new ConfigError(`virtio-blk blk_size must be a power of two of at least 512, got ${blkSize}`);
    }
    c.setUint32(BlkConfig.blk_size, blkSize, true);
    if (options.topology) {
      const t = options.topology;
      c.setUint8(BlkConfig.physical_block_exp, t.physicalBlockExp);
      c.setUint8(BlkConfig.alignment_offset, t.alignmentOffset);
      c.setUint16(BlkConfig.min_io_size, t.minIoSize, true);
      c.setUint32(BlkConfig.opt_io_size, t.optIoSize, true);
    }
    this.initialWriteback = options.writeback === false ? 0 : 1;
    c.setUint8(BlkConfig.writeback, this.initialWriteback);
    c.setUint16(BlkConfig.num_queues, queues, true);
    if (discard) {
      c.setUint32(BlkConfig.max_discard_sectors, discard.maxSectors, true);
      c.setUint32(BlkConfig.max_discard_seg, discard.maxSeg, true);
      c.setUint32(BlkConfig.discard_sector_alignment, discard.alignment, true);
    }
    if (writeZeroes) {
      c.setUint32(BlkConfig.max_write_zeroes_sectors, writeZeroes.maxSectors, true);
      c.setUint32(BlkConfig.max_write_zeroes_seg, writeZeroes.maxSeg, true);
      // No shipped backend deallocates on write zeroes (5.2.6.4: clear it in that case).
      c.setUint8(BlkConfig.write_zeroes_may_unmap, 0);
    }
    if (secureErase) {
      c.setUint32(BlkConfig.max_secure_erase_sectors, secureErase.maxSectors, true);
      c.setUint32(BlkConfig.max_secure_erase_seg, secureErase.maxSeg, true);
      c.setUint32(BlkConfig.secure_erase_sector_alignment, secureErase.alignment, true);
    }
  }

  /** The cache mode: 1 writeback, 0 writethrough. */
  get writeback(): number {
    return this.config[BlkConfig.writeback]!;
  }

  /** Requests handed to the backend and not completed yet. */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  hostBusy(): boolean {
    return this.inFlight > 0;
  }

  /** Resolves once no request is in flight. */
  drain(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  attach(host: VirtioDeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > BLK_CONFIG_SIZE) return 0;
    const c = this.configView;
    return size === 1
      ? c.getUint8(offset)
      : size === 2
        ? c.getUint16(offset, true)
        : c.getUint32(offset, true);
  }

  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    // Only `writeback` is writable (VIRTIO_BLK_F_CONFIG_WCE): 0 writethrough, 1 writeback.
    if (offset === BlkConfig.writeback && size === 1 && (value === 0 || value === 1)) {
      if (this.config[BlkConfig.writeback] !== value) {
        this.config[BlkConfig.writeback] = value;
        this.host?.configChanged();
      }
    }
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    // 5.2.5.2: "If VIRTIO_BLK_F_CONFIG_WCE is negotiated but VIRTIO_BLK_F_FLUSH is not, the
    // device MUST initialize writeback to 0."
    if (u64TestBit(ctx.features, VIRTIO_BLK_F_CONFIG_WCE) && !u64TestBit(ctx.features, VIRTIO_BLK_F_FLUSH)) {
      this.config[BlkConfig.writeback] = 0;
    }
  }

  reset(): void {
    this.ctx = null;
    this.epoch++;
    this.flushPending.clear();
    this.config[BlkConfig.writeback] = this.initialWriteback;
  }

  onQueueReset(queue: number): void {
    if (queue < this.queueEpochs.length) this.queueEpochs[queue]!++;
    this.flushPending.delete(queue);
  }

  /** Writes reach stable storage before they complete (5.2.6.4, cases 1 and 2). */
  private writeThrough(): boolean {
    const f = this.ctx?.features;
    if (!f) return false;
    const wce = u64TestBit(f, VIRTIO_BLK_F_CONFIG_WCE);
    if (!wce && !u64TestBit(f, VIRTIO_BLK_F_FLUSH)) return true;
    return wce && this.config[BlkConfig.writeback] === 0;
  }

  onQueueNotify(queue: number): void {
    const ctx = this.ctx;
    const vq = ctx?.queues[queue];
    if (!ctx || !vq) return;
    let any = false;
    for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
      this.stats.requests++;
      const plan = parseRequest(chain, this.limits);
      if (this.start(queue, chain, plan)) any = true;
    }
    if (any && vq.flushUsed()) ctx.interrupt.signalQueue(queue);
  }

  /** Starts a request; returns true when it completed at once (a used entry was added). */
  private start(queue: number, chain: DescriptorChain, plan: BlkPlan): boolean {
    if (plan.kind === "fail") {
      this.finish(queue, chain, plan.status, null);
      return true;
    }
    const b = this.backend;
    let result: MaybePromise<Uint8Array | null>;
    try {
      result = this.perform(b, plan);
    } catch {
      this.finish(queue, chain, VIRTIO_BLK_S_IOERR, null);
      return true;
    }
    if (!isPromise(result)) {
      const status = dataStatus(plan, result);
      if (status === VIRTIO_BLK_S_OK) this.account(plan);
      this.finish(queue, chain, status, result);
      return true;
    }
    const epoch = this.epoch;
    const qEpoch = this.queueEpochs[queue]!;
    this.inFlight++;
    result.then(
      (data) => this.complete(queue, chain, epoch, qEpoch, VIRTIO_BLK_S_OK, data, plan),
      () => this.complete(queue, chain, epoch, qEpoch, VIRTIO_BLK_S_IOERR, null, null),
    );
    return false;
  }

  private perform(
    b: BlockBackend,
    plan: Exclude<BlkPlan, { kind: "fail" }>,
  ): MaybePromise<Uint8Array | null> {
    const wt = this.writeThrough();
    const then = (r: MaybePromise<void>, after: () => MaybePromise<void>): MaybePromise<null> => {
      if (isPromise(r)) return r.then(after).then(() => null);
      const r2 = after();
      return isPromise(r2) ? r2.then(() => null) : null;
    };
    const stable = () => (wt ? b.flush() : undefined);
    switch (plan.kind) {
      case "in":
        return b.read(plan.offset, plan.length);
      case "out":
        return then(b.write(plan.offset, plan.data), stable);
      case "flush":
        return then(b.flush(), () => undefined);
      case "get-id":
        return this.id;
      case "ranges": {
        const ops: (() => MaybePromise<void>)[] = [];
        const rs = plan.ranges;
        for (let i = 0; i < rs.length; i += 2) {
          const off = rs[i]!;
          const len = rs[i + 1]!;
          if (plan.type === VIRTIO_BLK_T_DISCARD) ops.push(() => b.discard(off, len));
          else ops.push(() => b.writeZeroes(off, len));
        }
        // A secure erase is only done once the zeroes are on stable storage.
        if (plan.type === VIRTIO_BLK_T_SECURE_ERASE) ops.push(() => b.flush());
        else ops.push(stable);
        return then(sequence(ops), () => undefined);
      }
    }
  }

  private account(plan: BlkPlan | null): void {
    if (plan?.kind === "in") this.stats.bytesRead += plan.length;
    else if (plan?.kind === "out") for (const d of plan.data) this.stats.bytesWritten += d.length;
  }

  /** An asynchronous completion: dropped when the device or the queue was reset meanwhile. */
  private complete(
    queue: number,
    chain: DescriptorChain,
    epoch: number,
    qEpoch: number,
    status: number,
    data: Uint8Array | null,
    plan: BlkPlan | null,
  ): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drainWaiters.length > 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
    const ctx = this.ctx;
    if (epoch !== this.epoch || qEpoch !== this.queueEpochs[queue] || !ctx || !ctx.queues[queue]) {
      this.stats.staleCompletions++;
      return;
    }
    try {
      if (status === VIRTIO_BLK_S_OK && plan) status = dataStatus(plan, data);
      if (status === VIRTIO_BLK_S_OK) this.account(plan);
      this.finish(queue, chain, status, data);
    } catch (e) {
      ctx.fail(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.flushPending.add(queue);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flushCompletions());
    }
  }

  /** Publishes the used entries added by asynchronous completions (one flush per queue per turn). */
  private flushCompletions(): void {
    this.flushScheduled = false;
    const ctx = this.ctx;
    if (!ctx) return;
    for (const q of this.flushPending) {
      const vq = ctx.queues[q];
      if (vq?.flushUsed()) ctx.interrupt.signalQueue(q);
    }
    this.flushPending.clear();
  }

  /**
   * Writes the data (for a read or GET_ID), zeroes for the rest of the device-writable data
   * part, the status as its last byte, and adds the used entry. `len` is the whole writable
   * part: every byte of it was written.
   */
  private finish(queue: number, chain: DescriptorChain, status: number, data: Uint8Array | null): void {
    const vq = this.ctx!.queues[queue]!;
    const w = chain.writer();
    const dataLen = chain.writableLength - 1;
    if (status === VIRTIO_BLK_S_OK && data !== null) {
      const n = Math.min(data.length, dataLen);
      w.write(n === data.length ? data : data.subarray(0, n));
      if (dataLen > n) w.fill(dataLen - n, 0);
    } else if (dataLen > 0) {
      w.fill(dataLen, 0);
    }
    w.writeU8(status);
    if (status === VIRTIO_BLK_S_OK) this.stats.ok++;
    else if (status === VIRTIO_BLK_S_UNSUPP) this.stats.unsupp++;
    else this.stats.ioerr++;
    vq.addUsed(chain.head, chain.writableLength);
  }

  save(): VirtioBlkState {
    if (this.inFlight > 0) {
      throw new ConfigError(
        `virtio-blk: ${this.inFlight} requests in flight; await drain() before saving the device`,
      );
    }
    return { writeback: this.config[BlkConfig.writeback]! };
  }

  restore(state: VirtioBlkState): void {
    const wb = state.writeback;
    if (wb !== 0 && wb !== 1) throw new ConfigError(`saved virtio-blk writeback ${wb} is not 0 or 1`);
    this.config[BlkConfig.writeback] = wb;
  }
}
