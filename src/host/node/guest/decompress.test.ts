import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { HDR, LOADFLAGS } from "../../../machine/boot/setup-header.js";
import { parseVmlinux } from "../../../machine/boot/vmlinux.js";
import { findCachedGuest } from "./build.js";
import { decompressKernel } from "./decompress.js";

/** A minimal i386 ELF executable: one PT_LOAD at 16 MiB holding `ret`. */
function tinyElf(): Uint8Array {
  const out = new Uint8Array(0x60);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  dv.setUint16(0x10, 2, true);
  dv.setUint16(0x12, 3, true);
  dv.setUint32(0x18, 0x1000000, true);
  dv.setUint32(0x1c, 0x34, true);
  dv.setUint16(0x2a, 0x20, true);
  dv.setUint16(0x2c, 1, true);
  dv.setUint32(0x34, 1, true);
  dv.setUint32(0x38, 0x54, true);
  dv.setUint32(0x40, 0x1000000, true);
  dv.setUint32(0x44, 1, true);
  dv.setUint32(0x48, 1, true);
  dv.setUint32(0x4c, 5, true);
  out[0x54] = 0xc3;
  return out;
}

/** A bzImage whose payload is `payload` followed by the 4-byte size the kernel's build appends. */
function bzImageWith(payload: Uint8Array, rawSize: number): Uint8Array {
  const kernelLen = (0x20 + payload.length + 4 + 15) & ~15;
  const img = new Uint8Array(5 * 512 + kernelLen);
  const dv = new DataView(img.buffer);
  img[HDR.setup_sects] = 4;
  dv.setUint32(HDR.syssize, kernelLen / 16, true);
  dv.setUint16(HDR.boot_flag, 0xaa55, true);
  img[0x201] = 0x6a;
  dv.setUint32(HDR.header, 0x53726448, true);
  dv.setUint16(HDR.version, 0x020f, true);
  img[HDR.loadflags] = LOADFLAGS.LOADED_HIGH;
  dv.setUint32(HDR.code32_start, 0x100000, true);
  dv.setUint32(HDR.kernel_alignment, 0x1000000, true);
  img[HDR.relocatable_kernel] = 1;
  dv.setUint32(HDR.cmdline_size, 255, true);
  dv.setUint32(HDR.payload_offset, 0x20, true);
  dv.setUint32(HDR.payload_length, payload.length + 4, true);
  img.set(payload, 5 * 512 + 0x20);
  dv.setUint32(5 * 512 + 0x20 + payload.length, rawSize, true);
  return img;
}

describe("decompressKernel", () => {
  it("decompresses a gzip payload with its appended size", () => {
    const elf = tinyElf();
    const out = decompressKernel(bzImageWith(gzipSync(elf), elf.length));
    expect(Array.from(out)).toEqual(Array.from(elf));
    expect(parseVmlinux(out).entry).toBe(0x1000000);
  });

  it("refuses a payload that does not decompress to an i386 kernel", () => {
    expect(() => decompressKernel(bzImageWith(gzipSync(new Uint8Array(100)), 100))).toThrow(/no ELF magic/);
  });

  it("decompresses Debian's xz payload to the cached vmlinux (when cached)", (ctx) => {
    const guest = findCachedGuest();
    if (!guest?.vmlinux) return ctx.skip("the default guest (with vmlinux) is not cached");
    const out = decompressKernel(readFileSync(guest.kernel));
    expect(out.length).toBe(guest.manifest.vmlinuxBytes);
    const v = parseVmlinux(out);
    expect(v.entry).toBe(0x1000000);
    expect(v.start).toBe(0x1000000);
  });
});
