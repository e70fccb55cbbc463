/**
 * Device-side normative requirements of section 5.1 (Network Device) of the virtio
 * specification (../shared/virtio-spec/device-types/net/description.tex), each test quoting the
 * sentence it checks. The device runs on the virtio-PCI transport, driven by the test kit.
 */
import { describe, expect, it } from "vitest";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../src/devices/device.js";
import {
  createCable,
  type FrameSink,
  HostEndpoint,
  parseMac,
  VIRTIO_NET_CTRL_ANNOUNCE,
  VIRTIO_NET_CTRL_ANNOUNCE_ACK,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_ALLUNI,
  VIRTIO_NET_CTRL_RX_NOBCAST,
  VIRTIO_NET_CTRL_RX_NOMULTI,
  VIRTIO_NET_CTRL_RX_NOUNI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_DUPLEX_HALF,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_OK,
  VIRTIO_NET_S_ANNOUNCE,
  VIRTIO_NET_S_LINK_UP,
  VirtioNet,
} from "../src/devices/net/index.js";
import { ALL_NET_FEATURES, createNetRig } from "../src/devices/net/net-test-rig.js";
import { buildIpv4Frame, ipv4ChecksumsValid } from "../src/devices/net/test-frames.js";

const MAC = parseMac("52:54:00:12:34:56");
const PEER = parseMac("52:54:00:65:43:21");
const BCAST = parseMac("ff:ff:ff:ff:ff:ff");
const MCAST = parseMac("01:00:5e:00:00:fb");
const OTHER = parseMac("52:54:00:99:99:99");

/** A NIC on a cable whose other end the test holds: `inject` sends to the NIC, `out` collects what it sends. */
function nic(options: Parameters<typeof createNetRig>[1] = {}) {
  const [nicEnd, testEnd] = createCable();
  const out: Uint8Array[] = [];
  const toNic: FrameSink = testEnd.connect({
    acceptsPartialChecksum: false,
    deliver: (f) => {
      out.push(f.slice());
      return true;
    },
  });
  const rig = createNetRig(nicEnd, { mac: MAC, ...options });
  const inject = (frame: Uint8Array, csum: { start: number; offset: number } | null = null) =>
    toNic.deliver(frame, csum);
  return { ...rig, out, inject };
}

const udp = (dst: Uint8Array, n = 64) =>
  buildIpv4Frame({ dst, src: PEER, proto: "udp", payload: new Uint8Array(n).fill(0x42) }).full;

