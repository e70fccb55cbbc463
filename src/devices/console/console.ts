import { ConfigError, VirtkitError } from "../../common/errors.js";
import type { U64 } from "../../common/u64.js";
import { u64FromBits, u64TestBit } from "../../common/u64.js";
import type { VirtQueue } from "../../virtqueue/queue.js";
import { type DeviceContext, type VirtioDevice, type VirtioDeviceHost, VirtioDeviceId } from "../device.js";
import type { ConsolePortHost } from "./backend.js";
import {
  CONSOLE_CONFIG_SIZE,
  CONSOLE_CONTROL_RX,
  CONSOLE_CONTROL_SIZE,
  CONSOLE_CONTROL_TX,
  ConsoleConfig,
  consolePortOfQueue,
  consoleRxQueue,
  consoleTxQueue,
  VIRTIO_CONSOLE_CONSOLE_PORT,
  VIRTIO_CONSOLE_DEVICE_ADD,
  VIRTIO_CONSOLE_DEVICE_READY,
  VIRTIO_CONSOLE_DEVICE_REMOVE,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_PORT_NAME,
  VIRTIO_CONSOLE_PORT_OPEN,
  VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_RESIZE,
} from "./constants.js";
import { ConsolePort, type ConsolePortSpec, type ConsolePortState } from "./port.js";

/** A guest error on a console queue (a readable buffer in a receiveq, a short control message). */
export class ConsoleError extends VirtkitError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

export interface VirtioConsoleOptions {
  /** Port 0 first (the console). More than one port, or a named port, offers MULTIPORT. */
  ports: ConsolePortSpec[];
  /** max_nr_ports (default: the number of ports given; room for hot-plugged ports above that). */
  maxPorts?: number;
  /** Offer VIRTIO_CONSOLE_F_MULTIPORT even with one unnamed port (default: only when needed). */
  multiport?: boolean;
  /** Queue size (default 256). */
  queueSize?: number;
  /**
   * The field order of the VIRTIO_CONSOLE_RESIZE payload. The spec (5.3.6.2) says
   * `struct virtio_console_resize { le16 cols; le16 rows; }` ("cols-rows", the default), but
   * Linux's driver long declared it as `{ rows; cols; }` and read it that way until a later fix
   * swapped it to the spec's order; pick "rows-cols" for a guest kernel that still reads rows
   * first. The config space fields (cols at 0, rows at 2) are the same everywhere.
   */
  resizeOrder?: "cols-rows" | "rows-cols";
  /** Undelivered host input per port before its backend is paused (default 64 KiB). */
  inputLimit?: number;
  /** Input kept past the bound from a backend that ignores pause (default 16 × inputLimit). */
  inputHardLimit?: number;
  /** Where the device reports dropped input and bad control messages (default: console.warn). */
  log?: (message: string) => void;
}

export interface VirtioConsoleState {
  deviceReady: boolean;
  ports: ConsolePortState[];
  control: number[][];
}

const CONFIG_HAS_SIZE = 1 << VIRTIO_CONSOLE_F_SIZE;

/**
 * virtio-console (section 5.3): port 0 as the console, and with VIRTIO_CONSOLE_F_MULTIPORT
 * the control queues and more (named, hot-pluggable) ports. Host input waits in a bounded
 * per-port buffer until the guest posts receive buffers; a port whose buffer is past its
 * bound pauses its backend. With multiport, input for a port is held until the guest opened
 * it (Linux drops data that arrives on a port no process has open).
 */
export class VirtioConsole implements VirtioDevice<VirtioConsoleState> {
  readonly deviceId = VirtioDeviceId.CONSOLE;
  readonly name = "console";
  readonly features: U64;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = CONSOLE_CONFIG_SIZE;
  readonly maxPorts: number;
  /** Ports by id (null: free id). */
  readonly ports: (ConsolePort | null)[];
  /** Control messages the driver sent that the device ignored (bad id or event). */
  badControlMessages = 0;
  /** Bytes written through emerg_wr. */
  emergencyBytes = 0;
  private readonly offersMultiport: boolean;
  private readonly resizeOrder: "cols-rows" | "rows-cols";
  private readonly inputLimit: number;
  private readonly inputHardLimit: number;
  private readonly log: (message: string) => void;
  private ctx: DeviceContext | null = null;
  private host: VirtioDeviceHost | null = null;
  private multiport = false;
  private deviceReady = false;
  private readonly control: Uint8Array[] = [];
  private droppedLogged = false;

