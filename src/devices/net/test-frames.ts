/**
 * Building and checking IPv4 TCP/UDP frames, for tests of NICs and backends: a frame with a
 * complete checksum, the same frame as a driver with VIRTIO_NET_F_CSUM hands it over (checksum
 * field holding the pseudo-header sum, csum_start/csum_offset set), and a checksum verifier.
 */
import { ETH_HLEN, ETH_P_IP } from "./constants.js";
import { foldSum, onesSum, type PartialChecksum } from "./frame.js";

export interface Ipv4FrameSpec {
  dst: Uint8Array;
  src: Uint8Array;
  proto: "udp" | "tcp";
  srcIp?: number;
  dstIp?: number;
  srcPort?: number;
  dstPort?: number;
  payload: Uint8Array;
}

/**
 * An IPv4 frame and its partial-checksum twin: `full` has every checksum complete; `partial`
 * is what a driver with VIRTIO_NET_F_CSUM sends (transport checksum = pseudo-header sum), and
 * `csum` says where the checksum goes.
 */
export function buildIpv4Frame(spec: Ipv4FrameSpec): {
  full: Uint8Array;
  partial: Uint8Array;
  csum: PartialChecksum;
} {
  const l4Len = (spec.proto === "tcp" ? 20 : 8) + spec.payload.length;
  const ipLen = 20 + l4Len;
  const f = new Uint8Array(ETH_HLEN + ipLen);
  const v = new DataView(f.buffer);
  f.set(spec.dst, 0);
  f.set(spec.src, 6);
  v.setUint16(12, ETH_P_IP);
  const ip = ETH_HLEN;
  f[ip] = 0x45;
  v.setUint16(ip + 2, ipLen);
  v.setUint16(ip + 4, 0x1234);
  f[ip + 8] = 64;
  f[ip + 9] = spec.proto === "tcp" ? 6 : 17;
  v.setUint32(ip + 12, spec.srcIp ?? 0x0a000001);
  v.setUint32(ip + 16, spec.dstIp ?? 0x0a000002);
  v.setUint16(ip + 10, ~foldSum(onesSum(f, ip, ip + 20)) & 0xffff);
  const l4 = ip + 20;
  v.setUint16(l4, spec.srcPort ?? 40000);
  v.setUint16(l4 + 2, spec.dstPort ?? 5001);
  let csumOffset: number;
  if (spec.proto === "udp") {
    v.setUint16(l4 + 4, l4Len);
    csumOffset = 6;
  } else {
    v.setUint32(l4 + 4, 1);
    f[l4 + 12] = 0x50;
    f[l4 + 13] = 0x18;
    v.setUint16(l4 + 14, 0xffff);
    csumOffset = 16;
  }
  f.set(spec.payload, l4 + (spec.proto === "tcp" ? 20 : 8));
  const pseudo = pseudoHeaderSum(f, ip, l4Len);
  const partial = f.slice();
  new DataView(partial.buffer).setUint16(l4 + csumOffset, pseudo);
  const full = f.slice();
  const sum = onesSum(full, l4, full.length, pseudo);
  let c = ~foldSum(sum) & 0xffff;
  if (c === 0) c = 0xffff;
  new DataView(full.buffer).setUint16(l4 + csumOffset, c);
  return { full, partial, csum: { start: l4, offset: csumOffset } };
}

function pseudoHeaderSum(f: Uint8Array, ip: number, l4Len: number): number {
  let s = onesSum(f, ip + 12, ip + 20);
  s += f[ip + 9]!;
  s += l4Len;
  return foldSum(s);
}

/** True when the IPv4 header checksum and the TCP/UDP checksum of an IPv4 frame verify. */
export function ipv4ChecksumsValid(f: Uint8Array): boolean {
  const ip = ETH_HLEN;
  if (f.length < ip + 20 || ((f[12]! << 8) | f[13]!) !== ETH_P_IP) return false;
  if (foldSum(onesSum(f, ip, ip + 20)) !== 0xffff) return false;
  const ipLen = (f[ip + 2]! << 8) | f[ip + 3]!;
  const l4 = ip + 20;
  const l4Len = ipLen - 20;
  const proto = f[ip + 9]!;
  if (proto !== 6 && proto !== 17) return true;
  const sum = onesSum(f, l4, l4 + l4Len, pseudoHeaderSum(f, ip, l4Len));
  return foldSum(sum) === 0xffff;
}
