/**
 * A Linux x86 boot loader for the 32-bit boot protocol (Documentation/arch/x86/boot.rst,
 * "32-bit Boot Protocol"): loads a bzImage's protected-mode kernel, an optional initrd and the
 * command line into guest memory, builds the zero page and a GDT, and returns the CPU state to
 * enter the kernel with. No real-mode setup code runs; no firmware is needed.
 */
import { hex } from "../../common/errors.js";
import type { GuestMemory } from "../../common/memory.js";
import { BootImageError, BootImageProblem, HDR, LOADFLAGS, parseSetupHeader } from "./setup-header.js";
import type { SetupHeader } from "./setup-header.js";
import { parseVmlinux } from "./vmlinux.js";
import type { Vmlinux } from "./vmlinux.js";
import { BP, E820Type, ZERO_PAGE_SIZE, checkE820, writeE820 } from "./zero-page.js";
import type { E820Entry } from "./zero-page.js";

/** __BOOT_CS and __BOOT_DS, the selectors the 32-bit boot protocol requires. */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
/** type_of_loader for a loader without an assigned id. */
export const TYPE_OF_LOADER_UNDEFINED = 0xff;

/** Where the loader puts its structures in low memory (all below the EBDA at 0x9FC00). */
export interface BootLayout {
  /** The GDT (4 descriptors, 32 bytes). */
  gdt: number;
  /** The zero page (4 KiB). */
  zeroPage: number;
  /** The command line (cmdline_size + 1 bytes at most). */
  cmdline: number;
  /** Initial ESP: the top of a small stack the kernel does not need but may find useful. */
  stackTop: number;
}

export const DEFAULT_BOOT_LAYOUT: Readonly<BootLayout> = {
  gdt: 0x500,
  zeroPage: 0x7000,
  cmdline: 0x20000,
  stackTop: 0x7000,
};

/** Load address of a bzImage's protected-mode kernel. */
export const BZIMAGE_LOAD_ADDRESS = 0x100000;
/** The top of low memory usable for boot structures. */
const LOW_MEMORY_TOP = 0x9fc00;

export interface LinuxBootOptions {
  /** The bzImage file. */
  kernel: Uint8Array;
  /**
   * The bzImage's payload decompressed on the host (the vmlinux ELF). When given, its segments
   * are loaded at their physical addresses and the entry is its e_entry (the kernel proper's
   * startup_32) instead of the bzImage's own decompressor at code32_start.
   */
  vmlinux?: Uint8Array;
  /** The initial ramdisk (e.g. a gzip'ed newc cpio), if any. */
  initrd?: Uint8Array;
  /** The kernel command line (at most the header's cmdline_size bytes). */
  cmdline: string;
  /** The memory map the kernel will see. */
  e820: readonly E820Entry[];
  /** Physical address of the ACPI RSDP, written to boot_params.acpi_rsdp_addr. */
  acpiRsdp?: number;
  /** Where the GDT, zero page, command line and stack go (defaults: DEFAULT_BOOT_LAYOUT). */
  layout?: Partial<BootLayout>;
  /** Alignment of the initrd's address (default 4 KiB, a power of two). */
  initrdAlignment?: number;
}

/** A segment register's selector and the descriptor cache it loads. */
export interface BootSegment {
  selector: number;
  base: number;
  /** Limit in bytes (0xFFFFFFFF for a flat 4 GiB segment). */
  limit: number;
  /** The descriptor's access byte (P, DPL, S, type). */
  access: number;
  /** The descriptor's flags nibble (G, D/B, L, AVL). */
  flags: number;
}

/** The CPU state to enter the kernel with, and where everything was put. */
export interface BootState {
  eip: number;
  esi: number;
  esp: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
  ebp: number;
  edi: number;
  /** IF = 0 (interrupts disabled), reserved bit 1 set. */
  eflags: number;
  /** PE set, paging off. */
  cr0: number;
  cs: BootSegment;
  ds: BootSegment;
  es: BootSegment;
  ss: BootSegment;
  fs: BootSegment;
  gs: BootSegment;
  /** The GDT as loaded (already written to guest memory at `base`). */
  gdt: { base: number; limit: number; bytes: Uint8Array };
  idt: { base: number; limit: number };
  zeroPage: number;
  cmdline: { addr: number; length: number };
  /** Where the protected-mode kernel (or vmlinux) was loaded and how much memory it needs while starting. */
  kernel: { addr: number; size: number; reservedEnd: number; decompressed: boolean };
  initrd: { addr: number; size: number } | undefined;
  header: SetupHeader;
}