  constructor(options: VirtioConsoleOptions) {
    const specs = options.ports;
    if (specs.length === 0) throw new ConfigError("virtio-console needs at least port 0");
    const maxPorts = options.maxPorts ?? specs.length;
    if (!Number.isInteger(maxPorts) || maxPorts < specs.length || maxPorts > 511) {
      throw new ConfigError(`virtio-console maxPorts must be ${specs.length}..511, got ${maxPorts}`);
    }
    for (const s of specs) {
      if (s.name !== undefined && new TextEncoder().encode(s.name).length > 255) {
        throw new ConfigError(`virtio-console port name ${JSON.stringify(s.name)} is longer than 255 bytes`);
      }
    }
    this.maxPorts = maxPorts;
    this.offersMultiport =
      options.multiport === true || maxPorts > 1 || specs.some((s) => s.name !== undefined);
    this.resizeOrder = options.resizeOrder ?? "cols-rows";
    this.inputLimit = options.inputLimit ?? 65536;
    this.inputHardLimit = options.inputHardLimit ?? 16 * this.inputLimit;
    if (!(this.inputLimit > 0 && this.inputHardLimit >= this.inputLimit)) {
      throw new ConfigError("virtio-console inputLimit must be positive and at most inputHardLimit");
    }
    this.log = options.log ?? ((m) => console.warn(m));
    const size = options.queueSize ?? 256;
    this.queueMaxSizes = new Array<number>(this.offersMultiport ? 2 * (maxPorts + 1) : 2).fill(size);
    const bits = [VIRTIO_CONSOLE_F_EMERG_WRITE];
    if (this.offersMultiport) bits.push(VIRTIO_CONSOLE_F_MULTIPORT);
    const p0 = specs[0]!;
    if ((p0.cols ?? 0) > 0 || (p0.rows ?? 0) > 0) bits.push(VIRTIO_CONSOLE_F_SIZE);
    this.features = u64FromBits(...bits);
    this.ports = new Array<ConsolePort | null>(maxPorts).fill(null);
    specs.forEach((s, i) => {
      this.createPort(i, s);
    });
  }

  private createPort(id: number, spec: ConsolePortSpec): ConsolePort {
    const port = new ConsolePort(id, spec, this.inputLimit, this.inputHardLimit);
    this.ports[id] = port;
    const host: ConsolePortHost = {
      input: (data) => this.hostInput(port, data),
      setHostOpen: (open) => this.hostOpen(port, open),
      resize: (cols, rows) => this.resize(port, cols, rows),
      outputDrained: () => {
        port.txBlocked = false;
        this.guarded(() => this.drainTx(port));
      },
    };
    spec.backend.connect(host);
    return port;
  }

  // ---- host side -------------------------------------------------------------------------

  /** Hot-plugs a port at the lowest free id (MULTIPORT); returns the id. */
  addPort(spec: ConsolePortSpec): number {
    if (!this.offersMultiport)
      throw new ConfigError("virtio-console: ports can be added only with multiport");
    const id = this.ports.indexOf(null);
    if (id < 0) throw new ConfigError(`virtio-console: all ${this.maxPorts} ports are in use`);
    if (spec.name !== undefined && new TextEncoder().encode(spec.name).length > 255) {
      throw new ConfigError(`virtio-console port name ${JSON.stringify(spec.name)} is longer than 255 bytes`);
    }
    const port = this.createPort(id, spec);
    if (this.multiport && this.deviceReady) {
      port.added = true;
      this.sendControl(id, VIRTIO_CONSOLE_DEVICE_ADD, 0);
      this.guarded(() => this.pumpControl());
    }
    return id;
  }

