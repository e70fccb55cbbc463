/**
 * virtio-rng (section 5.4, ../shared/virtio-spec/device-types/entropy/) through the whole
 * path: virtio-PCI transport, testing-kit driver, both interrupt modes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cryptoEntropy, seededEntropy, VirtioRng } from "../src/devices/rng/index.js";
import { VIRTIO_PCI_DEVICE_ID_BASE } from "../src/devices/transport/pci/regs.js";
import { createPciTestRig } from "../src/testing.js";

for (const mode of ["msix", "intx"] as const) {
  describe(`virtio-rng over PCI with ${mode}`, () => {
    it('5.4.6.1: "The device MUST place one or more random bytes into the buffer" — bytes delivered, used lengths right, interrupt raised', () => {
      const rig = createPciTestRig(new VirtioRng({ entropy: seededEntropy(1) }), { interrupts: mode });
      expect(rig.transport.deviceId).toBe(VIRTIO_PCI_DEVICE_ID_BASE + 4);
      const [vq] = rig.driver.bringUp();
      const bufs = [16, 64, 1, 4096].map((len) => ({ addr: rig.driver.dma.alloc(len), len }));
      const heads = bufs.map((b) => vq!.queue.add([{ addr: b.addr, len: b.len, write: true }]));
      expect(rig.driver.kick(0)).toBe(true);
      expect(rig.driver.takeInterrupts()).toEqual({ queues: [0], config: false });
      // The same seeded source, asked for the same buffers in order, gives the same bytes.
      const replay = seededEntropy(1);
      for (let i = 0; i < bufs.length; i++) {
        const u = vq!.queue.getUsed()!;
        expect(u).toEqual({ id: heads[i], len: bufs[i]!.len });
        const expected = new Uint8Array(bufs[i]!.len);
        replay.fill(expected);
        expect([...rig.memory.subarray(bufs[i]!.addr, bufs[i]!.len)]).toEqual([...expected]);
      }
      expect(vq!.queue.getUsed()).toBeNull();
      if (mode === "intx") {
        // The ISR read in takeInterrupts lowered the line.
        expect(rig.intx.level).toBe(false);
        expect(rig.intx.raised).toBe(1);
      } else {
        expect(rig.msi.messages).toEqual([{ addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 }]);
        expect(rig.intx.raised).toBe(0);
      }
    });

    it("fills chained and indirect writable buffers, honouring a byte limit per buffer", () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 }),
          fc.boolean(),
          fc.integer({ min: 1, max: 2000 }),
          (lens, indirect, limit) => {
            const rig = createPciTestRig(
              new VirtioRng({ entropy: seededEntropy(7), maxBytesPerBuffer: limit }),
              {
                interrupts: mode,
              },
            );
            const [vq] = rig.driver.bringUp();
            const segs = lens.map((len) => ({ addr: rig.driver.dma.alloc(len), len, write: true }));
            const head = vq!.queue.add(segs, { indirect });
            rig.driver.kick(0);
            const total = lens.reduce((a, b) => a + b, 0);
            expect(rig.driver.takeInterrupts().queues).toEqual([0]);
            expect(vq!.queue.getUsed()).toEqual({ id: head, len: Math.min(total, limit) });
          },
        ),
        { numRuns: 40 },
      );
    });
  });
}

describe("entropy sources", () => {
  it("the seeded source is deterministic and differs by seed", () => {
    const a = new Uint8Array(37);
    const b = new Uint8Array(37);
    seededEntropy(5).fill(a);
    seededEntropy(5).fill(b);
    expect(a).toEqual(b);
    seededEntropy(6).fill(b);
    expect(a).not.toEqual(b);
  });

  it("the platform source fills more than the 65536-byte getRandomValues limit", () => {
    const big = new Uint8Array(200_000);
    cryptoEntropy().fill(big);
    // Each 64 KiB piece was filled: no piece is all zero.
    for (let at = 0; at < big.length; at += 65536) {
      expect(big.subarray(at, at + 65536).some((x) => x !== 0)).toBe(true);
    }
  });

  it("the default rng uses the platform source", () => {
    const rig = createPciTestRig(new VirtioRng());
    const [vq] = rig.driver.bringUp();
    const addr = rig.driver.dma.alloc(256);
    vq!.queue.add([{ addr, len: 256, write: true }]);
    rig.driver.kick(0);
    expect(vq!.queue.getUsed()!.len).toBe(256);
    expect(rig.memory.subarray(addr, 256).some((x) => x !== 0)).toBe(true);
  });
});