describe("5.1.4.1 Device configuration layout", () => {
  it('"The device MUST set max_virtqueue_pairs to between 1 and 0x8000 inclusive, if it offers VIRTIO_NET_F_MQ."', () => {
    const r = nic({ queuePairs: 4 });
    expect(r.pci.readConfig(8, 2)).toBe(4);
    expect(() => new VirtioNet({ queuePairs: 0 })).toThrow(/queuePairs/);
  });

  it('"The device MUST set mtu to between 68 and 65535 inclusive, if it offers VIRTIO_NET_F_MTU." / "SHOULD set mtu to at least 1280"', () => {
    expect(nic().pci.readConfig(10, 2)).toBe(1500);
    expect(nic({ mtu: 9000 }).pci.readConfig(10, 2)).toBe(9000);
    expect(() => new VirtioNet({ mtu: 67 })).toThrow(/mtu/);
    expect(() => new VirtioNet({ mtu: 65536 })).toThrow(/mtu/);
  });

  it('"The device MUST NOT modify mtu once it has been set." (and "All of the device configuration fields are read-only for the driver.")', () => {
    const r = nic();
    const before = r.pci.readConfigBytes(0, 24);
    for (let o = 0; o < 24; o += 4) r.pci.writeConfig(o, 4, 0xa5a5a5a5);
    r.device.setLinkUp(false);
    r.device.setLinkUp(true);
    expect(r.pci.readConfigBytes(0, 24)).toEqual(before);
  });

  it('"The device MUST NOT pass received packets that exceed mtu (plus low level ethernet header length) size with gso_type NONE or ECN after VIRTIO_NET_F_MTU has been successfully negotiated."', () => {
    const r = nic({ mtu: 1000 });
    r.net.postRx(0, [4096]);
    r.net.kick(0);
    const big = buildIpv4Frame({
      dst: MAC,
      src: PEER,
      proto: "udp",
      payload: new Uint8Array(1000 - 28 + 1),
    }).full;
    expect(big.length).toBe(1000 + 14 + 1);
    expect(r.inject(big)).toBe(false);
    expect(r.device.counters.rxDroppedTooLarge).toBe(1);
    const fits = big.subarray(0, 1014).slice();
    expect(r.inject(fits)).toBe(true);
    expect(r.net.receive(0)!.frame.length).toBe(1014);
  });

  it('"The device MUST forward transmitted packets of up to mtu (plus low level ethernet header length) size with gso_type NONE or ECN, and do so without fragmentation"', () => {
    const r = nic({ mtu: 1500, slotSize: 8192 });
    const f = buildIpv4Frame({
      dst: PEER,
      src: MAC,
      proto: "udp",
      payload: new Uint8Array(1500 - 28).fill(3),
    }).full;
    expect(f.length).toBe(1514);
    r.net.send(1, f);
    expect(r.out).toEqual([f]);
  });

  it('"If VIRTIO_NET_F_SPEED_DUPLEX has been negotiated, speed MUST contain the device speed, in units of 1 MBit per second ... duplex ..."', () => {
    const r = nic({ speed: 2500 });
    expect(r.pci.readConfig(12, 4)).toBe(2500);
    expect(r.pci.readConfig(16, 1)).toBe(1);
    r.pci.takeInterrupts();
    r.device.setSpeedDuplex(100, VIRTIO_NET_DUPLEX_HALF);
    expect(r.pci.takeInterrupts().config).toBe(true);
    expect(r.pci.readConfig(12, 4)).toBe(100);
    expect(r.pci.readConfig(16, 1)).toBe(0);
  });

  it('status: "Two bits are currently defined for the status field: VIRTIO_NET_S_LINK_UP and VIRTIO_NET_S_ANNOUNCE" (link changes come with a configuration change notification)', () => {
    const r = nic();
    expect(r.pci.readConfig(6, 2)).toBe(VIRTIO_NET_S_LINK_UP);
    r.pci.takeInterrupts();
    r.device.setLinkUp(false);
    expect(r.pci.takeInterrupts().config).toBe(true);
    expect(r.pci.readConfig(6, 2)).toBe(0);
    // A link that is down carries nothing either way.
    r.net.postRx(0, [2048]);
    r.net.kick(0);
    expect(r.inject(udp(MAC))).toBe(false);
    r.net.send(1, udp(PEER));
    expect(r.out.length).toBe(0);
    expect(r.device.counters.txDroppedLinkDown).toBe(1);
    r.device.setLinkUp(true);
    expect(r.pci.readConfig(6, 2)).toBe(VIRTIO_NET_S_LINK_UP);
  });
});

describe("5.1.6.2.2 Device Requirements: Packet Transmission", () => {
  it('"The device MUST ignore flag bits that it does not recognize."', () => {
    const r = nic();
    const f = udp(PEER);
    const hdr = new Uint8Array(12);
    hdr[0] = 0x80;
    r.net.send(1, f, { header: hdr });
    expect(r.out).toEqual([f]);
  });

  it('"If VIRTIO_NET_HDR_F_NEEDS_CSUM bit in flags is not set, the device MUST NOT use the csum_start and csum_offset." / "... MUST NOT rely on the packet checksum being correct."', () => {
    const r = nic();
    const f = udp(PEER);
    f[f.length - 1]! ^= 0xff; // checksum now wrong: forwarded as is
    const hdr = new Uint8Array(12);
    hdr[6] = 20;
    hdr[8] = 6;
    r.net.send(1, f, { header: hdr });
    expect(r.out).toEqual([f]);
  });

  it("with VIRTIO_NET_F_CSUM, a NEEDS_CSUM frame leaves for a whole-frame backend with its checksum completed", () => {
    const r = nic();
    const b = buildIpv4Frame({ dst: PEER, src: MAC, proto: "tcp", payload: new Uint8Array(99).fill(1) });
    r.net.send(1, b.partial, { csum: b.csum });
    expect(r.out).toEqual([b.full]);
    expect(ipv4ChecksumsValid(r.out[0]!)).toBe(true);
  });
});

