/**
 * Runs virtkit's boot loader output on a real CPU: packs what `loadLinux` wrote into guest
 * memory (as a list of chunks) and the entry state it returned into a Multiboot (v1) image that
 * QEMU's `-kernel` loads. QEMU enters the image in 32-bit protected mode; a small stub copies
 * every chunk to its address, loads the loader's GDT and segment registers, sets the general
 * registers and EFLAGS, and jumps to the loader's EIP. So QEMU boots Linux exactly as our
 * loader prepared it, which checks the zero page, e820, command line, initrd placement, GDT and
 * entry state end to end.
 */
import type { GuestMemory, MemoryAccess } from "../../../common/memory.js";
import type { BootState } from "../../../machine/boot/linux.js";

export const MULTIBOOT_MAGIC = 0x1badb002;
const MB_FLAG_AOUT_KLUDGE = 0x0001_0000;

export interface MemoryChunk {
  addr: number;
  bytes: Uint8Array;
}

/** Merges recorded writes into disjoint ranges and copies their current contents. */
export function chunksFromWrites(mem: GuestMemory, accesses: readonly MemoryAccess[]): MemoryChunk[] {
  const ranges = accesses
    .filter((a) => a.kind === "write" && a.len > 0)
    .map((a) => [a.addr, a.addr + a.len] as [number, number])
    .sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged.map(([s, e]) => ({ addr: s, bytes: mem.subarray(s, e - s).slice() }));
}

class Asm {
  readonly bytes: number[] = [];
  u8(...b: number[]): this {
    this.bytes.push(...b.map((x) => x & 0xff));
    return this;
  }
  u32(v: number): this {
    return this.u8(v, v >>> 8, v >>> 16, v >>> 24);
  }
  get length(): number {
    return this.bytes.length;
  }
}

/**
 * A Multiboot image loaded at `base` that installs `chunks` and enters `state`. `base` must lie
 * in RAM away from every chunk (the stub copies from the image to the chunks' addresses).
 */
export function buildMultibootShim(
  chunks: readonly MemoryChunk[],
  state: BootState,
  base = 0x0800_0000,
): Uint8Array {
  const HEADER = 0x00;
  const GDTR = 0x20;
  const CODE = 0x40;
  // Code size is fixed per chunk, so chunk data offsets can be computed first.
  const perChunk = 5 + 5 + 5 + 2;
  const codeLen = 2 + chunks.length * perChunk + 7 + 7 + 4 + 10 + 5 + 5 + 5 + 1 + 35 + 1;
  let dataOff = (CODE + codeLen + 15) & ~15;
  const placed = chunks.map((c) => {
    const off = dataOff;
    dataOff = (dataOff + c.bytes.length + 15) & ~15;
    return { ...c, off };
  });
  const total = dataOff;
  const imageEnd = base + total;
  for (const c of chunks) {
    if (c.addr < imageEnd && base < c.addr + c.bytes.length) {
      throw new RangeError(
        `multiboot shim at 0x${base.toString(16)} overlaps a chunk at 0x${c.addr.toString(16)}`,
      );
    }
  }

  const a = new Asm();
  a.u8(0xfa, 0xfc); // cli; cld
  for (const c of placed) {
    a.u8(0xbe).u32(base + c.off); // mov esi, src
    a.u8(0xbf).u32(c.addr); // mov edi, dst
    a.u8(0xb9).u32(c.bytes.length); // mov ecx, len
    a.u8(0xf3, 0xa4); // rep movsb
  }
  a.u8(0x0f, 0x01, 0x15).u32(base + GDTR); // lgdt [gdtr]
  const afterJump = CODE + a.length + 7;
  a.u8(0xea)
    .u32(base + afterJump)
    .u8(state.cs.selector, state.cs.selector >>> 8); // jmp far cs:next
  a.u8(0x66, 0xb8, state.ds.selector, state.ds.selector >>> 8); // mov ax, ds selector
  a.u8(0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x8e, 0xe0, 0x8e, 0xe8); // mov ds/es/ss/fs/gs, ax
  a.u8(0xbc).u32(state.esp); // mov esp, esp0
  a.u8(0x68).u32(state.eip); // push eip (ret target)
  a.u8(0x68).u32(state.eflags); // push eflags
  a.u8(0x9d); // popfd
  a.u8(0xb8).u32(state.eax);
  a.u8(0xbb).u32(state.ebx);
  a.u8(0xb9).u32(state.ecx);
  a.u8(0xba).u32(state.edx);
  a.u8(0xbd).u32(state.ebp);
  a.u8(0xbe).u32(state.esi);
  a.u8(0xbf).u32(state.edi);
  a.u8(0xc3); // ret
  if (a.length !== codeLen) throw new Error(`multiboot shim: code is ${a.length} bytes, planned ${codeLen}`);

  const img = new Uint8Array(total);
  const dv = new DataView(img.buffer);
  const flags = MB_FLAG_AOUT_KLUDGE;
  dv.setUint32(HEADER, MULTIBOOT_MAGIC, true);
  dv.setUint32(HEADER + 4, flags, true);
  dv.setUint32(HEADER + 8, (-(MULTIBOOT_MAGIC + flags) >>> 0) & 0xffff_ffff, true);
  dv.setUint32(HEADER + 12, base, true); // header_addr
  dv.setUint32(HEADER + 16, base, true); // load_addr
  dv.setUint32(HEADER + 20, imageEnd, true); // load_end_addr
  dv.setUint32(HEADER + 24, imageEnd, true); // bss_end_addr
  dv.setUint32(HEADER + 28, base + CODE, true); // entry_addr
  dv.setUint16(GDTR, state.gdt.limit, true);
  dv.setUint32(GDTR + 2, state.gdt.base, true);
  img.set(a.bytes, CODE);
  for (const c of placed) img.set(c.bytes, c.off);
  return img;
}
