import { describe, expect, it } from "vitest";
import { createCable } from "./backend.js";
import { parseMac } from "./frame.js";
import { HostEndpoint } from "./host-endpoint.js";
import { createNetRig } from "./net-test-rig.js";
import { PcapWriter, parsePcap } from "./pcap.js";
import { buildIpv4Frame } from "./test-frames.js";

const MAC_A = parseMac("52:54:00:00:03:0a");
const MAC_B = parseMac("52:54:00:00:03:0b");
const frame = (n: number) =>
  buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "udp", payload: new Uint8Array(n) }).full;

describe("host endpoint", () => {
  it("next() waits for a frame; onFrame gets copies; a full inbox drops and counts", async () => {
    const [x, y] = createCable();
    const a = new HostEndpoint({ inboxSize: 2 }).connect(x);
    const b = new HostEndpoint().connect(y);
    const waiting = a.next();
    b.send(frame(1));
    expect(await waiting).toEqual(frame(1));
    b.send(frame(2));
    b.send(frame(3));
    expect(b.send(frame(4))).toBe(false);
    expect(a.dropped).toBe(1);
    expect(await a.next()).toEqual(frame(2));
    expect(a.drain()).toEqual([frame(3)]);
    const seen: Uint8Array[] = [];
    a.onFrame = (f) => seen.push(f);
    const sent = frame(5);
    b.send(sent);
    sent.fill(0);
    expect(seen).toEqual([frame(5)]);
    expect(() => b.send(new Uint8Array(10))).toThrow(/at least 14 bytes/);
    a.disconnect();
    expect(b.send(frame(6))).toBe(false);
  });

  it("the default scheduler finishes a transmit queue longer than the budget on later event loop turns", async () => {
    const [nicEnd, hostEnd] = createCable();
    const host = new HostEndpoint().connect(hostEnd);
    const r = createNetRig(nicEnd, { mac: MAC_A, txBudget: 4, defaultSchedule: true });
    for (let i = 0; i < 10; i++) r.net.send(1, frame(i), { kick: false, split: [12 + frame(i).length] });
    r.net.kick(1);
    expect(host.received).toBe(4);
    for (let i = 0; i < 20 && host.received < 10; i++) await new Promise((res) => setTimeout(res, 1));
    expect(host.received).toBe(10);
  });
});

describe("pcap", () => {
  it("snaplen cuts the captured bytes and keeps the original length", () => {
    const chunks: Uint8Array[] = [];
    const w = new PcapWriter((c) => chunks.push(c.slice()), { snaplen: 20 });
    w.record(frame(100));
    const file = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      file.set(c, at);
      at += c.length;
    }
    const p = parsePcap(file);
    expect(p.snaplen).toBe(20);
    expect(p.records[0]!.data).toEqual(frame(100).subarray(0, 20));
    expect(p.records[0]!.originalLength).toBe(frame(100).length);
    expect(() => new PcapWriter(() => {}, { snaplen: 0 })).toThrow(/snaplen/);
  });

  it("reads big-endian and nanosecond files; refuses a truncated one", () => {
    const f = frame(4);
    const b = new Uint8Array(24 + 16 + f.length);
    const v = new DataView(b.buffer);
    v.setUint32(0, 0xa1b23c4d, false);
    v.setUint16(4, 2, false);
    v.setUint16(6, 4, false);
    v.setUint32(16, 65535, false);
    v.setUint32(20, 1, false);
    v.setUint32(24, 10, false);
    v.setUint32(28, 5_000_000, false);
    v.setUint32(32, f.length, false);
    v.setUint32(36, f.length, false);
    b.set(f, 40);
    const p = parsePcap(b);
    expect(p.records).toEqual([{ seconds: 10, micros: 5000, data: f, originalLength: f.length }]);
    expect(() => parsePcap(b.subarray(0, b.length - 1))).toThrow(/runs past the end/);
    expect(() => parsePcap(new Uint8Array(24))).toThrow(/not a pcap file/);
  });
});

describe("re-entrancy", () => {
  it("a host endpoint that answers inside onFrame reaches the NIC while the NIC is still transmitting", () => {
    const [nicEnd, hostEnd] = createCable();
    const r = createNetRig(nicEnd, { mac: MAC_A });
    for (let i = 0; i < 4; i++) r.net.postRx(0, [2048]);
    r.net.kick(0);
    const host = new HostEndpoint({
      onFrame: (f) => {
        const reply = f.slice();
        reply.set(f.subarray(6, 12), 0);
        reply.set(MAC_B, 6);
        host.send(reply);
      },
    }).connect(hostEnd);
    const sent = [frame(10), frame(200), frame(30)];
    for (const f of sent) r.net.send(1, f, { kick: false });
    r.net.kick(1);
    for (const f of sent) {
      const got = r.net.receive(0)!.frame;
      expect(got.subarray(12)).toEqual(f.subarray(12));
      expect(got.subarray(0, 6)).toEqual(MAC_A);
    }
    expect(r.device.counters.txFrames).toBe(3);
    expect(r.device.counters.rxFrames).toBe(3);
  });
});