describe("5.1.6.3.2 Device Requirements: Setting Up Receive Buffers", () => {
  it('"The device MUST use only a single descriptor if VIRTIO_NET_F_MRG_RXBUF was not negotiated."', () => {
    const r = nic({ accept: [VIRTIO_F_EVENT_IDX, VIRTIO_NET_F_MAC] });
    r.net.postRx(0, [600, 600, 600]);
    r.net.postRx(0, [2048]);
    r.net.kick(0);
    r.inject(udp(MAC, 1200));
    const q = r.pci.queues[0]!.queue;
    expect(r.pci.memory.readU16(q.used + 2)).toBe(1); // one buffer (of three descriptors) used
    const got = r.net.receive(0)!;
    expect(got.numBuffers).toBe(1);
    expect(q.outstanding).toBe(1);
  });

  it('"The device MUST set num_buffers to the number of descriptors used to hold the incoming packet."', () => {
    const r = nic();
    for (let i = 0; i < 6; i++) r.net.postRx(0, [256]);
    r.net.kick(0);
    const f = udp(MAC, 1000); // 1042 bytes + 12 header = 1054: 5 buffers of 256
    r.inject(f);
    const got = r.net.receive(0)!;
    expect(got.numBuffers).toBe(5);
    expect(got.frame).toEqual(f);
  });
});

describe("5.1.6.4.1 Device Requirements: Processing of Incoming Packets", () => {
  it('"If VIRTIO_NET_F_MRG_RXBUF has not been negotiated, the device MUST set num_buffers to 1."', () => {
    const r = nic({ accept: [VIRTIO_NET_F_MAC] });
    r.net.postRx(0, [1600]);
    r.net.kick(0);
    r.inject(udp(MAC));
    expect(r.net.receive(0)!.numBuffers).toBe(1);
  });

  it('"If a receive packet is spread over multiple buffers, the device MUST use all buffers but the last (i.e. the first num_buffers - 1 buffers) completely up to the full length of each buffer supplied by the driver."', () => {
    const r = nic();
    const sizes = [100, 300, 50, 2000];
    for (const s of sizes) r.net.postRx(0, [s]);
    r.net.kick(0);
    r.inject(udp(MAC, 500)); // 542 + 12 = 554 bytes
    const q = r.pci.queues[0]!.queue;
    const lens = [q.getUsed()!.len, q.getUsed()!.len, q.getUsed()!.len, q.getUsed()!.len];
    expect(lens).toEqual([100, 300, 50, 554 - 450]);
  });

  it('"The device MUST use all buffers used by a single receive packet together, such that at least num_buffers are observed by driver as used."', () => {
    const r = nic();
    for (let i = 0; i < 4; i++) r.net.postRx(0, [128]);
    r.net.kick(0);
    r.pci.takeInterrupts();
    r.inject(udp(MAC, 300));
    // One notification, and by then every buffer of the packet is visible in used.idx.
    expect(r.pci.takeInterrupts().queues).toEqual([0]);
    const usedIdx = r.pci.memory.readU16(r.pci.queues[0]!.queue.used + 2);
    expect(usedIdx).toBe(3);
  });

  it('"If VIRTIO_NET_F_GUEST_CSUM is not negotiated, the device MUST set flags to zero and SHOULD supply a fully checksummed packet to the driver."', () => {
    const r = nic({ accept: [VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF] });
    r.net.postRx(0, [2048]);
    r.net.kick(0);
    const b = buildIpv4Frame({ dst: MAC, src: PEER, proto: "udp", payload: new Uint8Array(77) });
    r.inject(b.partial, b.csum);
    const got = r.net.receive(0)!;
    expect(got.flags).toBe(0);
    expect(got.frame).toEqual(b.full);
  });

  it('"If none of the VIRTIO_NET_F_GUEST_TSO4, TSO6, UFO, USO4 or USO6 options have been negotiated, the device MUST set gso_type to VIRTIO_NET_HDR_GSO_NONE." (and RSC_INFO is never set without RSC_EXT)', () => {
    const r = nic();
    r.net.postRx(0, [2048]);
    r.net.kick(0);
    r.inject(udp(MAC));
    const got = r.net.receive(0)!;
    expect(got.gsoType).toBe(VIRTIO_NET_HDR_GSO_NONE);
    expect(got.flags & 4).toBe(0);
  });

  it('"the device MUST set csum_start and csum_offset such that calculating a ones\' complement checksum from csum_start up until the end of the packet and storing the result at offset csum_offset from csum_start will result in a fully checksummed packet"', () => {
    const r = nic({ accept: [VIRTIO_NET_F_MAC, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_CSUM] });
    r.net.postRx(0, [2048]);
    r.net.kick(0);
    const b = buildIpv4Frame({ dst: MAC, src: PEER, proto: "tcp", payload: new Uint8Array(301).fill(9) });
    r.inject(b.partial, b.csum);
    const got = r.net.receive(0)!;
    expect(got.flags).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
    expect([got.csumStart, got.csumOffset]).toEqual([b.csum.start, b.csum.offset]);
    expect(got.frame).toEqual(b.partial); // the pseudo-header sum in place
  });
});

