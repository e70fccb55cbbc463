/**
 * Reads a Linux kernel module's `.modinfo` section (the key=value strings `modinfo` shows:
 * name, depends, softdep, alias, vermagic) straight from the ELF file, so the default guest can
 * be built without kmod's depmod/modinfo on the host.
 */
import { VirtkitError } from "../../../common/errors.js";

export class ModuleFormatError extends VirtkitError {
  constructor(message: string) {
    super("MODULE_FORMAT", message);
  }
}

export interface ModInfo {
  /** The module's name as the kernel knows it (underscores, no extension). */
  name: string;
  /** Modules it needs loaded first (from `depends=`), by name. */
  depends: string[];
  /** `softdep= pre:` names or aliases: loaded before it when present. */
  softPre: string[];
  /** `softdep= post:` names or aliases. */
  softPost: string[];
  aliases: string[];
  vermagic: string | undefined;
  /** Every key=value pair, in file order. */
  all: Array<[string, string]>;
}

/** The kernel's notion of a module name: '-' and '_' are the same. */
export function canonicalModuleName(name: string): string {
  return name.replace(/-/g, "_");
}

function need(ok: boolean, what: string): void {
  if (!ok) throw new ModuleFormatError(`not a kernel module: ${what}`);
}

/** Returns the bytes of the section named `wanted`, or undefined when the file has none. */
export function elfSection(elf: Uint8Array, wanted: string): Uint8Array | undefined {
  need(elf.length >= 0x34, "file too short for an ELF header");
  need(elf[0] === 0x7f && elf[1] === 0x45 && elf[2] === 0x4c && elf[3] === 0x46, "no ELF magic");
  const cls = elf[4];
  need(cls === 1 || cls === 2, `ELF class ${cls}`);
  need(elf[5] === 1, "not little-endian");
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const is64 = cls === 2;
  need(!is64 || elf.length >= 0x40, "file too short for an ELF64 header");
  const u64 = (o: number): number => dv.getUint32(o + 4, true) * 0x1_0000_0000 + dv.getUint32(o, true);
  const shoff = is64 ? u64(0x28) : dv.getUint32(0x20, true);
  const shentsize = dv.getUint16(is64 ? 0x3a : 0x2e, true);
  const shnum = dv.getUint16(is64 ? 0x3c : 0x30, true);
  const shstrndx = dv.getUint16(is64 ? 0x3e : 0x32, true);
  need(shentsize >= (is64 ? 0x40 : 0x28), `section header size ${shentsize}`);
  need(shoff + shnum * shentsize <= elf.length, "section headers run past the end of the file");
  need(shstrndx < shnum, "no section name table");
  const sec = (i: number): { name: number; offset: number; size: number } => {
    const o = shoff + i * shentsize;
    return is64
      ? { name: dv.getUint32(o, true), offset: u64(o + 0x18), size: u64(o + 0x20) }
      : {
          name: dv.getUint32(o, true),
          offset: dv.getUint32(o + 0x10, true),
          size: dv.getUint32(o + 0x14, true),
        };
  };
  const strtab = sec(shstrndx);
  need(strtab.offset + strtab.size <= elf.length, "section name table runs past the end of the file");
  const nameAt = (off: number): string => {
    let s = "";
    for (let i = strtab.offset + off; i < strtab.offset + strtab.size && elf[i] !== 0; i++) {
      s += String.fromCharCode(elf[i]!);
    }
    return s;
  };
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.name >= strtab.size || nameAt(s.name) !== wanted) continue;
    need(s.offset + s.size <= elf.length, `section ${wanted} runs past the end of the file`);
    return elf.subarray(s.offset, s.offset + s.size);
  }
  return undefined;
}

/** Parses a module's .modinfo. `fallbackName` is used when the module has no `name=` tag. */
export function readModInfo(elf: Uint8Array, fallbackName?: string): ModInfo {
  const sec = elfSection(elf, ".modinfo");
  if (!sec) throw new ModuleFormatError("not a kernel module: no .modinfo section");
  const all: Array<[string, string]> = [];
  const dec = new TextDecoder();
  let start = 0;
  for (let i = 0; i <= sec.length; i++) {
    if (i === sec.length || sec[i] === 0) {
      if (i > start) {
        const s = dec.decode(sec.subarray(start, i));
        const eq = s.indexOf("=");
        if (eq > 0) all.push([s.slice(0, eq), s.slice(eq + 1)]);
      }
      start = i + 1;
    }
  }
  const get = (k: string): string[] => all.filter(([key]) => key === k).map(([, v]) => v);
  const name = get("name")[0] ?? fallbackName;
  if (!name) throw new ModuleFormatError("kernel module has no name= in .modinfo");
  const depends = get("depends")
    .flatMap((d) => d.split(","))
    .map((d) => d.trim())
    .filter((d) => d !== "")
    .map(canonicalModuleName);
  const softPre: string[] = [];
  const softPost: string[] = [];
  for (const sd of get("softdep")) {
    let list: string[] | undefined;
    for (const tok of sd.split(/\s+/).filter((t) => t !== "")) {
      if (tok === "pre:") list = softPre;
      else if (tok === "post:") list = softPost;
      else list?.push(tok);
    }
  }
  return {
    name: canonicalModuleName(name),
    depends,
    softPre,
    softPost,
    aliases: get("alias"),
    vermagic: get("vermagic")[0],
    all,
  };
}
