/**
 * virtkit's boot loader executed by a real CPU: loadLinux prepares guest memory and the entry
 * state for Debian's kernel, a Multiboot shim replays exactly that under QEMU, and the guest
 * must boot to its shell. Runs when qemu-system-i386 is installed and the default guest is
 * cached; skipped with a message otherwise.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FlatMemory, RecordingMemory } from "../../../common/memory.js";
import { loadLinux } from "../../../machine/boot/linux.js";
import { defaultE820 } from "../../../machine/boot/zero-page.js";
import { findCachedGuest } from "./build.js";
import { GUEST_READY_MARKER } from "./initramfs.js";
import { buildMultibootShim, chunksFromWrites } from "./multiboot-shim.js";
import { haveQemu, kernelLogProblems, runQemuGuest } from "./qemu.js";

const guest = findCachedGuest();
const skipReason = !haveQemu()
  ? "qemu-system-i386 is not installed (apt-get install qemu-system-x86)"
  : !guest
    ? "the default guest is not cached (run buildDefaultGuest / virtkit guest build)"
    : undefined;

const work = mkdtempSync(join(tmpdir(), "virtkit-loader-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const MiB = 1024 * 1024;

describe("loadLinux under QEMU", () => {
  it.for([
    { name: "the bzImage (decompressed in the guest)", direct: false },
    { name: "the host-decompressed vmlinux", direct: true },
  ])(
    "boots Debian's kernel to the shell from the state our loader built: $name",
    { timeout: 110_000 },
    async ({ direct }, ctx) => {
      if (skipReason !== undefined) return ctx.skip(`skipped: ${skipReason}`);
      if (direct && !guest!.vmlinux)
        return ctx.skip("the cached guest has no vmlinux (xz missing at build time)");
      const ram = 256 * MiB;
      const mem = new RecordingMemory(new FlatMemory(ram));
      // Below QEMU's ACPI tables at the top of RAM, which a kernel with acpi=off ignores anyway.
      const e820 = defaultE820(ram);
      const cmdline = "console=ttyS0 acpi=off pci=nomsi panic=-1 reboot=t";
      const st = loadLinux(mem, {
        kernel: readFileSync(guest!.kernel),
        vmlinux: direct ? readFileSync(guest!.vmlinux!) : undefined,
        initrd: readFileSync(guest!.initrd),
        cmdline,
        e820,
      });
      const chunks = chunksFromWrites(mem, mem.accesses);
      expect(st.kernel.decompressed).toBe(direct);
      expect(st.eip).toBe(direct ? 0x1000000 : 0x100000);
      const image = join(work, `shim-${direct ? "vmlinux" : "bzimage"}.mb`);
      writeFileSync(image, buildMultibootShim(chunks, st));
      const res = await runQemuGuest({
        kernel: image,
        memoryMiB: 256,
        args: ["-cpu", "qemu32,-apic", "-device", "virtio-rng-pci"],
        commands: [
          `echo "CMD=[$(cat /proc/cmdline)]"`,
          `echo "RNG=[$(cat /sys/class/misc/hw_random/rng_current)]"`,
          "reboot -f",
        ],
        timeoutMs: 100_000,
      });
      if (process.env.VIRTKIT_QEMU_LOG) writeFileSync(process.env.VIRTKIT_QEMU_LOG, res.log);
      const where = `\n--- console log ---\n${res.log.slice(-6000)}`;
      expect(res.timedOut, where).toBe(false);
      expect(res.log, where).toContain("Linux version 6.1");
      // The kernel saw our e820 map, command line and initrd.
      expect(res.log, where).toMatch(/BIOS-e820: \[mem 0x0000000000100000-0x000000000fffffff\] usable/);
      expect(res.log, where).toContain(`Kernel command line: ${cmdline}`);
      const rd = st.initrd!;
      const rdLine = `RAMDISK: [mem 0x${rd.addr.toString(16).padStart(8, "0")}-0x${(rd.addr + Math.ceil(rd.size / 4096) * 4096 - 1).toString(16).padStart(8, "0")}]`;
      expect(res.log, where).toContain(rdLine);
      expect(res.log, where).toContain(GUEST_READY_MARKER);
      expect(/CMD=\[([^\]$]*)\]/.exec(res.log)?.[1]).toBe(cmdline);
      expect(/RNG=\[([^\]$]*)\]/.exec(res.log)?.[1]).toBe("virtio_rng.0");
      expect(kernelLogProblems(res.log), where).toEqual([]);
      console.log(
        `loader under QEMU (${direct ? "vmlinux" : "bzImage"}): first kernel line ${res.firstLineMs?.toFixed(0)} ms, ` +
          `init ready ${res.readyMs?.toFixed(0)} ms, total ${res.totalMs.toFixed(0)} ms`,
      );
    },
  );
});
