import { VirtkitError } from "../../common/errors.js";
import type { GuestMemory } from "../../common/memory.js";
import type { U64 } from "../../common/u64.js";
import { u64FromBits, u64TestBit } from "../../common/u64.js";
import type { DescriptorChain } from "../../virtqueue/chain.js";
import type { VirtQueue } from "../../virtqueue/queue.js";
import { type DeviceContext, type VirtioDevice, type VirtioDeviceHost, VirtioDeviceId } from "../device.js";
import {
  BALLOON_STAT_NAMES,
  type BalloonStatName,
  VIRTIO_BALLOON_CFG_ACTUAL,
  VIRTIO_BALLOON_CFG_NUM_PAGES,
  VIRTIO_BALLOON_CFG_POISON_VAL,
  VIRTIO_BALLOON_CONFIG_SIZE,
  VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_MUST_TELL_HOST,
  VIRTIO_BALLOON_F_PAGE_REPORTING,
  VIRTIO_BALLOON_F_STATS_VQ,
  VIRTIO_BALLOON_PAGE_SIZE,
  VIRTIO_BALLOON_STAT_SIZE,
} from "./constants.js";

/** A balloon error: a bad argument from the host side. */
export class BalloonError extends VirtkitError {}

/** The latest statistics the driver supplied: only the tags it supplies are present. */
export type BalloonStats = Partial<Record<BalloonStatName, bigint>>;

export type BalloonEvent =
  /** The driver updated `actual` (pages in the balloon, by the driver's count). */
  | { type: "actual"; pages: number }
  /** New statistics arrived. */
  | { type: "stats"; stats: BalloonStats }
  /** Pages went into the balloon (inflate) or came back (deflate), or were reported free. */
  | { type: "inflate" | "deflate" | "report"; pages: number };

export interface VirtioBalloonOptions {
  /** Queue size of every queue (default 128). */
  queueSize?: number;
  /** Offer VIRTIO_BALLOON_F_STATS_VQ (default true). */
  statsVq?: boolean;
  /** Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (default true). */
  deflateOnOom?: boolean;
  /** Offer VIRTIO_BALLOON_F_PAGE_REPORTING (default true). */
  freePageReporting?: boolean;
  /** Offer VIRTIO_BALLOON_F_MUST_TELL_HOST (default false, as QEMU). */
  mustTellHost?: boolean;
  /**
   * Called for each run of pages given back to the host (inflated or reported), after they
   * were zeroed: where a KVM backend gives the memory back (madvise MADV_DONTNEED).
   */
  onDiscard?: (addr: number, length: number) => void;
  /** Called for each run of pages deflated (usable by the guest again). */
  onReclaim?: (addr: number, length: number) => void;
}

/** Counters as a plain object. */
export interface BalloonCounters {
  /** Pages zeroed and given back to the host (inflated or reported), since power-on. */
  pagesReturned: number;
  /** Pages deflated (back in the guest's use), since power-on. */
  pagesReclaimed: number;
  /** Pages reported free (VIRTIO_BALLOON_F_PAGE_REPORTING), since power-on. */
  pagesReported: number;
  /** Page frame numbers outside guest memory (ignored). */
  pfnsOutOfRange: number;
  /** Inflate of a page already in the balloon (zeroed again, counted once in the balloon). */
  duplicateInflates: number;
  /** Deflate of a page not in the balloon (ignored). */
  unknownDeflates: number;
  /** Buffers whose length is not a whole number of entries (the tail ignored). */
  malformedBuffers: number;
  /** Statistics buffers parsed. */
  statsUpdates: number;
  /** Statistics entries with a tag this device does not know (ignored, as 5.5.6.2.1 requires). */
  unknownStatTags: number;
}

export interface VirtioBalloonState {
  numPages: number;
  actual: number;
  poisonVal: number;
  /** Pages in the balloon as [first PFN, count] runs. */
  inflated: [number, number][];
  stats: Partial<Record<BalloonStatName, string>> | null;
  /** Head of the stats buffer the device holds for the next request (-1: none). */
  statsHead: number;
  counters: BalloonCounters;
}

