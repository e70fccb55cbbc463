import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, readCpio } from "../../../machine/boot/cpio.js";
import { GUEST_PROMPT, GUEST_READY_MARKER, buildGuestInitramfs, initScript } from "./initramfs.js";
import type { GuestModuleFile } from "./initramfs.js";

const text = new TextDecoder();

const modules: GuestModuleFile[] = [
  { name: "virtio", path: "kernel/drivers/virtio/virtio.ko", data: Uint8Array.of(1) },
  { name: "virtio_ring", path: "kernel/drivers/virtio/virtio_ring.ko", data: Uint8Array.of(2) },
  { name: "virtio_rng", path: "kernel/drivers/char/hw_random/virtio-rng.ko", data: Uint8Array.of(3, 3) },
];

describe("default guest initramfs", () => {
  it("holds busybox, /bin/sh, device nodes, the modules under /lib/modules/RELEASE and modules.dep", () => {
    const cpio = buildGuestInitramfs({
      kernelRelease: "6.1.0-50-686",
      busybox: Uint8Array.of(0x7f, 0x45, 0x4c, 0x46),
      modules,
      modulesDep: "kernel/drivers/virtio/virtio.ko:\n",
      extra: (w) => w.file("/root/hello.txt", "hi"),
    });
    const entries = readCpio(cpio);
    const get = (n: string) => entries.find((e) => e.name === n);
    expect(get("init")!.mode).toBe(S_IFREG | 0o755);
    expect(get("bin/busybox")!.mode).toBe(S_IFREG | 0o755);
    expect(get("bin/sh")!.mode & S_IFMT).toBe(S_IFLNK);
    expect(text.decode(get("bin/sh")!.data)).toBe("busybox");
    expect(get("dev/console")!.mode & S_IFMT).toBe(S_IFCHR);
    expect([get("dev/console")!.rdevmajor, get("dev/console")!.rdevminor]).toEqual([5, 1]);
    expect(get("tmp")!.mode).toBe(S_IFDIR | 0o1777);
    for (const m of modules) {
      expect(get(`lib/modules/6.1.0-50-686/${m.path}`)!.data).toEqual(m.data);
    }
    expect(text.decode(get("lib/modules/6.1.0-50-686/modules.dep")!.data)).toContain("virtio.ko:");
    expect(text.decode(get("etc/profile")!.data)).toContain(`PS1='${GUEST_PROMPT}'`);
    expect(text.decode(get("root/hello.txt")!.data)).toBe("hi");
    // Every parent directory precedes its children.
    const seen = new Set<string>();
    for (const e of entries) {
      const parent = e.name.includes("/") ? e.name.slice(0, e.name.lastIndexOf("/")) : undefined;
      if (parent) expect(seen.has(parent), `${parent} before ${e.name}`).toBe(true);
      seen.add(e.name);
    }
  });

  it("has an /init that loads the modules in order, prints the marker and starts busybox init", () => {
    const s = initScript("6.1.0-50-686", modules);
    expect(s.startsWith("#!/bin/sh\n")).toBe(true);
    const order = modules.map((m) => s.indexOf(`'${m.path}'`));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(s).toContain('insmod "/lib/modules/6.1.0-50-686/$m"');
    expect(s).toContain("mount -t devtmpfs devtmpfs /dev");
    expect(s).toContain(GUEST_READY_MARKER);
    expect(s).toContain("$con::respawn:-/bin/sh");
    expect(s.trimEnd().endsWith("exec /sbin/init")).toBe(true);
    // The host's sh parses it (syntax only).
    const r = spawnSync("sh", ["-n"], { input: s, encoding: "utf8" });
    if (!r.error) expect(r.status, r.stderr).toBe(0);
  });

  it("picks the console from the last console= argument", () => {
    const s = initScript("r", []);
    // Run the console-selection part of the script on a fake /proc/cmdline.
    const start = s.indexOf("con=console");
    const end = s.indexOf('[ -c "/dev/$con" ]');
    const part = s.slice(start, end).replace("$(cat /proc/cmdline)", "$CMDLINE");
    const pick = (cmdline: string) =>
      spawnSync("sh", ["-c", `${part}\necho "$con"`], {
        env: { CMDLINE: cmdline },
        encoding: "utf8",
      }).stdout.trim();
    if (spawnSync("sh", ["-c", "true"]).error) return;
    expect(pick("console=ttyS0 acpi=off")).toBe("ttyS0");
    expect(pick("console=ttyS0,115200n8 console=hvc0 quiet")).toBe("hvc0");
    expect(pick("quiet")).toBe("console");
  });
});
