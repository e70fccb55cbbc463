/**
 * The acceptance test of the machine: Debian 12's 32-bit kernel (linux-image-686) with the
 * busybox initramfs boots on virtkit's own CPU and chipset to a shell on ttyS0, the shell runs
 * commands, and the guest's poweroff ends the run with the machine stopped cleanly. The kernel
 * log must have no oops, warning trace, "unknown" or "No IRQ" line.
 */
import { describe, expect, it } from "vitest";
import { VirtioRng } from "../src/devices/rng/rng.js";
import { DEFAULT_CMDLINE } from "../src/host/node/cli.js";
import { findGuest, GuestSession, kernelProblems } from "./guest-session.js";

const guest = findGuest();
if (!guest)
  console.warn(
    "linux-boot: the default guest is not built (npx tsx src/host/node/cli.ts guest build); skipping",
  );

describe.skipIf(!guest)("Debian 12 i386 on virtkit", () => {
  it("boots to a busybox shell, runs commands, and powers off (acpi=off: halt with IF=0)", async () => {
    const s = new GuestSession(guest!, { devices: [new VirtioRng()] });
    await s.waitFor("VIRTKIT-GUEST-READY modules=17 failed=none");
    await s.waitFor("virtkit# ");
    expect(await s.run("echo $((6*7))")).toContain("42");
    const cpuinfo = await s.run("cat /proc/cpuinfo");
    expect(cpuinfo).toMatch(/cpu family\s*: 6/);
    expect(cpuinfo).toMatch(/flags\s*:.*\bcmov\b/);
    expect(cpuinfo).toMatch(/flags\s*:.*\bcx8\b/);
    // virtio-rng through INTx on the PIIX3 routes
    expect(await s.run("cat /sys/class/misc/hw_random/rng_current")).toContain("virtio_rng");
    const bytes = await s.run("head -c 16 /dev/hwrng | od -An -tx1 | wc -w");
    expect(bytes.trim()).toBe("16");
    s.send("poweroff -f\n");
    const r = await s.finished();
    expect(r.kind).toBe("halted");
    expect(s.log).toContain("Run /init as init process");
    expect(kernelProblems(s.log)).toEqual([]);
  }, 1_200_000);

  it("boots with the default command line (ACPI on) and powers off through ACPI S5", async () => {
    const s = new GuestSession(guest!, { cmdline: DEFAULT_CMDLINE });
    await s.waitFor("virtkit# ");
    expect(s.log).toContain("ACPI: PM: (supports S0 S5)");
    expect(await s.run("cat /proc/cmdline")).toContain(DEFAULT_CMDLINE);
    s.send("poweroff -f\n");
    expect(await s.finished()).toEqual({ kind: "poweroff" });
    expect(kernelProblems(s.log)).toEqual([]);
  }, 1_200_000);
});
