/**
 * The decompressed kernel: a bzImage's payload is a compressed ELF image (vmlinux). Booting
 * that ELF directly, decompressed on the host, skips the guest-side decompressor (billions of
 * guest instructions for an xz payload). The zero page still comes from the bzImage's setup
 * header; the entry point is the ELF's (physical) e_entry, startup_32 of the kernel proper,
 * which takes the same 32-bit boot protocol state (ESI = zero page, flat segments, IF = 0).
 */
import { hex } from "../../common/errors.js";
import { BootImageError, BootImageProblem } from "./setup-header.js";
import type { SetupHeader } from "./setup-header.js";

/** A PT_LOAD segment: `filesz` bytes from the file at `offset` go to `paddr`, zero-filled to `memsz`. */
export interface ElfSegment {
  paddr: number;
  offset: number;
  filesz: number;
  memsz: number;
  executable: boolean;
}

export interface Vmlinux {
  /** Physical entry point. */
  entry: number;
  segments: ElfSegment[];
  /** Lowest and highest physical address the segments occupy. */
  start: number;
  end: number;
}

const PT_LOAD = 1;
const PF_X = 1;
const EM_386 = 3;

function bad(msg: string): BootImageError {
  return new BootImageError(BootImageProblem.BAD_ELF, `vmlinux: ${msg}`);
}

/** Parses a 32-bit x86 vmlinux (ELF executable) and checks its program headers. */
export function parseVmlinux(elf: Uint8Array): Vmlinux {
  if (elf.length < 0x34) throw bad(`file is ${elf.length} bytes, too short for an ELF header`);
  if (!(elf[0] === 0x7f && elf[1] === 0x45 && elf[2] === 0x4c && elf[3] === 0x46)) throw bad("no ELF magic");
  if (elf[4] !== 1) throw bad(`ELF class ${elf[4]} is not 32-bit (a 64-bit kernel needs long mode)`);
  if (elf[5] !== 1) throw bad("not little-endian");
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const type = dv.getUint16(0x10, true);
  const machine = dv.getUint16(0x12, true);
  if (type !== 2) throw bad(`ELF type ${type} is not an executable`);
  if (machine !== EM_386) throw bad(`ELF machine ${machine} is not i386`);
  const entry = dv.getUint32(0x18, true);
  const phoff = dv.getUint32(0x1c, true);
  const phentsize = dv.getUint16(0x2a, true);
  const phnum = dv.getUint16(0x2c, true);
  if (phentsize < 0x20) throw bad(`program header size ${phentsize}`);
  if (phnum === 0 || phoff + phnum * phentsize > elf.length)
    throw bad("program headers missing or truncated");
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (dv.getUint32(o, true) !== PT_LOAD) continue;
    const seg: ElfSegment = {
      offset: dv.getUint32(o + 4, true),
      paddr: dv.getUint32(o + 12, true),
      filesz: dv.getUint32(o + 16, true),
      memsz: dv.getUint32(o + 20, true),
      executable: (dv.getUint32(o + 24, true) & PF_X) !== 0,
    };
    if (seg.filesz > seg.memsz)
      throw bad(`segment ${i} has filesz 0x${hex(seg.filesz)} > memsz 0x${hex(seg.memsz)}`);
    if (seg.offset + seg.filesz > elf.length) throw bad(`segment ${i} runs past the end of the file`);
    if (seg.paddr + seg.memsz > 0x1_0000_0000) throw bad(`segment ${i} runs past 4 GiB`);
    if (seg.memsz > 0) segments.push(seg);
  }
  if (segments.length === 0) throw bad("no loadable segments");
  segments.sort((a, b) => a.paddr - b.paddr);
  for (let i = 1; i < segments.length; i++) {
    const p = segments[i - 1]!;
    if (segments[i]!.paddr < p.paddr + p.memsz) throw bad("loadable segments overlap");
  }
  if (!segments.some((s) => s.executable && s.paddr <= entry && entry < s.paddr + s.memsz)) {
    throw bad(`entry point 0x${hex(entry)} is not inside an executable segment`);
  }
  const last = segments[segments.length - 1]!;
  return { entry, segments, start: segments[0]!.paddr, end: last.paddr + last.memsz };
}

/** The compressed payload of a bzImage (payload_offset/payload_length, protocol 2.08+). */
export function bzImagePayload(image: Uint8Array, hdr: SetupHeader): Uint8Array {
  if (hdr.payload_offset === 0 || hdr.payload_length === 0) {
    throw new BootImageError(
      BootImageProblem.BAD_HEADER,
      "the bzImage does not say where its payload is (protocol < 2.08)",
    );
  }
  const start = hdr.kernelOffset + hdr.payload_offset;
  return image.subarray(start, start + hdr.payload_length);
}
