/**
 * Device-side normative requirements of section 5.5 (Traditional Memory Balloon Device) of the
 * virtio specification (../shared/virtio-spec/device-types/balloon/description.tex), each test
 * quoting the sentence it checks, on the virtio-PCI transport driven by the test kit.
 */
import { describe, expect, it } from "vitest";
import {
  VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_FREE_PAGE_HINT,
  VIRTIO_BALLOON_F_MUST_TELL_HOST,
  VIRTIO_BALLOON_F_PAGE_POISON,
  VIRTIO_BALLOON_F_PAGE_REPORTING,
  VIRTIO_BALLOON_F_STATS_VQ,
  VIRTIO_BALLOON_S_AVAIL,
  VIRTIO_BALLOON_S_CACHES,
  VIRTIO_BALLOON_S_HTLB_PGALLOC,
  VIRTIO_BALLOON_S_HTLB_PGFAIL,
  VIRTIO_BALLOON_S_MAJFLT,
  VIRTIO_BALLOON_S_MEMFREE,
  VIRTIO_BALLOON_S_MEMTOT,
  VIRTIO_BALLOON_S_MINFLT,
  VIRTIO_BALLOON_S_SWAP_IN,
  VIRTIO_BALLOON_S_SWAP_OUT,
  VirtioBalloon,
  type VirtioBalloonOptions,
} from "../src/devices/balloon/index.js";
import { VIRTIO_F_EVENT_IDX } from "../src/devices/device.js";
import { createPciTestRig } from "../src/testing.js";

const MEM = 4 << 20;

function rig(options: VirtioBalloonOptions = {}, extra: number[] = []) {
  const device = new VirtioBalloon(options);
  const r = createPciTestRig(device, { memorySize: MEM });
  const vqs = r.driver.bringUp([
    VIRTIO_F_EVENT_IDX,
    VIRTIO_BALLOON_F_STATS_VQ,
    VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
    VIRTIO_BALLOON_F_PAGE_REPORTING,
    ...extra,
  ]);
  const buf = r.driver.dma.alloc(4096, 4096);
  const pfns = (q: number, list: number[]) => {
    list.forEach((p, i) => {
      r.memory.writeU32(buf + 4 * i, p);
    });
    vqs[q]!.queue.add([{ addr: buf, len: 4 * list.length, write: false }]);
    r.driver.notify(q);
  };
  return { device, ...r, vqs, pfns };
}

const pageBytes = (m: { subarray(a: number, l: number): Uint8Array }, pfn: number) =>
  m.subarray(pfn * 4096, 4096);

describe("5.5.2 Virtqueues and 5.5.3 Feature bits", () => {
  it('"0 inflateq 1 deflateq 2 statsq ... statsq only exists if VIRTIO_BALLOON_F_STATS_VQ is set ... reporting_vq only exists if VIRTIO_BALLOON_F_PAGE_REPORTING is set."', () => {
    expect(new VirtioBalloon().queueMaxSizes.length).toBe(4);
    expect(new VirtioBalloon({ statsVq: false, freePageReporting: false }).queueMaxSizes.length).toBe(2);
    const r = rig();
    const f = r.driver.deviceFeatures().lo;
    expect(f & (1 << VIRTIO_BALLOON_F_STATS_VQ)).not.toBe(0);
    expect(f & (1 << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)).not.toBe(0);
    expect(f & (1 << VIRTIO_BALLOON_F_PAGE_REPORTING)).not.toBe(0);
    // Not offered: no free page hinting, no poison, so reported pages may be modified.
    expect(f & (1 << VIRTIO_BALLOON_F_FREE_PAGE_HINT)).toBe(0);
    expect(f & (1 << VIRTIO_BALLOON_F_PAGE_POISON)).toBe(0);
    expect(f & (1 << VIRTIO_BALLOON_F_MUST_TELL_HOST)).toBe(0);
    expect(new VirtioBalloon({ mustTellHost: true }).features.lo & 1).toBe(1);
  });
});

describe("5.5.4 Device configuration layout", () => {
  it('"num_pages and actual are always available."', () => {
    const r = rig({ statsVq: false, freePageReporting: false });
    r.device.setTarget(3 * 4096);
    expect(r.driver.readConfig(0, 4)).toBe(3);
    r.driver.writeConfig(4, 4, 2);
    expect(r.driver.readConfig(4, 4)).toBe(2);
    expect(r.device.currentSize).toBe(2 * 4096);
  });
});

