export * from "./errors.js";
export * from "./memory.js";
export * from "./persist.js";
export * from "./u64.js";
