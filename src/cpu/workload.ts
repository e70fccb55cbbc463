/**
 * A fixed workload of ordinary integer code for the CPU benchmark and tests: an LCG fill of a
 * buffer, a checksum over it (memory-to-register ALU), string moves, a call/return loop, and an
 * insertion sort. Two builds: flat 32-bit and real mode (16-bit), hand-encoded through a tiny
 * label-resolving assembler.
 */
import { VirtkitError } from "../common/errors.js";

class Asm {
  readonly out: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string; size: 1 | 2 | 4 }[] = [];

  b(...xs: number[]): this {
    for (const x of xs) this.out.push(x & 0xff);
    return this;
  }
  w(v: number): this {
    return this.b(v, v >>> 8);
  }
  d(v: number): this {
    return this.b(v, v >>> 8, v >>> 16, v >>> 24);
  }
  label(name: string): this {
    this.labels.set(name, this.out.length);
    return this;
  }
  /** A PC-relative displacement to `name`, relative to the end of this field. */
  rel(name: string, size: 1 | 2 | 4): this {
    this.fixups.push({ at: this.out.length, label: name, size });
    for (let i = 0; i < size; i++) this.out.push(0);
    return this;
  }
  assemble(): Uint8Array {
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined)
        throw new VirtkitError("WORKLOAD_ASM", `workload: undefined label ${f.label}`);
      const rel = target - (f.at + f.size);
      if (f.size === 1 && (rel < -128 || rel > 127))
        throw new VirtkitError("WORKLOAD_ASM", `workload: rel8 out of range to ${f.label}`);
      for (let i = 0; i < f.size; i++) this.out[f.at + i] = (rel >> (8 * i)) & 0xff;
    }
    return Uint8Array.from(this.out);
  }
}

/** Elements sorted by the insertion sort. */
export const SORT_COUNT = 200;
/** Elements filled and checksummed. */
export const FILL_COUNT = 4096;
/** Iterations of the call/return loop. */
export const CALL_COUNT = 1000;

/**
 * Flat 32-bit workload. Load at `origin`; data at `data` (needs 2 × FILL_COUNT × 4 bytes). Ends
 * with HLT; EDX = checksum, EBX = rotating xor, EBP = call-loop sum.
 */
export function workload32(data: number): Uint8Array {
  const a = new Asm();
  const src = data;
  const dst = data + FILL_COUNT * 4;
  // fill: eax = eax * 1103515245 + 12345
  a.b(0xbe).d(src); // mov esi, src
  a.b(0xb9).d(FILL_COUNT); // mov ecx, N
  a.b(0xb8).d(12345); // mov eax, 12345
  a.label("fill");
  a.b(0x69, 0xc0).d(1103515245); // imul eax, eax, imm32
  a.b(0x05).d(12345); // add eax, 12345
  a.b(0x89, 0x06); // mov [esi], eax
  a.b(0x83, 0xc6, 0x04); // add esi, 4
  a.b(0x49); // dec ecx
  a.b(0x75).rel("fill", 1); // jnz fill
  // checksum
  a.b(0xbe).d(src); // mov esi, src
  a.b(0xb9).d(FILL_COUNT); // mov ecx, N
  a.b(0x31, 0xd2); // xor edx, edx
  a.b(0x31, 0xdb); // xor ebx, ebx
  a.label("sum");
  a.b(0x03, 0x16); // add edx, [esi]
  a.b(0x33, 0x1e); // xor ebx, [esi]
  a.b(0xd1, 0xc3); // rol ebx, 1
  a.b(0x83, 0xc6, 0x04); // add esi, 4
  a.b(0xe2).rel("sum", 1); // loop sum
  // string moves: rep movsd, then a byte loop with movsb/lodsb/stosb
  a.b(0xbe).d(src); // mov esi, src
  a.b(0xbf).d(dst); // mov edi, dst
  a.b(0xb9).d(FILL_COUNT); // mov ecx, N
  a.b(0xfc); // cld
  a.b(0xf3, 0xa5); // rep movsd
  a.b(0xbe).d(src); // mov esi, src
  a.b(0xbf).d(dst); // mov edi, dst
  a.b(0xb9).d(256); // mov ecx, 256
  a.label("bytes");
  a.b(0xac); // lodsb
  a.b(0x34, 0x5a); // xor al, 0x5a
  a.b(0xaa); // stosb
  a.b(0xe2).rel("bytes", 1); // loop bytes
  // calls: ebp accumulates f(i) = i*3 + 7 through the stack
  a.b(0x31, 0xed); // xor ebp, ebp
  a.b(0xb9).d(CALL_COUNT); // mov ecx, CALLS
  a.label("calls");
  a.b(0x51); // push ecx
  a.b(0xe8).rel("func", 4); // call func
  a.b(0x01, 0xc5); // add ebp, eax
  a.b(0x59); // pop ecx
  a.b(0xe2).rel("calls", 1); // loop calls
  // insertion sort of SORT_COUNT dwords at dst (unsigned)
  a.b(0xbf).d(dst); // mov edi, dst
  a.b(0xb9).d(1); // mov ecx, 1
  a.label("outer");
  a.b(0x81, 0xf9).d(SORT_COUNT); // cmp ecx, COUNT
  a.b(0x73).rel("done", 1); // jae done
  a.b(0x8b, 0x04, 0x8f); // mov eax, [edi+ecx*4]
  a.b(0x89, 0xca); // mov edx, ecx
  a.label("inner");
  a.b(0x85, 0xd2); // test edx, edx
  a.b(0x74).rel("place", 1); // jz place
  a.b(0x8b, 0x5c, 0x97, 0xfc); // mov ebx, [edi+edx*4-4]
  a.b(0x39, 0xc3); // cmp ebx, eax
  a.b(0x76).rel("place", 1); // jbe place
  a.b(0x89, 0x1c, 0x97); // mov [edi+edx*4], ebx
  a.b(0x4a); // dec edx
  a.b(0xeb).rel("inner", 1); // jmp inner
  a.label("place");
  a.b(0x89, 0x04, 0x97); // mov [edi+edx*4], eax
  a.b(0x41); // inc ecx
  a.b(0xeb).rel("outer", 1); // jmp outer
  a.label("done");
  a.b(0x89, 0xea); // mov edx, ebp
  a.b(0xf4); // hlt
  a.label("func");
  a.b(0x55); // push ebp
  a.b(0x89, 0xe5); // mov ebp, esp
  a.b(0x8b, 0x45, 0x08); // mov eax, [ebp+8]
  a.b(0x8d, 0x44, 0x40, 0x07); // lea eax, [eax+eax*2+7]
  a.b(0x5d); // pop ebp
  a.b(0xc3); // ret
  return a.assemble();
}