  /** Hot-unplugs a port (VIRTIO_CONSOLE_DEVICE_REMOVE); undelivered input is discarded and returned. */
  removePort(id: number): Uint8Array {
    const port = this.ports[id];
    if (!port) throw new ConfigError(`virtio-console: no port ${id}`);
    if (id === 0) throw new ConfigError("virtio-console: port 0 cannot be removed");
    const left = port.pendingBytes();
    this.ports[id] = null;
    if (port.added && this.multiport) {
      this.sendControl(id, VIRTIO_CONSOLE_DEVICE_REMOVE, 0);
      this.guarded(() => this.pumpControl());
    }
    return left;
  }

  private hostInput(port: ConsolePort, data: Uint8Array): boolean {
    if (this.ports[port.id] !== port) return false;
    const dropped = port.push(data);
    if (dropped > 0 && !this.droppedLogged) {
      this.droppedLogged = true;
      this.log(
        `virtio-console port ${port.id}: backend kept sending while paused; ${dropped} bytes dropped past the ${port.hardLimit}-byte hard limit`,
      );
    }
    this.guarded(() => this.pumpInput(port));
    if (!port.paused && port.buffered > port.limit) {
      port.paused = true;
      port.backend.pause();
    }
    return !port.paused;
  }

  private hostOpen(port: ConsolePort, open: boolean): void {
    if (this.ports[port.id] !== port || port.hostOpen === open) return;
    port.hostOpen = open;
    if (this.multiport && port.ready) {
      this.sendControl(port.id, VIRTIO_CONSOLE_PORT_OPEN, open ? 1 : 0);
      this.guarded(() => this.pumpControl());
    }
  }

  private resize(port: ConsolePort, cols: number, rows: number): void {
    port.cols = cols & 0xffff;
    port.rows = rows & 0xffff;
    if (port.id === 0) this.host?.configChanged();
    if (this.multiport && port.ready && port.isConsole) {
      this.sendResize(port);
      this.guarded(() => this.pumpControl());
    }
  }

  private sendResize(port: ConsolePort): void {
    const extra = new Uint8Array(4);
    const v = new DataView(extra.buffer);
    const [a, b] = this.resizeOrder === "cols-rows" ? [port.cols, port.rows] : [port.rows, port.cols];
    v.setUint16(0, a, true);
    v.setUint16(2, b, true);
    this.sendControl(port.id, VIRTIO_CONSOLE_RESIZE, 0, extra);
  }

  // ---- config ----------------------------------------------------------------------------

  attach(host: VirtioDeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    const p0 = this.ports[0];
    const b = new Uint8Array(CONSOLE_CONFIG_SIZE);
    const v = new DataView(b.buffer);
    if (this.features.lo & CONFIG_HAS_SIZE && p0) {
      v.setUint16(ConsoleConfig.cols, p0.cols, true);
      v.setUint16(ConsoleConfig.rows, p0.rows, true);
    }
    v.setUint32(ConsoleConfig.max_nr_ports, this.offersMultiport ? this.maxPorts : 1, true);
    if (offset < 0 || offset + size > CONSOLE_CONFIG_SIZE) return 0;
    return size === 1
      ? v.getUint8(offset)
      : size === 2
        ? v.getUint16(offset, true)
        : v.getUint32(offset, true);
  }

  writeConfig(offset: number, _size: 1 | 2 | 4, value: number): void {
    // 5.3.5.1: "The device MUST allow a write to emerg_wr, even on an unconfigured device."
    if (offset === ConsoleConfig.emerg_wr) {
      this.emergencyBytes++;
      this.ports[0]?.backend.write(new Uint8Array([value & 0xff]));
    }
  }

