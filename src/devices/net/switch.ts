/**
 * An in-process Ethernet switch: any number of ports, each a `NetBackend` a NIC (of this
 * machine or of another one in the same process), a host endpoint, a UDP link or a capture tap
 * plugs into. It learns source MAC addresses as a learning bridge does: a frame to a known
 * unicast address goes out of that one port, anything else is flooded to every other port.
 */
import { DROP_SINK, deliverTo, type FrameSink, type NetBackend } from "./backend.js";
import { ETH_HLEN } from "./constants.js";
import { isMulticast, macKey, type PartialChecksum } from "./frame.js";

export interface NetSwitchOptions {
  /** Most MAC addresses remembered (default 4096); past it the oldest entry is forgotten. */
  maxMacEntries?: number;
}

/** Counters of a switch, as a plain object. */
export interface NetSwitchCounters {
  /** Frames taken in from stations. */
  frames: number;
  /** Frames sent to one learned port. */
  forwarded: number;
  /** Frames flooded to every other port. */
  flooded: number;
  /** Frames shorter than an Ethernet header (dropped). */
  runts: number;
  /** Frames dropped because forwarding nested too deep (a loop of bridged switches). */
  loops: number;
  /** Frames whose destination port was the source port (dropped, as a bridge does). */
  filtered: number;
}

const MAX_DEPTH = 8;

interface Port {
  index: number;
  name: string;
  rx: FrameSink;
  connected: boolean;
}

export class NetSwitch {
  private readonly ports: Port[] = [];
  private readonly macs = new Map<number, Port>();
  private readonly maxMacs: number;
  private depth = 0;
  readonly counters: NetSwitchCounters = {
    frames: 0,
    forwarded: 0,
    flooded: 0,
    runts: 0,
    loops: 0,
    filtered: 0,
  };

  constructor(options: NetSwitchOptions = {}) {
    this.maxMacs = options.maxMacEntries ?? 4096;
  }

  /** A new port. Plug a station in with `connect`. */
  port(name?: string): NetBackend {
    const p: Port = {
      index: this.ports.length,
      name: name ?? `port${this.ports.length}`,
      rx: DROP_SINK,
      connected: false,
    };
    this.ports.push(p);
    const tx: FrameSink = {
      // The switch completes a checksum for each port that wants whole frames.
      acceptsPartialChecksum: true,
      deliver: (frame, csum) => this.input(p, frame, csum),
    };
    return {
      connect: (rx) => {
        p.rx = rx;
        p.connected = true;
        return tx;
      },
      disconnect: () => {
        p.rx = DROP_SINK;
        p.connected = false;
        for (const [k, v] of this.macs) if (v === p) this.macs.delete(k);
      },
    };
  }

  /** Which port name a MAC address was learned on (for diagnostics). */
  lookup(mac: Uint8Array): string | undefined {
    return this.macs.get(macKey(mac, 0))?.name;
  }

  /** Number of learned addresses. */
  get learned(): number {
    return this.macs.size;
  }

  private input(from: Port, frame: Uint8Array, csum: PartialChecksum | null): boolean {
    this.counters.frames++;
    if (frame.length < ETH_HLEN) {
      this.counters.runts++;
      return false;
    }
    if (this.depth >= MAX_DEPTH) {
      this.counters.loops++;
      return false;
    }
    if (!isMulticast(frame, 6)) {
      const src = macKey(frame, 6);
      const known = this.macs.get(src);
      if (known !== from) {
        if (known !== undefined) this.macs.delete(src);
        else if (this.macs.size >= this.maxMacs) {
          const oldest = this.macs.keys().next();
          if (!oldest.done) this.macs.delete(oldest.value);
        }
        this.macs.set(src, from);
      }
    }
    this.depth++;
    try {
      if (!isMulticast(frame, 0)) {
        const to = this.macs.get(macKey(frame, 0));
        if (to !== undefined) {
          if (to === from) {
            this.counters.filtered++;
            return false;
          }
          this.counters.forwarded++;
          return deliverTo(to.rx, frame, csum);
        }
      }
      this.counters.flooded++;
      let any = false;
      for (const p of this.ports) {
        if (p === from || !p.connected) continue;
        if (deliverTo(p.rx, frame, csum)) any = true;
      }
      return any;
    } finally {
      this.depth--;
    }
  }
}
