import type { ChainWriter } from "../../virtqueue/cursor.js";
import type { ConsoleBackend } from "./backend.js";

/** What a port is, as given to the device. */
export interface ConsolePortSpec {
  backend: ConsoleBackend;
  /** The name sent with VIRTIO_CONSOLE_PORT_NAME (UTF-8, at most 255 bytes): /dev/virtio-ports/NAME. */
  name?: string;
  /** A console port (hvc): VIRTIO_CONSOLE_CONSOLE_PORT is sent for it. Port 0 defaults to true. */
  console?: boolean;
  /** Initial terminal size (a console port; port 0's goes in the config space). */
  cols?: number;
  rows?: number;
  /** The host end is connected from the start (default true). */
  hostOpen?: boolean;
}

/** A port's persistent state. */
export interface ConsolePortState {
  id: number;
  guestOpen: boolean;
  hostOpen: boolean;
  ready: boolean;
  added: boolean;
  cols: number;
  rows: number;
  /** Undelivered host input (bytes as numbers). */
  pending: number[];
}

/**
 * One port: its backend, its flags from the control protocol and the host input waiting for
 * receive buffers. The buffer is bounded: past `limit` bytes the backend is paused, and it
 * is resumed once the guest has taken the buffer down to half the bound. A backend that keeps
 * sending while paused is still buffered up to `hardLimit`; beyond that bytes are dropped,
 * counted in `droppedBytes` and reported through the device's log.
 */
export class ConsolePort {
  readonly id: number;
  readonly backend: ConsoleBackend;
  readonly name: string | null;
  readonly nameBytes: Uint8Array | null;
  readonly isConsole: boolean;
  cols: number;
  rows: number;
  hostOpen: boolean;
  /** The driver sent PORT_OPEN 1 (always true for port 0 without multiport). */
  guestOpen = false;
  /** The driver answered PORT_READY 1. */
  ready = false;
  /** DEVICE_ADD was sent. */
  added = false;
  /** The backend returned false from write: transmit buffers wait. */
  txBlocked = false;
  paused = false;
  droppedBytes = 0;
  private readonly chunks: Uint8Array[] = [];
  /** Offset into chunks[0] already delivered. */
  private headOffset = 0;
  private bufferedBytes = 0;

  constructor(
    id: number,
    spec: ConsolePortSpec,
    readonly limit: number,
    readonly hardLimit: number,
  ) {
    this.id = id;
    this.backend = spec.backend;
    this.name = spec.name ?? null;
    this.nameBytes = spec.name !== undefined ? new TextEncoder().encode(spec.name) : null;
    this.isConsole = spec.console ?? id === 0;
    this.cols = spec.cols ?? 0;
    this.rows = spec.rows ?? 0;
    this.hostOpen = spec.hostOpen ?? true;
  }

  /** Host input bytes not yet given to the guest. */
  get buffered(): number {
    return this.bufferedBytes;
  }

  /** Keeps a copy of `data`; returns the number of bytes dropped (past the hard limit). */
  push(data: Uint8Array): number {
    const room = Math.max(0, this.hardLimit - this.bufferedBytes);
    const take = Math.min(room, data.length);
    if (take > 0) {
      this.chunks.push(data.slice(0, take));
      this.bufferedBytes += take;
    }
    const dropped = data.length - take;
    this.droppedBytes += dropped;
    return dropped;
  }

  /** Moves up to `writer.remaining` buffered bytes into the writer; returns how many. */
  deliver(writer: ChainWriter): number {
    let n = 0;
    while (this.chunks.length > 0 && writer.remaining > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.headOffset, writer.remaining);
      writer.write(c.subarray(this.headOffset, this.headOffset + k));
      n += k;
      this.headOffset += k;
      if (this.headOffset === c.length) {
        this.chunks.shift();
        this.headOffset = 0;
      }
    }
    this.bufferedBytes -= n;
    return n;
  }

  /** The undelivered bytes, in order (for save). */
  pendingBytes(): Uint8Array {
    const out = new Uint8Array(this.bufferedBytes);
    let at = 0;
    this.chunks.forEach((c, i) => {
      const part = i === 0 ? c.subarray(this.headOffset) : c;
      out.set(part, at);
      at += part.length;
    });
    return out;
  }

  /** Replaces the buffer (restore). */
  setPending(bytes: Uint8Array): void {
    this.chunks.length = 0;
    this.headOffset = 0;
    this.bufferedBytes = 0;
    if (bytes.length > 0) {
      this.chunks.push(bytes.slice());
      this.bufferedBytes = bytes.length;
    }
  }

  save(): ConsolePortState {
    return {
      id: this.id,
      guestOpen: this.guestOpen,
      hostOpen: this.hostOpen,
      ready: this.ready,
      added: this.added,
      cols: this.cols,
      rows: this.rows,
      pending: [...this.pendingBytes()],
    };
  }
}

export type { ChainWriter };