  // ---- lifecycle -------------------------------------------------------------------------

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.multiport = u64TestBit(ctx.features, VIRTIO_CONSOLE_F_MULTIPORT);
    this.deviceReady = false;
    const p0 = this.ports[0];
    if (!this.multiport && p0) {
      p0.guestOpen = true;
      p0.ready = true;
    }
  }

  reset(): void {
    this.ctx = null;
    this.multiport = false;
    this.deviceReady = false;
    this.control.length = 0;
    for (const p of this.ports) {
      if (!p) continue;
      if (p.guestOpen) p.backend.guestOpen?.(false);
      p.guestOpen = false;
      p.ready = false;
      p.added = false;
      p.txBlocked = false;
    }
  }

  /** Runs `fn`; a guest error found outside a notify goes to the transport (DEVICE_NEEDS_RESET). */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof VirtkitError && this.ctx) this.ctx.fail(e);
      else throw e;
    }
  }

  onQueueNotify(queue: number): void {
    if (!this.ctx) return;
    if (queue === CONSOLE_CONTROL_RX || queue === CONSOLE_CONTROL_TX) {
      if (!this.multiport) return;
      if (queue === CONSOLE_CONTROL_TX) this.handleControlTx();
      this.pumpControl();
      return;
    }
    const id = consolePortOfQueue(queue);
    const port = this.ports[id];
    if (!port) return;
    if (queue === consoleRxQueue(id)) this.pumpInput(port);
    else this.drainTx(port);
  }

  private queue(index: number): VirtQueue | null {
    return this.ctx?.queues[index] ?? null;
  }

  private signal(index: number, vq: VirtQueue): void {
    if (vq.flushUsed()) this.ctx!.interrupt.signalQueue(index);
  }

  // ---- data ------------------------------------------------------------------------------

  private deliverable(port: ConsolePort): boolean {
    return this.multiport ? port.ready && port.guestOpen : port.id === 0;
  }

  /** Moves buffered host input into the port's receive buffers. */
  private pumpInput(port: ConsolePort): void {
    if (!this.ctx || port.buffered === 0 || !this.deliverable(port)) return;
    const qi = consoleRxQueue(port.id);
    const vq = this.queue(qi);
    if (!vq) return;
    let any = false;
    while (port.buffered > 0) {
      const chain = vq.pop();
      if (!chain) break;
      if (chain.readableLength > 0) {
        throw new ConsoleError(
          "CONSOLE_READABLE_IN_RECEIVEQ",
          `port ${port.id}: a device-readable buffer (head ${chain.head}) in the receiveq`,
        );
      }
      const n = port.deliver(chain.writer());
      vq.addUsed(chain.head, n);
      any = true;
    }
    if (any) this.signal(qi, vq);
    if (port.paused && port.buffered <= port.limit / 2) {
      port.paused = false;
      port.backend.resume();
    }
  }

  /** Hands the guest's output to the backend. */
  private drainTx(port: ConsolePort): void {
    const qi = consoleTxQueue(port.id);
    const vq = this.queue(qi);
    if (!vq) return;
    let any = false;
    while (!port.txBlocked) {
      const chain = vq.pop();
      if (!chain) break;
      if (chain.writableLength > 0) {
        throw new ConsoleError(
          "CONSOLE_WRITABLE_IN_TRANSMITQ",
          `port ${port.id}: a device-writable buffer (head ${chain.head}) in the transmitq`,
        );
      }
      const r = chain.reader();
      // Segment by segment, without a copy (the backend copies what it keeps).
      while (r.remaining > 0) {
        const seg = r.read(Math.min(r.remaining, segmentRemaining(chain, r.position)));
        if (port.backend.write(seg) === false) port.txBlocked = true;
      }
      vq.addUsed(chain.head, 0);
      any = true;
    }
    if (any) this.signal(qi, vq);
  }

  // ---- control ---------------------------------------------------------------------------

  private sendControl(id: number, event: number, value: number, extra?: Uint8Array): void {
    const msg = new Uint8Array(CONSOLE_CONTROL_SIZE + (extra?.length ?? 0));
    const v = new DataView(msg.buffer);
    v.setUint32(0, id, true);
    v.setUint16(4, event, true);
    v.setUint16(6, value, true);
    if (extra) msg.set(extra, CONSOLE_CONTROL_SIZE);
    this.control.push(msg);
  }

  /** Delivers queued control messages, one per control receive buffer. */
  private pumpControl(): void {
    const vq = this.queue(CONSOLE_CONTROL_RX);
    if (!vq || !this.multiport) return;
    let any = false;
    while (this.control.length > 0) {
      const chain = vq.pop();
      if (!chain) break;
      const msg = this.control[0]!;
      if (chain.readableLength > 0 || chain.writableLength < msg.length) {
        throw new ConsoleError(
          "CONSOLE_BAD_CONTROL_BUFFER",
          `control receive buffer (head ${chain.head}) has ${chain.writableLength} writable bytes for a ${msg.length}-byte message${chain.readableLength > 0 ? " and device-readable bytes" : ""}`,
        );
      }
      this.control.shift();
      chain.writer().write(msg);
      vq.addUsed(chain.head, msg.length);
      any = true;
    }
    if (any) this.signal(CONSOLE_CONTROL_RX, vq);
  }

  private handleControlTx(): void {
    const vq = this.queue(CONSOLE_CONTROL_TX);
    if (!vq) return;
    let any = false;
    for (let chain = vq.pop(); chain !== null; chain = vq.pop()) {
      if (chain.readableLength < CONSOLE_CONTROL_SIZE) {
        throw new ConsoleError(
          "CONSOLE_SHORT_CONTROL",
          `control message (head ${chain.head}) is ${chain.readableLength} bytes, shorter than 8`,
        );
      }
      const r = chain.reader();
      const id = r.readU32();
      const event = r.readU16();
      const value = r.readU16();
      vq.addUsed(chain.head, 0);
      any = true;
      this.controlEvent(id, event, value);
    }
    if (any) this.signal(CONSOLE_CONTROL_TX, vq);
  }

  private controlEvent(id: number, event: number, value: number): void {
    if (event === VIRTIO_CONSOLE_DEVICE_READY) {
      if (value !== 1) {
        this.log("virtio-console: the driver reported DEVICE_READY failure");
        return;
      }
      this.deviceReady = true;
      for (const p of this.ports) {
        if (p && !p.added) {
          p.added = true;
          this.sendControl(p.id, VIRTIO_CONSOLE_DEVICE_ADD, 0);
        }
      }
      return;
    }
    const port = id < this.ports.length ? this.ports[id] : null;
    if (!port) {
      this.badControlMessages++;
      return;
    }
    switch (event) {
      case VIRTIO_CONSOLE_PORT_READY:
        if (value !== 1) {
          this.log(`virtio-console: the driver failed to set up port ${id}`);
          return;
        }
        port.ready = true;
        if (port.isConsole) {
          this.sendControl(id, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
          if (port.cols > 0 || port.rows > 0) this.sendResize(port);
        }
        if (port.nameBytes) this.sendControl(id, VIRTIO_CONSOLE_PORT_NAME, 1, port.nameBytes);
        if (port.hostOpen) this.sendControl(id, VIRTIO_CONSOLE_PORT_OPEN, 1);
        return;
      case VIRTIO_CONSOLE_PORT_OPEN: {
        const open = value === 1;
        if (port.guestOpen !== open) {
          port.guestOpen = open;
          port.backend.guestOpen?.(open);
        }
        if (open) this.pumpInput(port);
        return;
      }
      default:
        this.badControlMessages++;
    }
  }

  // ---- state -----------------------------------------------------------------------------

  save(): VirtioConsoleState {
    return {
      deviceReady: this.deviceReady,
      ports: this.ports.filter((p): p is ConsolePort => p !== null).map((p) => p.save()),
      control: this.control.map((m) => [...m]),
    };
  }

  restore(state: VirtioConsoleState): void {
    this.deviceReady = state.deviceReady === true;
    this.control.length = 0;
    for (const m of state.control) this.control.push(Uint8Array.from(m));
    for (const s of state.ports) {
      const p = this.ports[s.id];
      if (!p) throw new ConfigError(`saved virtio-console port ${s.id} does not exist on this device`);
      p.guestOpen = s.guestOpen === true;
      p.hostOpen = s.hostOpen !== false;
      p.ready = s.ready === true;
      p.added = s.added === true;
      p.cols = s.cols & 0xffff;
      p.rows = s.rows & 0xffff;
      p.setPending(Uint8Array.from(s.pending));
    }
  }
}

/** Bytes left in the readable segment that holds byte `pos` of the readable part. */
function segmentRemaining(chain: { lens: number[]; readableCount: number }, pos: number): number {
  let at = 0;
  for (let i = 0; i < chain.readableCount; i++) {
    const len = chain.lens[i]!;
    if (pos < at + len) return at + len - pos;
    at += len;
  }
  return 1;
}