/**
 * Real-mode workload (16-bit registers and addressing). Code at CS:0, data in the segment given
 * by DS=ES (needs 2 × FILL_COUNT × 2 bytes from offset 0), stack in SS. Ends with HLT;
 * DX = call-loop sum.
 */
export function workload16(): Uint8Array {
  const a = new Asm();
  const dst = FILL_COUNT * 2;
  a.b(0x31, 0xf6); // xor si, si
  a.b(0xb9).w(FILL_COUNT); // mov cx, N
  a.b(0xb8).w(12345); // mov ax, 12345
  a.label("fill");
  a.b(0x69, 0xc0).w(25173); // imul ax, ax, 25173
  a.b(0x05).w(13849); // add ax, 13849
  a.b(0x89, 0x04); // mov [si], ax
  a.b(0x83, 0xc6, 0x02); // add si, 2
  a.b(0x49); // dec cx
  a.b(0x75).rel("fill", 1); // jnz fill
  a.b(0x31, 0xf6); // xor si, si
  a.b(0xb9).w(FILL_COUNT); // mov cx, N
  a.b(0x31, 0xd2); // xor dx, dx
  a.b(0x31, 0xdb); // xor bx, bx
  a.label("sum");
  a.b(0x03, 0x14); // add dx, [si]
  a.b(0x33, 0x1c); // xor bx, [si]
  a.b(0xd1, 0xc3); // rol bx, 1
  a.b(0x83, 0xc6, 0x02); // add si, 2
  a.b(0xe2).rel("sum", 1); // loop sum
  a.b(0x31, 0xf6); // xor si, si
  a.b(0xbf).w(dst); // mov di, dst
  a.b(0xb9).w(FILL_COUNT); // mov cx, N
  a.b(0xfc); // cld
  a.b(0xf3, 0xa5); // rep movsw
  a.b(0x31, 0xf6); // xor si, si
  a.b(0xbf).w(dst); // mov di, dst
  a.b(0xb9).w(256); // mov cx, 256
  a.label("bytes");
  a.b(0xac); // lodsb
  a.b(0x34, 0x5a); // xor al, 0x5a
  a.b(0xaa); // stosb
  a.b(0xe2).rel("bytes", 1); // loop bytes
  a.b(0x31, 0xed); // xor bp, bp
  a.b(0xb9).w(CALL_COUNT); // mov cx, CALLS
  a.label("calls");
  a.b(0x51); // push cx
  a.b(0xe8).rel("func", 2); // call func
  a.b(0x01, 0xc5); // add bp, ax
  a.b(0x59); // pop cx
  a.b(0xe2).rel("calls", 1); // loop calls
  // insertion sort of SORT_COUNT words at dst, addressed through DS moved to dst's paragraph
  a.b(0x8c, 0xd8); // mov ax, ds
  a.b(0x05).w(dst >> 4); // add ax, dst/16
  a.b(0x8e, 0xd8); // mov ds, ax
  a.b(0xbb).w(2); // mov bx, 2
  a.label("outer");
  a.b(0x81, 0xfb).w(SORT_COUNT * 2); // cmp bx, COUNT*2
  a.b(0x73).rel("done", 1); // jae done
  a.b(0x8b, 0x07); // mov ax, [bx]
  a.b(0x89, 0xde); // mov si, bx
  a.label("inner");
  a.b(0x85, 0xf6); // test si, si
  a.b(0x74).rel("place", 1); // jz place
  a.b(0x8b, 0x54, 0xfe); // mov dx, [si-2]
  a.b(0x39, 0xc2); // cmp dx, ax
  a.b(0x76).rel("place", 1); // jbe place
  a.b(0x89, 0x14); // mov [si], dx
  a.b(0x83, 0xee, 0x02); // sub si, 2
  a.b(0xeb).rel("inner", 1); // jmp inner
  a.label("place");
  a.b(0x89, 0x04); // mov [si], ax
  a.b(0x83, 0xc3, 0x02); // add bx, 2
  a.b(0xeb).rel("outer", 1); // jmp outer
  a.label("done");
  a.b(0x89, 0xea); // mov dx, bp
  a.b(0xf4); // hlt
  a.label("func");
  a.b(0x55); // push bp
  a.b(0x89, 0xe5); // mov bp, sp
  a.b(0x8b, 0x46, 0x04); // mov ax, [bp+4]
  a.b(0x6b, 0xc0, 0x03); // imul ax, ax, 3
  a.b(0x83, 0xc0, 0x07); // add ax, 7
  a.b(0x5d); // pop bp
  a.b(0xc3); // ret
  return a.assemble();
}
