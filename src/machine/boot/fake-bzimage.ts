import { BootImageError, HDR, LOADFLAGS } from "./setup-header.js";

/** What a synthetic bzImage looks like (every field has a plausible default). */
export interface FakeImage {
  setupSects?: number;
  version?: number;
  kernelBytes?: number;
  initSize?: number;
  initrdAddrMax?: number;
  prefAddress?: number;
  kernelAlignment?: number;
  relocatable?: boolean;
  cmdlineSize?: number;
  loadflags?: number;
  payload?: Uint8Array;
  /** Machine code placed at the start of the protected-mode kernel (the 32-bit entry point). */
  code?: Uint8Array;
}

/**
 * A synthetic bzImage for tests: a real-looking setup header and a patterned protected-mode
 * kernel, optionally starting with `code` (which runs at code32_start, 0x100000).
 */
export function fakeBzImage(o: FakeImage = {}): Uint8Array {
  const setupSects = o.setupSects ?? 4;
  const kernelBytes = o.kernelBytes ?? 0x3000;
  const setupLen = (setupSects === 0 ? 5 : setupSects + 1) * 512;
  const img = new Uint8Array(setupLen + kernelBytes);
  const dv = new DataView(img.buffer);
  img[HDR.setup_sects] = setupSects;
  dv.setUint32(HDR.syssize, Math.ceil(kernelBytes / 16), true);
  dv.setUint16(HDR.boot_flag, 0xaa55, true);
  img[0x200] = 0xeb;
  img[0x201] = 0x6a; // header runs to 0x26C
  dv.setUint32(HDR.header, 0x53726448, true);
  dv.setUint16(HDR.version, o.version ?? 0x020f, true);
  dv.setUint16(HDR.kernel_version, 0x300, true);
  new TextEncoder().encodeInto("6.1.0-test (fake)\0", img.subarray(0x500));
  img[HDR.loadflags] = o.loadflags ?? LOADFLAGS.LOADED_HIGH;
  dv.setUint32(HDR.code32_start, 0x100000, true);
  dv.setUint32(HDR.initrd_addr_max, o.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(HDR.kernel_alignment, o.kernelAlignment ?? 0x200000, true);
  img[HDR.relocatable_kernel] = o.relocatable === false ? 0 : 1;
  img[HDR.min_alignment] = 13;
  dv.setUint16(HDR.xloadflags, 0x4, true);
  dv.setUint32(HDR.cmdline_size, o.cmdlineSize ?? 0x7ff, true);
  const payload = o.payload ?? Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0);
  const payloadOffset = o.code ? (o.code.length + 0x4f) & ~0xf : 0x40;
  if (payloadOffset + payload.length > kernelBytes)
    throw new BootImageError("BAD_ARGUMENT", "fake bzImage: code too long");
  dv.setUint32(HDR.payload_offset, payloadOffset, true);
  dv.setUint32(HDR.payload_length, payload.length, true);
  dv.setUint32(HDR.pref_address, o.prefAddress ?? 0x1000000, true);
  dv.setUint32(HDR.init_size, o.initSize ?? 0x400000, true);
  for (let i = 0; i < kernelBytes; i++) img[setupLen + i] = (i * 7 + 3) & 0xff;
  img.set(payload, setupLen + payloadOffset);
  if (o.code) img.set(o.code, setupLen);
  return img;
}
