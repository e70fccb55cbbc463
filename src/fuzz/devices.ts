/**
 * The devices the fuzzer drives, each behind a small adapter: how to build it, what a random
 * (often malformed) request on each of its queues looks like, which notifies make it take its
 * buffers at once (so a malformed chain there must end in DEVICE_NEEDS_RESET), host-side events
 * (console input, frames from the network, balloon targets, block completions in any order),
 * and how to finish its asynchronous work.
 */
import type { U64 } from "../common/u64.js";
import { u64TestBit } from "../common/u64.js";
import { VirtioBalloon } from "../devices/balloon/balloon.js";
import {
  VIRTIO_BALLOON_F_PAGE_REPORTING,
  VIRTIO_BALLOON_F_STATS_VQ,
  VIRTIO_BALLOON_PAGE_SIZE,
} from "../devices/balloon/constants.js";
import { type BlockBackend, MemoryDisk } from "../devices/blk/backend.js";
import { VirtioBlk } from "../devices/blk/blk.js";
import { SECTOR_SIZE } from "../devices/blk/constants.js";
import { FailingBackend, ManualBackend } from "../devices/blk/test-backends.js";
import type { ConsoleBackend, ConsolePortHost } from "../devices/console/backend.js";
import { VirtioConsole } from "../devices/console/console.js";
import {
  CONSOLE_CONTROL_RX,
  CONSOLE_CONTROL_TX,
  consolePortOfQueue,
  consoleRxQueue,
  VIRTIO_CONSOLE_F_MULTIPORT,
} from "../devices/console/constants.js";
import type { VirtioDevice } from "../devices/device.js";
import type { FrameSink, NetBackend } from "../devices/net/backend.js";
import { VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MQ, VIRTIO_NET_HDR_SIZE } from "../devices/net/constants.js";
import { VirtioNet } from "../devices/net/net.js";
import { VirtioRng } from "../devices/rng/rng.js";
import { seededEntropy } from "../devices/rng/entropy.js";
import { ChecksumDevice } from "../../examples/checksum-device/device.js";
import { Prng } from "./prng.js";

/** A request to put in a chain: device-readable bytes, then device-writable lengths. */
export interface RequestShape {
  readable: Uint8Array[];
  writable: number[];
  /**
   * The device must answer this request with DEVICE_NEEDS_RESET when it takes it (a guest
   * error the device cannot even answer: no status byte, a short control message...).
   */
  mustFail: boolean;
}

/** Where the hostile driver's memory is (PFNs and addresses the adapter may name). */
export interface FuzzEnv {
  memorySize: number;
  hostileBase: number;
  hostileEnd: number;
}

/** One device under fuzzing. */
export interface FuzzDevice {
  readonly device: VirtioDevice;
  /** Whether a notify on `queue` makes the device pop its available buffers right away. */
  consumes(queue: number, features: U64): boolean;
  /** A random request for `queue` (well-formed or not at the request level). */
  request(rng: Prng, queue: number, features: U64): RequestShape;
  /** A random host-side event. */
  hostEvent(rng: Prng): void;
  /** Finishes asynchronous work (completions, deferred turns). Returns false if it never settles. */
  settle(): Promise<boolean> | boolean;
  /** Whether `settle` has anything to do (so cheap cases skip the await). */
  busy(): boolean;
}

export interface FuzzDeviceFactory {
  readonly name: string;
  create(seed: number, env: FuzzEnv): FuzzDevice;
}

function bytes(rng: Prng, n: number): Uint8Array {
  return rng.bytes(n);
}

/** A length biased to small values and the edges of typical structures. */
function len(rng: Prng, max = 600): number {
  switch (rng.int(6)) {
    case 0:
      return 0;
    case 1:
      return rng.range(1, 16);
    case 2:
      return rng.pick([1, 2, 7, 8, 10, 12, 16, 20, 512, 513, 511, 1024]);
    default:
      return rng.int(max + 1);
  }
}

function writables(rng: Prng, n = rng.range(0, 3), max = 600): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(len(rng, max));
  return out;
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

