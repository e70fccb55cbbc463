/**
 * A network link across threads: a `NetBackend` over a `MessagePort`. Each end of a
 * `MessageChannel` becomes a backend; what the station on one end sends arrives at the station
 * on the other, with its partial checksum (if any) carried along and completed only where the
 * receiving station wants whole frames. Frames cross as transferred ArrayBuffers: the one copy
 * made is the sender's (the frame it is lent lives in guest memory or a switch's buffer).
 */
import type { MessagePort } from "node:worker_threads";
import { ConfigError } from "../../../common/errors.js";
import { DROP_SINK, deliverTo, type FrameSink, type NetBackend } from "../../../devices/net/backend.js";
import type { PartialChecksum } from "../../../devices/net/frame.js";

/** One frame on the wire between threads. `start`/`offset` are -1 when the checksum is whole. */
interface FrameMessage {
  frame: Uint8Array;
  start: number;
  offset: number;
}

/** Counters of one end of a port link. */
export interface PortLinkCounters {
  /** Frames posted to the other thread. */
  sent: number;
  /** Frames taken from the other thread and delivered to the station. */
  received: number;
  /** Frames from the other thread the station dropped (or that arrived while unplugged). */
  dropped: number;
  /** Messages that were not frames (ignored). */
  malformed: number;
}

export interface PortBackend extends NetBackend {
  readonly counters: PortLinkCounters;
  /** Closes the port: nothing more is sent or received. */
  close(): void;
}

function isFrameMessage(m: unknown): m is FrameMessage {
  if (typeof m !== "object" || m === null) return false;
  const f = m as Partial<FrameMessage>;
  return f.frame instanceof Uint8Array && typeof f.start === "number" && typeof f.offset === "number";
}

/**
 * Turns one end of a MessageChannel into a NetBackend. The port does not keep the thread's event
 * loop alive (it is unref'd while connected too: the machine using it does that).
 */
export function portBackend(port: MessagePort): PortBackend {
  let rx: FrameSink = DROP_SINK;
  let closed = false;
  const counters: PortLinkCounters = { sent: 0, received: 0, dropped: 0, malformed: 0 };
  const onMessage = (m: unknown): void => {
    if (!isFrameMessage(m)) {
      counters.malformed++;
      return;
    }
    const csum: PartialChecksum | null = m.start < 0 ? null : { start: m.start, offset: m.offset };
    if (deliverTo(rx, m.frame, csum)) counters.received++;
    else counters.dropped++;
  };
  port.on("message", onMessage);
  port.unref();
  const tx: FrameSink = {
    // The receiving end completes the checksum if its station wants whole frames.
    acceptsPartialChecksum: true,
    deliver: (frame, csum) => {
      if (closed) return false;
      const copy = frame.slice();
      const msg: FrameMessage = {
        frame: copy,
        start: csum === null ? -1 : csum.start,
        offset: csum === null ? -1 : csum.offset,
      };
      port.postMessage(msg, [copy.buffer]);
      counters.sent++;
      return true;
    },
  };
  let connected = false;
  return {
    counters,
    connect(sink) {
      if (closed) throw new ConfigError("port link: connect after close");
      if (connected) throw new ConfigError("port link: a station is already connected to this end");
      connected = true;
      rx = sink;
      return tx;
    },
    disconnect() {
      connected = false;
      rx = DROP_SINK;
    },
    close() {
      if (closed) return;
      closed = true;
      connected = false;
      rx = DROP_SINK;
      port.off("message", onMessage);
      port.close();
    },
  };
}
