/**
 * Two virtkit guests, each Machine in its own worker thread, their NICs on one switch owned by
 * the main thread (frames cross threads through MessagePorts). Checked inside each guest: ping
 * both ways at once, and a TCP line each way (busybox nc; it has no UDP mode).
 *
 * The realtime clock: on the virtual clock each machine skips its own idle time ahead of the
 * other's, so a guest waiting for the other's reply would run through ping's deadlines in
 * milliseconds of host time. `nosoftlockup` (INTEROP_CMDLINE): a loaded host can make module
 * loading (RSA signature checks) outlast the soft-lockup watchdog's 20 s.
 * `apic: false` (the 8259 PIC): on the realtime clock with the APICs, a host loaded by other work
 * made the kernel's boot-time timer checks fail ("..MP-BIOS bug: 8254 timer not connected to
 * IO-APIC", "APIC timer disabled due to verification failure"); this test is about the network.
 */
import { describe, expect, it } from "vitest";
import { NetSwitch } from "../src/devices/net/switch.js";
import { GUEST_PROMPT, GUEST_READY_MARKER } from "../src/host/node/guest/initramfs.js";
import { GuestWorkerSession } from "./guest-worker-session.js";
import { findGuest, kernelProblems } from "./guest-session.js";
import { INTEROP_CMDLINE } from "./interop-util.js";

const guest = findGuest();
if (!guest) console.warn("two-guests: the default guest is not built (virtkit guest build); skipping");

const READY = new RegExp(`${GUEST_READY_MARKER} modules=\\d+ failed=none`);
const IP = { a: "10.0.3.1", b: "10.0.3.2" };
const MAC = { a: "52:54:00:00:0a:01", b: "52:54:00:00:0b:01" };

/** Sends `line` over TCP to `ip`:7001, retrying while the peer's listener is not up yet. */
const tcpSend = (line: string, ip: string): string =>
  `n=0; until echo ${line} | nc -w 5 ${ip} 7001; do n=$((n+1)); [ $n -gt 60 ] && break; sleep 1; done; echo "SENT=[$n]"`;
/** Listens once on 7001 and prints what arrived (typed with `send`: nc holds the console). */
const TCP_LISTEN = `nc -l -p 7001 > /tmp/got; echo "GOT=[$(cat /tmp/got)]"\n`;

describe.skipIf(!guest)("two guests in worker threads on one hub", () => {
  it("ping each other both ways and pass a TCP line each way", async () => {
    const t0 = performance.now();
    const hubs = new Map([["lan", new NetSwitch()]]);
    const config = { clock: "realtime" as const, cmdline: INTEROP_CMDLINE, apic: false, hubs };
    const [a, b] = await Promise.all(
      (["a", "b"] as const).map((name) =>
        GuestWorkerSession.start(guest!, {
          ...config,
          name,
          devices: { nets: [{ kind: "hub", hub: "lan", mac: MAC[name] }] },
        }),
      ),
    );
    try {
      await Promise.all(
        [a, b].map(async (s) => {
          await s.waitFor(READY, 900_000);
          await s.waitFor(GUEST_PROMPT, 60_000);
        }),
      );
      const booted = performance.now();
      await a.run(`ifconfig eth0 ${IP.a} netmask 255.255.255.0 up`);
      await b.run(`ifconfig eth0 ${IP.b} netmask 255.255.255.0 up`);

      const [ab, ba] = await Promise.all([
        a.run(`ping -c 3 -W 10 ${IP.b}; echo "PINGRC=[$?]"`, 120_000),
        b.run(`ping -c 3 -W 10 ${IP.a}; echo "PINGRC=[$?]"`, 120_000),
      ]);
      expect(ab, ab).toMatch(/3 packets transmitted, 3 packets received/);
      expect(ba, ba).toMatch(/3 packets transmitted, 3 packets received/);
      expect(ab).toContain("PINGRC=[0]");
      expect(ba).toContain("PINGRC=[0]");
      const lan = hubs.get("lan")!;
      expect(lan.lookup(Uint8Array.of(0x52, 0x54, 0, 0, 0x0a, 0x01))).toBe("a.nic0");
      expect(lan.lookup(Uint8Array.of(0x52, 0x54, 0, 0, 0x0b, 0x01))).toBe("b.nic0");

      // TCP a -> b, then b -> a
      b.send(TCP_LISTEN);
      const sentAB = await a.run(tcpSend("line-from-a", IP.b), 180_000);
      expect(sentAB).toMatch(/SENT=\[\d\]/);
      expect(await b.waitFor(/GOT=\[[^\]]*\]/, 60_000)).toContain("GOT=[line-from-a]");
      await b.waitFor(GUEST_PROMPT, 30_000);
      a.send(TCP_LISTEN);
      const sentBA = await b.run(tcpSend("line-from-b", IP.a), 180_000);
      expect(sentBA).toMatch(/SENT=\[\d\]/);
      expect(await a.waitFor(/GOT=\[[^\]]*\]/, 60_000)).toContain("GOT=[line-from-b]");
      await a.waitFor(GUEST_PROMPT, 30_000);
      const checked = performance.now();

      a.send("poweroff -f\n");
      b.send("poweroff -f\n");
      expect((await a.finished()).kind).toBe("halted");
      expect((await b.finished()).kind).toBe("halted");
      expect(kernelProblems(a.log)).toEqual([]);
      expect(kernelProblems(b.log)).toEqual([]);
      console.error(
        `two-guests: booted in ${((booted - t0) / 1000).toFixed(0)} s, checks ${((checked - booted) / 1000).toFixed(0)} s`,
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }, 1_200_000);
});
