/**
 * A network backend over UDP datagrams, one Ethernet frame per datagram with nothing around
 * it: the framing of QEMU's `-netdev dgram` and `-netdev socket,udp=...,localaddr=...`, so a
 * virtkit NIC and a QEMU guest can share a network. Frames arrive from any sender (as in
 * QEMU) and go to the configured remote address.
 */
import dgram from "node:dgram";
import type { FrameSink, NetBackend } from "../../../devices/net/backend.js";
import { ETH_HLEN } from "../../../devices/net/constants.js";
import { NetError } from "../../../devices/net/frame.js";

export interface UdpEndpoint {
  address: string;
  port: number;
}

export interface UdpBackendOptions {
  /** Where to bind (port 0: an ephemeral port, see `localPort`). */
  local: UdpEndpoint;
  /** Where frames go (can be set later with `setRemote`). */
  remote?: UdpEndpoint;
}

export interface UdpCounters {
  sent: number;
  received: number;
  /** Datagrams shorter than an Ethernet header (dropped). */
  runts: number;
  /** Frames dropped because no remote is set, or the send failed. */
  sendErrors: number;
  /** Frames received while no station was connected, or that the station dropped. */
  dropped: number;
}

export class UdpBackend implements NetBackend {
  private readonly socket: dgram.Socket;
  private remote: UdpEndpoint | null;
  private rx: FrameSink | null = null;
  readonly counters: UdpCounters = { sent: 0, received: 0, runts: 0, sendErrors: 0, dropped: 0 };

  private constructor(socket: dgram.Socket, remote: UdpEndpoint | null) {
    this.socket = socket;
    this.remote = remote;
    socket.on("message", (msg) => this.onMessage(msg));
    socket.on("error", () => {
      this.counters.sendErrors++;
    });
  }

  /** Binds the socket. IPv6 when the local address contains ':'. */
  static open(options: UdpBackendOptions): Promise<UdpBackend> {
    const type = options.local.address.includes(":") ? "udp6" : "udp4";
    const socket = dgram.createSocket({ type });
    return new Promise((resolve, reject) => {
      const fail = (e: Error) =>
        reject(
          new NetError(
            "UDP_BIND",
            `cannot bind UDP ${options.local.address}:${options.local.port}: ${e.message}`,
          ),
        );
      socket.once("error", fail);
      socket.bind(options.local.port, options.local.address, () => {
        socket.off("error", fail);
        resolve(new UdpBackend(socket, options.remote ?? null));
      });
    });
  }

  /** The bound port. */
  get localPort(): number {
    return this.socket.address().port;
  }

  setRemote(remote: UdpEndpoint): void {
    this.remote = { ...remote };
  }

  connect(rx: FrameSink): FrameSink {
    this.rx = rx;
    return {
      acceptsPartialChecksum: false,
      deliver: (frame) => this.send(frame),
    };
  }

  disconnect(): void {
    this.rx = null;
  }

  private send(frame: Uint8Array): boolean {
    const r = this.remote;
    if (!r) {
      this.counters.sendErrors++;
      return false;
    }
    // The frame is lent: copy it, the send completes later.
    this.socket.send(Buffer.from(frame), r.port, r.address, (err) => {
      if (err) this.counters.sendErrors++;
    });
    this.counters.sent++;
    return true;
  }

  private onMessage(msg: Buffer): void {
    if (msg.length < ETH_HLEN) {
      this.counters.runts++;
      return;
    }
    this.counters.received++;
    const rx = this.rx;
    if (!rx?.deliver(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), null)) this.counters.dropped++;
  }

  close(): Promise<void> {
    this.rx = null;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
