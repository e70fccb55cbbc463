import { VirtkitError } from "../../common/errors.js";
import { u64TestBit } from "../../common/u64.js";
import type { DriverSegment } from "../../virtqueue/driver.js";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../device.js";
import type { VirtioPciDriver } from "../transport/pci/driver.js";
import {
  CONSOLE_CONTROL_RX,
  CONSOLE_CONTROL_SIZE,
  CONSOLE_CONTROL_TX,
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

export class ConsoleDriverError extends VirtkitError {
  constructor(message: string) {
    super("CONSOLE_DRIVER", message);
  }
}

/** A control message as the driver received it. */
export interface ConsoleControlMessage {
  id: number;
  event: number;
  value: number;
  extra: Uint8Array;
}

/** What the driver knows about a port. */
export interface DriverPort {
  id: number;
  name: string | null;
  console: boolean;
  /** The host side is open (PORT_OPEN from the device). */
  hostOpen: boolean;
  /** The last RESIZE payload as two u16 in message order. */
  resize: [number, number] | null;
  removed: boolean;
  received: Uint8Array[];
}

const ALL_FEATURES = [
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
];

interface Pool {
  byHead: Map<number, { addr: number; size: number }>;
}

/**
 * The driver side of virtio-console for tests, after Linux's virtio_console: control
 * receive buffers and DEVICE_READY at start, PORT_READY for every DEVICE_ADD, PORT_OPEN 1 for
 * console ports, receive buffers posted on every port (and re-posted after use), output on the
 * transmitq. `poll()` processes everything the device published.
 */
export class ConsoleTestDriver {
  readonly driver: VirtioPciDriver;
  readonly ports = new Map<number, DriverPort>();
  readonly controlLog: ConsoleControlMessage[] = [];
  multiport = false;
  private readonly pools = new Map<number, Pool>();
  private readonly rxBufSizes: (port: number, i: number) => number;
  private readonly rxBufs: number;

  constructor(
    driver: VirtioPciDriver,
    options: {
      features?: readonly number[];
      /** Receive buffers per port (default 8). */
      rxBuffers?: number;
      /** Size of receive buffer i of a port (default 256 bytes). */
      rxBufferSize?: (port: number, i: number) => number;
      queueSize?: number;
    } = {},
  ) {
    this.driver = driver;
    this.rxBufs = options.rxBuffers ?? 8;
    this.rxBufSizes = options.rxBufferSize ?? (() => 256);
    driver.bringUp(options.features ?? ALL_FEATURES, options.queueSize);
    this.multiport = u64TestBit(driver.features, VIRTIO_CONSOLE_F_MULTIPORT);
    if (this.multiport) {
      for (let i = 0; i < 8; i++) this.postRx(CONSOLE_CONTROL_RX, 4096);
      this.driver.kick(CONSOLE_CONTROL_RX);
      this.sendControl(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    } else {
      this.addPort(0);
    }
    this.poll();
  }

  private pool(q: number): Pool {
    let p = this.pools.get(q);
    if (!p) {
      p = { byHead: new Map() };
      this.pools.set(q, p);
    }
    return p;
  }

  /** Posts a device-writable buffer of `size` bytes on queue `q` (no notify). */
  private postRx(q: number, size: number): void {
    if (!this.driver.queues[q]) throw new ConsoleDriverError(`queue ${q} is not set up`);
    this.postRxAt(q, this.driver.dma.alloc(size, 16), size);
  }

  /** Posts one more receive buffer of `size` bytes on port `id` and notifies the device. */
  postReceiveBuffer(id: number, size: number): void {
    this.postRx(consoleRxQueue(id), size);
    this.driver.kick(consoleRxQueue(id));
  }

  private repost(q: number, head: number): { addr: number; size: number } {
    const p = this.pool(q);
    const b = p.byHead.get(head);
    if (b === undefined) throw new ConsoleDriverError(`queue ${q}: used head ${head} was not posted`);
    p.byHead.delete(head);
    return b;
  }

  private addPort(id: number): void {
    this.ports.set(id, {
      id,
      name: null,
      console: false,
      hostOpen: false,
      resize: null,
      removed: false,
      received: [],
    });
    const q = consoleRxQueue(id);
    for (let i = 0; i < this.rxBufs; i++) this.postRx(q, this.rxBufSizes(id, i));
    this.driver.kick(q);
  }

  /** Sends a control message on the control transmitq. */
  sendControl(id: number, event: number, value: number): void {
    const addr = this.driver.dma.alloc(CONSOLE_CONTROL_SIZE, 8);
    const m = this.driver.memory;
    m.writeU32(addr, id);
    m.writeU16(addr + 4, event);
    m.writeU16(addr + 6, value);
    this.driver.queues[CONSOLE_CONTROL_TX]!.queue.add([{ addr, len: CONSOLE_CONTROL_SIZE, write: false }]);
    this.driver.kick(CONSOLE_CONTROL_TX);
  }

  /** Opens a generic port (a process opened /dev/vportNpM): PORT_OPEN 1. */
  open(id: number, open = true): void {
    this.sendControl(id, VIRTIO_CONSOLE_PORT_OPEN, open ? 1 : 0);
    this.poll();
  }

  /** Writes `data` to port `id`'s transmitq, split into segments of `cuts` lengths. */
  write(id: number, data: Uint8Array, cuts: readonly number[] = [], indirect = false): void {
    const segs: DriverSegment[] = [];
    let at = 0;
    for (const c of [...cuts, data.length]) {
      const n = Math.min(c, data.length - at);
      if (n <= 0) continue;
      const addr = this.driver.dma.alloc(n, 1);
      this.driver.memory.writeFrom(addr, data.subarray(at, at + n));
      segs.push({ addr, len: n, write: false });
      at += n;
      if (at >= data.length) break;
    }
    if (segs.length === 0) return;
    this.driver.queues[consoleTxQueue(id)]!.queue.add(segs, indirect ? { indirect: true } : {});
    this.driver.kick(consoleTxQueue(id));
  }

  /** Collects used buffers everywhere: control messages, input (re-posting buffers), transmitted output. */
  poll(): void {
    for (let round = 0; round < 100; round++) {
      let progress = false;
      if (this.multiport) {
        const ctl = this.driver.queues[CONSOLE_CONTROL_RX]!.queue;
        for (let u = ctl.getUsed(); u !== null; u = ctl.getUsed()) {
          progress = true;
          const { addr, size } = this.repost(CONSOLE_CONTROL_RX, u.id);
          const bytes = new Uint8Array(u.len);
          this.driver.memory.readInto(addr, bytes);
          this.postRxAt(CONSOLE_CONTROL_RX, addr, size);
          this.handleControl(bytes);
        }
        this.driver.kick(CONSOLE_CONTROL_RX);
        const ctx = this.driver.queues[CONSOLE_CONTROL_TX]!.queue;
        while (ctx.getUsed() !== null) progress = true;
      }
      for (const port of this.ports.values()) {
        if (port.removed) continue;
        const rxq = consoleRxQueue(port.id);
        const rx = this.driver.queues[rxq]!.queue;
        let reposted = false;
        for (let u = rx.getUsed(); u !== null; u = rx.getUsed()) {
          progress = true;
          const { addr, size } = this.repost(rxq, u.id);
          const bytes = new Uint8Array(u.len);
          this.driver.memory.readInto(addr, bytes);
          port.received.push(bytes);
          this.postRxAt(rxq, addr, size);
          reposted = true;
        }
        if (reposted) this.driver.kick(rxq);
        const tx = this.driver.queues[consoleTxQueue(port.id)]!.queue;
        while (tx.getUsed() !== null) progress = true;
      }
      if (!progress) return;
    }
  }

  private postRxAt(q: number, addr: number, size: number): void {
    const head = this.driver.queues[q]!.queue.add([{ addr, len: size, write: true }]);
    this.pool(q).byHead.set(head, { addr, size });
  }

  private handleControl(bytes: Uint8Array): void {
    if (bytes.length < CONSOLE_CONTROL_SIZE)
      throw new ConsoleDriverError(`control message of ${bytes.length} bytes`);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const msg = {
      id: v.getUint32(0, true),
      event: v.getUint16(4, true),
      value: v.getUint16(6, true),
      extra: bytes.slice(CONSOLE_CONTROL_SIZE),
    };
    this.controlLog.push(msg);
    const port = this.ports.get(msg.id);
    switch (msg.event) {
      case VIRTIO_CONSOLE_DEVICE_ADD:
        if (port && !port.removed) throw new ConsoleDriverError(`DEVICE_ADD for existing port ${msg.id}`);
        this.addPort(msg.id);
        this.sendControl(msg.id, VIRTIO_CONSOLE_PORT_READY, 1);
        return;
      case VIRTIO_CONSOLE_DEVICE_REMOVE:
        if (!port) throw new ConsoleDriverError(`DEVICE_REMOVE for unknown port ${msg.id}`);
        port.removed = true;
        return;
      case VIRTIO_CONSOLE_CONSOLE_PORT:
        if (!port) throw new ConsoleDriverError(`CONSOLE_PORT for unknown port ${msg.id}`);
        port.console = true;
        // "MUST respond with a VIRTIO_CONSOLE_PORT_OPEN message, which MUST have value set to 1."
        this.sendControl(msg.id, VIRTIO_CONSOLE_PORT_OPEN, 1);
        return;
      case VIRTIO_CONSOLE_PORT_NAME:
        if (!port) throw new ConsoleDriverError(`PORT_NAME for unknown port ${msg.id}`);
        port.name = new TextDecoder().decode(msg.extra);
        return;
      case VIRTIO_CONSOLE_PORT_OPEN:
        if (!port) throw new ConsoleDriverError(`PORT_OPEN for unknown port ${msg.id}`);
        port.hostOpen = msg.value === 1;
        return;
      case VIRTIO_CONSOLE_RESIZE: {
        if (!port) throw new ConsoleDriverError(`RESIZE for unknown port ${msg.id}`);
        const e = new DataView(msg.extra.buffer, msg.extra.byteOffset, msg.extra.length);
        port.resize = [e.getUint16(0, true), e.getUint16(2, true)];
        return;
      }
      default:
        throw new ConsoleDriverError(`unknown control event ${msg.event}`);
    }
  }

  /** Everything received on port `id`, concatenated. */
  received(id: number): Uint8Array {
    const chunks = this.ports.get(id)?.received ?? [];
    let n = 0;
    for (const c of chunks) n += c.length;
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}
