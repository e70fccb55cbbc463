/**
 * A tiny host on the virtual network for tests: answers ARP for its IPv4 address and ICMP echo
 * requests, and records UDP datagrams sent to it. Built on HostEndpoint (raw Ethernet frames).
 */
import { HostEndpoint } from "../src/devices/net/host-endpoint.js";

export const HOST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x00, 0x00, 0x02);
export const HOST_IP = Uint8Array.of(10, 0, 2, 2);
const BROADCAST = Uint8Array.of(255, 255, 255, 255);

function checksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

export class NetResponder {
  readonly endpoint: HostEndpoint;
  arpRequests = 0;
  echoRequests = 0;
  readonly udp: { port: number; data: string }[] = [];
  /** ICMP destination-unreachable messages received (type 3), by code. */
  readonly unreachable: number[] = [];

  constructor() {
    this.endpoint = new HostEndpoint({ onFrame: (f) => this.onFrame(f) });
  }

  /** Sends a UDP datagram from this host (port 5555) to `ip`:`port` at `mac`. */
  sendUdp(mac: Uint8Array, ip: Uint8Array, port: number, payload: string): void {
    const data = new TextEncoder().encode(payload);
    const f = new Uint8Array(14 + 20 + 8 + data.length);
    f.set(mac, 0);
    f.set(HOST_MAC, 6);
    f.set([0x08, 0x00], 12);
    const ipLen = 20 + 8 + data.length;
    f.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0, 1, 0, 0, 64, 17, 0, 0], 14);
    f.set(HOST_IP, 26);
    f.set(ip, 30);
    const c = checksum(f, 14, 34);
    f[24] = c >> 8;
    f[25] = c & 0xff;
    const udpLen = 8 + data.length;
    f.set([0x15, 0xb3, port >> 8, port & 0xff, udpLen >> 8, udpLen & 0xff, 0, 0], 34); // checksum 0: none
    f.set(data, 42);
    this.endpoint.send(f);
  }

  private onFrame(f: Uint8Array): void {
    const type = (f[12]! << 8) | f[13]!;
    if (type === 0x0806 && f.length >= 42 && f[21] === 1 && eq(f.subarray(38, 42), HOST_IP)) {
      this.arpRequests++;
      const r = new Uint8Array(42);
      r.set(f.subarray(6, 12), 0);
      r.set(HOST_MAC, 6);
      r.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
      r.set(HOST_MAC, 22);
      r.set(HOST_IP, 28);
      r.set(f.subarray(22, 32), 32); // sender MAC + IP become the target
      this.endpoint.send(r);
      return;
    }
    const toUs = f.length >= 34 && (eq(f.subarray(30, 34), HOST_IP) || eq(f.subarray(30, 34), BROADCAST));
    if (type !== 0x0800 || !toUs) return;
    const ihl = (f[14]! & 0xf) * 4;
    const total = (f[16]! << 8) | f[17]!;
    const l4 = 14 + ihl;
    if (f[23] === 1 && f[l4] === 3) {
      this.unreachable.push(f[l4 + 1]!);
    } else if (f[23] === 1 && f[l4] === 8) {
      this.echoRequests++;
      const r = f.slice(0, 14 + total);
      r.set(f.subarray(6, 12), 0);
      r.set(HOST_MAC, 6);
      r.set(f.subarray(30, 34), 26);
      r.set(f.subarray(26, 30), 30);
      r[24] = r[25] = 0;
      const ipc = checksum(r, 14, l4);
      r[24] = ipc >> 8;
      r[25] = ipc & 0xff;
      r[l4] = 0;
      r[l4 + 2] = r[l4 + 3] = 0;
      const c = checksum(r, l4, 14 + total);
      r[l4 + 2] = c >> 8;
      r[l4 + 3] = c & 0xff;
      this.endpoint.send(r);
    } else if (f[23] === 17) {
      const port = (f[l4 + 2]! << 8) | f[l4 + 3]!;
      const len = (f[l4 + 4]! << 8) | f[l4 + 5]!;
      this.udp.push({ port, data: new TextDecoder().decode(f.subarray(l4 + 8, l4 + len)) });
    }
  }
}
