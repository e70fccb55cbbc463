import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../device.js";
import { bridge, createCable } from "./backend.js";
import {
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_OK,
} from "./constants.js";
import { NetDriver } from "./driver.js";
import { completeChecksum, NetError, parseMac } from "./frame.js";
import { HostEndpoint } from "./host-endpoint.js";
import { ALL_NET_FEATURES, createNetRig } from "./net-test-rig.js";
import { VirtioNet } from "./net.js";
import { capture, PcapWriter, parsePcap } from "./pcap.js";
import { NetSwitch } from "./switch.js";
import { buildIpv4Frame, ipv4ChecksumsValid } from "./test-frames.js";

const MAC_A = parseMac("52:54:00:00:00:0a");
const MAC_B = parseMac("52:54:00:00:00:0b");

function features(opts: { mrg: boolean; csum: boolean }): number[] {
  const f = [VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_NET_F_MAC];
  if (opts.mrg) f.push(VIRTIO_NET_F_MRG_RXBUF);
  if (opts.csum) f.push(VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM);
  return f;
}

function pair(opts: { mrg: boolean; csum: boolean }) {
  const sw = new NetSwitch();
  const a = createNetRig(sw.port("a"), { mac: MAC_A, accept: features(opts) });
  const b = createNetRig(sw.port("b"), { mac: MAC_B, accept: features(opts) });
  return { sw, a, b };
}

/** What the receiving driver does with a frame: complete a NEEDS_CSUM checksum. */
function driverView(r: {
  flags: number;
  csumStart: number;
  csumOffset: number;
  frame: Uint8Array;
}): Uint8Array {
  const f = r.frame.slice();
  if (r.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
    completeChecksum(f, { start: r.csumStart, offset: r.csumOffset });
  return f;
}

const frameSpec = fc.record({
  proto: fc.constantFrom<"udp" | "tcp">("udp", "tcp"),
  payload: fc.uint8Array({ minLength: 0, maxLength: 1400 }),
  srcPort: fc.integer({ min: 1, max: 65535 }),
});

/** A receive buffer layout: segment lengths summing to at least `min`. */
function layout(min: number, max: number) {
  return fc
    .tuple(
      fc.integer({ min, max }),
      fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 0, maxLength: 3 }),
    )
    .map(([total, cuts]) => {
      const points = [...new Set(cuts.map((c) => Math.floor((c / 101) * total)).filter((c) => c > 0))].sort(
        (x, y) => x - y,
      );
      const lens: number[] = [];
      let prev = 0;
      for (const p of [...points, total]) {
        lens.push(p - prev);
        prev = p;
      }
      return lens;
    });
}