function readableTotal(r: readonly Uint8Array[]): number {
  let s = 0;
  for (const b of r) s += b.length;
  return s;
}

/** Splits `data` into 1..3 pieces (buffers of one request). */
function split(rng: Prng, data: Uint8Array): Uint8Array[] {
  if (data.length < 2 || rng.chance(0.5)) return [data];
  const at = rng.range(1, data.length - 1);
  return [data.subarray(0, at), data.subarray(at)];
}

// ---- rng ---------------------------------------------------------------------------------

const rngFactory: FuzzDeviceFactory = {
  name: "rng",
  create(seed) {
    const device = new VirtioRng({ entropy: seededEntropy(seed), queueSize: 64 });
    return {
      device,
      consumes: (q) => q === 0,
      request(rng) {
        const readable = rng.chance(0.2) ? [bytes(rng, len(rng, 64))] : [];
        return { readable, writable: writables(rng, rng.range(1, 3), 2048), mustFail: false };
      },
      hostEvent() {},
      settle: () => true,
      busy: () => false,
    };
  },
};

// ---- checksum (examples/checksum-device) -------------------------------------------------

const checksumFactory: FuzzDeviceFactory = {
  name: "checksum",
  create() {
    const device = new ChecksumDevice();
    return {
      device,
      consumes: (q) => q === 0,
      request(rng) {
        const head = new Uint8Array(8);
        const v = new DataView(head.buffer);
        v.setUint32(0, rng.chance(0.8) ? rng.int(3) : rng.edgyU32(), true);
        v.setUint32(4, rng.edgyU32(), true);
        const body = bytes(rng, len(rng, 300));
        const all = new Uint8Array(8 + body.length);
        all.set(head);
        all.set(body, 8);
        const readable = rng.chance(0.1)
          ? []
          : split(rng, all.subarray(0, rng.chance(0.1) ? rng.int(9) : all.length));
        return { readable, writable: rng.chance(0.8) ? [8] : writables(rng), mustFail: false };
      },
      hostEvent() {},
      settle: () => true,
      busy: () => false,
    };
  },
};

// ---- blk ---------------------------------------------------------------------------------

const BLK_CAPACITY = 64 * 1024;
const BLK_TYPES = [0, 0, 1, 1, 4, 8, 11, 13, 14, 10, 2, 0xffff_ffff];

