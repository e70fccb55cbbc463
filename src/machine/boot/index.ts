export * from "./cpio.js";
export * from "./linux.js";
export * from "./setup-header.js";
export * from "./zero-page.js";
export * from "./vmlinux.js";
