/**
 * Builds minimal ELF relocatable files with a .modinfo section, shaped like kernel modules, for
 * tests of the module index (and for anyone testing their own module handling).
 */

/**
 * An ELF file (32- or 64-bit little-endian) with sections: null, .text (4 bytes), .modinfo
 * (the given key=value strings, NUL-separated), .shstrtab.
 */
export function fakeKernelModule(
  modinfo: ReadonlyArray<[string, string]>,
  options: { elf64?: boolean } = {},
): Uint8Array {
  const is64 = options.elf64 ?? false;
  const enc = new TextEncoder();
  const info = enc.encode(modinfo.map(([k, v]) => `${k}=${v}\0`).join(""));
  const shstr = enc.encode("\0.text\0.modinfo\0.shstrtab\0");
  const names = { text: 1, modinfo: 7, shstrtab: 16 };
  const ehsize = is64 ? 0x40 : 0x34;
  const shentsize = is64 ? 0x40 : 0x28;
  const textOff = ehsize;
  const infoOff = textOff + 4;
  const strOff = infoOff + info.length;
  const shoff = (strOff + shstr.length + 7) & ~7;
  const shnum = 4;
  const out = new Uint8Array(shoff + shnum * shentsize);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  dv.setUint16(0x10, 1, true); // ET_REL
  dv.setUint16(0x12, is64 ? 62 : 3, true); // EM_X86_64 / EM_386
  dv.setUint32(0x14, 1, true);
  if (is64) {
    dv.setUint32(0x28, shoff, true);
    dv.setUint16(0x34, ehsize, true);
    dv.setUint16(0x3a, shentsize, true);
    dv.setUint16(0x3c, shnum, true);
    dv.setUint16(0x3e, 3, true);
  } else {
    dv.setUint32(0x20, shoff, true);
    dv.setUint16(0x28, ehsize, true);
    dv.setUint16(0x2e, shentsize, true);
    dv.setUint16(0x30, shnum, true);
    dv.setUint16(0x32, 3, true);
  }
  out.set([0x90, 0x90, 0x90, 0xc3], textOff);
  out.set(info, infoOff);
  out.set(shstr, strOff);
  const sections: Array<[number, number, number, number]> = [
    [0, 0, 0, 0],
    [names.text, 1, textOff, 4],
    [names.modinfo, 1, infoOff, info.length],
    [names.shstrtab, 3, strOff, shstr.length],
  ];
  sections.forEach(([name, type, off, size], i) => {
    const o = shoff + i * shentsize;
    dv.setUint32(o, name, true);
    dv.setUint32(o + 4, type, true);
    if (is64) {
      dv.setUint32(o + 0x18, off, true);
      dv.setUint32(o + 0x20, size, true);
    } else {
      dv.setUint32(o + 0x10, off, true);
      dv.setUint32(o + 0x14, size, true);
    }
  });
  return out;
}
