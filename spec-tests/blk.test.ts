/**
 * virtio-blk, section 5.2 (../shared/virtio-spec/device-types/blk/description.tex): the
 * device requirements, through the virtio-PCI transport and the testing-kit driver. Each test
 * names the section and quotes the sentence it checks.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { u64TestBit } from "../src/common/u64.js";
import type { BlockBackend, MaybePromise } from "../src/devices/blk/backend.js";
import { MemoryDisk } from "../src/devices/blk/backend.js";
import {
  BlkConfig,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_ZONED,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from "../src/devices/blk/constants.js";
import { type BlkRawRequest, blkHeader, concatBytes } from "../src/devices/blk/driver.js";
import {
  BLK_DRIVER_FEATURES,
  createBlkRig,
  flushReq,
  getIdReq,
  pattern,
  rangesReq,
  readReq,
  writeReq,
} from "../src/devices/blk/test-helpers.js";
import { VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET, VirtioDeviceId } from "../src/devices/device.js";
import { VIRTIO_PCI_DEVICE_ID_BASE } from "../src/devices/transport/pci/regs.js";

/** Byte-array equality without vitest's element-by-element diff (fast on whole disks). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

const SECTORS = 64;
const CAP = SECTORS * 512;

/** Runs requests one by one on a fresh device over `disk`; returns the statuses. */
function statuses(disk: MemoryDisk, reqs: BlkRawRequest[], opts: Parameters<typeof createBlkRig>[1] = {}) {
  const { blk } = createBlkRig(disk, { slots: 8, slotSize: 40 * 1024, memorySize: 4 << 20, ...opts });
  return reqs.map((r) => {
    blk.submit(0, r);
    blk.kick(0);
    const [c] = blk.collect(0);
    return c!.status;
  });
}

describe("5.2.1/5.2.2 device ID and virtqueues", () => {
  it('"2" is the device ID; "N=1 if VIRTIO_BLK_F_MQ is not negotiated, otherwise N is set by num_queues"', () => {
    const { rig } = createBlkRig(new MemoryDisk(CAP), { queues: 4 });
    expect(rig.transport.deviceId).toBe(VIRTIO_PCI_DEVICE_ID_BASE + VirtioDeviceId.BLOCK);
    expect(u64TestBit(rig.driver.features, VIRTIO_BLK_F_MQ)).toBe(true);
    expect(rig.driver.readConfig(BlkConfig.num_queues, 2)).toBe(4);
    expect(rig.driver.numQueues).toBe(4);
    const one = createBlkRig(new MemoryDisk(CAP));
    expect(u64TestBit(one.rig.driver.deviceFeatures(), VIRTIO_BLK_F_MQ)).toBe(false);
  });
});

describe("5.2.5.2 device initialization", () => {
  it('"Devices SHOULD always offer VIRTIO_BLK_F_FLUSH, and MUST offer it if they offer VIRTIO_BLK_F_CONFIG_WCE."', () => {
    for (const readOnly of [false, true]) {
      const { rig } = createBlkRig(new MemoryDisk(CAP, { readOnly }));
      const f = rig.driver.deviceFeatures();
      expect(u64TestBit(f, VIRTIO_BLK_F_FLUSH)).toBe(true);
      expect(u64TestBit(f, VIRTIO_BLK_F_CONFIG_WCE)).toBe(true);
    }
  });

  it('"If VIRTIO_BLK_F_CONFIG_WCE is negotiated but VIRTIO_BLK_F_FLUSH is not, the device MUST initialize writeback to 0."', () => {
    const { rig, device } = createBlkRig(new MemoryDisk(CAP), {
      features: BLK_DRIVER_FEATURES.filter((b) => b !== VIRTIO_BLK_F_FLUSH),
    });
    expect(rig.driver.readConfig(BlkConfig.writeback, 1)).toBe(0);
    expect(device.writeback).toBe(0);
    // With both negotiated the cache starts in writeback mode (the reset mode "can be either").
    const both = createBlkRig(new MemoryDisk(CAP));
    expect(both.rig.driver.readConfig(BlkConfig.writeback, 1)).toBe(1);
  });

  it('"The device MUST initialize padding bytes unused0 and unused1 to 0."', () => {
    const { rig } = createBlkRig(new MemoryDisk(CAP), { queues: 2 });
    expect(rig.driver.readConfig(BlkConfig.unused0, 1)).toBe(0);
    for (let i = 0; i < 3; i++) expect(rig.driver.readConfig(BlkConfig.unused1 + i, 1)).toBe(0);
  });

  it('"If the device that is being initialized is a not a zoned device, the device SHOULD NOT offer the VIRTIO_BLK_F_ZONED feature."', () => {
    const { rig } = createBlkRig(new MemoryDisk(CAP));
    expect(u64TestBit(rig.driver.deviceFeatures(), VIRTIO_BLK_F_ZONED)).toBe(false);
  });
});

