/**
 * The setup header of a Linux x86 bzImage (Documentation/arch/x86/boot.rst, "The Real-Mode
 * Kernel Header"). Offsets are from the start of the image file; the same offsets hold in the
 * zero page (struct boot_params), which embeds the header at 0x1F1.
 */
import { VirtkitError, hex } from "../../common/errors.js";

/** Why an image was refused. */
export const BootImageProblem = {
  /** Not a bzImage: no 0xAA55 boot flag or no "HdrS" magic, or a zImage. */
  NOT_BZIMAGE: "NOT_BZIMAGE",
  /** The boot protocol is older than 2.06. */
  PROTOCOL_TOO_OLD: "PROTOCOL_TOO_OLD",
  /** The file ends before the header, the setup code or the protected-mode kernel does. */
  TRUNCATED: "TRUNCATED",
  /** The kernel, its decompression area, the command line or the initrd do not fit in RAM. */
  DOES_NOT_FIT: "DOES_NOT_FIT",
  /** A header field holds a value no boot loader can honour. */
  BAD_HEADER: "BAD_HEADER",
  /** A decompressed kernel (vmlinux) that is not a loadable 32-bit x86 ELF executable. */
  BAD_ELF: "BAD_ELF",
  /** A caller argument (command line, e820 table, layout) is not valid. */
  BAD_ARGUMENT: "BAD_ARGUMENT",
} as const;
export type BootImageProblem = (typeof BootImageProblem)[keyof typeof BootImageProblem];

/** A kernel image or boot argument the loader refuses. `problem` says which kind. */
export class BootImageError extends VirtkitError {
  readonly problem: BootImageProblem;
  constructor(problem: BootImageProblem, message: string) {
    super(`BOOT_${problem}`, message);
    this.problem = problem;
  }
}

/** Header field offsets (file offset == zero page offset). */
export const HDR = {
  setup_sects: 0x1f1,
  root_flags: 0x1f2,
  syssize: 0x1f4,
  ram_size: 0x1f8,
  vid_mode: 0x1fa,
  root_dev: 0x1fc,
  boot_flag: 0x1fe,
  jump: 0x200,
  header: 0x202,
  version: 0x206,
  realmode_swtch: 0x208,
  start_sys_seg: 0x20c,
  kernel_version: 0x20e,
  type_of_loader: 0x210,
  loadflags: 0x211,
  setup_move_size: 0x212,
  code32_start: 0x214,
  ramdisk_image: 0x218,
  ramdisk_size: 0x21c,
  bootsect_kludge: 0x220,
  heap_end_ptr: 0x224,
  ext_loader_ver: 0x226,
  ext_loader_type: 0x227,
  cmd_line_ptr: 0x228,
  initrd_addr_max: 0x22c,
  kernel_alignment: 0x230,
  relocatable_kernel: 0x234,
  min_alignment: 0x235,
  xloadflags: 0x236,
  cmdline_size: 0x238,
  hardware_subarch: 0x23c,
  hardware_subarch_data: 0x240,
  payload_offset: 0x248,
  payload_length: 0x24c,
  setup_data: 0x250,
  pref_address: 0x258,
  init_size: 0x260,
  handover_offset: 0x264,
  kernel_info_offset: 0x268,
} as const;

/** "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x53726448;
export const BOOT_FLAG_MAGIC = 0xaa55;
/** Oldest protocol this loader accepts: 2.06 (the first with cmdline_size). */
export const MIN_PROTOCOL = 0x0206;

/** loadflags bits. */
export const LOADFLAGS = {
  LOADED_HIGH: 0x01,
  KASLR_FLAG: 0x02,
  QUIET_FLAG: 0x20,
  KEEP_SEGMENTS: 0x40,
  CAN_USE_HEAP: 0x80,
} as const;

/** xloadflags bits (protocol 2.12+). */
export const XLOADFLAGS = {
  XLF_KERNEL_64: 0x01,
  XLF_CAN_BE_LOADED_ABOVE_4G: 0x02,
  XLF_EFI_HANDOVER_32: 0x04,
  XLF_EFI_HANDOVER_64: 0x08,
  XLF_EFI_KEXEC: 0x10,
} as const;

/** Compression of the payload, told by its magic number (boot.rst, payload_offset). */
export type PayloadCompression = "gzip" | "bzip2" | "lzma" | "xz" | "lz4" | "zstd" | "none" | "unknown";