const blkFactory: FuzzDeviceFactory = {
  name: "blk",
  create(seed) {
    const setup = new Prng(seed);
    const disk = new MemoryDisk(BLK_CAPACITY, { readOnly: setup.chance(0.15) });
    const mode = setup.int(3);
    const manual = mode === 0 ? new ManualBackend(disk) : null;
    const failRng = new Prng(seed ^ 0x5a5a);
    const backend: BlockBackend =
      manual ?? (mode === 1 ? new FailingBackend(disk, () => failRng.chance(0.2)) : disk);
    const queues = setup.range(1, 2);
    const device = new VirtioBlk({
      backend,
      queues,
      queueSize: 64,
      id: "fuzz",
      discard: setup.chance(0.8) ? { maxSeg: setup.range(1, 3) } : false,
      writeZeroes: setup.chance(0.8) ? { maxSeg: setup.range(1, 3) } : false,
      secureErase: setup.chance(0.5) ? {} : false,
    });
    const sectors = BLK_CAPACITY / SECTOR_SIZE;
    const sector = (rng: Prng): [number, number] => {
      switch (rng.int(5)) {
        case 0:
          return [rng.int(sectors), 0];
        case 1:
          return [sectors - rng.int(4), 0];
        case 2:
          return [rng.u32(), rng.u32()];
        case 3:
          return [0xffff_ffff, 0xffff_ffff];
        default:
          return [rng.int(8), 0];
      }
    };
    return {
      device,
      consumes: (q) => q < queues,
      request(rng) {
        const type = rng.chance(0.9) ? rng.pick(BLK_TYPES) : rng.u32();
        const hdr = new Uint8Array(16);
        const v = new DataView(hdr.buffer);
        v.setUint32(0, type, true);
        v.setUint32(4, rng.chance(0.9) ? 0 : rng.u32(), true);
        const [lo, hi] = sector(rng);
        v.setUint32(8, lo, true);
        v.setUint32(12, hi, true);
        const readable: Uint8Array[] = [rng.chance(0.05) ? hdr.subarray(0, rng.int(16)) : hdr];
        let writable: number[] = [1];
        if (type === 1 || rng.chance(0.1)) {
          const n = rng.chance(0.8) ? SECTOR_SIZE * rng.range(0, 4) : len(rng, 2100);
          readable.push(...split(rng, bytes(rng, n)));
        } else if (type === 0 || type === 8) {
          const n = rng.chance(0.8) ? SECTOR_SIZE * rng.range(0, 4) : len(rng, 2100);
          writable = n > 0 ? [n, 1] : [1];
        } else if (type >= 11 && type <= 14) {
          const segs = rng.range(0, 4);
          const d = new Uint8Array(16 * segs + (rng.chance(0.1) ? rng.range(1, 15) : 0));
          const dv = new DataView(d.buffer);
          for (let i = 0; i < segs; i++) {
            const [slo, shi] = sector(rng);
            dv.setUint32(16 * i, slo, true);
            dv.setUint32(16 * i + 4, shi, true);
            dv.setUint32(16 * i + 8, rng.chance(0.7) ? rng.int(16) : rng.edgyU32(), true);
            dv.setUint32(16 * i + 12, rng.chance(0.7) ? rng.int(2) : rng.edgyU32(), true);
          }
          readable.push(d);
        }
        if (rng.chance(0.1)) writable = writables(rng);
        // 5.2.6: the status byte is the last device-writable byte; without one the device
        // cannot answer and must need a reset.
        return { readable, writable, mustFail: sum(writable) === 0 };
      },
      hostEvent(rng) {
        if (!manual || manual.pending.length === 0) return;
        const i = rng.int(manual.pending.length);
        if (rng.chance(0.2)) {
          const [op] = manual.pending.splice(i, 1);
          op?.fail();
        } else manual.releaseAt(i);
      },
      async settle() {
        // Release whatever waits (a write-through write queues its flush only once the write is
        // done), let the completions run, and again, until nothing is in flight.
        for (let round = 0; round < 256; round++) {
          if (manual) while (manual.pending.length > 0) manual.releaseAt(0);
          if (device.requestsInFlight === 0 && (!manual || manual.pending.length === 0)) {
            // One more turn for the microtask that publishes asynchronous completions.
            await Promise.resolve();
            return true;
          }
          for (let i = 0; i < 4; i++) await Promise.resolve();
        }
        return false;
      },
      busy: () => device.requestsInFlight > 0 || (manual !== null && manual.pending.length > 0),
    };
  },
};

// ---- console -----------------------------------------------------------------------------

class FuzzConsoleBackend implements ConsoleBackend {
  host: ConsolePortHost | null = null;
  block = false;
  written = 0;
  connect(host: ConsolePortHost): void {
    this.host = host;
  }
  write(data: Uint8Array): boolean {
    this.written += data.length;
    return !this.block;
  }
  pause(): void {}
  resume(): void {}
  guestOpen(): void {}
}