describe("virtio-net between two NICs on the switch", () => {
  for (const mrg of [false, true]) {
    for (const csum of [false, true]) {
      it(`frames arrive byte for byte with random rx layouts (MRG_RXBUF ${mrg}, CSUM ${csum})`, () => {
        fc.assert(
          fc.property(
            fc.array(frameSpec, { minLength: 1, maxLength: 12 }),
            fc.array(mrg ? layout(12, 400) : layout(1526, 2400), { minLength: 16, maxLength: 16 }),
            fc.boolean(),
            (specs, layouts, indirect) => {
              const { a, b } = pair({ mrg, csum });
              let li = 0;
              const post = () => {
                const lens = layouts[li++ % layouts.length]!;
                b.net.postRx(0, lens, { gap: 8, indirect: indirect && lens.length <= 8 });
              };
              for (let i = 0; i < 16; i++) post();
              b.net.kick(0);
              for (const s of specs) {
                const built = buildIpv4Frame({ dst: MAC_B, src: MAC_A, ...s });
                if (csum) a.net.send(1, built.partial, { csum: built.csum });
                else a.net.send(1, built.full);
                const got = b.net.receive(0);
                expect(got).not.toBeNull();
                if (!mrg) expect(got!.numBuffers).toBe(1);
                if (!csum) expect(got!.flags).toBe(0);
                const seen = driverView(got!);
                expect(seen).toEqual(built.full);
                expect(ipv4ChecksumsValid(seen)).toBe(true);
                while (b.net.freeSlots(0) > 64 - 16) post();
                b.net.kick(0);
              }
              expect(b.device.counters.rxFrames).toBe(specs.length);
              expect(a.device.counters.txFrames).toBe(specs.length);
            },
          ),
          { numRuns: 25 },
        );
      });
    }
  }

  it("a partial checksum is completed for a receiver without GUEST_CSUM", () => {
    const sw = new NetSwitch();
    const a = createNetRig(sw.port(), { mac: MAC_A, accept: features({ mrg: false, csum: true }) });
    const b = createNetRig(sw.port(), { mac: MAC_B, accept: features({ mrg: false, csum: false }) });
    b.net.postRx(0, [2048]);
    b.net.kick(0);
    const built = buildIpv4Frame({
      dst: MAC_B,
      src: MAC_A,
      proto: "tcp",
      payload: new Uint8Array(333).fill(7),
    });
    a.net.send(1, built.partial, { csum: built.csum });
    const got = b.net.receive(0)!;
    expect(got.flags).toBe(0);
    expect(got.frame).toEqual(built.full);
  });

  it("a partial checksum is completed before the frame reaches a host endpoint", () => {
    const [nicEnd, hostEnd] = createCable();
    const a = createNetRig(nicEnd, { mac: MAC_A, accept: features({ mrg: false, csum: true }) });
    const host = new HostEndpoint().connect(hostEnd);
    const built = buildIpv4Frame({
      dst: MAC_B,
      src: MAC_A,
      proto: "udp",
      payload: new Uint8Array([1, 2, 3]),
    });
    a.net.send(1, built.partial, { csum: built.csum });
    expect(host.drain()).toEqual([built.full]);
    expect(a.device.counters.txFrames).toBe(1);
  });

  it("the switch learns: a frame to a learned MAC reaches only that port", () => {
    const sw = new NetSwitch();
    const a = createNetRig(sw.port("a"), { mac: MAC_A, accept: features({ mrg: true, csum: false }) });
    const b = createNetRig(sw.port("b"), { mac: MAC_B, accept: features({ mrg: true, csum: false }) });
    const c = new HostEndpoint().connect(sw.port("c"));
    b.net.postRx(0, [2048]);
    b.net.kick(0);
    const f1 = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(10) }).full;
    a.net.send(1, f1); // B unknown: flooded to B and C
    expect(c.drain().length).toBe(1);
    expect(sw.lookup(MAC_A)).toBe("a");
    // B answers: learned on port b; then A -> B goes to b only.
    const reply = buildIpv4Frame({ dst: MAC_A, src: MAC_B, proto: "udp", payload: new Uint8Array(10) }).full;
    a.net.postRx(0, [2048]);
    a.net.kick(0);
    b.net.send(1, reply);
    expect(a.net.receive(0)!.frame).toEqual(reply);
    expect(c.drain().length).toBe(0);
    b.net.postRx(0, [2048]);
    b.net.kick(0);
    a.net.send(1, f1);
    expect(c.drain().length).toBe(0);
    expect(sw.counters.forwarded).toBeGreaterThanOrEqual(2);
  });
});

describe("virtio-net drops, never truncates", () => {
  it("a frame with no receive buffer posted is dropped and counted", () => {
    const { a, b } = pair({ mrg: false, csum: false });
    const f = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(50) }).full;
    a.net.send(1, f);
    expect(b.device.counters.rxDroppedNoBuffer).toBe(1);
    expect(b.net.receive(0)).toBeNull();
  });

  it("without MRG_RXBUF a frame larger than the posted buffer is dropped, the buffer kept for the next frame", () => {
    const { a, b } = pair({ mrg: false, csum: false });
    b.net.postRx(0, [100, 100]);
    b.net.kick(0);
    const big = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(300) }).full;
    a.net.send(1, big);
    expect(b.device.counters.rxDroppedTooLarge).toBe(1);
    expect(b.net.receive(0)).toBeNull();
    const small = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(100) }).full;
    a.net.send(1, small);
    expect(b.net.receive(0)!.frame).toEqual(small);
  });

  it("with MRG_RXBUF a frame larger than all posted buffers together is dropped and the buffers stay posted", () => {
    const { a, b } = pair({ mrg: true, csum: false });
    b.net.postRx(0, [64]);
    b.net.postRx(0, [64]);
    b.net.kick(0);
    const big = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(300) }).full;
    a.net.send(1, big);
    expect(b.device.counters.rxDroppedNoBuffer).toBe(1);
    const small = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(40) }).full;
    a.net.send(1, small);
    const got = b.net.receive(0)!;
    expect(got.numBuffers).toBe(2);
    expect(got.frame).toEqual(small);
  });

  it("a transmit buffer shorter than the header sets DEVICE_NEEDS_RESET", () => {
    const { a } = pair({ mrg: false, csum: false });
    a.net.send(1, new Uint8Array(0), { header: new Uint8Array(6), split: [6] });
    expect(a.transport.status & 64).toBe(64);
    expect(a.transport.lastError?.message).toMatch(/virtio_net_hdr/);
  });
});