const zeroCounters = (): BalloonCounters => ({
  pagesReturned: 0,
  pagesReclaimed: 0,
  pagesReported: 0,
  pfnsOutOfRange: 0,
  duplicateInflates: 0,
  unknownDeflates: 0,
  malformedBuffers: 0,
  statsUpdates: 0,
  unknownStatTags: 0,
});

interface Active {
  ctx: DeviceContext;
  statsQueue: number;
  reportingQueue: number;
}

/**
 * virtio-balloon, the traditional memory balloon (section 5.5): inflateq and deflateq carry
 * arrays of 4 KiB page frame numbers; the host sets the target (num_pages) and the driver
 * reports its size (actual); the stats queue carries memory statistics; free page reporting
 * hands free pages to the host for the time of a request. Pages given to the host are zeroed
 * and counted as returned; a page number outside guest memory is ignored and counted.
 *
 * Queue indices: inflateq 0, deflateq 1, then statsq and reporting_vq in that order for the
 * features negotiated (present queues are numbered consecutively, as Linux's driver does).
 */
export class VirtioBalloon implements VirtioDevice<VirtioBalloonState> {
  readonly deviceId = VirtioDeviceId.BALLOON;
  readonly name = "balloon";
  readonly features: U64;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = VIRTIO_BALLOON_CONFIG_SIZE;
  counters: BalloonCounters = zeroCounters();

  private numPages = 0;
  private actualPages = 0;
  private poisonVal = 0;
  /** One byte per 4 KiB page of guest memory: 1 while the page is in the balloon. */
  private inflated: Uint8Array = new Uint8Array(0);
  private inflatedCount = 0;
  private latest: BalloonStats | null = null;
  /** The stats buffer the device holds to start the next request. */
  private statsHead = -1;
  private host: VirtioDeviceHost | null = null;
  private active: Active | null = null;
  private readonly listeners = new Set<(e: BalloonEvent) => void>();
  private readonly onDiscard: ((addr: number, length: number) => void) | undefined;
  private readonly onReclaim: ((addr: number, length: number) => void) | undefined;

