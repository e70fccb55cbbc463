/** The byte that makes the 8-bit sum of `bytes` zero (with that byte counted as 0). */
export function checksumByte(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** The 8-bit sum of `bytes` (0 for a correctly checksummed table). */
export function byteSum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

/** Writes ASCII `s` (padded with `pad` to `len` bytes) at `offset`. */
export function putAscii(buf: Uint8Array, offset: number, s: string, len: number, pad = 0x20): void {
  for (let i = 0; i < len; i++) buf[offset + i] = i < s.length ? s.charCodeAt(i) & 0x7f : pad;
}

export function getAscii(buf: Uint8Array, offset: number, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) s += String.fromCharCode(buf[offset + i]!);
  return s;
}
