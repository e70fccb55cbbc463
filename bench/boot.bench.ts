/**
 * `npm run bench -- boot`: boots the default guest (Debian 12's 686 kernel + busybox) on
 * virtkit's machine to the first kernel line, to /init ("Run /init as init process") and to the
 * shell prompt, in host seconds and guest instructions; then the same kernel, initramfs and
 * command line under QEMU (software emulation, SeaBIOS, the kernel's own decompression) in the
 * same run, as the reference. virtkit boots the host-decompressed vmlinux (decompression on the
 * host is allowed by the comparison's rules); the command line is the same for both.
 */
import { readFileSync } from "node:fs";
import { findCachedGuest } from "../src/host/node/guest/build.js";
import { GUEST_PROMPT } from "../src/host/node/guest/initramfs.js";
import { haveQemu, runQemuGuest } from "../src/host/node/guest/qemu.js";
import { Machine } from "../src/machine/machine.js";
import type { BenchSuite } from "./harness.js";

const CMDLINE = "console=ttyS0 acpi=off pci=nomsi panic=-1";

export const suite: BenchSuite = {
  name: "boot",
  async run(report) {
    const g = findCachedGuest();
    if (!g) {
      console.error("bench boot: the default guest is not built (virtkit guest build); skipped");
      return;
    }
    let out = "";
    const marks: Record<string, { s: number; instr: number }> = {};
    const start = performance.now();
    const m = new Machine({
      memory: 256 * 1024 * 1024,
      kernel: new Uint8Array(readFileSync(g.kernel)),
      vmlinux: g.vmlinux ? new Uint8Array(readFileSync(g.vmlinux)) : undefined,
      initrd: new Uint8Array(readFileSync(g.initrd)),
      cmdline: CMDLINE,
      clock: "virtual",
      serial: {
        write: (b) => {
          out += Buffer.from(b).toString("latin1");
          const mark = (name: string, seen: boolean): void => {
            if (seen && !marks[name])
              marks[name] = { s: (performance.now() - start) / 1000, instr: m.cpu.retired };
          };
          mark("first-kernel-line", out.includes("Linux version"));
          mark("init", out.includes("Run /init as init process"));
          if (!marks.prompt && out.includes(GUEST_PROMPT)) {
            mark("prompt", true);
            m.requestStop({ kind: "stopped", detail: "prompt reached" });
          }
        },
      },
    });
    await m.run({ yieldToHost: () => new Promise((r) => setImmediate(r)) });
    for (const [name, v] of Object.entries(marks)) {
      report(`boot.virtkit.${name}`, v.s, "s");
      report(`boot.virtkit.${name}.instructions`, v.instr / 1e9, "G instructions");
    }
    const total = marks.prompt;
    if (total) report("boot.virtkit.mips", total.instr / total.s / 1e6, "MIPS");
    if (!haveQemu()) {
      console.error("bench boot: qemu-system-i386 is not installed: no reference figures");
      return;
    }
    const q = await runQemuGuest({
      kernel: g.kernel,
      initrd: g.initrd,
      append: CMDLINE,
      args: ["-cpu", "qemu32,-apic"],
      commands: ["poweroff -f"],
      timeoutMs: 120_000,
    });
    if (q.firstLineMs !== undefined) report("boot.qemu-tcg.first-kernel-line", q.firstLineMs / 1000, "s");
    if (q.promptMs !== undefined) report("boot.qemu-tcg.prompt", q.promptMs / 1000, "s");
    if (total && q.promptMs !== undefined) {
      report(
        "boot.prompt.virtkit-vs-qemu-tcg",
        total.s / (q.promptMs / 1000),
        "x (time ratio, lower is better)",
      );
    }
    if (q.promptMs === undefined)
      console.error(`bench boot: QEMU did not reach the prompt (timed out: ${q.timedOut})`);
  },
};