describe("5.1.6.5 Control Virtqueue", () => {
  it('"There is little the driver can do except issue a diagnostic if ack is not VIRTIO_NET_OK" (unknown class or command: VIRTIO_NET_ERR)', () => {
    const r = nic();
    expect(r.net.command(99, 0)).toBe(VIRTIO_NET_ERR);
    expect(r.net.command(VIRTIO_NET_CTRL_RX, 42, Uint8Array.of(1))).toBe(VIRTIO_NET_ERR);
    expect(r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC)).toBe(VIRTIO_NET_ERR);
  });
});

describe("5.1.6.5.1 Device Requirements: Packet Receive Filtering", () => {
  function filtered() {
    const r = nic();
    for (let i = 0; i < 16; i++) r.net.postRx(0, [2048]);
    r.net.kick(0);
    expect(r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(0))).toBe(
      VIRTIO_NET_OK,
    );
    return r;
  }

  it('"VIRTIO_NET_CTRL_RX_PROMISC turns promiscuous mode on and off ... If promiscuous mode is on, the device SHOULD receive all incoming packets."', () => {
    const r = filtered();
    expect(r.inject(udp(OTHER))).toBe(false);
    expect(r.inject(udp(MAC))).toBe(true);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1));
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOUNI, Uint8Array.of(1));
    expect(r.inject(udp(OTHER))).toBe(true); // "even if one of the other modes ... is on"
  });

  it('"VIRTIO_NET_CTRL_RX_ALLMULTI turns all-multicast receive on and off ... the device SHOULD allow all incoming multicast packets."', () => {
    const r = filtered();
    expect(r.inject(udp(MCAST))).toBe(false);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, Uint8Array.of(1));
    expect(r.inject(udp(MCAST))).toBe(true);
    expect(r.inject(udp(BCAST))).toBe(true);
  });

  it("VIRTIO_NET_F_CTRL_RX_EXTRA: ALLUNI, NOMULTI (even with ALLMULTI, not broadcast), NOUNI, NOBCAST", () => {
    const r = filtered();
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLUNI, Uint8Array.of(1));
    expect(r.inject(udp(OTHER))).toBe(true);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, Uint8Array.of(1));
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOMULTI, Uint8Array.of(1));
    expect(r.inject(udp(MCAST))).toBe(false);
    expect(r.inject(udp(BCAST))).toBe(true);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, Uint8Array.of(1));
    expect(r.inject(udp(BCAST))).toBe(false);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOUNI, Uint8Array.of(1));
    expect(r.inject(udp(MAC))).toBe(false);
  });
});

