import type { U64 } from "../../common/u64.js";
import { type DeviceContext, type VirtioDevice, VirtioDeviceId } from "../device.js";
import { cryptoEntropy, type EntropySource } from "./entropy.js";

export interface VirtioRngOptions {
  /** Default: the platform's cryptographic source. */
  entropy?: EntropySource;
  /** Queue size offered (default 256). */
  queueSize?: number;
  /** Most bytes given per buffer (default: the whole buffer). */
  maxBytesPerBuffer?: number;
}

export interface VirtioRngState {
  /** Bytes delivered since power-on. */
  bytesDelivered: number;
}

/**
 * virtio-rng, the entropy device (section 5.4): one request queue; each device-writable buffer
 * is filled with random bytes and returned with the number of bytes written. Device-readable
 * buffers carry nothing for this device and are skipped.
 */
export class VirtioRng implements VirtioDevice<VirtioRngState> {
  readonly deviceId = VirtioDeviceId.ENTROPY;
  readonly name = "rng";
  readonly features: U64 = { lo: 0, hi: 0 };
  readonly queueMaxSizes: readonly number[];
  readonly configSize = 0;
  private readonly entropy: EntropySource;
  private readonly maxBytes: number;
  private ctx: DeviceContext | null = null;
  bytesDelivered = 0;

  constructor(options: VirtioRngOptions = {}) {
    this.entropy = options.entropy ?? cryptoEntropy();
    this.queueMaxSizes = [options.queueSize ?? 256];
    this.maxBytes = options.maxBytesPerBuffer ?? Number.POSITIVE_INFINITY;
  }

  readConfig(): number {
    return 0;
  }

  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }

  reset(): void {
    this.ctx = null;
  }

  onQueueNotify(queue: number): void {
    const ctx = this.ctx;
    const vq = ctx?.queues[queue];
    if (!ctx || !vq) return;
    let any = false;
    for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
      const w = chain.writer();
      const n = Math.min(w.remaining, this.maxBytes);
      w.writeWith(n, (view) => this.entropy.fill(view));
      this.bytesDelivered += n;
      vq.addUsed(chain.head, n);
      any = true;
    }
    if (any && vq.flushUsed()) ctx.interrupt.signalQueue(queue);
  }

  save(): VirtioRngState {
    return { bytesDelivered: this.bytesDelivered };
  }

  restore(state: VirtioRngState): void {
    this.bytesDelivered = Number(state.bytesDelivered) || 0;
  }
}
