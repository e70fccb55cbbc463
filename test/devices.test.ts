/**
 * Every virtkit device under the real Linux drivers, in one boot of the default guest:
 * virtio-blk (raw files: a pattern both ways, mke2fs + mount checked by the host's e2fsck, a
 * read-only disk), virtio-net (the MAC, ARP + ping answered by a host on the switch, UDP to the
 * host), virtio-console (hvc0 both ways, a named port), virtio-balloon (inflate to a target and
 * back, statistics) and virtio-rng. The machine has no APIC here, so every device uses INTx
 * through the 8259 pair (checked in /proc/interrupts); test/devices-msix.test.ts boots the
 * default machine (local APIC + I/O APIC) where the devices use MSI-X.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { VirtioBalloon } from "../src/devices/balloon/balloon.js";
import { VirtioBlk } from "../src/devices/blk/blk.js";
import { MemoryConsole } from "../src/devices/console/backend.js";
import { VirtioConsole } from "../src/devices/console/console.js";
import type { BlockBackend } from "../src/devices/blk/backend.js";
import { concatBytes } from "../src/devices/blk/driver.js";
import { capture, PcapWriter, parsePcap } from "../src/devices/net/pcap.js";
import { NetSwitch } from "../src/devices/net/switch.js";
import { VirtioNet } from "../src/devices/net/net.js";
import { VirtioRng } from "../src/devices/rng/rng.js";
import { RawFileDisk } from "../src/host/node/blk/raw.js";
import { findGuest, GuestSession, kernelProblems } from "./guest-session.js";
import { NetResponder } from "./net-responder.js";

const guest = findGuest();
if (!guest) console.warn("devices: the default guest is not built (virtkit guest build); skipping");
const hasE2fsck = spawnSync("e2fsck", ["-V"]).status === 0;

const dir = mkdtempSync(join(tmpdir(), "virtkit-devices-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!guest)("the default guest drives every virtkit device", () => {
  it("blk, net, console, balloon and rng from inside the guest and from the host", async () => {
    const MiB = 1 << 20;
    const disk1 = join(dir, "pattern.img");
    const disk2 = join(dir, "fs.img");
    const disk3 = join(dir, "ro.img");
    const pattern = Buffer.alloc(8 * MiB);
    pattern.write("VIRTKIT-HOST-PATTERN", 0);
    pattern.fill(0x77, 1 << 20, (1 << 20) + 65536); // to be discarded by the guest
    writeFileSync(disk1, pattern);
    writeFileSync(disk2, Buffer.alloc(16 * MiB));
    writeFileSync(disk3, Buffer.alloc(MiB, 0x5a));
    // disk 1's backend records the discards that reach it
    const raw1 = await RawFileDisk.open(disk1);
    const discards: [number, number][] = [];
    const backend1: BlockBackend = {
      capacity: raw1.capacity,
      readOnly: false,
      read: (o, l) => raw1.read(o, l),
      write: (o, v) => raw1.write(o, v),
      flush: () => raw1.flush(),
      writeZeroes: (o, l) => raw1.writeZeroes(o, l),
      discard: (o, l) => {
        discards.push([o, l]);
        return raw1.discard(o, l);
      },
    };
    const blks = [
      new VirtioBlk({ backend: backend1 }),
      new VirtioBlk({ backend: await RawFileDisk.open(disk2) }),
      new VirtioBlk({ backend: await RawFileDisk.open(disk3, { readOnly: true }), readOnly: true }),
    ];
    const hub = new NetSwitch();
    const responder = new NetResponder();
    responder.endpoint.connect(hub.port("host"));
    const pcapChunks: Uint8Array[] = [];
    const pcap = new PcapWriter((c) => void pcapChunks.push(c.slice()));
    const nic = new VirtioNet({ backend: capture(hub.port("guest"), pcap), mac: "52:54:00:12:34:56" });
    const hvc = new MemoryConsole();
    const named = new MemoryConsole();
    const con = new VirtioConsole({
      ports: [{ backend: hvc }, { backend: named, name: "org.virtkit.test" }],
    });
    const balloon = new VirtioBalloon();
    const s = new GuestSession(guest!, {
      apic: false,
      devices: [...blks, nic, con, balloon, new VirtioRng()],
    });
    await s.waitFor("VIRTKIT-GUEST-READY modules=17 failed=none");
    await s.waitFor("virtkit# ");

    // virtio-blk: the pattern the host wrote, a pattern the guest writes
    expect(await s.run("dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 20")).toContain(
      "VIRTKIT-HOST-PATTERN",
    );
    await s.run(
      "echo -n GUEST-WROTE-THIS | dd of=/dev/vda bs=512 seek=100 conv=notrunc,fsync 2>/dev/null; sync",
    );
    expect(
      readFileSync(disk1)
        .subarray(100 * 512, 100 * 512 + 16)
        .toString(),
    ).toBe("GUEST-WROTE-THIS");
    // a discard reaches the backend (and a raw file reads back zeroes there)
    await s.run("blkdiscard -o 1048576 -l 65536 /dev/vda");
    expect(discards).toContainEqual([1 << 20, 65536]);
    expect(
      readFileSync(disk1)
        .subarray(1 << 20, (1 << 20) + 65536)
        .every((b) => b === 0),
    ).toBe(true);
    // a file system
    const fs = await s.run(
      "mke2fs -q /dev/vdb && mkdir -p /mnt && mount -t ext2 /dev/vdb /mnt && echo hello > /mnt/f && cat /mnt/f && umount /mnt && echo FS-OK",
    );
    expect(fs).toContain("FS-OK");
    if (hasE2fsck) expect(spawnSync("e2fsck", ["-fn", disk2]).status).toBe(0);
    // the read-only disk refuses writes
    expect(await s.run("dd if=/dev/zero of=/dev/vdc bs=512 count=1 conv=fsync 2>&1; echo rc=$?")).toMatch(
      /rc=[1-9]/,
    );
    expect(readFileSync(disk3).every((b) => b === 0x5a)).toBe(true);

    // virtio-net: MAC, ARP + ping to the host, UDP to the host
    expect(await s.run("cat /sys/class/net/eth0/address")).toContain("52:54:00:12:34:56");
    const ping = await s.run("ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && ping -c 2 -W 5 10.0.2.2");
    expect(ping).toMatch(/2 packets transmitted, 2 (packets )?received/);
    expect(responder.arpRequests).toBeGreaterThan(0);
    expect(responder.echoRequests).toBe(2);
    // UDP guest -> host: a DHCP discover (busybox's nc has no UDP mode)
    await s.run("udhcpc -i eth0 -n -q -t 1 -T 1 -s /bin/true >/dev/null 2>&1");
    expect(responder.udp.some((u) => u.port === 67)).toBe(true);
    // UDP host -> guest: to a closed port, which the guest's stack answers with ICMP port unreachable
    responder.sendUdp(
      Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56),
      Uint8Array.of(10, 0, 2, 15),
      9999,
      "hello",
    );
    // Udp: NoPorts, from the values line of /proc/net/snmp
    expect(await s.run("grep '^Udp: [0-9]' /proc/net/snmp | cut -d' ' -f3")).toMatch(/^[1-9]/m);
    expect(responder.unreachable).toContain(3);
    // the capture reads back: the guest's echo requests are in it, byte for byte as sent
    const records = parsePcap(concatBytes(...pcapChunks)).records;
    const echoes = records.filter(
      (r) => r.data[12] === 0x08 && r.data[13] === 0 && r.data[23] === 1 && r.data[34] === 8,
    );
    expect(echoes.length).toBe(2);
    expect(echoes.every((r) => r.originalLength === r.data.length)).toBe(true);

    // virtio-console: hvc0 both ways, and the named port
    const fromGuest: string[] = [];
    hvc.onOutput = (d) => fromGuest.push(Buffer.from(d).toString());
    await s.run("echo to-host-via-hvc0 > /dev/hvc0");
    expect(fromGuest.join("")).toContain("to-host-via-hvc0");
    // the named port: its device node (devtmpfs; the /dev/virtio-ports/NAME links are udev's) and name
    expect(await s.run("ls /dev/vport*")).toMatch(/\/dev\/vport\dp1/);
    expect(await s.run("cat /sys/class/virtio-ports/vport*p1/name")).toContain("org.virtkit.test");
    s.send('echo HVC-READY; read -t 120 line < /dev/hvc0; echo "GOT=[$line]"\n');
    await s.waitFor("HVC-READY\r\n");
    await new Promise((r) => setTimeout(r, 1000));
    hvc.send("from-host-12\n");
    expect(await s.waitFor(/GOT=\[.*\]/)).toContain("GOT=[from-host-12]");

    // virtio-balloon: inflate to 16 MiB, then deflate; statistics arrive
    balloon.setTarget(16 * MiB);
    s.machine.kick();
    const deadline = Date.now() + 300_000;
    while (balloon.currentSize !== 16 * MiB && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect(balloon.currentSize).toBe(16 * MiB);
    balloon.setTarget(0);
    while (balloon.currentSize !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(balloon.currentSize).toBe(0);
    balloon.requestStats();
    while (balloon.stats === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(balloon.stats).not.toBeNull();

    // virtio-rng
    expect(await s.run("cat /sys/class/misc/hw_random/rng_current")).toContain("virtio_rng");

    // the path taken: INTx on the 8259 pair (XT-PIC) for the virtio devices, no MSI, no APIC
    const irqs = await s.run("cat /proc/interrupts");
    expect(irqs).toMatch(/^\s*1[01]:\s+[1-9]\d*\s+XT-PIC\s+.*virtio/m);
    expect(irqs).not.toMatch(/PCI-MSI|IO-APIC/);
    expect(irqs).toMatch(/^\s*LOC:\s+0\s/m); // no local APIC timer

    s.send("poweroff -f\n");
    expect((await s.finished()).kind).toBe("halted");
    expect(kernelProblems(s.log)).toEqual([]);
  }, 1_500_000);
});
