/**
 * What the guest benchmark (bench/guest.bench.ts) runs inside a guest and how it reads the
 * answers: busybox `time` around a direct-I/O `dd` of the virtio disk, and around `dd | nc`
 * to a `nc -l | wc -c` in a second guest. The same shell lines run on virtkit and under QEMU.
 */
import { VirtkitError } from "../src/common/errors.js";

export class GuestBenchError extends VirtkitError {
  constructor(message: string) {
    super("GUEST_BENCH", message);
  }
}

/** Size of the disk image and of the network transfer, in MiB (both guests, both machines). */
export const BLK_MIB = 64;
/** Passes over the whole disk in one timed read (QEMU reads 64 MiB in ~50 ms, too short for `time`). */
export const BLK_PASSES = 16;
export const NET_MIB = 32;
export const NET_PORT = 5001;

/**
 * Sequential reads of the whole first virtio disk (`mib` MiB), `passes` times, with O_DIRECT
 * (the page cache dropped too), timed together by busybox `time`; prints `BLKPASSES=[n]`, the
 * passes that completed (a failed dd stops the loop).
 */
export function blkReadCommand(mib = BLK_MIB, passes = BLK_PASSES): string {
  return (
    `sync; echo 3 > /proc/sys/vm/drop_caches; time sh -c 'i=0; while [ $i -lt ${passes} ]; do ` +
    `dd if=/dev/vda of=/dev/null bs=1M count=${mib} iflag=direct 2>/dev/null || break; i=$((i+1)); done; ` +
    `echo "BLKPASSES=[$i]"'`
  );
}

/** The receiving guest: counts what arrives on one TCP connection and prints `RECV=[bytes]`. */
export function netListenCommand(port = NET_PORT): string {
  return `echo "RECV=[$(nc -l -p ${port} | wc -c)]"`;
}

/** The sending guest: `mib` MiB of zeros over one TCP connection, timed; prints `SENDRC=[status]`. */
export function netSendCommand(peer: string, mib = NET_MIB, port = NET_PORT): string {
  return `time sh -c "dd if=/dev/zero bs=64k count=${mib * 16} 2>/dev/null | nc ${peer} ${port}"; echo "SENDRC=[$?]"`;
}

/** Seconds from busybox `time`'s `real` line (`real\t0m 1.23s`, `real\t1h 2m 3.45s`). */
export function parseRealSeconds(text: string): number {
  const m = /real\s+(?:(\d+)h\s*)?(\d+)m\s*(\d+(?:\.\d+)?)s/.exec(text);
  if (!m) throw new GuestBenchError(`guest bench: no 'real' line from time in: ${text.slice(-500)}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

/** The number printed as NAME=[n], or an error naming what the guest printed instead. */
export function field(text: string, name: string): number {
  const m = new RegExp(`${name}=\\[(\\d+)\\]`).exec(text);
  if (!m) throw new GuestBenchError(`guest bench: no ${name}=[n] in: ${text.slice(-500)}`);
  return Number(m[1]);
}

/** The average round trip from busybox ping's summary (`round-trip min/avg/max = 0.4/0.5/0.7 ms`), in ms. */
export function parsePingAvgMs(text: string): number {
  const m = /round-trip min\/avg\/max = [\d.]+\/([\d.]+)\/[\d.]+ ms/.exec(text);
  if (!m) throw new GuestBenchError(`guest bench: no ping summary in: ${text.slice(-500)}`);
  return Number(m[1]);
}

/** MiB/s for `mib` MiB moved in `seconds`, refusing a time too short for busybox's 10 ms clock. */
export function rate(mib: number, seconds: number, what: string): number {
  if (!(seconds >= 0.05))
    throw new GuestBenchError(`guest bench: ${what} took ${seconds} s, too short to measure; raise its size`);
  return mib / seconds;
}