describe("5.5.6.1 Device Requirements: Device Operation", () => {
  it('"the device acknowledges inflate and deflate requests by using the descriptor."', () => {
    const r = rig();
    r.pfns(0, [600]);
    expect(r.vqs[0]!.queue.getUsed()).toEqual({ id: expect.any(Number), len: 0 });
    r.pfns(1, [600]);
    expect(r.vqs[1]!.queue.getUsed()).not.toBeNull();
  });

  it('"The device MAY modify the contents of a page in the balloon after detecting its physical number in an inflate request and before acknowledging the inflate request by using the inflateq descriptor." (it zeroes the page, which goes back to the host)', () => {
    const r = rig();
    r.memory.fill(600 * 4096, 4096, 0xcc);
    r.pfns(0, [600]);
    expect(pageBytes(r.memory, 600).every((b) => b === 0)).toBe(true);
    expect(r.device.counters.pagesReturned).toBe(1);
    expect(r.device.inflatedBytes).toBe(4096);
  });

  it('"... the device MAY modify the contents of a page in the balloon ... before detecting its physical number in a deflate request and acknowledging the deflate request." (never after: a deflated page keeps what the guest writes)', () => {
    const r = rig({ mustTellHost: true }, [VIRTIO_BALLOON_F_MUST_TELL_HOST]);
    r.pfns(0, [600, 601]);
    r.pfns(1, [600]);
    r.memory.fill(600 * 4096, 4096, 0x11);
    r.pfns(0, [601]); // the balloon is busy again with another page
    r.pfns(1, [601]);
    expect(pageBytes(r.memory, 600).every((b) => b === 0x11)).toBe(true);
    expect(r.device.inflatedBytes).toBe(0);
  });

  it("a page frame number outside guest memory is ignored and counted, never a crash", () => {
    const r = rig();
    r.pfns(0, [MEM / 4096, 0xffff_ffff, 600]);
    expect(r.vqs[0]!.queue.getUsed()).not.toBeNull();
    expect(r.device.counters.pfnsOutOfRange).toBe(2);
    expect(r.device.inflatedBytes).toBe(4096);
    expect(r.transport.status & 64).toBe(0);
  });
});

describe("5.5.6.2.1 Device Requirements: Memory Statistics", () => {
  const writeStats = (r: ReturnType<typeof rig>, addr: number, entries: [number, bigint][]) => {
    entries.forEach(([tag, v], i) => {
      r.memory.writeU16(addr + 10 * i, tag);
      r.memory.writeU32(addr + 10 * i + 2, Number(v & 0xffff_ffffn));
      r.memory.writeU32(addr + 10 * i + 6, Number(v >> 32n));
    });
    r.vqs[2]!.queue.add([{ addr, len: 10 * entries.length, write: false }]);
    r.driver.notify(2);
  };

  it('"the device MUST ignore entries with tag values that it does not recognize." / "MUST accept struct virtio_balloon_stat entries in any order without regard to tag values."', () => {
    const r = rig();
    const addr = r.driver.dma.alloc(256);
    writeStats(r, addr, [
      [VIRTIO_BALLOON_S_MEMTOT, 4n << 20n],
      [0x1234, 99n],
      [VIRTIO_BALLOON_S_SWAP_IN, 1n],
      [VIRTIO_BALLOON_S_HTLB_PGFAIL, (1n << 64n) - 1n],
      [VIRTIO_BALLOON_S_MEMFREE, 123n],
    ]);
    expect(r.device.stats).toEqual({
      memTotal: 4n << 20n,
      swapIn: 1n,
      hugetlbFailures: (1n << 64n) - 1n,
      memFree: 123n,
    });
    expect(r.device.counters.unknownStatTags).toBe(1);
  });

  it('"The device uses the buffer and sends a used buffer notification." ... "The device pops the buffer (retaining it to initiate a subsequent request) and consumes the statistics." (every tag of 5.5.6.3)', () => {
    const r = rig();
    const addr = r.driver.dma.alloc(256);
    const all: [number, bigint][] = [
      [VIRTIO_BALLOON_S_SWAP_IN, 1n],
      [VIRTIO_BALLOON_S_SWAP_OUT, 2n],
      [VIRTIO_BALLOON_S_MAJFLT, 3n],
      [VIRTIO_BALLOON_S_MINFLT, 4n],
      [VIRTIO_BALLOON_S_MEMFREE, 5n],
      [VIRTIO_BALLOON_S_MEMTOT, 6n],
      [VIRTIO_BALLOON_S_AVAIL, 7n],
      [VIRTIO_BALLOON_S_CACHES, 8n],
      [VIRTIO_BALLOON_S_HTLB_PGALLOC, 9n],
      [VIRTIO_BALLOON_S_HTLB_PGFAIL, 10n],
    ];
    writeStats(r, addr, all);
    expect(r.vqs[2]!.queue.getUsed()).toBeNull(); // retained
    r.driver.takeInterrupts();
    expect(r.device.requestStats()).toBe(true);
    expect(r.driver.takeInterrupts().queues).toEqual([2]);
    expect(r.vqs[2]!.queue.getUsed()).not.toBeNull();
    writeStats(
      r,
      addr,
      all.map(([t, v]) => [t, v * 100n]),
    );
    expect(r.device.stats).toEqual({
      swapIn: 100n,
      swapOut: 200n,
      majorFaults: 300n,
      minorFaults: 400n,
      memFree: 500n,
      memTotal: 600n,
      memAvailable: 700n,
      diskCaches: 800n,
      hugetlbAllocations: 900n,
      hugetlbFailures: 1000n,
    });
  });
});

describe("5.5.6.6.2 Device Requirements: Free Page Reporting", () => {
  it('"If the VIRTIO_BALLOON_F_PAGE_POISON feature has not been negotiated, the device MAY modify the contents of any page supplied in a report request before acknowledging that request by using the reporting_vq descriptor."', () => {
    const r = rig();
    r.memory.fill(700 * 4096, 2 * 4096, 0x5a);
    const q = r.vqs[3]!.queue;
    q.add([{ addr: 700 * 4096, len: 2 * 4096, write: true }]);
    r.driver.notify(3);
    expect(q.getUsed()).not.toBeNull();
    expect(r.memory.subarray(700 * 4096, 8192).every((b) => b === 0)).toBe(true);
    expect(r.device.counters.pagesReported).toBe(2);
    // Reported pages are the guest's again once the request is used.
    expect(r.device.inflatedBytes).toBe(0);
  });
});
