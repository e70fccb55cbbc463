/**
 * Small helpers shared by the interop test and the guest benchmark (a virtkit guest next to a
 * QEMU guest on a UDP network).
 */
import dgram from "node:dgram";

/**
 * The kernel command line for both guests. `cryptomgr.notests` skips the kernel's crypto
 * self-tests (about 2.5 G instructions on virtkit's CPU), which these runs do not need;
 * `nosoftlockup`: on the realtime clock a slow or loaded host can make module loading (RSA
 * signature checks) outlast the soft-lockup watchdog's 20 s.
 */
export const INTEROP_CMDLINE = "console=ttyS0 acpi=off pci=nomsi panic=-1 cryptomgr.notests nosoftlockup";

/** A UDP port on 127.0.0.1 that was free a moment ago (QEMU binds it itself). */
export function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}
