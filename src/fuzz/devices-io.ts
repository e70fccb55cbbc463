/** Fuzz adapters: virtio-console, virtio-net, virtio-balloon. */
import type { U64 } from "../common/u64.js";
import { u64TestBit } from "../common/u64.js";
import { VirtioBalloon } from "../devices/balloon/balloon.js";
import {
  VIRTIO_BALLOON_F_PAGE_REPORTING,
  VIRTIO_BALLOON_F_STATS_VQ,
  VIRTIO_BALLOON_PAGE_SIZE,
} from "../devices/balloon/constants.js";
import type { ConsoleBackend, ConsolePortHost } from "../devices/console/backend.js";
import { VirtioConsole } from "../devices/console/console.js";
import {
  CONSOLE_CONTROL_RX,
  CONSOLE_CONTROL_TX,
  consolePortOfQueue,
  consoleRxQueue,
  VIRTIO_CONSOLE_F_MULTIPORT,
} from "../devices/console/constants.js";
import type { FrameSink, NetBackend } from "../devices/net/backend.js";
import { VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MQ, VIRTIO_NET_HDR_SIZE } from "../devices/net/constants.js";
import { VirtioNet } from "../devices/net/net.js";
import { Prng } from "./prng.js";

import type { FuzzDeviceFactory } from "./devices.js";
import { bytes, len, readableTotal, split, sum, writables } from "./payload.js";

// ---- console ----

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

export const consoleFactory: FuzzDeviceFactory = {
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

// ---- net ----

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

export const netFactory: FuzzDeviceFactory = {
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

// ---- balloon ----

export const balloonFactory: FuzzDeviceFactory = {
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