  constructor(options: VirtioBalloonOptions = {}) {
    const bits: number[] = [];
    if (options.mustTellHost) bits.push(VIRTIO_BALLOON_F_MUST_TELL_HOST);
    if (options.statsVq !== false) bits.push(VIRTIO_BALLOON_F_STATS_VQ);
    if (options.deflateOnOom !== false) bits.push(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
    if (options.freePageReporting !== false) bits.push(VIRTIO_BALLOON_F_PAGE_REPORTING);
    this.features = u64FromBits(...bits);
    const qs = options.queueSize ?? 128;
    const n = 2 + (options.statsVq !== false ? 1 : 0) + (options.freePageReporting !== false ? 1 : 0);
    this.queueMaxSizes = Array.from({ length: n }, () => qs);
    this.onDiscard = options.onDiscard;
    this.onReclaim = options.onReclaim;
  }

  // ---- host API ----------------------------------------------------------------------------

  /** Sets the balloon's target size in bytes (num_pages = bytes / 4096, rounded down). */
  setTarget(bytes: number): void {
    if (!(Number.isSafeInteger(bytes) && bytes >= 0 && bytes / VIRTIO_BALLOON_PAGE_SIZE <= 0xffff_ffff)) {
      throw new BalloonError(
        "BAD_TARGET",
        `balloon target must be 0..${0xffff_ffff * 4096} bytes, got ${bytes}`,
      );
    }
    const pages = Math.floor(bytes / VIRTIO_BALLOON_PAGE_SIZE);
    if (pages === this.numPages) return;
    this.numPages = pages;
    this.host?.configChanged();
  }

  /** The target in bytes (num_pages * 4096). */
  get target(): number {
    return this.numPages * VIRTIO_BALLOON_PAGE_SIZE;
  }

  /** The balloon's size in bytes as the driver reports it (actual * 4096). */
  get currentSize(): number {
    return this.actualPages * VIRTIO_BALLOON_PAGE_SIZE;
  }

  /** Bytes of guest memory the host holds now (pages inflated and not deflated). */
  get inflatedBytes(): number {
    return this.inflatedCount * VIRTIO_BALLOON_PAGE_SIZE;
  }

  /** True when page `pfn` is in the balloon. */
  isInflated(pfn: number): boolean {
    return this.inflated[pfn] === 1;
  }

  /** The latest statistics (null before the driver sent any). */
  get stats(): BalloonStats | null {
    return this.latest;
  }

  /**
   * Asks the driver for fresh statistics by using the buffer it left in the stats queue.
   * Returns false when there is no buffer to use (no stats queue, or a request in flight).
   */
  requestStats(): boolean {
    const a = this.active;
    if (!a || a.statsQueue < 0 || this.statsHead < 0) return false;
    const vq = a.ctx.queues[a.statsQueue];
    if (!vq) return false;
    vq.addUsed(this.statsHead, 0);
    this.statsHead = -1;
    if (vq.flushUsed()) a.ctx.interrupt.signalQueue(a.statsQueue);
    return true;
  }

  /** Listens to changes; returns the function that stops listening. */
  onEvent(listener: (e: BalloonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: BalloonEvent): void {
    for (const l of this.listeners) l(e);
  }

  // ---- VirtioDevice ------------------------------------------------------------------------

  attach(host: VirtioDeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    const b = new Uint8Array(VIRTIO_BALLOON_CONFIG_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(VIRTIO_BALLOON_CFG_NUM_PAGES, this.numPages, true);
    v.setUint32(VIRTIO_BALLOON_CFG_ACTUAL, this.actualPages, true);
    v.setUint32(VIRTIO_BALLOON_CFG_POISON_VAL, this.poisonVal, true);
    let r = 0;
    for (let i = size - 1; i >= 0; i--) r = r * 256 + (b[offset + i] ?? 0);
    return r;
  }

  /** `actual` and `poison_val` are the driver's to write (any width, merged bytewise); the rest is read-only. */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    const before = this.actualPages;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      if (o >= VIRTIO_BALLOON_CFG_ACTUAL && o < VIRTIO_BALLOON_CFG_ACTUAL + 4) {
        const sh = 8 * (o - VIRTIO_BALLOON_CFG_ACTUAL);
        this.actualPages = ((this.actualPages & ~(0xff << sh)) | (byte << sh)) >>> 0;
      } else if (o >= VIRTIO_BALLOON_CFG_POISON_VAL && o < VIRTIO_BALLOON_CFG_POISON_VAL + 4) {
        const sh = 8 * (o - VIRTIO_BALLOON_CFG_POISON_VAL);
        this.poisonVal = ((this.poisonVal & ~(0xff << sh)) | (byte << sh)) >>> 0;
      }
    }
    if (this.actualPages !== before) this.emit({ type: "actual", pages: this.actualPages });
  }

  activate(ctx: DeviceContext): void {
    const has = (b: number) => u64TestBit(ctx.features, b) && u64TestBit(this.features, b);
    let next = 2;
    const statsQueue = has(VIRTIO_BALLOON_F_STATS_VQ) ? next++ : -1;
    const reportingQueue = has(VIRTIO_BALLOON_F_PAGE_REPORTING) ? next++ : -1;
    this.active = { ctx, statsQueue, reportingQueue };
    const pages = Math.floor(ctx.memory.size / VIRTIO_BALLOON_PAGE_SIZE);
    if (this.inflated.length !== pages) {
      this.inflated = new Uint8Array(pages);
      this.inflatedCount = 0;
    }
    this.statsHead = -1;
  }

  /** The driver starts over believing the balloon empty: every page is the guest's again. */
  reset(): void {
    this.active = null;
    this.actualPages = 0;
    this.poisonVal = 0;
    this.inflated.fill(0);
    this.inflatedCount = 0;
    this.statsHead = -1;
  }

  /** The driver reset one queue (VIRTIO_F_RING_RESET): a stats buffer held from it is gone. */
  onQueueReset(queue: number): void {
    if (this.active && queue === this.active.statsQueue) this.statsHead = -1;
  }

  onQueueNotify(queue: number): void {
    const a = this.active;
    if (!a) return;
    const vq = a.ctx.queues[queue];
    if (!vq) return;
    try {
      if (queue === 0 || queue === 1) this.drainPfns(a, vq, queue);
      else if (queue === a.statsQueue) this.drainStats(a, vq, queue);
      else if (queue === a.reportingQueue) this.drainReports(a, vq, queue);
    } catch (e) {
      // The transport sets DEVICE_NEEDS_RESET: nothing more until the driver resets the device.
      this.active = null;
      throw e;
    }
  }

  // ---- inflate / deflate -------------------------------------------------------------------

  private drainPfns(a: Active, vq: VirtQueue, queue: number): void {
    const inflate = queue === 0;
    const mem = a.ctx.memory;
    const pages = this.inflated.length;
    let total = 0;
    let used = false;
    for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
      const r = chain.reader();
      if (r.remaining % 4 !== 0) this.counters.malformedBuffers++;
      const n = Math.floor(r.remaining / 4);
      let runStart = -1;
      let runLen = 0;
      const flush = () => {
        if (runLen > 0) {
          const addr = runStart * VIRTIO_BALLOON_PAGE_SIZE;
          const len = runLen * VIRTIO_BALLOON_PAGE_SIZE;
          if (inflate) this.onDiscard?.(addr, len);
          else this.onReclaim?.(addr, len);
        }
        runLen = 0;
      };
      for (let i = 0; i < n; i++) {
        const pfn = r.readU32();
        if (pfn >= pages) {
          this.counters.pfnsOutOfRange++;
          continue;
        }
        if (inflate) {
          if (this.inflated[pfn] === 1) this.counters.duplicateInflates++;
          else {
            this.inflated[pfn] = 1;
            this.inflatedCount++;
          }
          zeroPage(mem, pfn);
          this.counters.pagesReturned++;
        } else {
          if (this.inflated[pfn] !== 1) {
            this.counters.unknownDeflates++;
            continue;
          }
          this.inflated[pfn] = 0;
          this.inflatedCount--;
          this.counters.pagesReclaimed++;
        }
        total++;
        if (runLen > 0 && pfn === runStart + runLen) runLen++;
        else {
          flush();
          runStart = pfn;
          runLen = 1;
        }
      }
      flush();
      vq.addUsed(chain.head, 0);
      used = true;
    }
    if (used && vq.flushUsed()) a.ctx.interrupt.signalQueue(queue);
    if (total > 0) this.emit({ type: inflate ? "inflate" : "deflate", pages: total });
  }