const FLAT_CODE_ACCESS = 0x9b; // present, DPL 0, code, execute/read, accessed
const FLAT_DATA_ACCESS = 0x93; // present, DPL 0, data, read/write, accessed
const FLAT_FLAGS = 0xc; // G = 1 (4 KiB granularity), D/B = 1 (32-bit)

/** One 8-byte segment descriptor. `limit` is the 20-bit limit field (in pages when G is set). */
export function encodeDescriptor(base: number, limit20: number, access: number, flags: number): Uint8Array {
  const d = new Uint8Array(8);
  d[0] = limit20 & 0xff;
  d[1] = (limit20 >>> 8) & 0xff;
  d[2] = base & 0xff;
  d[3] = (base >>> 8) & 0xff;
  d[4] = (base >>> 16) & 0xff;
  d[5] = access & 0xff;
  d[6] = ((flags & 0xf) << 4) | ((limit20 >>> 16) & 0xf);
  d[7] = (base >>> 24) & 0xff;
  return d;
}

/** The boot GDT: null, unused, __BOOT_CS (flat code), __BOOT_DS (flat data). */
export function bootGdt(): Uint8Array {
  const gdt = new Uint8Array(32);
  gdt.set(encodeDescriptor(0, 0xfffff, FLAT_CODE_ACCESS, FLAT_FLAGS), BOOT_CS);
  gdt.set(encodeDescriptor(0, 0xfffff, FLAT_DATA_ACCESS, FLAT_FLAGS), BOOT_DS);
  return gdt;
}

