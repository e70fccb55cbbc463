export * from "./device.js";
export * from "./rng/index.js";
export * from "./transport/pci/index.js";
