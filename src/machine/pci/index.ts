export * from "./bus.js";
export * from "./chipset.js";
export * from "./firmware.js";
export * from "./intx-router.js";
