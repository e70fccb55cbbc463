/**
 * An example custom virtio device built on the public API only: a checksum offload engine.
 *
 * Device ID 63 (PCI device 0x107f). One queue, `requestq`. A request is
 *
 *   struct checksum_req  { le32 op; le32 reserved; u8 data[]; }   // device-readable
 *   struct checksum_resp { u8 status; u8 pad[3]; le32 result; }   // device-writable
 *
 * op 0 computes the CRC-32 (IEEE) of `data`; op 1 (only when CHECKSUM_F_SUM16 is negotiated)
 * the 16-bit one's-complement Internet checksum. The device writes the 8-byte response and
 * returns the chain with used length 8. Configuration space: `le32 requests_served`, which the
 * device updates (and announces with a configuration change notification) every 64 requests.
 */
import type { U64 } from "../../src/common/u64.js";
import { u64TestBit } from "../../src/common/u64.js";
import type { DeviceContext, VirtioDevice, VirtioDeviceHost } from "../../src/devices/device.js";

export const CHECKSUM_DEVICE_ID = 63;
/** Feature bit 0: op 1 (Internet checksum) is available. */
export const CHECKSUM_F_SUM16 = 0;
export const CHECKSUM_OP_CRC32 = 0;
export const CHECKSUM_OP_SUM16 = 1;
export const CHECKSUM_S_OK = 0;
export const CHECKSUM_S_UNSUPP = 1;
export const CHECKSUM_S_BAD_REQUEST = 2;
export const CHECKSUM_REQ_HEADER = 8;
export const CHECKSUM_RESP_SIZE = 8;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Incremental CRC-32: feed chunks, then finish with `~crc`. */
export function crc32Update(crc: number, bytes: Uint8Array): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

export interface ChecksumState {
  served: number;
}

export class ChecksumDevice implements VirtioDevice<ChecksumState> {
  readonly deviceId = CHECKSUM_DEVICE_ID;
  readonly name = "checksum";
  readonly features: U64 = { lo: 1 << CHECKSUM_F_SUM16, hi: 0 };
  readonly queueMaxSizes = [128];
  readonly configSize = 4;
  private ctx: DeviceContext | null = null;
  private host: VirtioDeviceHost | null = null;
  private served = 0;

  attach(host: VirtioDeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    const v = this.served >>> (8 * offset);
    return size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff);
  }

  writeConfig(): void {
    // requests_served is read-only.
  }

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
    const sum16 = u64TestBit(ctx.features, CHECKSUM_F_SUM16);
    let done = 0;
    // Walking or reading a malformed chain throws a QueueError: the transport then sets
    // DEVICE_NEEDS_RESET. A well-formed chain with a bad request gets a status instead.
    for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
      const r = chain.reader();
      const w = chain.writer();
      let status = CHECKSUM_S_OK;
      let result = 0;
      if (r.remaining < CHECKSUM_REQ_HEADER || w.remaining < CHECKSUM_RESP_SIZE) {
        status = CHECKSUM_S_BAD_REQUEST;
      } else {
        const op = r.readU32();
        r.skip(4);
        if (op === CHECKSUM_OP_CRC32) {
          let crc = 0xffff_ffff;
          while (r.remaining > 0) crc = crc32Update(crc, r.read(Math.min(r.remaining, 4096)));
          result = ~crc >>> 0;
        } else if (op === CHECKSUM_OP_SUM16 && sum16) {
          let sum = 0;
          let odd = false;
          while (r.remaining > 0) {
            const b = r.readU8();
            sum += odd ? b : b << 8;
            odd = !odd;
          }
          while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
          result = ~sum & 0xffff;
        } else {
          status = CHECKSUM_S_UNSUPP;
        }
      }
      let written = 0;
      if (w.remaining >= CHECKSUM_RESP_SIZE) {
        w.writeU8(status);
        w.fill(3, 0);
        w.writeU32(result);
        written = w.bytesWritten;
      }
      vq.addUsed(chain.head, written);
      done++;
      this.served++;
      if (this.served % 64 === 0) this.host?.configChanged();
    }
    if (done > 0 && vq.flushUsed()) ctx.interrupt.signalQueue(queue);
  }

  save(): ChecksumState {
    return { served: this.served };
  }

  restore(state: ChecksumState): void {
    this.served = state.served >>> 0;
  }
}
