/**
 * Shared set-up for virtio-blk tests, spec tests and the benchmark: a device on the PCI test
 * rig with a BlkTestDriver, and request builders.
 */
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from "../device.js";
import { createPciTestRig, type PciTestRig } from "../../testing.js";
import type { BlockBackend } from "./backend.js";
import { VirtioBlk, type VirtioBlkOptions } from "./blk.js";
import {
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SECURE_ERASE,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from "./constants.js";
import { type BlkRawRequest, BlkTestDriver, blkHeader, blkRanges, concatBytes } from "./driver.js";

/** Every feature a Linux driver accepts from virtio-blk, plus the ring features. */
export const BLK_DRIVER_FEATURES: readonly number[] = [
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_F_SECURE_ERASE,
];

export interface BlkRig {
  device: VirtioBlk;
  rig: PciTestRig;
  blk: BlkTestDriver;
}

/** A VirtioBlk over `backend` on a PCI test rig, brought up with `features`. */
export function createBlkRig(
  backend: BlockBackend,
  options: Omit<VirtioBlkOptions, "backend"> & {
    interrupts?: "msix" | "intx";
    features?: readonly number[];
    memorySize?: number;
    slots?: number;
    slotSize?: number;
    indirectEntries?: number;
  } = {},
): BlkRig {
  const { interrupts, features, memorySize, slots, slotSize, indirectEntries, ...devOptions } = options;
  const device = new VirtioBlk({ backend, ...devOptions });
  const rig = createPciTestRig(device, {
    interrupts: interrupts ?? "msix",
    memorySize: memorySize ?? 16 << 20,
    indirectEntries: indirectEntries ?? 8,
  });
  rig.driver.bringUp(features ?? BLK_DRIVER_FEATURES);
  const blk = new BlkTestDriver(rig.driver, {
    ...(slots !== undefined ? { slots } : {}),
    ...(slotSize !== undefined ? { slotSize } : {}),
  });
  return { device, rig, blk };
}

/** Layout options shared by the builders. */
export type Layout = Pick<BlkRawRequest, "readCuts" | "writeCuts" | "indirect">;

export function readReq(sector: number, sectors: number, layout: Layout = {}): BlkRawRequest {
  return { readable: blkHeader(VIRTIO_BLK_T_IN, sector), writableLen: sectors * 512 + 1, ...layout };
}

export function writeReq(sector: number, data: Uint8Array, layout: Layout = {}): BlkRawRequest {
  return { readable: concatBytes(blkHeader(VIRTIO_BLK_T_OUT, sector), data), writableLen: 1, ...layout };
}

export function flushReq(layout: Layout = {}): BlkRawRequest {
  return { readable: blkHeader(VIRTIO_BLK_T_FLUSH), writableLen: 1, ...layout };
}

export function getIdReq(layout: Layout = {}): BlkRawRequest {
  return { readable: blkHeader(VIRTIO_BLK_T_GET_ID), writableLen: 21, ...layout };
}

export function rangesReq(
  type: number,
  ranges: readonly { sector: number; count: number; flags?: number }[],
  layout: Layout = {},
): BlkRawRequest {
  return { readable: concatBytes(blkHeader(type), blkRanges(ranges)), writableLen: 1, ...layout };
}

/** `n` bytes of a pattern picked by `seed`. */
export function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}
