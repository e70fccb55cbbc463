export type { BlockBackend, MaybePromise, MemoryDiskOptions } from "./backend.js";
export { BlockBackendError, checkBackendRange, checkCapacity, MemoryDisk } from "./backend.js";
export type { BlkRangeLimits, VirtioBlkOptions, VirtioBlkState, VirtioBlkStats } from "./blk.js";
export { VirtioBlk } from "./blk.js";
export * from "./constants.js";
export type { BlkCompletion, BlkRawRequest } from "./driver.js";
export { BlkDriverError, BlkTestDriver, blkHeader, blkRanges, concatBytes } from "./driver.js";
export type { BlkLimits, BlkPlan } from "./request.js";
export { BlkRequestError, parseRequest } from "./request.js";