  // ---- free page reporting -----------------------------------------------------------------

  private drainReports(a: Active, vq: VirtQueue, queue: number): void {
    const mem = a.ctx.memory;
    let total = 0;
    let used = false;
    for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
      total += this.discardChain(mem, chain);
      vq.addUsed(chain.head, 0);
      used = true;
    }
    if (used && vq.flushUsed()) a.ctx.interrupt.signalQueue(queue);
    if (total > 0) this.emit({ type: "report", pages: total });
  }

  /** Zeroes and hands back every whole 4 KiB page the chain's buffers cover. */
  private discardChain(mem: GuestMemory, chain: DescriptorChain): number {
    let pages = 0;
    for (let i = 0; i < chain.length; i++) {
      const addr = chain.addrs[i]!;
      const end = addr + chain.lens[i]!;
      const first = Math.ceil(addr / VIRTIO_BALLOON_PAGE_SIZE);
      const last = Math.floor(end / VIRTIO_BALLOON_PAGE_SIZE);
      if (last <= first) continue;
      const a0 = first * VIRTIO_BALLOON_PAGE_SIZE;
      const len = (last - first) * VIRTIO_BALLOON_PAGE_SIZE;
      mem.fill(a0, len, 0);
      this.onDiscard?.(a0, len);
      pages += last - first;
    }
    this.counters.pagesReported += pages;
    this.counters.pagesReturned += pages;
    return pages;
  }

  // ---- statistics --------------------------------------------------------------------------

  private drainStats(a: Active, vq: VirtQueue, queue: number): void {
    let released = false;
    for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
      // "The driver MUST make at most one buffer available": an older one held is given back.
      if (this.statsHead >= 0) {
        vq.addUsed(this.statsHead, 0);
        released = true;
      }
      this.statsHead = chain.head;
      this.parseStats(chain);
    }
    if (released && vq.flushUsed()) a.ctx.interrupt.signalQueue(queue);
  }

  private parseStats(chain: DescriptorChain): void {
    const r = chain.reader();
    if (r.remaining % VIRTIO_BALLOON_STAT_SIZE !== 0) this.counters.malformedBuffers++;
    const n = Math.floor(r.remaining / VIRTIO_BALLOON_STAT_SIZE);
    const stats: BalloonStats = {};
    for (let i = 0; i < n; i++) {
      const tag = r.readU16();
      const v = r.readU64();
      const name = BALLOON_STAT_NAMES[tag];
      if (name === undefined) {
        this.counters.unknownStatTags++;
        continue;
      }
      stats[name] = (BigInt(v.hi) << 32n) | BigInt(v.lo);
    }
    this.latest = stats;
    this.counters.statsUpdates++;
    this.emit({ type: "stats", stats });
  }

  // ---- state -------------------------------------------------------------------------------

  save(): VirtioBalloonState {
    const runs: [number, number][] = [];
    const b = this.inflated;
    for (let i = 0; i < b.length; i++) {
      if (b[i] !== 1) continue;
      const start = i;
      while (i + 1 < b.length && b[i + 1] === 1) i++;
      runs.push([start, i - start + 1]);
    }
    let stats: Partial<Record<BalloonStatName, string>> | null = null;
    if (this.latest) {
      stats = {};
      for (const [k, v] of Object.entries(this.latest) as [BalloonStatName, bigint][])
        stats[k] = v.toString();
    }
    return {
      numPages: this.numPages,
      actual: this.actualPages,
      poisonVal: this.poisonVal,
      inflated: runs,
      stats,
      statsHead: this.statsHead,
      counters: { ...this.counters },
    };
  }

  restore(s: VirtioBalloonState): void {
    this.numPages = s.numPages >>> 0;
    this.actualPages = s.actual >>> 0;
    this.poisonVal = s.poisonVal >>> 0;
    this.inflated.fill(0);
    this.inflatedCount = 0;
    for (const [start, count] of s.inflated) {
      for (let p = start; p < start + count && p < this.inflated.length; p++) {
        if (p >= 0 && this.inflated[p] === 0) {
          this.inflated[p] = 1;
          this.inflatedCount++;
        }
      }
    }
    if (s.stats) {
      const stats: BalloonStats = {};
      for (const [k, v] of Object.entries(s.stats) as [BalloonStatName, string][]) {
        if ((BALLOON_STAT_NAMES as readonly string[]).includes(k)) stats[k] = BigInt(v);
      }
      this.latest = stats;
    } else this.latest = null;
    this.counters = { ...zeroCounters(), ...s.counters };
    const h = s.statsHead;
    const a = this.active;
    const vq = a && a.statsQueue >= 0 ? a.ctx.queues[a.statsQueue] : null;
    this.statsHead = vq && Number.isInteger(h) && h >= 0 && h < vq.size ? h : -1;
  }
}

function zeroPage(mem: GuestMemory, pfn: number): void {
  mem.fill(pfn * VIRTIO_BALLOON_PAGE_SIZE, VIRTIO_BALLOON_PAGE_SIZE, 0);
}
