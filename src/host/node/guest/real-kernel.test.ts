/**
 * The boot loader and the initramfs against the real default guest (Debian 12's 686 kernel),
 * when it is cached; skipped with a message otherwise.
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../../../common/memory.js";
import { S_IFMT, S_IFREG, readCpio } from "../../../machine/boot/cpio.js";
import { BOOT_CS, BOOT_DS, loadLinux } from "../../../machine/boot/linux.js";
import { HDR, LOADFLAGS, parseSetupHeader } from "../../../machine/boot/setup-header.js";
import { BP, defaultE820, readE820 } from "../../../machine/boot/zero-page.js";
import { findCachedGuest } from "./build.js";
import { readModInfo } from "./modinfo.js";

const guest = findCachedGuest();
const SKIP = "the default guest is not cached (run buildDefaultGuest / virtkit guest build)";

describe("the real default guest", () => {
  it("has a bzImage whose setup header parses: protocol 2.15, xz payload, relocatable at 16 MiB", (ctx) => {
    if (!guest) return ctx.skip(SKIP);
    const h = parseSetupHeader(readFileSync(guest.kernel));
    expect(h.version).toBeGreaterThanOrEqual(0x020f);
    expect(h.kernelVersion?.startsWith(guest.version)).toBe(true);
    expect(h.payloadCompression).toBe("xz");
    expect(h.code32_start).toBe(0x100000);
    expect(h.relocatable_kernel).toBe(true);
    expect(h.pref_address).toBe(0x1000000);
    expect(h.kernel_alignment).toBe(0x1000000);
    expect(h.init_size).toBeGreaterThan(h.kernelSize);
    expect(h.cmdline_size).toBeGreaterThanOrEqual(255);
    expect(h.loadflags & LOADFLAGS.LOADED_HIGH).toBe(LOADFLAGS.LOADED_HIGH);
  });

  it("loads into a 256 MiB machine with the initramfs at the top of RAM", (ctx) => {
    if (!guest) return ctx.skip(SKIP);
    const kernel = readFileSync(guest.kernel);
    const initrd = readFileSync(guest.initrd);
    const mem = new FlatMemory(256 * 1024 * 1024);
    const e820 = defaultE820(mem.size);
    const cmdline = "console=ttyS0 acpi=off pci=nomsi panic=-1";
    const st = loadLinux(mem, { kernel, initrd, cmdline, e820 });
    const zp = st.zeroPage;
    expect(st.eip).toBe(0x100000);
    expect(st.esi).toBe(zp);
    expect(st.cs.selector).toBe(BOOT_CS);
    expect(st.ds.selector).toBe(BOOT_DS);
    expect(mem.readU32(zp + HDR.header)).toBe(0x53726448);
    expect(mem.readU8(zp + HDR.type_of_loader)).toBe(0xff);
    expect(mem.readU8(zp + HDR.loadflags) & LOADFLAGS.CAN_USE_HEAP).toBe(LOADFLAGS.CAN_USE_HEAP);
    const rd = mem.readU32(zp + HDR.ramdisk_image);
    expect(mem.readU32(zp + HDR.ramdisk_size)).toBe(initrd.length);
    expect(rd % 4096).toBe(0);
    expect(rd).toBeGreaterThanOrEqual(0x1000000 + st.header.init_size);
    expect(rd + initrd.length).toBeLessThanOrEqual(mem.size);
    expect(mem.subarray(rd, 2)).toEqual(Uint8Array.of(0x1f, 0x8b));
    const cp = mem.readU32(zp + HDR.cmd_line_ptr);
    expect(new TextDecoder().decode(mem.subarray(cp, cmdline.length))).toBe(cmdline);
    expect(readE820(mem, zp)).toEqual(e820);
    expect(mem.readU8(zp + BP.orig_video_isVGA)).toBe(0);
    // The protected-mode code starts with the kernel's own bytes.
    const h = st.header;
    expect(Array.from(mem.subarray(0x100000, 64))).toEqual(
      Array.from(kernel.subarray(h.kernelOffset, h.kernelOffset + 64)),
    );
  });

  it("refuses a 32 MiB machine: the kernel needs init_size from 16 MiB", (ctx) => {
    if (!guest) return ctx.skip(SKIP);
    const mem = new FlatMemory(32 * 1024 * 1024);
    expect(() =>
      loadLinux(mem, { kernel: readFileSync(guest.kernel), cmdline: "", e820: defaultE820(mem.size) }),
    ).toThrow(/does not fit in RAM/);
  });

  it("has an initramfs holding busybox, /init and every module in dependency order", (ctx) => {
    if (!guest) return ctx.skip(SKIP);
    const entries = readCpio(gunzipSync(readFileSync(guest.initrd)));
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(byName.get("init")!.mode & S_IFMT).toBe(S_IFREG);
    expect(byName.get("bin/busybox")!.data.length).toBeGreaterThan(500_000);
    const init = new TextDecoder().decode(byName.get("init")!.data);
    const base = `lib/modules/${guest.version}/`;
    const kos = entries.filter((e) => e.name.startsWith(base) && e.name.endsWith(".ko"));
    const infos = kos.map((e) => ({ path: e.name.slice(base.length), info: readModInfo(e.data) }));
    expect(infos.map((i) => i.info.name).sort()).toEqual([...guest.modules].sort());
    const pos = new Map(infos.map((i) => [i.info.name, init.indexOf(`'${i.path}'`)]));
    for (const { info } of infos) {
      expect(pos.get(info.name)).toBeGreaterThan(0);
      expect(info.vermagic?.startsWith(`${guest.version} `)).toBe(true);
      for (const d of info.depends)
        expect(pos.get(d)!, `${d} before ${info.name}`).toBeLessThan(pos.get(info.name)!);
    }
  });
});