describe("virtio-net transmit batching", () => {
  it("one notify takes at most txBudget buffers; the rest come in later turns, round robin across queues", () => {
    const sw = new NetSwitch();
    const accept = [...ALL_NET_FEATURES];
    const a = createNetRig(sw.port(), { mac: MAC_A, accept, queuePairs: 2, txBudget: 8, queueSize: 32 });
    const sink = new HostEndpoint().connect(sw.port());
    expect(a.net.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(2, 0))).toBe(
      VIRTIO_NET_OK,
    );
    const mk = (q: number, i: number) =>
      buildIpv4Frame({
        dst: MAC_B,
        src: MAC_A,
        proto: "udp",
        srcPort: 1000 * q + i,
        payload: Uint8Array.of(q, i),
      }).full;
    const one = (f: Uint8Array) => ({ kick: false, split: [12 + f.length] });
    for (let i = 0; i < 20; i++) a.net.send(1, mk(0, i), one(mk(0, i)));
    for (let i = 0; i < 20; i++) a.net.send(3, mk(1, i), one(mk(1, i)));
    a.net.kick(1);
    a.net.kick(3);
    const order = () =>
      sink.drain().map((f) => {
        const l = f.length;
        return `${f[l - 2]}`;
      });
    const first = order();
    expect(first.length).toBe(16); // 8 from each queue
    expect(first.filter((q) => q === "0").length).toBe(8);
    expect(a.deferred.length).toBe(1);
    a.runDeferred();
    expect(order().length).toBe(24);
    expect(a.device.counters.txFrames).toBe(40);
    expect(a.device.counters.txBudgetExhausted).toBeGreaterThan(0);
  });
});

describe("pcap capture", () => {
  it("the capture reads back to the same frames, in order, both directions", () => {
    fc.assert(
      fc.property(fc.array(frameSpec, { minLength: 1, maxLength: 8 }), (specs) => {
        const chunks: Uint8Array[] = [];
        const writer = new PcapWriter((c) => chunks.push(c.slice()), {
          nowMicros: () => 1_700_000_000_123_456,
        });
        const sw = new NetSwitch();
        const a = createNetRig(capture(sw.port(), writer), {
          mac: MAC_A,
          accept: features({ mrg: true, csum: true }),
        });
        const host = new HostEndpoint().connect(sw.port());
        const expected: Uint8Array[] = [];
        for (const s of specs) {
          const built = buildIpv4Frame({ dst: MAC_B, src: MAC_A, ...s });
          a.net.send(1, built.partial, { csum: built.csum });
          expected.push(built.full);
          const back = buildIpv4Frame({ dst: MAC_A, src: MAC_B, ...s }).full;
          a.net.postRx(0, [2048]);
          a.net.kick(0);
          host.send(back);
          expect(a.net.receive(0)!.frame).toEqual(back);
          expected.push(back);
        }
        const total = chunks.reduce((n, c) => n + c.length, 0);
        const file = new Uint8Array(total);
        let at = 0;
        for (const c of chunks) {
          file.set(c, at);
          at += c.length;
        }
        const parsed = parsePcap(file);
        expect(parsed.linkType).toBe(1);
        expect(parsed.records.map((r) => r.data)).toEqual(expected);
        expect(parsed.records.every((r) => r.seconds === 1_700_000_000 && r.micros === 123_456)).toBe(true);
        expect(parsed.records.every((r) => r.originalLength === r.data.length)).toBe(true);
      }),
      { numRuns: 20 },
    );
  });
});

describe("virtio-net state", () => {
  it("save/restore keeps MAC, filter, pairs and counters", () => {
    const sw = new NetSwitch();
    const a = createNetRig(sw.port(), { mac: MAC_A, queuePairs: 2 });
    a.net.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(2, 0));
    const saved = JSON.parse(JSON.stringify(a.transport.save()));
    const b = createNetRig(sw.port(), { mac: MAC_B, queuePairs: 2 });
    b.transport.restore(saved);
    expect(b.device.queuePairs).toBe(2);
    expect(b.device.mac).toBe("52:54:00:00:00:0a");
    expect(b.device.save()).toEqual(a.device.save());
  });

  it("without CTRL_VQ there is no control queue and MQ is not used", () => {
    const sw = new NetSwitch();
    const a = createNetRig(sw.port(), {
      mac: MAC_A,
      queuePairs: 2,
      accept: [VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ],
    });
    expect(a.net.ctrlQueue).toBe(-1);
    expect(a.pci.features.lo & (1 << VIRTIO_NET_F_CTRL_VQ)).toBe(0);
  });
});