const consoleFactory: FuzzDeviceFactory = {
  name: "console",
  create(seed) {
    const setup = new Prng(seed);
    const backends = [new FuzzConsoleBackend(), new FuzzConsoleBackend()];
    const device = new VirtioConsole({
      ports: [
        { backend: backends[0]!, cols: 80, rows: 25 },
        { backend: backends[1]!, name: "fuzz.port" },
      ],
      maxPorts: 3,
      queueSize: 32,
      inputLimit: 256,
      resizeOrder: setup.chance(0.5) ? "cols-rows" : "rows-cols",
      log: () => {},
    });
    let extra: { id: number; backend: FuzzConsoleBackend } | null = null;
    const backendOf = (id: number): FuzzConsoleBackend | null =>
      id < 2 ? backends[id]! : extra && extra.id === id ? extra.backend : null;
    return {
      device,
      consumes(q, f) {
        if (q === CONSOLE_CONTROL_TX) return u64TestBit(f, VIRTIO_CONSOLE_F_MULTIPORT);
        if (q === CONSOLE_CONTROL_RX) return false;
        const id = consolePortOfQueue(q);
        const port = device.ports[id];
        // Receive queues are taken only when input waits; transmit queues unless blocked.
        return !!port && q !== consoleRxQueue(id) && !port.txBlocked;
      },
      request(rng, q, f) {
        if (q === CONSOLE_CONTROL_TX) {
          const msg = new Uint8Array(rng.chance(0.1) ? rng.int(8) : 8 + (rng.chance(0.2) ? rng.int(8) : 0));
          const v = new DataView(msg.buffer);
          if (msg.length >= 8) {
            v.setUint32(0, rng.chance(0.8) ? rng.int(4) : rng.u32(), true);
            v.setUint16(4, rng.chance(0.9) ? rng.int(8) : rng.int(0x10000), true);
            v.setUint16(6, rng.chance(0.8) ? rng.int(2) : rng.int(0x10000), true);
          }
          const writable = rng.chance(0.1) ? writables(rng) : [];
          const multiport = u64TestBit(f, VIRTIO_CONSOLE_F_MULTIPORT);
          return { readable: [msg], writable, mustFail: multiport && msg.length < 8 };
        }
        const id = consolePortOfQueue(q);
        const rx = q === CONSOLE_CONTROL_RX || (id >= 0 && q === consoleRxQueue(id));
        if (rx) {
          const readable = rng.chance(0.1) ? [bytes(rng, len(rng, 32))] : [];
          return { readable, writable: writables(rng, rng.range(0, 2), 64), mustFail: false };
        }
        const readable = split(rng, bytes(rng, len(rng, 200)));
        const writable = rng.chance(0.1) ? writables(rng) : [];
        return { readable, writable, mustFail: sum(writable) > 0 };
      },
      hostEvent(rng) {
        const id = rng.int(4);
        const b = backendOf(id);
        switch (rng.int(7)) {
          case 0:
          case 1:
            b?.host?.input(bytes(rng, rng.chance(0.1) ? rng.int(2000) : rng.range(1, 40)));
            return;
          case 2:
            b?.host?.setHostOpen(rng.chance(0.5));
            return;
          case 3:
            b?.host?.resize(rng.int(0x10000), rng.int(0x10000));
            return;
          case 4:
            if (b) {
              b.block = rng.chance(0.5);
              if (!b.block) b.host?.outputDrained();
            }
            return;
          case 5:
            if (!extra && device.ports.includes(null)) {
              const backend = new FuzzConsoleBackend();
              const pid = device.addPort({ backend, ...(rng.chance(0.5) ? { name: "hot" } : {}) });
              extra = { id: pid, backend };
            }
            return;
          default:
            if (extra && device.ports[extra.id]) {
              device.removePort(extra.id);
              extra = null;
            }
        }
      },
      settle: () => true,
      busy: () => false,
    };
  },
};

// ---- net ---------------------------------------------------------------------------------

class FuzzNetBackend implements NetBackend {
  rx: FrameSink | null = null;
  sent = 0;
  connect(rx: FrameSink): FrameSink {
    this.rx = rx;
    return {
      acceptsPartialChecksum: true,
      deliver: () => {
        this.sent++;
        return true;
      },
    };
  }
  disconnect(): void {
    this.rx = null;
  }
}

const NET_MAC = "02:00:00:00:00:01";
const NET_MAC_BYTES = [2, 0, 0, 0, 0, 1];

