/**
 * The default guest under QEMU (software emulation): the kernel boots, /init loads every module,
 * the virtio devices appear (vda, eth0, hwrng, hvc0, the balloon) and the shell runs commands.
 * Runs when qemu-system-i386 is installed and the default guest is cached (buildDefaultGuest);
 * skipped with a message otherwise.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findCachedGuest } from "./build.js";
import { GUEST_INSMOD_FAILED_MARKER, GUEST_READY_MARKER } from "./initramfs.js";
import { haveQemu, kernelLogProblems, runQemuGuest } from "./qemu.js";

const guest = findCachedGuest();
const qemu = haveQemu();
const skipReason = !qemu
  ? "qemu-system-i386 is not installed (apt-get install qemu-system-x86)"
  : !guest
    ? "the default guest is not cached (run buildDefaultGuest / virtkit guest build)"
    : undefined;

const work = mkdtempSync(join(tmpdir(), "virtkit-qemu-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function haveMkfsExt4(): boolean {
  const r = spawnSync("mkfs.ext4", ["-V"], { stdio: "ignore" });
  return !r.error;
}

/** Commands whose results are printed as NAME=[value], which the typed (echoed) command never matches. */
const CHECKS = [
  `echo "NET=[$(ls /sys/class/net | tr '\\n' ' ')]"`,
  `echo "RNG=[$(cat /sys/class/misc/hw_random/rng_current)]"`,
  `echo "RNGBYTES=[$(head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' \\n')]"`,
  `echo "DEV=[$(ls /dev/vda /dev/vdb /dev/hvc0 /dev/hwrng 2>&1 | tr '\\n' ' ')]"`,
  `echo "DRV=[$(for d in /sys/bus/virtio/drivers/*; do ls $d | grep -q '^virtio[0-9]' && echo -n "\${d##*/} "; done)]"`,
  `echo "MODS=[$(cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' ')]"`,
  `mount -t ext4 /dev/vdb /mnt && echo "EXT4=[$(cat /mnt/hello.txt 2>&1)]"`,
  `echo "ALL=[done]"`,
  "reboot -f",
];

function field(log: string, name: string): string | undefined {
  return new RegExp(`${name}=\\[([^\\]$]*)\\]`).exec(log)?.[1];
}

describe("default guest under QEMU", () => {
  it("boots to a shell with every virtio driver bound (minimal chipset: PIC, INTx, acpi=off)", async (ctx) => {
    if (skipReason !== undefined) {
      ctx.skip(`skipped: ${skipReason}`);
      return;
    }
    const disk = join(work, "blank.img");
    writeFileSync(disk, new Uint8Array(8 * 1024 * 1024));
    const ext4 = join(work, "ext4.img");
    const mkfs = haveMkfsExt4();
    if (mkfs) {
      const dir = join(work, "fs");
      spawnSync("mkdir", ["-p", dir]);
      writeFileSync(join(dir, "hello.txt"), "hello from the host");
      const r = spawnSync("mkfs.ext4", ["-q", "-F", "-d", dir, ext4, "16M"], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
    } else {
      writeFileSync(ext4, new Uint8Array(16 * 1024 * 1024));
    }
    const res = await runQemuGuest({
      kernel: guest!.kernel,
      initrd: guest!.initrd,
      append: "console=ttyS0 acpi=off pci=nomsi panic=-1 reboot=t",
      args: [
        "-cpu",
        "qemu32,-apic",
        "-device",
        "virtio-rng-pci",
        "-netdev",
        "user,id=n0,restrict=on",
        "-device",
        "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
        "-drive",
        `file=${disk},format=raw,if=virtio`,
        "-drive",
        `file=${ext4},format=raw,if=virtio`,
        "-device",
        "virtio-balloon-pci",
        "-device",
        "virtio-serial-pci",
        "-chardev",
        "null,id=con0",
        "-device",
        "virtconsole,chardev=con0",
      ],
      commands: CHECKS,
      timeoutMs: 100_000,
    });
    const log = res.log;
    if (process.env.VIRTKIT_QEMU_LOG) writeFileSync(process.env.VIRTKIT_QEMU_LOG, log);
    const where = `\n--- console log ---\n${log.slice(-6000)}`;
    expect(res.timedOut, `QEMU timed out${where}`).toBe(false);
    expect(log).toContain("Linux version 6.1");
    expect(log).toMatch(new RegExp(`${GUEST_READY_MARKER} modules=${guest!.modules.length} failed=none`));
    expect(log).not.toContain(GUEST_INSMOD_FAILED_MARKER);
    expect(kernelLogProblems(log), where).toEqual([]);
    expect(log).toMatch(/virtio_blk virtio\d+: \[vda\]/);
    expect(field(log, "NET"), where).toBe("eth0 lo ");
    expect(field(log, "RNG"), where).toBe("virtio_rng.0");
    expect(field(log, "RNGBYTES"), where).toMatch(/^[0-9a-f]{32}$/);
    expect(field(log, "DEV"), where).toBe("/dev/hvc0 /dev/hwrng /dev/vda /dev/vdb ");
    const drivers = field(log, "DRV")?.trim().split(" ").sort();
    expect(drivers, where).toEqual([
      "virtio_balloon",
      "virtio_blk",
      "virtio_console",
      "virtio_net",
      "virtio_rng",
    ]);
    const mods = field(log, "MODS")?.trim().split(" ") ?? [];
    expect(mods.sort()).toEqual(guest!.modules.map((m) => m.replace(/-/g, "_")).sort());
    if (mkfs) expect(field(log, "EXT4"), where).toBe("hello from the host");
    expect(field(log, "ALL"), where).toBe("done");
    console.log(
      `QEMU boot of ${guest!.version}: first kernel line ${res.firstLineMs?.toFixed(0)} ms, ` +
        `init ready ${res.readyMs?.toFixed(0)} ms, prompt ${res.promptMs?.toFixed(0)} ms, total ${res.totalMs.toFixed(0)} ms`,
    );
  }, 110_000);

  it("gives the shell to hvc0 when the command line names it last (virtio-console)", async (ctx) => {
    if (skipReason !== undefined) {
      ctx.skip(`skipped: ${skipReason}`);
      return;
    }
    const res = await runQemuGuest({
      kernel: guest!.kernel,
      initrd: guest!.initrd,
      append: "console=ttyS0 console=hvc0 acpi=off pci=nomsi panic=-1",
      serial: "null",
      args: ["-device", "virtio-serial-pci", "-chardev", "stdio,id=c0", "-device", "virtconsole,chardev=c0"],
      commands: [`echo "TTY=[$(tty)]"`, "reboot -f"],
      timeoutMs: 100_000,
    });
    const where = `\n--- hvc0 log ---\n${res.log.slice(-4000)}`;
    expect(res.timedOut, where).toBe(false);
    expect(res.log, where).toMatch(new RegExp(`${GUEST_READY_MARKER} modules=\\d+ failed=none console=hvc0`));
    expect(field(res.log, "TTY"), where).toBe("/dev/hvc0");
    expect(kernelLogProblems(res.log), where).toEqual([]);
  }, 110_000);
});
