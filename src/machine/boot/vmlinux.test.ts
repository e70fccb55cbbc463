import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FlatMemory, RecordingMemory } from "../../common/memory.js";
import { loadLinux } from "./linux.js";
import { BootImageError, HDR, LOADFLAGS, parseSetupHeader } from "./setup-header.js";
import { bzImagePayload, parseVmlinux } from "./vmlinux.js";
import { defaultE820 } from "./zero-page.js";

interface Seg {
  paddr: number;
  data: Uint8Array;
  memsz: number;
  flags: number;
}

/** A 32-bit i386 ELF executable with the given PT_LOAD segments. */
function elfExec(
  entry: number,
  segs: Seg[],
  o: { machine?: number; cls?: number; type?: number } = {},
): Uint8Array {
  const phoff = 0x34;
  let off = phoff + segs.length * 0x20;
  const offs = segs.map((s) => {
    const at = off;
    off += s.data.length;
    return at;
  });
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, o.cls ?? 1, 1, 1]);
  dv.setUint16(0x10, o.type ?? 2, true);
  dv.setUint16(0x12, o.machine ?? 3, true);
  dv.setUint32(0x18, entry, true);
  dv.setUint32(0x1c, phoff, true);
  dv.setUint16(0x2a, 0x20, true);
  dv.setUint16(0x2c, segs.length, true);
  segs.forEach((s, i) => {
    const p = phoff + i * 0x20;
    dv.setUint32(p, 1, true);
    dv.setUint32(p + 4, offs[i]!, true);
    dv.setUint32(p + 8, 0xc0000000 + s.paddr, true);
    dv.setUint32(p + 12, s.paddr, true);
    dv.setUint32(p + 16, s.data.length, true);
    dv.setUint32(p + 20, s.memsz, true);
    dv.setUint32(p + 24, s.flags, true);
    out.set(s.data, offs[i]!);
  });
  return out;
}

