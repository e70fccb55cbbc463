export { DescriptorChain } from "./chain.js";
export type { QueueConfigState, QueueFeatures } from "./config.js";
export { QueueConfig } from "./config.js";
export * from "./constants.js";
export { ChainReader, ChainWriter } from "./cursor.js";
export type {
  DriverQueueLayout,
  DriverQueueOptions,
  DriverSegment,
  UsedBuffer,
} from "./driver.js";
export { DriverQueue, layoutQueue, queueBytes } from "./driver.js";
export { QueueError, QueueErrorCode } from "./errors.js";
export type { VirtQueueLayout, VirtQueueState } from "./queue.js";
export { VirtQueue } from "./queue.js";
