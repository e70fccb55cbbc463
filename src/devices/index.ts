export * from "./device.js";
export * from "./rng/index.js";
export * from "./blk/index.js";
export * from "./console/index.js";
export * from "./net/index.js";
export * from "./balloon/index.js";
export * from "./transport/pci/index.js";
