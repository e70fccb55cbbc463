/**
 * A host endpoint: TypeScript code on the network as a station. It sends frames with `send`
 * and gets every frame the network delivers to it, with checksums complete, through
 * `onFrame` or, without a listener, from a bounded inbox read with `next()`.
 */
import { DROP_SINK, type FrameSink, type NetBackend } from "./backend.js";
import { ETH_HLEN } from "./constants.js";
import { NetError } from "./frame.js";

export interface HostEndpointOptions {
  /** Called with each frame (a copy the listener may keep). */
  onFrame?: (frame: Uint8Array) => void;
  /** Frames kept for `next()` when no listener is set (default 256); past it frames are dropped. */
  inboxSize?: number;
}

export class HostEndpoint {
  private tx: FrameSink = DROP_SINK;
  private backend: NetBackend | null = null;
  private readonly inbox: Uint8Array[] = [];
  private readonly waiters: ((f: Uint8Array) => void)[] = [];
  private readonly inboxSize: number;
  onFrame: ((frame: Uint8Array) => void) | undefined;
  /** Frames received / sent / dropped because the inbox was full. */
  received = 0;
  sent = 0;
  dropped = 0;

  constructor(options: HostEndpointOptions = {}) {
    this.onFrame = options.onFrame;
    this.inboxSize = options.inboxSize ?? 256;
  }

  /** Plugs into a backend (a switch port, a cable end...). */
  connect(backend: NetBackend): this {
    this.disconnect();
    this.backend = backend;
    this.tx = backend.connect({
      acceptsPartialChecksum: false,
      deliver: (frame) => this.take(frame),
    });
    return this;
  }

  disconnect(): void {
    this.backend?.disconnect();
    this.backend = null;
    this.tx = DROP_SINK;
  }

  /** Sends one Ethernet frame (14 bytes of header at least). Returns whether a station took it. */
  send(frame: Uint8Array): boolean {
    if (frame.length < ETH_HLEN)
      throw new NetError("RUNT_FRAME", `a frame needs at least 14 bytes, got ${frame.length}`);
    this.sent++;
    return this.tx.deliver(frame, null);
  }

  /** The next frame received (waits when the inbox is empty). */
  next(): Promise<Uint8Array> {
    const f = this.inbox.shift();
    if (f) return Promise.resolve(f);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Frames waiting in the inbox (taken out). */
  drain(): Uint8Array[] {
    return this.inbox.splice(0);
  }

  private take(frame: Uint8Array): boolean {
    const copy = frame.slice();
    this.received++;
    if (this.onFrame) {
      this.onFrame(copy);
      return true;
    }
    const w = this.waiters.shift();
    if (w) {
      w(copy);
      return true;
    }
    if (this.inbox.length >= this.inboxSize) {
      this.dropped++;
      return false;
    }
    this.inbox.push(copy);
    return true;
  }
}