describe("5.1.6.5.2 Device Requirements: Setting MAC Address Filtering", () => {
  const table = (uni: Uint8Array[], multi: Uint8Array[]) => {
    const b = new Uint8Array(8 + 6 * (uni.length + multi.length));
    const v = new DataView(b.buffer);
    v.setUint32(0, uni.length, true);
    uni.forEach((m, i) => {
      b.set(m, 4 + 6 * i);
    });
    v.setUint32(4 + 6 * uni.length, multi.length, true);
    multi.forEach((m, i) => {
      b.set(m, 8 + 6 * uni.length + 6 * i);
    });
    return b;
  };

  it('"The device MUST have an empty MAC filtering table on reset."', () => {
    const r = nic();
    r.net.command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table([OTHER], [MCAST]));
    expect(r.device.filter.tableSize).toEqual([1, 1]);
    r.pci.reset();
    expect(r.device.filter.tableSize).toEqual([0, 0]);
  });

  it('"The device MUST update the MAC filtering table before it consumes the VIRTIO_NET_CTRL_MAC_TABLE_SET command." / "SHOULD drop incoming packets which have a destination MAC which matches neither the mac ... nor the MAC filtering table."', () => {
    const r = nic();
    for (let i = 0; i < 8; i++) r.net.postRx(0, [2048]);
    r.net.kick(0);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(0));
    expect(r.inject(udp(OTHER))).toBe(false);
    expect(r.net.command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table([OTHER], [MCAST]))).toBe(
      VIRTIO_NET_OK,
    );
    expect(r.inject(udp(OTHER))).toBe(true);
    expect(r.inject(udp(MCAST))).toBe(true);
    expect(r.inject(udp(parseMac("01:00:5e:00:00:01")))).toBe(false);
    expect(r.inject(udp(MAC))).toBe(true);
    // A table whose lengths do not add up is refused and leaves the table as it was.
    const bad = table([OTHER], []).subarray(0, 9);
    expect(r.net.command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, bad)).toBe(VIRTIO_NET_ERR);
    expect(r.device.filter.tableSize).toEqual([1, 1]);
  });

  it('"The device MUST update mac in config space before it consumes the VIRTIO_NET_CTRL_MAC_ADDR_SET command, if VIRTIO_NET_F_MAC has been negotiated."', () => {
    const r = nic();
    expect(r.net.command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, OTHER)).toBe(VIRTIO_NET_OK);
    expect(r.pci.readConfigBytes(0, 6)).toEqual(OTHER);
    r.net.postRx(0, [2048]);
    r.net.kick(0);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(0));
    expect(r.inject(udp(OTHER))).toBe(true);
    expect(r.inject(udp(MAC))).toBe(false);
  });
});

describe("5.1.6.5.3 Device Requirements: VLAN Filtering", () => {
  it('"When VIRTIO_NET_F_CTRL_VLAN is not negotiated, the device MUST accept all VLAN tagged packets."', () => {
    const r = nic();
    r.net.postRx(0, [2048]);
    r.net.kick(0);
    r.net.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(0));
    const plain = udp(MAC);
    const tagged = new Uint8Array(plain.length + 4);
    tagged.set(plain.subarray(0, 12));
    tagged.set([0x81, 0x00, 0x00, 0x07], 12);
    tagged.set(plain.subarray(12), 16);
    expect(r.inject(tagged)).toBe(true);
    expect(r.net.receive(0)!.frame).toEqual(tagged);
  });
});

describe("5.1.6.5.4 Device Requirements: Gratuitous Packet Sending", () => {
  it('"If VIRTIO_NET_F_GUEST_ANNOUNCE is negotiated, the device MUST clear the VIRTIO_NET_S_ANNOUNCE bit in status upon receipt of a command buffer with class VIRTIO_NET_CTRL_ANNOUNCE and command VIRTIO_NET_CTRL_ANNOUNCE_ACK before marking the buffer as used."', () => {
    const r = nic();
    r.pci.takeInterrupts();
    r.device.announce();
    expect(r.pci.takeInterrupts().config).toBe(true);
    expect(r.pci.readConfig(6, 2) & VIRTIO_NET_S_ANNOUNCE).toBe(VIRTIO_NET_S_ANNOUNCE);
    expect(r.net.command(VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK)).toBe(VIRTIO_NET_OK);
    expect(r.pci.readConfig(6, 2) & VIRTIO_NET_S_ANNOUNCE).toBe(0);
  });
});

