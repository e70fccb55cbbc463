import { execFileSync } from "node:child_process";
import dgram from "node:dgram";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { bridge, capture, HostEndpoint, NetSwitch, parseMac, parsePcap } from "../../../devices/net/index.js";
import { createNetRig } from "../../../devices/net/net-test-rig.js";
import { buildIpv4Frame } from "../../../devices/net/test-frames.js";
import { PcapFile } from "./pcap-file.js";
import { UdpBackend } from "./udp.js";

const MAC_A = parseMac("52:54:00:00:01:0a");
const MAC_B = parseMac("52:54:00:00:01:0b");
const LOOPBACK = "127.0.0.1";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function udpPair(): Promise<[UdpBackend, UdpBackend]> {
  const a = await UdpBackend.open({ local: { address: LOOPBACK, port: 0 } });
  const b = await UdpBackend.open({
    local: { address: LOOPBACK, port: 0 },
    remote: { address: LOOPBACK, port: a.localPort },
  });
  a.setRemote({ address: LOOPBACK, port: b.localPort });
  closers.push(
    () => a.close(),
    () => b.close(),
  );
  return [a, b];
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};

describe("UDP datagram backend (QEMU -netdev dgram / socket,udp= framing)", () => {
  it("two NICs on two real UDP sockets on loopback exchange frames both ways, checksums completed", async () => {
    const [ua, ub] = await udpPair();
    const a = createNetRig(ua, { mac: MAC_A });
    const b = createNetRig(ub, { mac: MAC_B });
    for (let i = 0; i < 4; i++) {
      a.net.postRx(0, [2048]);
      b.net.postRx(0, [2048]);
    }
    a.net.kick(0);
    b.net.kick(0);
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const f = buildIpv4Frame({
        dst: MAC_B,
        src: MAC_A,
        proto: "udp",
        payload: new Uint8Array(100 + i).fill(i),
      });
      a.net.send(1, f.partial, { csum: f.csum });
      sent.push(f.full);
    }
    await until(() => b.device.counters.rxFrames === 3, "3 frames at B");
    for (const f of sent) expect(b.net.receive(0)!.frame).toEqual(f);
    const back = buildIpv4Frame({
      dst: MAC_A,
      src: MAC_B,
      proto: "tcp",
      payload: new Uint8Array(1400).fill(9),
    }).full;
    b.net.send(1, back);
    await until(() => a.device.counters.rxFrames === 1, "the reply at A");
    expect(a.net.receive(0)!.frame).toEqual(back);
    expect(ua.counters.sent).toBe(3);
    expect(ub.counters.received).toBe(3);
  });

  it("a datagram is exactly one Ethernet frame, no header (what QEMU sends and expects)", async () => {
    const peer = dgram.createSocket("udp4");
    await new Promise<void>((r) => peer.bind(0, LOOPBACK, () => r()));
    closers.push(() => new Promise<void>((r) => peer.close(() => r())));
    const u = await UdpBackend.open({
      local: { address: LOOPBACK, port: 0 },
      remote: { address: LOOPBACK, port: peer.address().port },
    });
    closers.push(() => u.close());
    const got: Buffer[] = [];
    peer.on("message", (m) => got.push(m));
    const host = new HostEndpoint().connect(u);
    const frame = buildIpv4Frame({
      dst: MAC_B,
      src: MAC_A,
      proto: "udp",
      payload: Uint8Array.of(1, 2, 3),
    }).full;
    host.send(frame);
    await until(() => got.length === 1, "the datagram");
    expect(new Uint8Array(got[0]!)).toEqual(frame);
    // And a datagram from the peer arrives as the frame; a runt is dropped and counted.
    peer.send(Buffer.from(frame), u.localPort, LOOPBACK);
    peer.send(Buffer.alloc(5), u.localPort, LOOPBACK);
    await until(() => u.counters.received === 1 && u.counters.runts === 1, "frame and runt");
    expect(host.drain()).toEqual([frame]);
  });

  it("a switch bridged to a UDP link, captured to a pcap file that reads back to the same frames", async () => {
    const [ua, ub] = await udpPair();
    const dir = mkdtempSync(join(tmpdir(), "virtkit-pcap-"));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "net.pcap");
    const file = new PcapFile(path);
    const sw = new NetSwitch();
    closers.push(bridge(capture(sw.port("uplink"), file.writer), ua));
    const a = createNetRig(sw.port("a"), { mac: MAC_A });
    const far = new HostEndpoint().connect(ub);
    const frames = [0, 1, 2].map(
      (i) => buildIpv4Frame({ dst: MAC_B, src: MAC_A, proto: "tcp", payload: new Uint8Array(60 * i) }).full,
    );
    for (const f of frames) a.net.send(1, f);
    const reply = buildIpv4Frame({ dst: MAC_A, src: MAC_B, proto: "udp", payload: new Uint8Array(7) }).full;
    a.net.postRx(0, [2048]);
    a.net.kick(0);
    await until(() => far.received === 3, "frames at the far end");
    far.send(reply);
    await until(() => a.device.counters.rxFrames === 1, "the reply");
    file.close();
    const parsed = parsePcap(new Uint8Array(readFileSync(path)));
    expect(parsed.records.map((r) => r.data)).toEqual([...frames, reply]);
    let tcpdump = "";
    try {
      tcpdump = execFileSync("tcpdump", ["-nn", "-r", path], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
    } catch {
      return; // tcpdump not installed: the parse above is the check.
    }
    expect(tcpdump.trim().split("\n").length).toBe(4);
  });
});
