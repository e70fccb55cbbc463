/**
 * Two virtkit guests in one process, their NICs on one in-process switch, ping each other (both
 * directions, checked inside each guest). The realtime clock: on the virtual clock each machine
 * would skip its own idle time ahead of the other's, and ping's deadlines would pass.
 * On the realtime clock two guests sharing one thread run slowly against real time: module
 * loading (RSA signature checks) takes longer than the soft-lockup watchdog's 20 s, so these
 * boots add `nosoftlockup`.
 */
import { describe, expect, it } from "vitest";
import { NetSwitch } from "../src/devices/net/switch.js";
import { VirtioNet } from "../src/devices/net/net.js";
import { findGuest, GuestSession, kernelProblems } from "./guest-session.js";

const CMDLINE = "console=ttyS0 acpi=off pci=nomsi panic=-1 cryptomgr.notests nosoftlockup";

const guest = findGuest();
if (!guest) console.warn("two-guests: the default guest is not built (virtkit guest build); skipping");

describe.skipIf(!guest)("two guests on one hub", () => {
  it("ping each other through the switch", async () => {
    const hub = new NetSwitch();
    const a = new GuestSession(guest!, {
      clock: "realtime",
      cmdline: CMDLINE,
      devices: [new VirtioNet({ backend: hub.port("a"), mac: "52:54:00:00:0a:01" })],
    });
    const b = new GuestSession(guest!, {
      clock: "realtime",
      cmdline: CMDLINE,
      devices: [new VirtioNet({ backend: hub.port("b"), mac: "52:54:00:00:0b:01" })],
    });
    await Promise.all([a.waitFor("virtkit# "), b.waitFor("virtkit# ")]);
    await a.run("ifconfig eth0 10.0.3.1 netmask 255.255.255.0 up");
    await b.run("ifconfig eth0 10.0.3.2 netmask 255.255.255.0 up");
    const [ab, ba] = await Promise.all([
      a.run("ping -c 3 -W 10 10.0.3.2"),
      b.run("ping -c 3 -W 10 10.0.3.1"),
    ]);
    expect(ab).toMatch(/3 packets transmitted, 3 packets received/);
    expect(ba).toMatch(/3 packets transmitted, 3 packets received/);
    expect(hub.lookup(Uint8Array.of(0x52, 0x54, 0, 0, 0x0a, 0x01))).toBe("a");
    a.send("poweroff -f\n");
    b.send("poweroff -f\n");
    expect((await a.finished()).kind).toBe("halted");
    expect((await b.finished()).kind).toBe("halted");
    expect(kernelProblems(a.log)).toEqual([]);
    expect(kernelProblems(b.log)).toEqual([]);
  }, 1_200_000);
});