describe("5.1.6.5.6.2 Device Requirements: Automatic receive steering in multiqueue mode", () => {
  const flows = (n: number) =>
    Array.from(
      { length: n },
      (_, i) =>
        buildIpv4Frame({ dst: MAC, src: PEER, proto: "udp", srcPort: 2000 + i, payload: Uint8Array.of(i) })
          .full,
    );

  function mq() {
    const r = nic({ queuePairs: 4, accept: ALL_NET_FEATURES });
    for (let q = 0; q < 4; q++) {
      for (let i = 0; i < 8; i++) r.net.postRx(2 * q, [2048]);
      r.net.kick(2 * q);
    }
    return r;
  }

  it('"After initialization of reset, the device MUST queue packets only on receiveq1."', () => {
    const r = mq();
    for (const f of flows(12)) r.inject(f);
    expect(r.device.counters.rxFrames).toBe(8); // receiveq1's 8 buffers, then drops
    for (const q of [2, 4, 6]) expect(r.net.receive(q)).toBeNull();
  });

  it('"The device MUST NOT queue packets on receive queues greater than virtqueue_pairs once it has placed the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command in a used buffer."', () => {
    const r = mq();
    expect(r.net.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(2, 0))).toBe(
      VIRTIO_NET_OK,
    );
    for (const f of flows(14)) r.inject(f);
    expect(r.net.receive(4)).toBeNull();
    expect(r.net.receive(6)).toBeNull();
    let n = 0;
    for (const q of [0, 2]) while (r.net.receive(q)) n++;
    expect(n).toBe(14);
    expect(r.net.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(5, 0))).toBe(
      VIRTIO_NET_ERR,
    );
    expect(r.net.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(0, 0))).toBe(
      VIRTIO_NET_ERR,
    );
  });

  it('"After the driver transmitted a packet of a flow on transmitqX, the device SHOULD cause incoming packets for that flow to be steered to receiveqX."', () => {
    const r = mq();
    r.net.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(4, 0));
    const reqs = [0, 1, 2, 3].map(
      (i) =>
        buildIpv4Frame({
          dst: PEER,
          src: MAC,
          proto: "tcp",
          srcPort: 5000 + i,
          dstPort: 80,
          srcIp: 0x0a000002,
          dstIp: 0x0a000001,
          payload: Uint8Array.of(i),
        }).full,
    );
    reqs.forEach((f, i) => {
      r.net.send(2 * i + 1, f);
    });
    reqs.forEach((_, i) => {
      const reply = buildIpv4Frame({
        dst: MAC,
        src: PEER,
        proto: "tcp",
        srcPort: 80,
        dstPort: 5000 + i,
        srcIp: 0x0a000001,
        dstIp: 0x0a000002,
        payload: Uint8Array.of(0xf0 + i),
      }).full;
      r.inject(reply);
      expect(r.net.receive(2 * i)?.frame).toEqual(reply);
    });
  });
});

describe("feature negotiation", () => {
  it("offers VERSION_1 with every feature of the issue: MAC, STATUS, MRG_RXBUF, CSUM, GUEST_CSUM, MTU, CTRL_VQ, CTRL_RX, CTRL_MAC_ADDR, MQ, SPEED_DUPLEX", () => {
    const r = nic({ queuePairs: 2 });
    const f = r.pci.deviceFeatures();
    for (const bit of ALL_NET_FEATURES) {
      const set = bit < 32 ? (f.lo >>> bit) & 1 : (f.hi >>> (bit - 32)) & 1;
      expect([bit, set]).toEqual([bit, 1]);
    }
    expect((f.hi >>> 0) & 1).toBe(1); // VIRTIO_F_VERSION_1
    expect([VIRTIO_F_INDIRECT_DESC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_CSUM].every((b) => (f.lo >>> b) & 1)).toBe(
      true,
    );
  });

  it("a host endpoint receives the NIC's frames and its frames reach the guest", () => {
    const [nicEnd, hostEnd] = createCable();
    const rig = createNetRig(nicEnd, { mac: MAC });
    const host = new HostEndpoint().connect(hostEnd);
    rig.net.postRx(0, [2048]);
    rig.net.kick(0);
    const f = udp(MAC);
    expect(host.send(f)).toBe(true);
    expect(rig.net.receive(0)!.frame).toEqual(f);
    rig.net.send(1, udp(PEER));
    expect(host.drain()).toEqual([udp(PEER)]);
  });
});