/** What the loader needs from the header, with the protocol's defaults applied. */
export interface SetupHeader {
  /** Protocol version, (major << 8) | minor. */
  version: number;
  /** Setup sectors after the boot sector (0 in the file means 4). */
  setup_sects: number;
  /** Size of the protected-mode code in 16-byte paragraphs. */
  syssize: number;
  loadflags: number;
  code32_start: number;
  initrd_addr_max: number;
  kernel_alignment: number;
  relocatable_kernel: boolean;
  /** log2 of the minimum alignment (2.10+; 0 when absent). */
  min_alignment: number;
  /** xloadflags (2.12+; 0 when absent). */
  xloadflags: number;
  /** Longest command line without its NUL. */
  cmdline_size: number;
  /** Offset of the payload from the start of the protected-mode code (2.08+; 0 when absent). */
  payload_offset: number;
  payload_length: number;
  /** Preferred load address (2.10+), as a number (may exceed 2^32 on 64-bit kernels). */
  pref_address: number;
  /** Linear memory the kernel needs from its runtime start before it reads the memory map. */
  init_size: number;
  /** Length of the header: 0x202 + the byte at 0x201 - 0x1F1 bytes are copied to the zero page. */
  headerEnd: number;
  /** The kernel's version string, when the header points at one. */
  kernelVersion: string | undefined;
  /** File offset of the protected-mode kernel: (setup_sects + 1) * 512. */
  kernelOffset: number;
  /** Bytes of protected-mode kernel to load: syssize * 16. */
  kernelSize: number;
  /** Payload compression told from its magic (when payload_offset is set). */
  payloadCompression: PayloadCompression;
}

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function u64n(b: Uint8Array, o: number): number {
  return u32(b, o + 4) * 0x1_0000_0000 + u32(b, o);
}

/** Tells the compression of a payload from its first bytes. */
export function payloadCompressionOf(b: Uint8Array): PayloadCompression {
  if (b.length < 2) return "unknown";
  const m0 = b[0]!;
  const m1 = b[1]!;
  if (m0 === 0x1f && (m1 === 0x8b || m1 === 0x9e)) return "gzip";
  if (m0 === 0x42 && m1 === 0x5a) return "bzip2";
  if (m0 === 0x5d && m1 === 0x00) return "lzma";
  if (m0 === 0xfd && m1 === 0x37) return "xz";
  if (m0 === 0x02 && m1 === 0x21) return "lz4";
  if (m0 === 0x28 && m1 === 0xb5) return "zstd";
  if (b.length >= 4 && m0 === 0x7f && m1 === 0x45 && b[2] === 0x4c && b[3] === 0x46) return "none";
  return "unknown";
}

function readCString(b: Uint8Array, start: number, max: number): string | undefined {
  let s = "";
  for (let i = start; i < b.length && i < start + max; i++) {
    const c = b[i]!;
    if (c === 0) return s;
    if (c < 0x20 || c > 0x7e) return undefined;
    s += String.fromCharCode(c);
  }
  return undefined;
}

/**
 * Parses and checks the setup header of a bzImage. Refuses (BootImageError) a file that is not
 * a bzImage, uses a protocol older than 2.06, or is shorter than its header says.
 */
