/**
 * Decompresses a bzImage's payload on the host into the vmlinux ELF that `loadLinux`'s
 * `vmlinux` option boots directly (skipping the guest-side decompressor).
 */
import { spawnSync } from "node:child_process";
import { gunzipSync } from "node:zlib";
import { parseSetupHeader } from "../../../machine/boot/setup-header.js";
import { bzImagePayload, parseVmlinux } from "../../../machine/boot/vmlinux.js";
import { GuestBuildError } from "./apt.js";

function tool(cmd: string, args: string[], input: Uint8Array, what: string): Uint8Array {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1024 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    throw new GuestBuildError(
      `cannot decompress the kernel's ${what} payload with ${cmd}: ${r.error?.message ?? String(r.stderr).trim()} (install ${cmd})`,
    );
  }
  return new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength);
}

/**
 * The vmlinux inside a bzImage, decompressed with Node's zlib (gzip) or the xz, zstd, bzip2 or
 * lz4 program (the payload ends with a 4-byte size, which single-stream decoding ignores).
 * Checks the result is a loadable 32-bit kernel.
 */
export function decompressKernel(bzImage: Uint8Array): Uint8Array {
  const hdr = parseSetupHeader(bzImage);
  const payload = bzImagePayload(bzImage, hdr);
  let out: Uint8Array;
  switch (hdr.payloadCompression) {
    case "none":
      out = payload;
      break;
    case "gzip":
      try {
        // The kernel's build appends the uncompressed size (4 bytes) after the gzip member.
        out = gunzipSync(payload.subarray(0, payload.length - 4));
      } catch (e) {
        throw new GuestBuildError(`cannot decompress the kernel's gzip payload: ${(e as Error).message}`);
      }
      break;
    case "xz":
      out = tool("xz", ["-d", "-c", "--single-stream"], payload, "xz");
      break;
    case "lzma":
      out = tool("xz", ["-d", "-c", "--format=lzma", "--single-stream"], payload, "lzma");
      break;
    case "zstd":
      out = tool("zstd", ["-d", "-c", "-q"], payload.subarray(0, payload.length - 4), "zstd");
      break;
    case "bzip2":
      out = tool("bzip2", ["-d", "-c", "-q"], payload, "bzip2");
      break;
    case "lz4":
      out = tool("lz4", ["-d", "-c", "-q", "-l"], payload.subarray(0, payload.length - 4), "lz4");
      break;
    default:
      throw new GuestBuildError(
        `the kernel's payload compression is not recognised (${hdr.payloadCompression})`,
      );
  }
  parseVmlinux(out);
  return out;
}
