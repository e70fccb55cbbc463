/**
 * Frame capture in the classic pcap format (what tcpdump -w writes and tcpdump, tshark and
 * Wireshark read): a 24-byte global header (magic 0xa1b2c3d4 little-endian, version 2.4,
 * LINKTYPE_ETHERNET) and per frame a 16-byte record header (seconds, microseconds, captured
 * length, original length). `PcapWriter` hands bytes to a sink (a file in src/host/node/net,
 * or memory); `capture` wraps a backend so that every frame both ways is recorded.
 */
import { DROP_SINK, deliverTo, type FrameSink, type NetBackend } from "./backend.js";
import { completeChecksum, NetError, type PartialChecksum } from "./frame.js";

export const PCAP_MAGIC = 0xa1b2c3d4;
export const LINKTYPE_ETHERNET = 1;

export interface PcapWriterOptions {
  /** Most bytes kept per frame (default 65535). */
  snaplen?: number;
  /** Wall-clock time in microseconds since the epoch (default Date.now() * 1000). */
  nowMicros?: () => number;
}

export class PcapWriter {
  private readonly write: (chunk: Uint8Array) => void;
  readonly snaplen: number;
  private readonly now: () => number;
  /** Frames written. */
  frames = 0;

  constructor(write: (chunk: Uint8Array) => void, options: PcapWriterOptions = {}) {
    this.write = write;
    this.snaplen = options.snaplen ?? 65535;
    if (!(Number.isInteger(this.snaplen) && this.snaplen > 0 && this.snaplen <= 0x40000)) {
      throw new NetError("BAD_SNAPLEN", `pcap snaplen must be 1..262144, got ${options.snaplen}`);
    }
    this.now = options.nowMicros ?? (() => Date.now() * 1000);
    const h = new Uint8Array(24);
    const v = new DataView(h.buffer);
    v.setUint32(0, PCAP_MAGIC, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setInt32(8, 0, true); // thiszone
    v.setUint32(12, 0, true); // sigfigs
    v.setUint32(16, this.snaplen, true);
    v.setUint32(20, LINKTYPE_ETHERNET, true);
    this.write(h);
  }

  /** Records one frame (copied out before this returns). */
  record(frame: Uint8Array): void {
    const incl = Math.min(frame.length, this.snaplen);
    const rec = new Uint8Array(16 + incl);
    const v = new DataView(rec.buffer);
    const t = Math.max(0, Math.floor(this.now()));
    v.setUint32(0, Math.floor(t / 1e6) >>> 0, true);
    v.setUint32(4, t % 1e6, true);
    v.setUint32(8, incl, true);
    v.setUint32(12, frame.length, true);
    rec.set(frame.subarray(0, incl), 16);
    this.write(rec);
    this.frames++;
  }
}

/** One record read back from a pcap file. */
export interface PcapRecord {
  seconds: number;
  micros: number;
  /** The captured bytes (at most snaplen). */
  data: Uint8Array;
  /** The frame's length on the wire. */
  originalLength: number;
}

/** Parses a classic pcap file (either byte order, microsecond or nanosecond magic). */
export function parsePcap(bytes: Uint8Array): { linkType: number; snaplen: number; records: PcapRecord[] } {
  if (bytes.length < 24)
    throw new NetError("BAD_PCAP", `a pcap file needs a 24-byte header, got ${bytes.length} bytes`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const m = v.getUint32(0, true);
  let le: boolean;
  let nanos = false;
  if (m === PCAP_MAGIC || m === 0xa1b23c4d) {
    le = true;
    nanos = m === 0xa1b23c4d;
  } else if (v.getUint32(0, false) === PCAP_MAGIC || v.getUint32(0, false) === 0xa1b23c4d) {
    le = false;
    nanos = v.getUint32(0, false) === 0xa1b23c4d;
  } else {
    throw new NetError("BAD_PCAP", `not a pcap file (magic 0x${m.toString(16)})`);
  }
  const snaplen = v.getUint32(16, le);
  const linkType = v.getUint32(20, le);
  const records: PcapRecord[] = [];
  let at = 24;
  while (at < bytes.length) {
    if (at + 16 > bytes.length) throw new NetError("BAD_PCAP", `truncated record header at byte ${at}`);
    const incl = v.getUint32(at + 8, le);
    if (at + 16 + incl > bytes.length)
      throw new NetError("BAD_PCAP", `record at byte ${at} runs past the end`);
    const frac = v.getUint32(at + 4, le);
    records.push({
      seconds: v.getUint32(at, le),
      micros: nanos ? Math.floor(frac / 1000) : frac,
      data: bytes.slice(at + 16, at + 16 + incl),
      originalLength: v.getUint32(at + 12, le),
    });
    at += 16 + incl;
  }
  return { linkType, snaplen, records };
}

/**
 * Wraps a backend so that every frame a station sends into it and every frame it delivers to
 * the station is recorded, with partial checksums completed (as they would be on a wire).
 */
export function capture(inner: NetBackend, writer: PcapWriter): NetBackend {
  const rec = (frame: Uint8Array, csum: PartialChecksum | null) => {
    if (csum === null) {
      writer.record(frame);
      return;
    }
    const copy = frame.slice();
    try {
      completeChecksum(copy, csum);
    } catch (e) {
      if (!(e instanceof NetError)) throw e;
    }
    writer.record(copy);
  };
  return {
    connect(rx) {
      let tx: FrameSink = DROP_SINK;
      tx = inner.connect({
        get acceptsPartialChecksum() {
          return rx.acceptsPartialChecksum;
        },
        deliver: (frame, csum) => {
          rec(frame, csum);
          return rx.deliver(frame, csum);
        },
      });
      return {
        get acceptsPartialChecksum() {
          return tx.acceptsPartialChecksum;
        },
        deliver: (frame, csum) => {
          rec(frame, csum);
          return deliverTo(tx, frame, csum);
        },
      };
    },
    disconnect() {
      inner.disconnect();
    },
  };
}
