/**
 * What a NIC is plugged into. A station (a virtio-net device, a host endpoint) connects to a
 * `NetBackend` with the `FrameSink` where it takes frames, and gets back the sink where its own
 * frames go. Every backend (the in-process switch, a cable, UDP datagrams, a capture tap)
 * implements the same interface, so they combine freely.
 */
import { completeChecksum, NetError, type PartialChecksum } from "./frame.js";

/** Something that takes Ethernet frames (no virtio header, no FCS). */
export interface FrameSink {
  /**
   * True when `deliver` takes frames whose checksum is still partial (`csum` not null);
   * otherwise the sender completes the checksum before delivering.
   */
  readonly acceptsPartialChecksum: boolean;
  /**
   * Takes one frame. The bytes are lent for the duration of the call: copy them to keep them,
   * never write to them. Returns false when the frame was dropped.
   */
  deliver(frame: Uint8Array, csum: PartialChecksum | null): boolean;
}

/** A network attachment point. */
export interface NetBackend {
  /**
   * Plugs a station in: frames from the network go to `rx`. Returns the sink for the
   * station's own frames. One station per backend at a time.
   */
  connect(rx: FrameSink): FrameSink;
  /** Unplugs the station: frames to it are dropped from now on. */
  disconnect(): void;
}

/**
 * Delivers a frame to `sink`, completing a partial checksum first (into a copy) when the sink
 * wants whole frames. A partial checksum that does not fit the frame drops it.
 */
export function deliverTo(sink: FrameSink, frame: Uint8Array, csum: PartialChecksum | null): boolean {
  if (csum === null || sink.acceptsPartialChecksum) return sink.deliver(frame, csum);
  const copy = frame.slice();
  try {
    completeChecksum(copy, csum);
  } catch (e) {
    if (e instanceof NetError) return false;
    throw e;
  }
  return sink.deliver(copy, null);
}

/** A sink that drops everything (what an unplugged end delivers to). */
export const DROP_SINK: FrameSink = { acceptsPartialChecksum: true, deliver: () => false };

/**
 * A cable: two ends, each a `NetBackend`; what the station on one end sends arrives at the
 * station on the other.
 */
export function createCable(): [NetBackend, NetBackend] {
  const rx: [FrameSink, FrameSink] = [DROP_SINK, DROP_SINK];
  const end = (me: 0 | 1): NetBackend => {
    const other = (1 - me) as 0 | 1;
    const tx: FrameSink = {
      get acceptsPartialChecksum() {
        return rx[other].acceptsPartialChecksum;
      },
      deliver: (frame, csum) => deliverTo(rx[other], frame, csum),
    };
    return {
      connect(sink) {
        rx[me] = sink;
        return tx;
      },
      disconnect() {
        rx[me] = DROP_SINK;
      },
    };
  };
  return [end(0), end(1)];
}

/**
 * Joins two backends as if a cable ran between their stations' sockets: what arrives from `a`
 * is sent into `b` and the other way round (a switch port to a UDP link, for instance).
 * Returns a function that undoes it.
 */
export function bridge(a: NetBackend, b: NetBackend): () => void {
  let toA: FrameSink = DROP_SINK;
  let toB: FrameSink = DROP_SINK;
  toA = a.connect({
    get acceptsPartialChecksum() {
      return toB.acceptsPartialChecksum;
    },
    deliver: (f, c) => deliverTo(toB, f, c),
  });
  toB = b.connect({
    get acceptsPartialChecksum() {
      return toA.acceptsPartialChecksum;
    },
    deliver: (f, c) => deliverTo(toA, f, c),
  });
  return () => {
    a.disconnect();
    b.disconnect();
  };
}