const netFactory: FuzzDeviceFactory = {
  name: "net",
  create(seed) {
    const setup = new Prng(seed);
    const backend = new FuzzNetBackend();
    const deferred: (() => void)[] = [];
    const pairs = setup.range(1, 2);
    const device = new VirtioNet({
      mac: NET_MAC,
      backend,
      queuePairs: pairs,
      queueSize: 32,
      mtu: setup.chance(0.5) ? 1500 : setup.range(68, 9000),
      txBudget: setup.range(1, 8),
      schedule: (fn) => deferred.push(fn),
      ...(setup.chance(0.3) ? { withhold: [15] } : {}),
    });
    const layout = (f: U64) => {
      const ctrl = u64TestBit(f, VIRTIO_NET_F_CTRL_VQ);
      const exist = ctrl && u64TestBit(f, VIRTIO_NET_F_MQ) && pairs > 1 ? pairs : 1;
      return { ctrlQueue: ctrl ? 2 * exist : -1, exist };
    };
    const frame = (rng: Prng, n: number): Uint8Array => {
      const fr = bytes(rng, n);
      if (n >= 6 && rng.chance(0.6)) fr.set(rng.chance(0.5) ? NET_MAC_BYTES : [255, 255, 255, 255, 255, 255]);
      if (n >= 14 && rng.chance(0.5)) {
        fr[12] = 0x08;
        fr[13] = 0x00;
      }
      return fr;
    };
    return {
      device,
      consumes(q, f) {
        const l = layout(f);
        return q === l.ctrlQueue || (q % 2 === 1 && q < 2 * l.exist);
      },
      request(rng, q, f) {
        const l = layout(f);
        if (q === l.ctrlQueue) {
          const cmd = new Uint8Array(2 + (rng.chance(0.5) ? rng.int(3) : len(rng, 40)));
          const cv = new DataView(cmd.buffer);
          cmd[0] = rng.chance(0.9) ? rng.int(5) : rng.int(256);
          cmd[1] = rng.chance(0.9) ? rng.int(6) : rng.int(256);
          if (cmd.length >= 6 && rng.chance(0.3))
            cv.setUint32(2, rng.chance(0.5) ? rng.int(4) : rng.u32(), true);
          const readable = rng.chance(0.05) ? [cmd.subarray(0, rng.int(2))] : split(rng, cmd);
          const writable = rng.chance(0.9) ? [1] : writables(rng);
          return {
            readable,
            writable,
            mustFail: readableTotal(readable) < 2 || sum(writable) < 1,
          };
        }
        if (q % 2 === 1) {
          const hdr = new Uint8Array(VIRTIO_NET_HDR_SIZE);
          if (rng.chance(0.3)) {
            hdr[0] = rng.int(8);
            hdr[1] = rng.chance(0.8) ? 0 : rng.int(256);
            const hv = new DataView(hdr.buffer);
            hv.setUint16(6, rng.chance(0.5) ? rng.int(64) : rng.int(0x10000), true);
            hv.setUint16(8, rng.chance(0.5) ? rng.int(64) : rng.int(0x10000), true);
          }
          const body = frame(rng, rng.chance(0.9) ? rng.range(0, 1600) : rng.range(0, 70000));
          const all = new Uint8Array(hdr.length + body.length);
          all.set(hdr);
          all.set(body, hdr.length);
          const cut = rng.chance(0.05) ? all.subarray(0, rng.int(12)) : all;
          const readable = cut.length === 0 ? [] : split(rng, cut);
          const writable = rng.chance(0.05) ? writables(rng) : [];
          return {
            readable,
            writable,
            mustFail: readableTotal(readable) < VIRTIO_NET_HDR_SIZE,
          };
        }
        const readable = rng.chance(0.05) ? [bytes(rng, len(rng, 20))] : [];
        return { readable, writable: writables(rng, rng.range(1, 3), 1600), mustFail: false };
      },
      hostEvent(rng) {
        switch (rng.int(6)) {
          case 0:
          case 1:
          case 2: {
            const n = rng.chance(0.9) ? rng.range(0, 1600) : rng.range(0, 70000);
            const csum = rng.chance(0.2) ? { start: rng.int(n + 4), offset: rng.int(40) } : null;
            backend.rx?.deliver(frame(rng, n), csum);
            return;
          }
          case 3:
            device.setLinkUp(rng.chance(0.7));
            return;
          case 4:
            device.announce();
            return;
          default:
            while (deferred.length > 0 && rng.chance(0.7)) deferred.shift()!();
        }
      },
      settle() {
        for (let i = 0; i < 10_000 && deferred.length > 0; i++) deferred.shift()!();
        return deferred.length === 0;
      },
      busy: () => deferred.length > 0,
    };
  },
};

