import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET } from "../../src/devices/device.js";
import { createPciTestRig } from "../../src/testing.js";
import {
  CHECKSUM_F_SUM16,
  CHECKSUM_OP_CRC32,
  CHECKSUM_OP_SUM16,
  CHECKSUM_S_BAD_REQUEST,
  CHECKSUM_S_OK,
  CHECKSUM_S_UNSUPP,
  ChecksumDevice,
  crc32Update,
} from "./device.js";

function crc32(bytes: Uint8Array): number {
  return ~crc32Update(0xffff_ffff, bytes) >>> 0;
}

function sum16(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Sends one request through the transport, split into `cuts` readable pieces. */
function request(
  rig: ReturnType<typeof createPciTestRig>,
  op: number,
  data: Uint8Array,
  cuts: number[],
  indirect: boolean,
) {
  const { driver, memory } = rig;
  const vq = driver.queues[0]!;
  const req = new Uint8Array(8 + data.length);
  new DataView(req.buffer).setUint32(0, op, true);
  req.set(data, 8);
  const points = [...new Set([0, ...cuts.map((c) => c % (req.length + 1)), req.length])].sort(
    (a, b) => a - b,
  );
  const segs = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const len = points[i + 1]! - points[i]!;
    const addr = driver.dma.alloc(Math.max(len, 1));
    memory.writeFrom(addr, req.subarray(points[i]!, points[i + 1]!));
    segs.push({ addr, len, write: false });
  }
  const resp = driver.dma.alloc(8);
  segs.push({ addr: resp, len: 8, write: true });
  const head = vq.queue.add(segs, { indirect });
  driver.kick(0);
  const used = vq.queue.getUsed();
  expect(used?.id).toBe(head);
  return { len: used!.len, status: memory.readU8(resp), result: memory.readU32(resp + 4) };
}

for (const mode of ["msix", "intx"] as const) {
  describe(`checksum device over virtio-PCI (${mode})`, () => {
    it("computes CRC-32 and the Internet checksum of any request split any way", () => {
      const rig = createPciTestRig(new ChecksumDevice(), { interrupts: mode, indirectEntries: 16 });
      rig.driver.bringUp([CHECKSUM_F_SUM16, 28, 29]);
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 300 }),
          fc.array(fc.nat(), { maxLength: 6 }),
          fc.boolean(),
          fc.boolean(),
          (data, cuts, indirect, useSum) => {
            const r = request(rig, useSum ? CHECKSUM_OP_SUM16 : CHECKSUM_OP_CRC32, data, cuts, indirect);
            expect(r).toEqual({ len: 8, status: CHECKSUM_S_OK, result: useSum ? sum16(data) : crc32(data) });
            expect(rig.driver.takeInterrupts().queues).toEqual([0]);
          },
        ),
        { numRuns: 150 },
      );
    });

    it("answers unknown ops, un-negotiated ops and short requests with a status", () => {
      const rig = createPciTestRig(new ChecksumDevice(), { interrupts: mode });
      rig.driver.bringUp([]); // CHECKSUM_F_SUM16 not negotiated
      expect(request(rig, 7, new Uint8Array(4), [], false).status).toBe(CHECKSUM_S_UNSUPP);
      expect(request(rig, CHECKSUM_OP_SUM16, new Uint8Array(4), [], false).status).toBe(CHECKSUM_S_UNSUPP);
      const vq = rig.driver.queues[0]!;
      const resp = rig.driver.dma.alloc(8);
      const head = vq.queue.add([
        { addr: rig.driver.dma.alloc(4), len: 4, write: false },
        { addr: resp, len: 8, write: true },
      ]);
      rig.driver.kick(0);
      expect(vq.queue.getUsed()).toEqual({ id: head, len: 8 });
      expect(rig.memory.readU8(resp)).toBe(CHECKSUM_S_BAD_REQUEST);
    });

    it("announces requests_served in its configuration space every 64 requests", () => {
      const rig = createPciTestRig(new ChecksumDevice(), { interrupts: mode });
      rig.driver.bringUp();
      for (let i = 0; i < 64; i++) request(rig, CHECKSUM_OP_CRC32, Uint8Array.of(i), [], false);
      const irq = rig.driver.takeInterrupts();
      expect(irq.config).toBe(true);
      expect(rig.driver.readConfig(0, 4)).toBe(64);
    });

    it("a malformed chain sets DEVICE_NEEDS_RESET and a reset brings the device back", () => {
      const rig = createPciTestRig(new ChecksumDevice(), { interrupts: mode });
      rig.driver.bringUp();
      const vq = rig.driver.queues[0]!;
      vq.queue.add([{ addr: 0x7f_fff0, len: 0x100, write: false }]);
      rig.driver.kick(0);
      expect(rig.driver.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).not.toBe(0);
      expect(rig.driver.takeInterrupts().config).toBe(true);
      rig.driver.bringUp();
      expect(request(rig, CHECKSUM_OP_CRC32, Uint8Array.of(1, 2, 3), [], false).result).toBe(
        crc32(Uint8Array.of(1, 2, 3)),
      );
    });
  });
}