function bzImage(): Uint8Array {
  const img = new Uint8Array(5 * 512 + 0x1000);
  const dv = new DataView(img.buffer);
  img[HDR.setup_sects] = 4;
  dv.setUint32(HDR.syssize, 0x100, true);
  dv.setUint16(HDR.boot_flag, 0xaa55, true);
  img[0x201] = 0x6a;
  dv.setUint32(HDR.header, 0x53726448, true);
  dv.setUint16(HDR.version, 0x020f, true);
  img[HDR.loadflags] = LOADFLAGS.LOADED_HIGH;
  dv.setUint32(HDR.code32_start, 0x100000, true);
  dv.setUint32(HDR.initrd_addr_max, 0x7fffffff, true);
  dv.setUint32(HDR.kernel_alignment, 0x1000000, true);
  img[HDR.relocatable_kernel] = 1;
  dv.setUint32(HDR.cmdline_size, 0x7ff, true);
  dv.setUint32(HDR.payload_offset, 0x10, true);
  dv.setUint32(HDR.payload_length, 0x20, true);
  dv.setUint32(HDR.pref_address, 0x1000000, true);
  dv.setUint32(HDR.init_size, 0x800000, true);
  img.set([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 5 * 512 + 0x10);
  return img;
}

const MiB = 1024 * 1024;
const text = Uint8Array.from({ length: 0x3000 }, (_, i) => (i * 5 + 1) & 0xff);
const data = Uint8Array.from({ length: 0x800 }, (_, i) => (i * 3 + 7) & 0xff);
const goodElf = (): Uint8Array =>
  elfExec(0x1000000, [
    { paddr: 0x1000000, data: text, memsz: text.length, flags: 5 },
    { paddr: 0x1004000, data, memsz: 0x2000, flags: 6 },
  ]);

describe("vmlinux", () => {
  it("parses the PT_LOAD segments and the physical entry", () => {
    const v = parseVmlinux(goodElf());
    expect(v.entry).toBe(0x1000000);
    expect(v.segments.map((s) => [s.paddr, s.filesz, s.memsz, s.executable])).toEqual([
      [0x1000000, 0x3000, 0x3000, true],
      [0x1004000, 0x800, 0x2000, false],
    ]);
    expect([v.start, v.end]).toEqual([0x1000000, 0x1006000]);
  });

  it("refuses what is not a loadable 32-bit i386 executable", () => {
    const seg = [{ paddr: 0x1000000, data: text, memsz: text.length, flags: 5 }];
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(10), /too short/],
      [new Uint8Array(0x40), /no ELF magic/],
      [elfExec(0x1000000, seg, { cls: 2 }), /not 32-bit/],
      [elfExec(0x1000000, seg, { machine: 62 }), /not i386/],
      [elfExec(0x1000000, seg, { type: 1 }), /not an executable/],
      [elfExec(0x2000000, seg), /entry point 0x2000000 is not inside an executable segment/],
      [elfExec(0x1000000, [{ paddr: 0x1000000, data: text, memsz: 0x10, flags: 5 }]), /filesz/],
      [
        elfExec(0x1000000, [
          { paddr: 0x1000000, data: text, memsz: text.length, flags: 5 },
          { paddr: 0x1001000, data, memsz: data.length, flags: 6 },
        ]),
        /overlap/,
      ],
      [elfExec(0x1000000, []), /program headers missing/],
      [goodElf().subarray(0, 0x100), /past the end/],
    ];
    for (const [bytes, msg] of cases) {
      expect(() => parseVmlinux(bytes)).toThrow(BootImageError);
      expect(() => parseVmlinux(bytes)).toThrow(msg);
    }
  });

  it("never throws anything but BootImageError on mutated input", () => {
    const base = goodElf();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(0x80), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        (muts) => {
          const b = base.slice();
          for (const [p, v] of muts) b[p] = v;
          try {
            parseVmlinux(b);
          } catch (e) {
            expect(e).toBeInstanceOf(BootImageError);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("gives the bzImage's compressed payload", () => {
    const img = bzImage();
    const p = bzImagePayload(img, parseSetupHeader(img));
    expect(p.length).toBe(0x20);
    expect(Array.from(p.subarray(0, 2))).toEqual([0xfd, 0x37]);
  });

  it("loadLinux with vmlinux: segments at their physical addresses, bss zeroed, entry = e_entry", () => {
    const mem = new RecordingMemory(new FlatMemory(64 * MiB));
    mem.fill(0x1004800, 0x1800, 0xee); // stale bytes where the bss goes
    const st = loadLinux(mem, {
      kernel: bzImage(),
      vmlinux: goodElf(),
      initrd: new Uint8Array(4096).fill(9),
      cmdline: "console=ttyS0",
      e820: defaultE820(mem.size),
    });
    expect(st.eip).toBe(0x1000000);
    expect(st.kernel).toEqual({ addr: 0x1000000, size: 0x6000, reservedEnd: 0x1800000, decompressed: true });
    expect(mem.subarray(0x1000000, text.length)).toEqual(text);
    expect(mem.subarray(0x1004000, data.length)).toEqual(data);
    expect(Array.from(mem.subarray(0x1004800, 0x1800)).every((b) => b === 0)).toBe(true);
    // Nothing written at 1 MiB: the compressed kernel is not loaded.
    expect(mem.accesses.some((a) => a.kind === "write" && a.addr === 0x100000)).toBe(false);
    expect(st.initrd!.addr).toBeGreaterThanOrEqual(0x1800000);
    expect(mem.readU32(st.zeroPage + HDR.ramdisk_image)).toBe(st.initrd!.addr);
    expect(mem.outOfRange()).toEqual([]);
  });

  it("loadLinux with vmlinux refuses a kernel below 1 MiB or outside RAM", () => {
    const low = elfExec(0x80000, [{ paddr: 0x80000, data: text, memsz: text.length, flags: 5 }]);
    const mem = new FlatMemory(64 * MiB);
    const e820 = defaultE820(mem.size);
    expect(() => loadLinux(mem, { kernel: bzImage(), vmlinux: low, cmdline: "", e820 })).toThrow(
      /below 1 MiB/,
    );
    const small = new FlatMemory(20 * MiB);
    expect(() =>
      loadLinux(small, { kernel: bzImage(), vmlinux: goodElf(), cmdline: "", e820: defaultE820(small.size) }),
    ).toThrow(/does not fit in RAM/);
  });
});
