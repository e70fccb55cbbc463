/**
 * The MSI-X path end to end: the default guest on the default machine (local APIC + I/O APIC,
 * ACPI on, MSI allowed) with a disk, a NIC, a console and an RNG, in one lean boot. Checked
 * from /proc/interrupts that every virtio device took PCI-MSI vectors (config + one per queue)
 * and used them, that the PIT and the UART go through the I/O APIC and that the local APIC timer
 * ticks; and that each device works. test/devices.test.ts covers INTx (a machine without an
 * APIC: the 8259 pair) with every device.
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/common/errors.js";
import { MemoryDisk } from "../src/devices/blk/backend.js";
import { VirtioBlk } from "../src/devices/blk/blk.js";
import { MemoryConsole } from "../src/devices/console/backend.js";
import { VirtioConsole } from "../src/devices/console/console.js";
import { NetSwitch } from "../src/devices/net/switch.js";
import { VirtioNet } from "../src/devices/net/net.js";
import { VirtioRng } from "../src/devices/rng/rng.js";
import { parseArgs } from "../src/host/node/cli.js";
import { findGuest, GuestSession, kernelProblems } from "./guest-session.js";
import { NetResponder } from "./net-responder.js";

const guest = findGuest();
if (!guest) console.warn("devices-msix: the default guest is not built (virtkit guest build); skipping");

/** /proc/interrupts rows: name (IRQ number or LOC...), count, the rest of the line. */
function interrupts(text: string): { irq: string; count: number; rest: string }[] {
  return text
    .split("\n")
    .map((l) => /^\s*(\w+):\s+(\d+)\s*(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ irq: m[1]!, count: Number(m[2]), rest: m[3]! }));
}

describe("--apic", () => {
  it("is parsed from the command line and the config file", () => {
    expect(parseArgs(["run", "--kernel", "k"]).spec.apic).toBeUndefined();
    expect(parseArgs(["run", "--kernel", "k", "--apic", "off"]).spec.apic).toBe(false);
    expect(parseArgs(["run", "--kernel", "k", "--apic", "on"]).spec.apic).toBe(true);
    expect(() => parseArgs(["run", "--kernel", "k", "--apic", "yes"])).toThrow(ConfigError);
    const fromFile = parseArgs(["run", "--config", "c.json"], () => ({ kernel: "k", apic: false }));
    expect(fromFile.spec.apic).toBe(false);
    expect(() => parseArgs(["run", "--config", "c.json"], () => ({ apic: "off" }))).toThrow(/apic/);
  });
});

describe.skipIf(!guest)("the default guest on a machine with an APIC", () => {
  it("drives blk, net, console and rng through MSI-X", async () => {
    const disk = new Uint8Array(4 << 20);
    disk.set(new TextEncoder().encode("VIRTKIT-MSIX-PATTERN"));
    const hub = new NetSwitch();
    const responder = new NetResponder();
    responder.endpoint.connect(hub.port("host"));
    const hvc = new MemoryConsole();
    const s = new GuestSession(guest!, {
      apic: true,
      // ACPI on and no pci=nomsi: the MADT, "Using IOAPIC for interrupt routing", MSI-X
      cmdline: "console=ttyS0 panic=-1 cryptomgr.notests",
      devices: [
        new VirtioBlk({ backend: new MemoryDisk(disk) }),
        new VirtioNet({ backend: hub.port("guest"), mac: "52:54:00:12:34:58" }),
        new VirtioConsole({ ports: [{ backend: hvc }] }),
        new VirtioRng(),
      ],
    });
    await s.waitFor("VIRTKIT-GUEST-READY");
    await s.waitFor("virtkit# ");
    expect(s.log).toContain("ACPI: Using IOAPIC for interrupt routing");
    expect(s.log).toMatch(/IOAPIC\[0\]: apic_id 0, version 17, address 0xfec00000, GSI 0-23/);
    expect(s.log).not.toContain("APIC timer disabled");

    // every device works
    expect(await s.run("dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 20")).toContain(
      "VIRTKIT-MSIX-PATTERN",
    );
    const ping = await s.run("ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && ping -c 2 -W 5 10.0.2.2");
    expect(ping).toMatch(/2 packets transmitted, 2 (packets )?received/);
    expect(responder.echoRequests).toBe(2);
    const fromGuest: string[] = [];
    hvc.onOutput = (d) => fromGuest.push(Buffer.from(d).toString());
    await s.run("echo msix-to-host > /dev/hvc0");
    expect(fromGuest.join("")).toContain("msix-to-host");
    expect(await s.run("cat /sys/class/misc/hw_random/rng_current")).toContain("virtio_rng");
    expect((await s.run("head -c 16 /dev/hwrng | od -An -tx1 | wc -w")).trim()).toBe("16");

    // the path taken: MSI-X for every virtio device, the I/O APIC for the PIT and the UART
    const rows = interrupts(await s.run("cat /proc/interrupts"));
    const row = (re: RegExp) => rows.filter((r) => re.test(r.rest));
    expect(row(/XT-PIC|IO-APIC.*virtio/)).toEqual([]); // no virtio device on INTx
    for (let d = 0; d < 4; d++) {
      const msi = row(new RegExp(`PCI-MSI.*\\bvirtio${d}-`));
      expect(msi.some((r) => r.rest.endsWith(`virtio${d}-config`))).toBe(true);
      expect(msi.length).toBeGreaterThanOrEqual(2); // config + at least one queue
    }
    // the queues that carried the I/O above took their interrupts through MSI-X
    const used = (re: RegExp) => row(re).reduce((n, r) => n + r.count, 0);
    expect(used(/PCI-MSI.*virtio0-req/)).toBeGreaterThan(0); // blk
    expect(used(/PCI-MSI.*virtio1-input/)).toBeGreaterThan(0); // net rx
    expect(used(/PCI-MSI.*virtio3-input/)).toBeGreaterThan(0); // rng
    expect(row(/IO-APIC\s+2-edge\s+timer/)).toHaveLength(1);
    expect(row(/IO-APIC\s+4-edge\s+ttyS0/)[0]?.count).toBeGreaterThan(0);
    expect(rows.find((r) => r.irq === "LOC")?.count).toBeGreaterThan(0);
    expect(rows.find((r) => r.irq === "SPU")?.count).toBe(0);
    expect(rows.find((r) => r.irq === "ERR")?.count).toBe(0);

    s.send("poweroff -f\n");
    expect(await s.finished()).toEqual({ kind: "poweroff" });
    expect(kernelProblems(s.log)).toEqual([]);
  }, 1_200_000);
});
