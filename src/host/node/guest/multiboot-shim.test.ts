import { describe, expect, it } from "vitest";
import { FlatMemory } from "../../../common/memory.js";
import { DEFAULT_BOOT_LAYOUT, bootGdt } from "../../../machine/boot/linux.js";
import type { BootSegment, BootState } from "../../../machine/boot/linux.js";
import { parseSetupHeader } from "../../../machine/boot/setup-header.js";
import { MULTIBOOT_MAGIC, buildMultibootShim, chunksFromWrites } from "./multiboot-shim.js";

function seg(selector: number): BootSegment {
  return { selector, base: 0, limit: 0xffffffff, access: 0x93, flags: 0xc };
}

function state(): BootState {
  const hdr = new Uint8Array(0x3000);
  const dv = new DataView(hdr.buffer);
  dv.setUint16(0x1fe, 0xaa55, true);
  hdr[0x201] = 0x6a;
  dv.setUint32(0x202, 0x53726448, true);
  dv.setUint16(0x206, 0x020f, true);
  hdr[0x1f1] = 4;
  dv.setUint32(0x1f4, 0x10, true);
  hdr[0x211] = 1;
  return {
    eip: 0x100000,
    esi: 0x7000,
    esp: 0x7000,
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
    ebp: 0,
    edi: 0,
    eflags: 2,
    cr0: 1,
    cs: { ...seg(0x10), access: 0x9b },
    ds: seg(0x18),
    es: seg(0x18),
    ss: seg(0x18),
    fs: seg(0x18),
    gs: seg(0x18),
    gdt: { base: DEFAULT_BOOT_LAYOUT.gdt, limit: 31, bytes: bootGdt() },
    idt: { base: 0, limit: 0 },
    zeroPage: 0x7000,
    cmdline: { addr: 0x20000, length: 0 },
    kernel: { addr: 0x100000, size: 0x100, reservedEnd: 0x200000, decompressed: false },
    initrd: undefined,
    header: parseSetupHeader(hdr),
  };
}

describe("multiboot shim", () => {
  it("merges recorded writes into disjoint chunks holding the current bytes", () => {
    const mem = new FlatMemory(0x10000);
    mem.fill(0x100, 0x20, 1);
    mem.fill(0x200, 0x10, 2);
    const chunks = chunksFromWrites(mem, [
      { kind: "write", addr: 0x100, len: 0x10 },
      { kind: "write", addr: 0x108, len: 0x18 },
      { kind: "read", addr: 0x300, len: 4 },
      { kind: "write", addr: 0x200, len: 0x10 },
      { kind: "write", addr: 0x210, len: 0 },
    ]);
    expect(chunks.map((c) => [c.addr, c.bytes.length])).toEqual([
      [0x100, 0x20],
      [0x200, 0x10],
    ]);
    expect(chunks[1]!.bytes.every((b) => b === 2)).toBe(true);
  });

  it("writes a valid Multiboot header and carries every chunk", () => {
    const chunks = [
      { addr: 0x500, bytes: bootGdt() },
      { addr: 0x100000, bytes: Uint8Array.of(1, 2, 3) },
    ];
    const base = 0x800000;
    const img = buildMultibootShim(chunks, state(), base);
    const dv = new DataView(img.buffer);
    expect(dv.getUint32(0, true)).toBe(MULTIBOOT_MAGIC);
    expect((dv.getUint32(0, true) + dv.getUint32(4, true) + dv.getUint32(8, true)) >>> 0).toBe(0);
    expect(dv.getUint32(12, true)).toBe(base); // header_addr
    expect(dv.getUint32(16, true)).toBe(base); // load_addr
    expect(dv.getUint32(20, true)).toBe(base + img.length); // load_end_addr
    expect(dv.getUint32(28, true)).toBe(base + 0x40); // entry
    // lgdt pseudo-descriptor.
    expect(dv.getUint16(0x20, true)).toBe(31);
    expect(dv.getUint32(0x22, true)).toBe(0x500);
    // The first copy: mov esi, src; mov edi, 0x500; mov ecx, 32; rep movsb.
    expect(img[0x40]).toBe(0xfa);
    expect(img[0x42]).toBe(0xbe);
    const src = dv.getUint32(0x43, true) - base;
    expect(img.subarray(src, src + 32)).toEqual(bootGdt());
    expect(img[0x47]).toBe(0xbf);
    expect(dv.getUint32(0x48, true)).toBe(0x500);
    expect(dv.getUint32(0x4d, true)).toBe(32);
    // Ends with ret.
    expect(img.includes(0xc3)).toBe(true);
  });

  it("refuses a base that overlaps a chunk", () => {
    expect(() =>
      buildMultibootShim([{ addr: 0x800010, bytes: new Uint8Array(4) }], state(), 0x800000),
    ).toThrow(/overlaps/);
  });
});