describe("virtio-net guest errors", () => {
  it("after a guest error the NIC takes no frames until the driver resets it, then works again", () => {
    const { a, b } = pair({ mrg: false, csum: false });
    b.net.send(1, new Uint8Array(0), { header: new Uint8Array(4), split: [4] });
    expect(b.transport.status & 64).toBe(64);
    const f = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(20) }).full;
    a.net.send(1, f);
    expect(b.device.counters.rxDroppedNotReady).toBe(1);
    b.pci.init(features({ mrg: false, csum: false }));
    const again = new NetDriver(b.pci, { queueSize: 64 });
    again.postRx(0, [2048]);
    again.kick(0);
    a.net.send(1, f);
    expect(again.receive(0)!.frame).toEqual(f);
  });

  it("with MRG_RXBUF a receive buffer smaller than the header is a guest error", () => {
    const { a, b } = pair({ mrg: true, csum: false });
    b.net.postRx(0, [8]);
    b.net.kick(0);
    a.net.send(1, buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(2) }).full);
    expect(b.transport.status & 64).toBe(64);
    expect(b.transport.lastError?.message).toMatch(/at least the 12-byte header/);
  });

  it("a control buffer without class, command and ack is a guest error", () => {
    const sw = new NetSwitch();
    const a = createNetRig(sw.port(), { mac: MAC_A });
    const ctrl = a.pci.queues[a.net.ctrlQueue]!.queue;
    const addr = a.pci.dma.alloc(16);
    ctrl.add([{ addr, len: 2, write: false }]);
    a.pci.notify(a.net.ctrlQueue);
    expect(a.transport.status & 64).toBe(64);
    expect(a.transport.lastError?.message).toMatch(/ack byte/);
  });
});

describe("backends", () => {
  it("withheld features are not offered", () => {
    const d = new VirtioNet({ withhold: [VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CTRL_VQ] });
    expect(d.features.lo & (1 << VIRTIO_NET_F_MRG_RXBUF)).toBe(0);
    expect(d.queueMaxSizes.length).toBe(2);
    expect(() => new VirtioNet({ mac: "52:54:00:zz:00:00" })).toThrow(NetError);
  });

  it("switches bridged in a loop drop a flooded frame once forwarding nests too deep, without overflowing", () => {
    const s1 = new NetSwitch();
    const s2 = new NetSwitch();
    bridge(s1.port(), s2.port());
    bridge(s1.port(), s2.port());
    const h = new HostEndpoint().connect(s1.port());
    const other = new HostEndpoint().connect(s2.port());
    const bcast = new Uint8Array(60).fill(0xff);
    bcast.set(MAC_A, 6);
    h.send(bcast);
    expect(s1.counters.loops + s2.counters.loops).toBeGreaterThan(0);
    expect(other.received).toBeGreaterThan(0);
  });

  it("the switch forgets the oldest address past its table size", () => {
    const sw = new NetSwitch({ maxMacEntries: 4 });
    const h = new HostEndpoint().connect(sw.port("h"));
    new HostEndpoint().connect(sw.port("x"));
    for (let i = 0; i < 6; i++) {
      const f = new Uint8Array(60);
      f.set(MAC_B, 0);
      f.set([2, 0, 0, 0, 0, i], 6);
      h.send(f);
    }
    expect(sw.learned).toBe(4);
    expect(sw.lookup(Uint8Array.of(2, 0, 0, 0, 0, 0))).toBeUndefined();
    expect(sw.lookup(Uint8Array.of(2, 0, 0, 0, 0, 5))).toBe("h");
  });
});

describe("virtio-net with INTx (as the machine wires it)", () => {
  it("frames flow and each used buffer raises the line; the ISR read says which kind", () => {
    const sw = new NetSwitch();
    const a = createNetRig(sw.port(), { mac: MAC_A, interrupts: "intx" });
    const b = createNetRig(sw.port(), { mac: MAC_B, interrupts: "intx" });
    b.net.postRx(0, [2048]);
    b.net.kick(0);
    b.pci.takeInterrupts();
    const f = buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(30) }).full;
    a.net.send(1, f);
    expect(b.pci.takeInterrupts()).toEqual({ queues: [0, 1, 2], config: false });
    expect(b.net.receive(0)!.frame).toEqual(f);
    b.device.setLinkUp(false);
    expect(b.pci.takeInterrupts().config).toBe(true);
  });
});
