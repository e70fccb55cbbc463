export * from "./apt.js";
export * from "./build.js";
export * from "./initramfs.js";
export * from "./modinfo.js";
export * from "./modules.js";
export * from "./decompress.js";
