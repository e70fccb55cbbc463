/**
 * `virtkit/node`: the Node.js side of virtkit. Device backends on files, sockets and streams,
 * the default guest builder, and `MachineWorker`, which runs a Machine in its own worker thread.
 * The platform-neutral core (devices, CPU, Machine) is the package's main entry.
 */
export * from "./blk/index.js";
export * from "./console/index.js";
export * from "./net/index.js";
export * from "./worker/index.js";
export {
  type BuildGuestOptions,
  buildDefaultGuest,
  type DefaultGuest,
  defaultCacheDir,
  findCachedGuest,
} from "./guest/build.js";
export { buildGuestInitramfs, GUEST_PROMPT, type GuestInitramfsInput } from "./guest/initramfs.js";
