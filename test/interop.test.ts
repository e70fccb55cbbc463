/**
 * Interop with a real peer: a virtkit guest and a QEMU guest (the same default guest image) on
 * one network, virtkit's virtio-net on a UdpBackend and QEMU's virtio-net-pci on
 * `-netdev dgram` (one Ethernet frame per UDP datagram), both bound to 127.0.0.1 and pointed at
 * each other. Each guest pings the other and the result is read from inside each guest (busybox
 * ping's summary on its own console); a TCP line from the virtkit guest to a `nc -l` in the
 * QEMU guest then ends the QEMU run. Skipped with a message where qemu-system-i386 is not
 * installed or the default guest is not built.
 *
 * The virtkit machine runs on the realtime clock here: with the virtual clock a halted guest
 * skips ahead to its next timer at once, so ping's one-second interval and its reply deadline
 * would pass before QEMU's answer (real time) arrives.
 */
import { afterAll, describe, expect, it } from "vitest";
import { VirtioNet } from "../src/devices/net/net.js";
import { haveQemu, kernelLogProblems, runQemuGuest } from "../src/host/node/guest/qemu.js";
import { UdpBackend } from "../src/host/node/net/udp.js";
import { findGuest, GuestSession, kernelProblems } from "./guest-session.js";
import { freeUdpPort, INTEROP_CMDLINE } from "./interop-util.js";

const guest = findGuest();
const skipReason = !haveQemu()
  ? "qemu-system-i386 is not installed (apt-get install qemu-system-x86)"
  : !guest
    ? "the default guest is not built (virtkit guest build)"
    : undefined;
if (skipReason) console.warn(`interop: ${skipReason}; skipping`);

const VIRTKIT_MAC = "52:54:00:12:34:56";
const QEMU_MAC = "52:54:00:12:34:57";
const VIRTKIT_IP = "10.0.2.15";
const QEMU_IP = "10.0.2.16";

const closers: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe.skipIf(skipReason !== undefined)(
  "interop: a virtkit guest and a QEMU guest on one UDP network",
  () => {
    it("ping each other both ways, checked inside each guest", async () => {
      const udp = await UdpBackend.open({ local: { address: "127.0.0.1", port: 0 } });
      closers.push(() => udp.close());
      const qemuPort = await freeUdpPort();
      udp.setRemote({ address: "127.0.0.1", port: qemuPort });

      // The QEMU guest boots in seconds, then waits (pinging once a second) until the virtkit
      // guest answers, pings it three times, and listens for the virtkit guest's closing line.
      const qemuScript = [
        `ip link set eth0 up && ip addr add ${QEMU_IP}/24 dev eth0`,
        `n=0; until ping -c 1 -W 1 ${VIRTKIT_IP} >/dev/null 2>&1; do n=$((n+1)); [ $n -gt 400 ] && break; sleep 1; done`,
        `ping -c 3 -W 5 ${VIRTKIT_IP}; echo "QPING=[$?]"`,
        `nc -l -p 7001; echo "QDONE=[$?]"`,
        "reboot -f",
      ].join("; ");
      // A failing check below ends the QEMU peer at once instead of at its timeout.
      const abort = new AbortController();
      closers.push(() => abort.abort());
      const qemu = runQemuGuest({
        kernel: guest!.kernel,
        initrd: guest!.initrd,
        append: `${INTEROP_CMDLINE} reboot=t`,
        args: [
          "-cpu",
          "qemu32,-apic",
          "-netdev",
          `dgram,id=n,local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${udp.localPort}`,
          "-device",
          `virtio-net-pci,netdev=n,mac=${QEMU_MAC}`,
        ],
        commands: [qemuScript],
        timeoutMs: 420_000,
        signal: abort.signal,
      });

      const s = new GuestSession(guest!, {
        cmdline: INTEROP_CMDLINE,
        clock: "realtime",
        devices: [new VirtioNet({ backend: udp, mac: VIRTKIT_MAC })],
      });
      closers.push(() => s.stop());
      await s.waitFor(/VIRTKIT-GUEST-READY modules=\d+ failed=none/, 360_000);
      await s.waitFor("virtkit# ", 60_000);
      expect(await s.run("cat /sys/class/net/eth0/address")).toContain(VIRTKIT_MAC);
      await s.run(`ifconfig eth0 ${VIRTKIT_IP} netmask 255.255.255.0 up`);
      // virtkit -> QEMU, seen by the virtkit guest's ping.
      const ping = await s.run(`ping -c 3 -W 5 ${QEMU_IP}; echo "VPING=[$?]"`, 60_000);
      expect(ping, ping).toMatch(/3 packets transmitted, 3 packets received/);
      expect(ping).toMatch(/VPING=\[0\]/);
      // Tell the QEMU guest we are done (retrying until its `nc -l` listens, after its own pings).
      const bye = await s.run(
        `n=0; until echo virtkit-says-bye | nc -w 5 ${QEMU_IP} 7001; do n=$((n+1)); [ $n -gt 60 ] && break; sleep 1; done; echo "BYE=[$n]"`,
        120_000,
      );
      expect(bye).toMatch(/BYE=\[\d+\]/);

      const q = await qemu;
      const where = `\n--- QEMU console ---\n${q.log.slice(-4000)}`;
      expect(q.timedOut || q.aborted, where).toBe(false);
      // QEMU -> virtkit, seen by the QEMU guest's ping; the TCP line arrived in the QEMU guest.
      expect(q.log, where).toMatch(/3 packets transmitted, 3 packets received/);
      expect(q.log, where).toMatch(/QPING=\[0\]/);
      expect(q.log, where).toMatch(/virtkit-says-bye/);
      expect(q.log, where).toMatch(/QDONE=\[0\]/);
      expect(kernelLogProblems(q.log), where).toEqual([]);
      expect(udp.counters.received).toBeGreaterThanOrEqual(7); // ARP, 3 replies, 3 requests, TCP
      expect(udp.counters.sent).toBeGreaterThanOrEqual(7);

      s.send("poweroff -f\n");
      expect((await s.finished()).kind).toBe("halted");
      expect(kernelProblems(s.log)).toEqual([]);
    }, 480_000);
  },
);