export function parseSetupHeader(image: Uint8Array): SetupHeader {
  if (image.length < 0x202 + 4) {
    throw new BootImageError(
      BootImageProblem.TRUNCATED,
      `kernel image is ${image.length} bytes, too short to hold a setup header (needs at least 0x206)`,
    );
  }
  const bootFlag = u16(image, HDR.boot_flag);
  const magic = u32(image, HDR.header);
  if (magic !== HDRS_MAGIC) {
    throw new BootImageError(
      BootImageProblem.NOT_BZIMAGE,
      `not a Linux bzImage: no "HdrS" magic at offset 0x202 (found 0x${hex(magic, 8)})`,
    );
  }
  if (bootFlag !== BOOT_FLAG_MAGIC) {
    throw new BootImageError(
      BootImageProblem.NOT_BZIMAGE,
      `not a Linux bzImage: boot_flag at 0x1FE is 0x${hex(bootFlag, 4)}, not 0xAA55`,
    );
  }
  const version = u16(image, HDR.version);
  if (version < MIN_PROTOCOL) {
    throw new BootImageError(
      BootImageProblem.PROTOCOL_TOO_OLD,
      `boot protocol ${version >> 8}.${(version & 0xff).toString().padStart(2, "0")} is older than 2.06, which this loader needs`,
    );
  }
  const headerEnd = 0x202 + image[0x201]!;
  if (image.length < headerEnd) {
    throw new BootImageError(
      BootImageProblem.TRUNCATED,
      `kernel image is ${image.length} bytes but its setup header runs to 0x${hex(headerEnd)}`,
    );
  }
  // The fields below are read up to init_size (0x264) when the protocol has them.
  const need = version >= 0x020a ? 0x264 : 0x23c;
  if (headerEnd < need) {
    throw new BootImageError(
      BootImageProblem.BAD_HEADER,
      `setup header of protocol 0x${hex(version, 4)} ends at 0x${hex(headerEnd)}, before its fields end at 0x${hex(need)}`,
    );
  }
  const loadflags = image[HDR.loadflags]!;
  if ((loadflags & LOADFLAGS.LOADED_HIGH) === 0) {
    throw new BootImageError(
      BootImageProblem.NOT_BZIMAGE,
      "image is a zImage (LOADED_HIGH clear in loadflags); only bzImage kernels are supported",
    );
  }
  let setup_sects = image[HDR.setup_sects]!;
  if (setup_sects === 0) setup_sects = 4;
  const kernelOffset = (setup_sects + 1) * 512;
  const syssize = u32(image, HDR.syssize);
  const kernelSize = syssize * 16;
  if (syssize === 0) {
    throw new BootImageError(
      BootImageProblem.BAD_HEADER,
      "syssize is 0: the image has no protected-mode kernel",
    );
  }
  if (image.length < kernelOffset + kernelSize) {
    throw new BootImageError(
      BootImageProblem.TRUNCATED,
      `kernel image is truncated: ${image.length} bytes, but setup (${kernelOffset} bytes) plus the protected-mode kernel (syssize ${syssize} paragraphs = ${kernelSize} bytes) need ${kernelOffset + kernelSize}`,
    );
  }
  const has210 = version >= 0x020a;
  const has212 = version >= 0x020c;
  const has208 = version >= 0x0208;
  const payload_offset = has208 ? u32(image, HDR.payload_offset) : 0;
  const payload_length = has208 ? u32(image, HDR.payload_length) : 0;
  let payloadCompression: PayloadCompression = "unknown";
  if (payload_offset !== 0) {
    if (payload_offset + payload_length > kernelSize) {
      throw new BootImageError(
        BootImageProblem.BAD_HEADER,
        `payload (offset 0x${hex(payload_offset)}, length 0x${hex(payload_length)}) runs past the protected-mode kernel (0x${hex(kernelSize)} bytes)`,
      );
    }
    const p = kernelOffset + payload_offset;
    payloadCompression = payloadCompressionOf(image.subarray(p, p + Math.min(8, payload_length)));
  }
  const kernel_alignment = u32(image, HDR.kernel_alignment);
  const relocatable_kernel = image[HDR.relocatable_kernel]! !== 0;
  if (relocatable_kernel && (kernel_alignment === 0 || (kernel_alignment & (kernel_alignment - 1)) !== 0)) {
    throw new BootImageError(
      BootImageProblem.BAD_HEADER,
      `kernel_alignment 0x${hex(kernel_alignment)} of a relocatable kernel is not a power of two`,
    );
  }
  const kvOff = u16(image, HDR.kernel_version);
  const kernelVersion =
    kvOff !== 0 && kvOff + 0x200 < kernelOffset ? readCString(image, kvOff + 0x200, 256) : undefined;
  return {
    version,
    setup_sects,
    syssize,
    loadflags,
    code32_start: u32(image, HDR.code32_start),
    initrd_addr_max: u32(image, HDR.initrd_addr_max),
    kernel_alignment,
    relocatable_kernel,
    min_alignment: has210 ? image[HDR.min_alignment]! : 0,
    xloadflags: has212 ? u16(image, HDR.xloadflags) : 0,
    cmdline_size: u32(image, HDR.cmdline_size),
    payload_offset,
    payload_length,
    pref_address: has210 ? u64n(image, HDR.pref_address) : 0,
    init_size: has210 ? u32(image, HDR.init_size) : 0,
    headerEnd,
    kernelVersion,
    kernelOffset,
    kernelSize,
    payloadCompression,
  };
}