function flat(selector: number, access: number): BootSegment {
  return { selector, base: 0, limit: 0xffff_ffff, access, flags: FLAT_FLAGS };
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

function alignDown(v: number, a: number): number {
  return Math.floor(v / a) * a;
}

function checkLayout(l: BootLayout, cmdlineBytes: number, memSize: number): void {
  const regions: Array<[string, number, number]> = [
    ["gdt", l.gdt, 32],
    ["zeroPage", l.zeroPage, ZERO_PAGE_SIZE],
    ["cmdline", l.cmdline, cmdlineBytes],
  ];
  for (const [name, addr, len] of regions) {
    if (!Number.isInteger(addr) || addr < 0x500 || addr + len > LOW_MEMORY_TOP || addr + len > memSize) {
      throw new BootImageError(
        BootImageProblem.BAD_ARGUMENT,
        `boot layout: ${name} at 0x${hex(addr)} (+${len} bytes) must lie in low memory between 0x500 and 0x${hex(Math.min(LOW_MEMORY_TOP, memSize))}`,
      );
    }
  }
  for (let i = 0; i < regions.length; i++) {
    for (let j = i + 1; j < regions.length; j++) {
      const [an, a, al] = regions[i]!;
      const [bn, b, bl] = regions[j]!;
      if (a < b + bl && b < a + al) {
        throw new BootImageError(BootImageProblem.BAD_ARGUMENT, `boot layout: ${an} and ${bn} overlap`);
      }
    }
  }
  if (!Number.isInteger(l.stackTop) || l.stackTop < 0x1000 || l.stackTop > LOW_MEMORY_TOP) {
    throw new BootImageError(
      BootImageProblem.BAD_ARGUMENT,
      `boot layout: stackTop 0x${hex(l.stackTop)} must lie in low memory`,
    );
  }
}

/** The e820 RAM region that wholly contains [addr, end), if any. */
function ramRegionContaining(e820: readonly E820Entry[], addr: number, end: number): E820Entry | undefined {
  return e820.find((e) => e.type === E820Type.RAM && e.addr <= addr && end <= e.addr + e.size);
}

/**
 * Loads a bzImage (and initrd and command line) into `mem` for the 32-bit boot protocol and
 * returns the entry state. Refuses with BootImageError an image that is not a bzImage, is
 * truncated or does not fit in RAM, and arguments that cannot be honoured.
 */
export function loadLinux(mem: GuestMemory, opts: LinuxBootOptions): BootState {
  const image = opts.kernel;
  const hdr = parseSetupHeader(image);
  const layout: BootLayout = { ...DEFAULT_BOOT_LAYOUT, ...opts.layout };
  checkE820(opts.e820);

  const cmdlineBytes = new TextEncoder().encode(opts.cmdline);
  if (cmdlineBytes.includes(0)) {
    throw new BootImageError(BootImageProblem.BAD_ARGUMENT, "the kernel command line contains a NUL byte");
  }
  if (cmdlineBytes.length > hdr.cmdline_size) {
    throw new BootImageError(
      BootImageProblem.BAD_ARGUMENT,
      `the kernel command line is ${cmdlineBytes.length} bytes; this kernel accepts at most ${hdr.cmdline_size}`,
    );
  }
  checkLayout(layout, cmdlineBytes.length + 1, mem.size);
  if (
    opts.acpiRsdp !== undefined &&
    (!Number.isInteger(opts.acpiRsdp) || opts.acpiRsdp <= 0 || opts.acpiRsdp >= mem.size)
  ) {
    throw new BootImageError(
      BootImageProblem.BAD_ARGUMENT,
      `acpiRsdp ${opts.acpiRsdp} is not an address inside guest memory (0x${hex(mem.size)} bytes)`,
    );
  }

  // The protected-mode kernel goes where code32_start says (0x100000 for a bzImage).
  const loadAddr = hdr.code32_start === 0 ? BZIMAGE_LOAD_ADDRESS : hdr.code32_start;
  if (loadAddr < BZIMAGE_LOAD_ADDRESS) {
    throw new BootImageError(
      BootImageProblem.BAD_HEADER,
      `code32_start 0x${hex(loadAddr)} is below 1 MiB, where a bzImage cannot be loaded`,
    );
  }
  // While it decompresses and starts, the kernel uses init_size bytes from its runtime start:
  // align_up(load, kernel_alignment) when relocatable, but never below pref_address (the
  // kernel's LOAD_PHYSICAL_ADDR, which a 32-bit kernel moves itself up to).
  let runtimeStart = hdr.relocatable_kernel ? alignUp(loadAddr, hdr.kernel_alignment) : loadAddr;
  if (hdr.pref_address > runtimeStart) runtimeStart = hdr.pref_address;
  let reservedEnd = Math.max(loadAddr + hdr.kernelSize, runtimeStart + hdr.init_size);
  let vmlinux: Vmlinux | undefined;
  if (opts.vmlinux) {
    vmlinux = parseVmlinux(opts.vmlinux);
    if (vmlinux.start < BZIMAGE_LOAD_ADDRESS) {
      throw new BootImageError(
        BootImageProblem.BAD_ELF,
        `vmlinux: a segment starts at 0x${hex(vmlinux.start)}, below 1 MiB`,
      );
    }
    // The kernel proper runs where it was linked; init_size still counts from there.
    reservedEnd = Math.max(vmlinux.end, vmlinux.start + hdr.init_size);
  }
  const kernelStart = vmlinux ? vmlinux.start : loadAddr;
  if (reservedEnd > mem.size || !ramRegionContaining(opts.e820, kernelStart, reservedEnd)) {
    throw new BootImageError(
      BootImageProblem.DOES_NOT_FIT,
      `the kernel does not fit in RAM: it is loaded at 0x${hex(kernelStart)} and needs memory up to 0x${hex(reservedEnd)} (init_size 0x${hex(hdr.init_size)} from 0x${hex(vmlinux ? vmlinux.start : runtimeStart)}), but guest memory is 0x${hex(mem.size)} bytes${mem.size >= reservedEnd ? " and no e820 RAM entry covers that range" : ""}`,
    );
  }

  // The initrd goes as high as it may: below initrd_addr_max, below the end of its RAM
  // region and of guest memory, aligned, and above everything the kernel uses.
  let initrd: { addr: number; size: number } | undefined;
  if (opts.initrd && opts.initrd.length > 0) {
    const size = opts.initrd.length;
    const align = opts.initrdAlignment ?? 0x1000;
    if (!Number.isInteger(align) || align < 1 || (align & (align - 1)) !== 0) {
      throw new BootImageError(
        BootImageProblem.BAD_ARGUMENT,
        `initrdAlignment ${align} is not a power of two`,
      );
    }
    const ceiling = Math.min(hdr.initrd_addr_max + 1, mem.size);
    const regions = opts.e820
      .filter((e) => e.type === E820Type.RAM)
      .sort((a, b) => b.addr + b.size - (a.addr + a.size));
    for (const r of regions) {
      const top = Math.min(r.addr + r.size, ceiling);
      const addr = alignDown(top - size, align);
      if (addr >= Math.max(r.addr, reservedEnd) && addr + size <= top) {
        initrd = { addr, size };
        break;
      }
    }
    if (!initrd) {
      throw new BootImageError(
        BootImageProblem.DOES_NOT_FIT,
        `the initrd (${size} bytes) does not fit in RAM: it must lie above the kernel (which needs memory up to 0x${hex(reservedEnd)}) and end below 0x${hex(ceiling)} (initrd_addr_max 0x${hex(hdr.initrd_addr_max)}, guest memory 0x${hex(mem.size)} bytes)`,
      );
    }
  }

  // Everything is checked: write to guest memory.
  if (vmlinux && opts.vmlinux) {
    for (const seg of vmlinux.segments) {
      mem.writeFrom(seg.paddr, opts.vmlinux.subarray(seg.offset, seg.offset + seg.filesz));
      if (seg.memsz > seg.filesz) mem.fill(seg.paddr + seg.filesz, seg.memsz - seg.filesz, 0);
    }
  } else {
    mem.writeFrom(loadAddr, image.subarray(hdr.kernelOffset, hdr.kernelOffset + hdr.kernelSize));
  }
  if (initrd && opts.initrd) mem.writeFrom(initrd.addr, opts.initrd);

  mem.fill(layout.cmdline, cmdlineBytes.length + 1, 0);
  mem.writeFrom(layout.cmdline, cmdlineBytes);

  const zp = layout.zeroPage;
  mem.fill(zp, ZERO_PAGE_SIZE, 0);
  mem.writeFrom(zp + 0x1f1, image.subarray(0x1f1, hdr.headerEnd));
  // screen_info stays zeroed: no VGA (orig_video_isVGA 0, no lines or columns), a serial-only PC.
  mem.writeU16(zp + HDR.vid_mode, 0xffff); // "normal"
  mem.writeU8(zp + HDR.type_of_loader, TYPE_OF_LOADER_UNDEFINED);
  mem.writeU8(zp + HDR.loadflags, (hdr.loadflags | LOADFLAGS.CAN_USE_HEAP) & ~LOADFLAGS.QUIET_FLAG);
  mem.writeU16(zp + HDR.heap_end_ptr, 0xe000 - 0x200);
  mem.writeU32(zp + HDR.code32_start, loadAddr);
  mem.writeU32(zp + HDR.cmd_line_ptr, layout.cmdline);
  mem.writeU32(zp + HDR.ramdisk_image, initrd ? initrd.addr : 0);
  mem.writeU32(zp + HDR.ramdisk_size, initrd ? initrd.size : 0);
  if (hdr.version >= 0x0207) mem.writeU32(zp + HDR.hardware_subarch, 0);
  if (opts.acpiRsdp !== undefined) {
    mem.writeU32(zp + BP.acpi_rsdp_addr, opts.acpiRsdp);
    mem.writeU32(zp + BP.acpi_rsdp_addr + 4, 0);
  }
  writeE820(mem, zp, opts.e820);
  // alt_mem_k: KiB of memory above 1 MiB, for kernels that look at it before the e820 table.
  const ramAbove1M = opts.e820
    .filter((e) => e.type === E820Type.RAM && e.addr >= BZIMAGE_LOAD_ADDRESS)
    .reduce((m, e) => Math.max(m, e.addr + e.size), BZIMAGE_LOAD_ADDRESS);
  mem.writeU32(
    zp + BP.alt_mem_k,
    Math.min(0xffff_ffff, Math.floor((ramAbove1M - BZIMAGE_LOAD_ADDRESS) / 1024)),
  );

  const gdtBytes = bootGdt();
  mem.writeFrom(layout.gdt, gdtBytes);

  const cs = flat(BOOT_CS, FLAT_CODE_ACCESS);
  const ds = (): BootSegment => flat(BOOT_DS, FLAT_DATA_ACCESS);
  return {
    eip: vmlinux ? vmlinux.entry : loadAddr,
    esi: zp,
    esp: layout.stackTop,
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
    ebp: 0,
    edi: 0,
    eflags: 0x2,
    cr0: 0x1,
    cs,
    ds: ds(),
    es: ds(),
    ss: ds(),
    fs: ds(),
    gs: ds(),
    gdt: { base: layout.gdt, limit: gdtBytes.length - 1, bytes: gdtBytes },
    idt: { base: 0, limit: 0 },
    zeroPage: zp,
    cmdline: { addr: layout.cmdline, length: cmdlineBytes.length },
    kernel: vmlinux
      ? { addr: vmlinux.start, size: vmlinux.end - vmlinux.start, reservedEnd, decompressed: true }
      : { addr: loadAddr, size: hdr.kernelSize, reservedEnd, decompressed: false },
    initrd,
    header: hdr,
  };
}