describe("5.2.6 device operation", () => {
  it('"The device ID string is a NUL-padded ASCII string up to 20 bytes long. If the string is 20 bytes long then there is no NUL terminator."', () => {
    for (const id of ["", "short", "exactly-20-bytes-id!"]) {
      const { blk } = createBlkRig(new MemoryDisk(CAP), { id, slots: 2, slotSize: 4096 });
      blk.submit(0, getIdReq());
      blk.kick(0);
      const [c] = blk.collect(0);
      expect(c!.status).toBe(VIRTIO_BLK_S_OK);
      const want = new Uint8Array(20);
      want.set(new TextEncoder().encode(id));
      expect([...c!.data]).toEqual([...want]);
    }
    expect(() => createBlkRig(new MemoryDisk(CAP), { id: "twenty-one-bytes-long" })).toThrow(/at most 20/);
  });

  it('"A device MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request if the VIRTIO_BLK_F_RO feature if offered, and MUST NOT write any data."', () => {
    const disk = new MemoryDisk(pattern(CAP, 1));
    const st = statuses(
      disk,
      [
        writeReq(0, pattern(512, 2)),
        rangesReq(VIRTIO_BLK_T_WRITE_ZEROES, [{ sector: 0, count: 1 }]),
        rangesReq(VIRTIO_BLK_T_DISCARD, [{ sector: 0, count: 1 }]),
        rangesReq(VIRTIO_BLK_T_SECURE_ERASE, [{ sector: 0, count: 1 }]),
        readReq(0, 1),
        flushReq(),
      ],
      { readOnly: true },
    );
    expect(st).toEqual([
      VIRTIO_BLK_S_IOERR,
      VIRTIO_BLK_S_IOERR,
      VIRTIO_BLK_S_IOERR,
      VIRTIO_BLK_S_IOERR,
      VIRTIO_BLK_S_OK,
      VIRTIO_BLK_S_OK,
    ]);
    expect(sameBytes(disk.bytes, pattern(CAP, 1))).toBe(true);
    const { rig } = createBlkRig(new MemoryDisk(CAP), { readOnly: true });
    expect(u64TestBit(rig.driver.deviceFeatures(), VIRTIO_BLK_F_RO)).toBe(true);
  });

  it('"The device MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard, secure erase and write zeroes commands if any unknown flag is set. Furthermore, the device MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard commands if the unmap flag is set."', () => {
    const disk = new MemoryDisk(pattern(CAP, 1));
    const st = statuses(disk, [
      rangesReq(VIRTIO_BLK_T_DISCARD, [{ sector: 0, count: 1, flags: 2 }]),
      rangesReq(VIRTIO_BLK_T_WRITE_ZEROES, [{ sector: 0, count: 1, flags: 0x8000_0000 }]),
      rangesReq(VIRTIO_BLK_T_SECURE_ERASE, [{ sector: 0, count: 1, flags: 4 }]),
      rangesReq(VIRTIO_BLK_T_DISCARD, [{ sector: 0, count: 1, flags: 1 }]),
    ]);
    expect(st).toEqual([VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_S_UNSUPP]);
    expect(sameBytes(disk.bytes, pattern(CAP, 1))).toBe(true);
  });

  it('"After a write zeroes command is completed, reads of the specified ranges of sectors MUST return zeroes. This is true independent of whether unmap was set or clear."', () => {
    const disk = new MemoryDisk(pattern(CAP, 3));
    const { blk, rig } = createBlkRig(disk, { writeZeroes: { maxSeg: 2 } });
    blk.submit(
      0,
      rangesReq(VIRTIO_BLK_T_WRITE_ZEROES, [
        { sector: 2, count: 3, flags: 1 },
        { sector: 10, count: 1, flags: 0 },
      ]),
    );
    blk.submit(0, readReq(0, 12));
    blk.kick(0);
    const [wz, rd] = blk.collect(0);
    expect(wz!.status).toBe(VIRTIO_BLK_S_OK);
    const want = pattern(CAP, 3).slice(0, 12 * 512);
    want.fill(0, 2 * 512, 5 * 512);
    want.fill(0, 10 * 512, 11 * 512);
    expect(rd!.data).toEqual(want);
    // "The device SHOULD clear the write_zeroes_may_unmap field ... if and only if a write
    // zeroes request cannot result in deallocating one or more sectors": ours never deallocate.
    expect(rig.driver.readConfig(BlkConfig.write_zeroes_may_unmap, 1)).toBe(0);
  });

  it('"the device MUST ensure that stable writes are committed to it, before reporting completion of the write (cases 1 and 2) or the flush (case 3)"', async () => {
    /** A backend that logs when operations finish. */
    const log: string[] = [];
    const inner = new MemoryDisk(CAP);
    const backend: BlockBackend = {
      capacity: CAP,
      readOnly: false,
      read: (o, l) => inner.read(o, l),
      write: (o, d): MaybePromise<void> =>
        Promise.resolve().then(() => {
          inner.write(o, d);
          log.push("write");
        }),
      flush: () => Promise.resolve().then(() => void log.push("flush")),
      discard: (o, l) => inner.discard(o, l),
      writeZeroes: (o, l) => inner.writeZeroes(o, l),
    };
    const settle = async (blk: { collect(q: number): { status: number }[] }) => {
      for (let i = 0; i < 20; i++) {
        const got = blk.collect(0);
        if (got.length > 0) {
          log.push("complete");
          return got[0]!.status;
        }
        await new Promise<void>((r) => setImmediate(r));
      }
      return -1;
    };
    // Case 2: CONFIG_WCE negotiated and writeback 0 for the whole write.
    const a = createBlkRig(backend, { writeback: false });
    a.blk.submit(0, writeReq(0, pattern(512, 1)));
    a.blk.kick(0);
    expect(await settle(a.blk)).toBe(VIRTIO_BLK_S_OK);
    expect(log).toEqual(["write", "flush", "complete"]);
    // Case 1: neither CONFIG_WCE nor FLUSH negotiated (FLUSH offered).
    log.length = 0;
    const b = createBlkRig(backend, {
      features: BLK_DRIVER_FEATURES.filter((x) => x !== VIRTIO_BLK_F_FLUSH && x !== VIRTIO_BLK_F_CONFIG_WCE),
    });
    b.blk.submit(0, writeReq(0, pattern(512, 1)));
    b.blk.kick(0);
    expect(await settle(b.blk)).toBe(VIRTIO_BLK_S_OK);
    expect(log).toEqual(["write", "flush", "complete"]);
    // Case 3: writeback cache; the flush request completes after the backend's flush.
    log.length = 0;
    const c = createBlkRig(backend);
    c.blk.submit(0, writeReq(0, pattern(512, 1)));
    c.blk.kick(0);
    await settle(c.blk);
    c.blk.submit(0, flushReq());
    c.blk.kick(0);
    expect(await settle(c.blk)).toBe(VIRTIO_BLK_S_OK);
    expect(log).toEqual(["write", "complete", "flush", "complete"]);
  });

  it('"If the VIRTIO_BLK_F_ZONED feature is not negotiated, the device MUST reject VIRTIO_BLK_T_ZONE_* requests with VIRTIO_BLK_S_UNSUPP status."', () => {
    const disk = new MemoryDisk(pattern(CAP, 5));
    const zoneTypes = [15, 16, 18, 20, 22, 24, 26];
    const st = statuses(
      disk,
      zoneTypes.map((t) => ({ readable: blkHeader(t), writableLen: 513 })),
    );
    expect(st).toEqual(zoneTypes.map(() => VIRTIO_BLK_S_UNSUPP));
    expect(sameBytes(disk.bytes, pattern(CAP, 5))).toBe(true);
  });
});

