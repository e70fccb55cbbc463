/**
 * A QEMU guest and a virtkit NIC on one network: the default guest boots under QEMU with a
 * virtio-net-pci on `-netdev dgram` (one frame per UDP datagram) pointed at a virtkit
 * UdpBackend bridged into a NetSwitch, where a virtkit virtio-net device, driven by the test
 * driver, answers ARP and ICMP echo. The guest's `ping` succeeding shows the framing is
 * QEMU's. Runs when qemu-system-i386 is installed and the default guest is cached.
 */
import { afterAll, describe, expect, it } from "vitest";
import { bridge } from "../../../devices/net/backend.js";
import { ETH_HLEN } from "../../../devices/net/constants.js";
import { foldSum, onesSum, parseMac } from "../../../devices/net/frame.js";
import { createNetRig } from "../../../devices/net/net-test-rig.js";
import { NetSwitch } from "../../../devices/net/switch.js";
import { findCachedGuest } from "../guest/build.js";
import { haveQemu, runQemuGuest } from "../guest/qemu.js";
import { UdpBackend } from "./udp.js";

const guest = findCachedGuest();
const skipReason = !haveQemu()
  ? "qemu-system-i386 is not installed"
  : !guest
    ? "the default guest is not cached (virtkit guest build)"
    : undefined;

const MY_MAC = parseMac("52:54:00:aa:bb:cc");
const MY_IP = [10, 0, 2, 2];
const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of closers.splice(0)) await c();
});

/** An ARP reply or ICMP echo reply to `f`, or null when `f` is neither a request for MY_IP nor an echo request. */
function answer(f: Uint8Array): Uint8Array | null {
  const type = (f[12]! << 8) | f[13]!;
  if (type === 0x0806 && f.length >= 42 && f[21] === 1 && MY_IP.every((b, i) => f[38 + i] === b)) {
    const r = f.slice(0, 42);
    r.set(f.subarray(6, 12), 0);
    r.set(MY_MAC, 6);
    r[21] = 2;
    r.set(MY_MAC, 22);
    r.set(MY_IP, 28);
    r.set(f.subarray(22, 32), 32); // target = the asker's MAC and IP
    return r;
  }
  const ip = ETH_HLEN;
  if (type === 0x0800 && f[ip + 9] === 1 && MY_IP.every((b, i) => f[ip + 16 + i] === b)) {
    const ihl = (f[ip]! & 15) * 4;
    const total = (f[ip + 2]! << 8) | f[ip + 3]!;
    const icmp = ip + ihl;
    if (f[icmp] !== 8) return null;
    const r = f.slice(0, ip + total);
    r.set(f.subarray(6, 12), 0);
    r.set(MY_MAC, 6);
    r.set(f.subarray(ip + 16, ip + 20), ip + 12);
    r.set(f.subarray(ip + 12, ip + 16), ip + 16);
    r[ip + 10] = 0;
    r[ip + 11] = 0;
    const ipSum = ~foldSum(onesSum(r, ip, ip + ihl)) & 0xffff;
    r[ip + 10] = ipSum >>> 8;
    r[ip + 11] = ipSum & 0xff;
    r[icmp] = 0;
    r[icmp + 2] = 0;
    r[icmp + 3] = 0;
    const s = ~foldSum(onesSum(r, icmp, ip + total)) & 0xffff;
    r[icmp + 2] = s >>> 8;
    r[icmp + 3] = s & 0xff;
    return r;
  }
  return null;
}

describe("QEMU interop over UDP datagrams", () => {
  it("a QEMU guest pings a virtkit virtio-net NIC through -netdev dgram, the UDP backend and the switch", async (ctx) => {
    if (skipReason !== undefined) {
      ctx.skip(`skipped: ${skipReason}`);
      return;
    }
    const udp = await UdpBackend.open({ local: { address: "127.0.0.1", port: 0 } });
    closers.push(() => udp.close());
    // QEMU binds its own port; pick one from a socket we open and close.
    const probe = await UdpBackend.open({ local: { address: "127.0.0.1", port: 0 } });
    const qemuPort = probe.localPort;
    await probe.close();
    udp.setRemote({ address: "127.0.0.1", port: qemuPort });
    const sw = new NetSwitch();
    closers.push(bridge(sw.port("uplink"), udp));
    const nic = createNetRig(sw.port("nic"), { mac: MY_MAC, defaultSchedule: true });
    for (let i = 0; i < 32; i++) nic.net.postRx(0, [2048]);
    nic.net.kick(0);
    let answered = 0;
    const poll = setInterval(() => {
      for (let r = nic.net.receive(0); r !== null; r = nic.net.receive(0)) {
        nic.net.postRx(0, [2048]);
        const reply = answer(r.frame);
        if (reply) {
          nic.net.send(1, reply);
          answered++;
        }
      }
      nic.net.kick(0);
    }, 2);
    closers.push(() => clearInterval(poll));
    const res = await runQemuGuest({
      kernel: guest!.kernel,
      initrd: guest!.initrd,
      append: "console=ttyS0 acpi=off pci=nomsi panic=-1 reboot=t",
      args: [
        "-cpu",
        "qemu32,-apic",
        "-netdev",
        `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${udp.localPort}`,
        "-device",
        "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
      ],
      commands: [
        "ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ping -c 3 -W 5 10.0.2.2; echo PING=[$?]",
        "reboot -f",
      ],
      timeoutMs: 110_000,
    });
    expect(res.timedOut, res.log.slice(-3000)).toBe(false);
    expect(res.log).toMatch(/3 packets transmitted, 3 packets received/);
    expect(res.log).toMatch(/PING=\[0\]/);
    expect(answered).toBeGreaterThanOrEqual(4); // an ARP reply and three echo replies
    expect(udp.counters.received).toBeGreaterThanOrEqual(4);
  }, 150_000);
});
