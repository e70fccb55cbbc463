import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory, RecordingMemory } from "../../common/memory.js";
import { BOOT_CS, BOOT_DS, DEFAULT_BOOT_LAYOUT, bootGdt, loadLinux } from "./linux.js";
import { BootImageError, HDR, LOADFLAGS, parseSetupHeader } from "./setup-header.js";
import { fakeBzImage } from "./fake-bzimage.js";
import { BP, E820Type, defaultE820, readE820 } from "./zero-page.js";

const MiB = 1024 * 1024;

function expectBootError(fn: () => unknown, problem: string, text: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BootImageError);
  expect((err as BootImageError).problem).toBe(problem);
  expect((err as Error).message).toMatch(text);
}

describe("parseSetupHeader", () => {
  it("reads the fields of a bzImage and applies setup_sects 0 => 4", () => {
    const h = parseSetupHeader(fakeBzImage({ setupSects: 0 }));
    expect(h.setup_sects).toBe(4);
    expect(h.kernelOffset).toBe(5 * 512);
    expect(h.version).toBe(0x020f);
    expect(h.code32_start).toBe(0x100000);
    expect(h.initrd_addr_max).toBe(0x7fffffff);
    expect(h.kernel_alignment).toBe(0x200000);
    expect(h.relocatable_kernel).toBe(true);
    expect(h.min_alignment).toBe(13);
    expect(h.xloadflags).toBe(4);
    expect(h.cmdline_size).toBe(0x7ff);
    expect(h.pref_address).toBe(0x1000000);
    expect(h.init_size).toBe(0x400000);
    expect(h.payload_offset).toBe(0x40);
    expect(h.payloadCompression).toBe("xz");
    expect(h.kernelVersion).toBe("6.1.0-test (fake)");
    expect(h.headerEnd).toBe(0x26c);
  });

  it("tells payload compressions by magic", () => {
    const cases: Array<[number[], string]> = [
      [[0x1f, 0x8b], "gzip"],
      [[0x42, 0x5a], "bzip2"],
      [[0x5d, 0x00], "lzma"],
      [[0x02, 0x21], "lz4"],
      [[0x28, 0xb5], "zstd"],
      [[0x7f, 0x45, 0x4c, 0x46], "none"],
      [[0x12, 0x34], "unknown"],
    ];
    for (const [magic, name] of cases) {
      expect(parseSetupHeader(fakeBzImage({ payload: Uint8Array.from(magic) })).payloadCompression).toBe(
        name,
      );
    }
  });

  it("refuses a file that is not a bzImage", () => {
    expectBootError(() => parseSetupHeader(new Uint8Array(4096)), "NOT_BZIMAGE", /HdrS/);
    const noFlag = fakeBzImage();
    noFlag[HDR.boot_flag] = 0;
    expectBootError(() => parseSetupHeader(noFlag), "NOT_BZIMAGE", /boot_flag/);
    expectBootError(() => parseSetupHeader(fakeBzImage({ loadflags: 0 })), "NOT_BZIMAGE", /zImage/);
    const elf = new Uint8Array(8192);
    elf.set([0x7f, 0x45, 0x4c, 0x46]);
    expectBootError(() => parseSetupHeader(elf), "NOT_BZIMAGE", /not a Linux bzImage/);
  });

  it("refuses an old protocol", () => {
    expectBootError(() => parseSetupHeader(fakeBzImage({ version: 0x0205 })), "PROTOCOL_TOO_OLD", /2\.05/);
  });

  it("refuses truncated files: before the header, in the setup, in the kernel", () => {
    const img = fakeBzImage();
    expectBootError(() => parseSetupHeader(img.subarray(0, 0x100)), "TRUNCATED", /too short/);
    expectBootError(() => parseSetupHeader(img.subarray(0, 0x240)), "TRUNCATED", /setup header runs/);
    expectBootError(() => parseSetupHeader(img.subarray(0, img.length - 1)), "TRUNCATED", /truncated/);
  });

  it("refuses a payload running past the kernel and a bad alignment", () => {
    const img = fakeBzImage();
    new DataView(img.buffer).setUint32(HDR.payload_length, 0x100000, true);
    expectBootError(() => parseSetupHeader(img), "BAD_HEADER", /payload/);
    expectBootError(
      () => parseSetupHeader(fakeBzImage({ kernelAlignment: 0x3000 })),
      "BAD_HEADER",
      /power of two/,
    );
  });

  it("never throws anything but BootImageError on arbitrary or mutated input", () => {
    const base = fakeBzImage();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2048 }),
          fc
            .array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 })
            .map((muts) => {
              const b = base.slice();
              for (const [i, v] of muts) b[0x1f0 + (i % 0x80)] = v;
              return b;
            }),
        ),
        (bytes) => {
          try {
            parseSetupHeader(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(BootImageError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("loadLinux", () => {
  const cmdline = "console=ttyS0 acpi=off pci=nomsi panic=-1";

  it("loads kernel, initrd and command line and fills the zero page", () => {
    const mem = new FlatMemory(64 * MiB);
    const kernel = fakeBzImage();
    const initrd = new Uint8Array(100_000).map((_, i) => (i * 13) & 0xff);
    const e820 = defaultE820(mem.size);
    const st = loadLinux(mem, { kernel, initrd, cmdline, e820, acpiRsdp: 0xf0000 });
    const hdr = st.header;
    const zp = st.zeroPage;

    // Entry state (boot.rst, 32-bit boot protocol).
    expect(st.eip).toBe(0x100000);
    expect(st.esi).toBe(DEFAULT_BOOT_LAYOUT.zeroPage);
    expect([st.ebp, st.edi, st.ebx]).toEqual([0, 0, 0]);
    expect(st.eflags & 0x200).toBe(0);
    expect(st.cr0 & 1).toBe(1);
    expect(st.cr0 & 0x8000_0000).toBe(0);
    expect(st.cs.selector).toBe(BOOT_CS);
    for (const s of [st.ds, st.es, st.ss]) expect(s.selector).toBe(BOOT_DS);
    for (const s of [st.cs, st.ds]) {
      expect(s.base).toBe(0);
      expect(s.limit).toBe(0xffff_ffff);
    }
    const gdt = new Uint8Array(32);
    mem.readInto(st.gdt.base, gdt);
    expect(gdt).toEqual(bootGdt());
    expect(st.gdt.limit).toBe(31);
    // __BOOT_CS: base 0, limit 0xFFFFF pages, code execute/read; __BOOT_DS: data read/write.
    expect(Array.from(gdt.subarray(0x10, 0x18))).toEqual([0xff, 0xff, 0, 0, 0, 0x9b, 0xcf, 0]);
    expect(Array.from(gdt.subarray(0x18, 0x20))).toEqual([0xff, 0xff, 0, 0, 0, 0x93, 0xcf, 0]);

    // The protected-mode kernel is at 1 MiB, byte for byte.
    expect(mem.subarray(0x100000, hdr.kernelSize)).toEqual(kernel.subarray(hdr.kernelOffset));

    // Zero page: the setup header copied in, then the loader's fields.
    expect(mem.subarray(zp + 0x1f1, HDR.vid_mode - 0x1f1)).toEqual(kernel.subarray(0x1f1, HDR.vid_mode));
    expect(mem.subarray(zp + HDR.root_dev, 0x210 - HDR.root_dev)).toEqual(
      kernel.subarray(HDR.root_dev, 0x210),
    );
    expect(mem.subarray(zp + HDR.cmdline_size, 0x26c - HDR.cmdline_size)).toEqual(
      kernel.subarray(HDR.cmdline_size, 0x26c),
    );
    expect(mem.readU32(zp + HDR.header)).toBe(0x53726448);
    expect(mem.readU16(zp + HDR.version)).toBe(0x020f);
    expect(mem.readU8(zp + HDR.type_of_loader)).toBe(0xff);
    expect(mem.readU8(zp + HDR.loadflags)).toBe(LOADFLAGS.LOADED_HIGH | LOADFLAGS.CAN_USE_HEAP);
    expect(mem.readU16(zp + HDR.heap_end_ptr)).toBe(0xde00);
    expect(mem.readU32(zp + HDR.code32_start)).toBe(0x100000);
    expect(mem.readU16(zp + HDR.vid_mode)).toBe(0xffff);
    expect(mem.readU32(zp + BP.acpi_rsdp_addr)).toBe(0xf0000);
    expect(mem.readU8(zp + BP.sentinel)).toBe(0);
    // screen_info all zero: no VGA.
    expect(Array.from(mem.subarray(zp, 0x40)).every((b) => b === 0)).toBe(true);

    // Command line.
    const cmdPtr = mem.readU32(zp + HDR.cmd_line_ptr);
    expect(cmdPtr).toBe(DEFAULT_BOOT_LAYOUT.cmdline);
    expect(new TextDecoder().decode(mem.subarray(cmdPtr, cmdline.length))).toBe(cmdline);
    expect(mem.readU8(cmdPtr + cmdline.length)).toBe(0);

    // Initrd: at the top of RAM, page aligned, above the kernel's init_size area.
    const rdAddr = mem.readU32(zp + HDR.ramdisk_image);
    const rdSize = mem.readU32(zp + HDR.ramdisk_size);
    expect(rdSize).toBe(initrd.length);
    expect(rdAddr % 4096).toBe(0);
    expect(rdAddr + rdSize).toBeLessThanOrEqual(mem.size);
    expect(mem.size - (rdAddr + rdSize)).toBeLessThan(4096);
    expect(rdAddr).toBeGreaterThanOrEqual(0x1000000 + 0x400000);
    expect(mem.subarray(rdAddr, rdSize)).toEqual(initrd);
    expect(st.initrd).toEqual({ addr: rdAddr, size: rdSize });

    // e820.
    expect(readE820(mem, zp)).toEqual(e820);
    expect(mem.readU32(zp + BP.alt_mem_k)).toBe((64 * MiB - MiB) / 1024);
  });

  it("places the initrd below initrd_addr_max and below the top of its RAM region", () => {
    const mem = new FlatMemory(128 * MiB);
    const kernel = fakeBzImage({ initrdAddrMax: 0x37ffffff >>> 4 }); // 0x037FFFFF ~ 56 MiB
    const initrd = new Uint8Array(5000);
    const st = loadLinux(mem, { kernel, initrd, cmdline: "", e820: defaultE820(mem.size) });
    expect(st.initrd!.addr + st.initrd!.size - 1).toBeLessThanOrEqual(0x037fffff);
    expect(st.initrd!.addr % 4096).toBe(0);

    const e820 = [
      { addr: 0, size: 0x9fc00, type: E820Type.RAM },
      { addr: 0x100000, size: 40 * MiB, type: E820Type.RAM },
      { addr: 41 * MiB, size: 10 * MiB, type: E820Type.RESERVED },
    ];
    const st2 = loadLinux(new FlatMemory(128 * MiB), { kernel: fakeBzImage(), initrd, cmdline: "", e820 });
    expect(st2.initrd!.addr + initrd.length).toBeLessThanOrEqual(41 * MiB);
  });

  it("leaves ramdisk fields zero without an initrd", () => {
    const mem = new FlatMemory(32 * MiB);
    const st = loadLinux(mem, { kernel: fakeBzImage(), cmdline: "quiet", e820: defaultE820(mem.size) });
    expect(st.initrd).toBeUndefined();
    expect(mem.readU32(st.zeroPage + HDR.ramdisk_image)).toBe(0);
    expect(mem.readU32(st.zeroPage + HDR.ramdisk_size)).toBe(0);
  });

  it("refuses a kernel that does not fit in RAM", () => {
    const mem = new FlatMemory(16 * MiB);
    // init_size from pref_address 16 MiB runs past a 16 MiB machine.
    expectBootError(
      () => loadLinux(mem, { kernel: fakeBzImage(), cmdline: "", e820: defaultE820(mem.size) }),
      "DOES_NOT_FIT",
      /does not fit in RAM/,
    );
    // Fits in memory, but the e820 map gives no RAM there.
    const big = new FlatMemory(64 * MiB);
    expectBootError(
      () => loadLinux(big, { kernel: fakeBzImage(), cmdline: "", e820: defaultE820(8 * MiB) }),
      "DOES_NOT_FIT",
      /no e820 RAM entry/,
    );
  });

  it("refuses an initrd that does not fit above the kernel", () => {
    const mem = new FlatMemory(24 * MiB);
    const kernel = fakeBzImage({ initSize: 0x600000 }); // kernel area ends at 22 MiB
    expectBootError(
      () =>
        loadLinux(mem, { kernel, initrd: new Uint8Array(3 * MiB), cmdline: "", e820: defaultE820(mem.size) }),
      "DOES_NOT_FIT",
      /initrd \(3145728 bytes\) does not fit/,
    );
  });

  it("refuses bad arguments before writing guest memory", () => {
    const mem = new RecordingMemory(new FlatMemory(64 * MiB));
    const kernel = fakeBzImage({ cmdlineSize: 16 });
    const e820 = defaultE820(mem.size);
    expectBootError(
      () => loadLinux(mem, { kernel, cmdline: "x".repeat(17), e820 }),
      "BAD_ARGUMENT",
      /at most 16/,
    );
    expectBootError(() => loadLinux(mem, { kernel, cmdline: "a\0b", e820 }), "BAD_ARGUMENT", /NUL/);
    expectBootError(() => loadLinux(mem, { kernel, cmdline: "", e820: [] }), "BAD_ARGUMENT", /empty/);
    expectBootError(
      () => loadLinux(mem, { kernel, cmdline: "", e820: Array.from({ length: 129 }, () => e820[0]!) }),
      "BAD_ARGUMENT",
      /128/,
    );
    expectBootError(
      () =>
        loadLinux(mem, {
          kernel,
          cmdline: "",
          e820: [
            { addr: 0, size: 2 * MiB, type: 1 },
            { addr: MiB, size: 2 * MiB, type: 1 },
          ],
        }),
      "BAD_ARGUMENT",
      /overlap/,
    );
    expectBootError(
      () => loadLinux(mem, { kernel, cmdline: "", e820, layout: { zeroPage: 0x9f000 } }),
      "BAD_ARGUMENT",
      /zeroPage/,
    );
    expectBootError(
      () => loadLinux(mem, { kernel, cmdline: "", e820, layout: { cmdline: 0x7100 } }),
      "BAD_ARGUMENT",
      /overlap/,
    );
    expectBootError(
      () => loadLinux(mem, { kernel, cmdline: "", e820, acpiRsdp: -1 }),
      "BAD_ARGUMENT",
      /acpiRsdp/,
    );
    expect(mem.accesses.filter((a) => a.kind === "write")).toEqual([]);
  });

  it("for any RAM size, initrd size and initrd_addr_max: loads consistently or refuses, never writes outside RAM", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 24 * MiB }),
        fc.integer({ min: 0x200000, max: 0x7fffffff }),
        fc.integer({ min: 0, max: 0x1000000 }),
        (ramMiB, initrdSize, initrdMax, initSize) => {
          const mem = new RecordingMemory(new FlatMemory(ramMiB * MiB));
          const kernel = fakeBzImage({ initrdAddrMax: initrdMax, initSize });
          const initrd = new Uint8Array(initrdSize);
          try {
            const st = loadLinux(mem, {
              kernel,
              initrd,
              cmdline: "console=ttyS0",
              e820: defaultE820(mem.size),
            });
            if (initrdSize > 0) {
              const rd = st.initrd!;
              expect(rd.addr).toBeGreaterThanOrEqual(st.kernel.reservedEnd);
              expect(rd.addr + rd.size).toBeLessThanOrEqual(Math.min(mem.size, initrdMax + 1));
              expect(rd.addr % 4096).toBe(0);
            }
            expect(st.kernel.reservedEnd).toBeLessThanOrEqual(mem.size);
          } catch (e) {
            expect(e).toBeInstanceOf(BootImageError);
          }
          expect(mem.outOfRange()).toEqual([]);
        },
      ),
      { numRuns: 120 },
    );
  });
});
