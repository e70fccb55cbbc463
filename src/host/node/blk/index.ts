export type { CowDiskOptions } from "./cow.js";
export { CowDisk } from "./cow.js";
export type { RawFileDiskOptions } from "./raw.js";
export { RawFileDisk } from "./raw.js";