describe("5.2.6 driver errors: VIRTIO_BLK_S_IOERR, disk unchanged", () => {
  // "The final status byte is written by the device: either VIRTIO_BLK_S_OK for success,
  // VIRTIO_BLK_S_IOERR for device or driver error or VIRTIO_BLK_S_UNSUPP for a request
  // unsupported by device"
  const cases: [string, BlkRawRequest, number][] = [
    [
      '"A driver MUST NOT submit a request which would cause a read or write beyond capacity" (read)',
      readReq(SECTORS - 1, 2),
      VIRTIO_BLK_S_IOERR,
    ],
    ["... (write)", writeReq(SECTORS - 1, pattern(1024, 1)), VIRTIO_BLK_S_IOERR],
    ["... (sector's high half set)", readReq(0x1_0000_0000, 1), VIRTIO_BLK_S_IOERR],
    [
      '"The length of data MUST be a multiple of 512 bytes for VIRTIO_BLK_T_IN and VIRTIO_BLK_T_OUT requests" (write)',
      writeReq(0, pattern(700, 1)),
      VIRTIO_BLK_S_IOERR,
    ],
    ["... (read)", { readable: blkHeader(VIRTIO_BLK_T_IN), writableLen: 101 }, VIRTIO_BLK_S_IOERR],
    [
      "a header shorter than 16 bytes",
      { readable: blkHeader(VIRTIO_BLK_T_OUT).subarray(0, 15), writableLen: 1 },
      VIRTIO_BLK_S_IOERR,
    ],
    [
      "a read with device-readable data after the header",
      { readable: concatBytes(blkHeader(VIRTIO_BLK_T_IN), new Uint8Array(512)), writableLen: 513 },
      VIRTIO_BLK_S_IOERR,
    ],
    [
      "a write with device-writable data before the status",
      { readable: concatBytes(blkHeader(VIRTIO_BLK_T_OUT), pattern(512, 3)), writableLen: 513 },
      VIRTIO_BLK_S_IOERR,
    ],
    [
      '"The length of data MUST be a multiple of the size of struct virtio_blk_discard_write_zeroes"',
      { readable: concatBytes(blkHeader(VIRTIO_BLK_T_WRITE_ZEROES), new Uint8Array(15)), writableLen: 1 },
      VIRTIO_BLK_S_IOERR,
    ],
    [
      '"VIRTIO_BLK_T_DISCARD requests MUST NOT contain more than max_discard_seg segments"',
      rangesReq(VIRTIO_BLK_T_DISCARD, [
        { sector: 0, count: 1 },
        { sector: 2, count: 1 },
      ]),
      VIRTIO_BLK_S_IOERR,
    ],
    [
      "a write zeroes range past the capacity",
      rangesReq(VIRTIO_BLK_T_WRITE_ZEROES, [{ sector: SECTORS, count: 1 }]),
      VIRTIO_BLK_S_IOERR,
    ],
    [
      "a flush with device-writable data",
      { readable: blkHeader(VIRTIO_BLK_T_FLUSH), writableLen: 513 },
      VIRTIO_BLK_S_IOERR,
    ],
    ["an unknown request type", { readable: blkHeader(3), writableLen: 1 }, VIRTIO_BLK_S_UNSUPP],
    [
      "GET_LIFETIME (VIRTIO_BLK_F_LIFETIME not offered)",
      { readable: blkHeader(VIRTIO_BLK_T_GET_LIFETIME), writableLen: 7 },
      VIRTIO_BLK_S_UNSUPP,
    ],
    [
      "discard when VIRTIO_BLK_F_DISCARD is not offered",
      rangesReq(VIRTIO_BLK_T_DISCARD, [{ sector: 0, count: 1 }]),
      VIRTIO_BLK_S_UNSUPP,
    ],
  ];
  for (const [name, req, status] of cases) {
    it(name, () => {
      const disk = new MemoryDisk(pattern(CAP, 7));
      const opts = name.startsWith("discard when") ? { discard: false as const } : {};
      expect(statuses(disk, [req, { ...req, indirect: true }], opts)).toEqual([status, status]);
      expect(sameBytes(disk.bytes, pattern(CAP, 7))).toBe(true);
    });
  }

  it("a request with no device-writable byte (no room for the status) is a guest error: DEVICE_NEEDS_RESET", () => {
    const disk = new MemoryDisk(pattern(CAP, 7));
    const { blk, rig } = createBlkRig(disk);
    blk.submit(0, { readable: concatBytes(blkHeader(VIRTIO_BLK_T_OUT), pattern(512, 1)), writableLen: 0 });
    blk.kick(0);
    expect(rig.driver.status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET).toBe(VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET);
    expect(rig.driver.takeInterrupts().config).toBe(true);
    expect(sameBytes(disk.bytes, pattern(CAP, 7))).toBe(true);
  });

  it("random malformed requests get IOERR or UNSUPP and never change the disk", () => {
    const types = [
      VIRTIO_BLK_T_IN,
      VIRTIO_BLK_T_OUT,
      VIRTIO_BLK_T_FLUSH,
      VIRTIO_BLK_T_GET_ID,
      VIRTIO_BLK_T_DISCARD,
      VIRTIO_BLK_T_WRITE_ZEROES,
      VIRTIO_BLK_T_SECURE_ERASE,
      2,
      7,
      0xffff_ffff,
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...types),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.array(fc.integer({ min: 0, max: 600 }), { maxLength: 3 }),
        fc.boolean(),
        (type, sector, extraReadable, writableLen, cuts, readOnly) => {
          const disk = new MemoryDisk(pattern(CAP, 9));
          const readable = concatBytes(blkHeader(type, sector), pattern(extraReadable, 1));
          const req: BlkRawRequest = { readable, writableLen, readCuts: cuts, writeCuts: cuts };
          const [st] = statuses(disk, [req], { readOnly });
          // The only requests that may succeed and change the disk are well-formed writes.
          const firstSector = sector;
          const writeOk =
            !readOnly &&
            type === VIRTIO_BLK_T_OUT &&
            writableLen === 1 &&
            extraReadable % 512 === 0 &&
            firstSector + extraReadable / 512 <= SECTORS;
          const rangesOk =
            !readOnly &&
            (type === VIRTIO_BLK_T_WRITE_ZEROES ||
              type === VIRTIO_BLK_T_DISCARD ||
              type === VIRTIO_BLK_T_SECURE_ERASE) &&
            writableLen === 1 &&
            extraReadable % 16 === 0;
          if (!writeOk && !rangesOk) {
            expect(sameBytes(disk.bytes, pattern(CAP, 9))).toBe(true);
          }
          const readOk =
            type === VIRTIO_BLK_T_IN &&
            extraReadable === 0 &&
            (writableLen - 1) % 512 === 0 &&
            firstSector + (writableLen - 1) / 512 <= SECTORS;
          const benign =
            readOk ||
            (type === VIRTIO_BLK_T_FLUSH && writableLen === 1) ||
            (type === VIRTIO_BLK_T_GET_ID && extraReadable === 0);
          if (!writeOk && !rangesOk && !benign)
            expect([VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP]).toContain(st);
          if (readOk || writeOk) expect(st).toBe(VIRTIO_BLK_S_OK);
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});