// ---- balloon -----------------------------------------------------------------------------

const balloonFactory: FuzzDeviceFactory = {
  name: "balloon",
  create(seed, env) {
    const setup = new Prng(seed);
    const device = new VirtioBalloon({
      queueSize: 32,
      statsVq: setup.chance(0.8),
      freePageReporting: setup.chance(0.8),
      deflateOnOom: setup.chance(0.5),
      mustTellHost: setup.chance(0.3),
    });
    const queueOf = (f: U64) => {
      let next = 2;
      const stats =
        u64TestBit(f, VIRTIO_BALLOON_F_STATS_VQ) && u64TestBit(device.features, VIRTIO_BALLOON_F_STATS_VQ)
          ? next++
          : -1;
      const reporting =
        u64TestBit(f, VIRTIO_BALLOON_F_PAGE_REPORTING) &&
        u64TestBit(device.features, VIRTIO_BALLOON_F_PAGE_REPORTING)
          ? next++
          : -1;
      return { stats, reporting };
    };
    const firstPfn = Math.ceil(env.hostileBase / VIRTIO_BALLOON_PAGE_SIZE);
    const lastPfn = Math.floor(env.hostileEnd / VIRTIO_BALLOON_PAGE_SIZE) - 1;
    const pfn = (rng: Prng): number => {
      switch (rng.int(6)) {
        case 0:
          return rng.u32();
        case 1:
          return Math.floor(env.memorySize / VIRTIO_BALLOON_PAGE_SIZE) + rng.int(3);
        case 2:
          return 0xffff_ffff;
        default:
          return rng.range(firstPfn, lastPfn);
      }
    };
    return {
      device,
      consumes(q, f) {
        const { stats, reporting } = queueOf(f);
        return q === 0 || q === 1 || q === stats || q === reporting;
      },
      request(rng, q, f) {
        const { stats, reporting } = queueOf(f);
        if (q === 0 || q === 1) {
          const n = rng.chance(0.1) ? rng.range(0, 300) : rng.range(0, 16);
          const a = new Uint8Array(4 * n + (rng.chance(0.1) ? rng.range(1, 3) : 0));
          const v = new DataView(a.buffer);
          for (let i = 0; i < n; i++) v.setUint32(4 * i, pfn(rng), true);
          return {
            readable: a.length > 0 ? split(rng, a) : [],
            writable: rng.chance(0.05) ? writables(rng) : [],
            mustFail: false,
          };
        }
        if (q === stats) {
          const n = rng.range(0, 12);
          const a = new Uint8Array(10 * n + (rng.chance(0.1) ? rng.range(1, 9) : 0));
          const v = new DataView(a.buffer);
          for (let i = 0; i < n; i++) {
            v.setUint16(10 * i, rng.chance(0.8) ? rng.int(10) : rng.int(0x10000), true);
            v.setUint32(10 * i + 2, rng.u32(), true);
            v.setUint32(10 * i + 6, rng.u32(), true);
          }
          return { readable: [a], writable: rng.chance(0.05) ? writables(rng) : [], mustFail: false };
        }
        if (q === reporting) {
          // Reported pages are the buffers themselves: the engine places them in hostile memory.
          return {
            readable: [],
            writable: writables(rng, rng.range(1, 3), 3 * VIRTIO_BALLOON_PAGE_SIZE),
            mustFail: false,
          };
        }
        return { readable: [bytes(rng, len(rng, 40))], writable: writables(rng), mustFail: false };
      },
      hostEvent(rng) {
        if (rng.chance(0.5)) device.setTarget(rng.int(env.memorySize * 2));
        else device.requestStats();
      },
      settle: () => true,
      busy: () => false,
    };
  },
};

/** Every device the fuzzer knows, by name. */
export const FUZZ_DEVICES: readonly FuzzDeviceFactory[] = [
  rngFactory,
  blkFactory,
  consoleFactory,
  netFactory,
  balloonFactory,
  checksumFactory,
];

export function fuzzDevice(name: string): FuzzDeviceFactory | undefined {
  return FUZZ_DEVICES.find((d) => d.name === name);
}
