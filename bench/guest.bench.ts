/**
 * `npm run bench -- guest`: figures measured from inside the default guest (Debian 12's 686
 * kernel + busybox), on virtkit and under QEMU with software emulation (TCG) in the same run:
 * - virtio-blk sequential read: `dd if=/dev/vda bs=1M iflag=direct` of a 64 MiB raw image,
 *   16 passes (1 GiB) timed together by busybox `time` (page cache dropped as well);
 * - virtio-net throughput between two guests: 32 MiB of zeros through `nc` over TCP to a
 *   `nc -l | wc -c` in a second guest, timed by busybox `time` in the sender (the receiver's
 *   byte count is checked). virtkit: two Machines, each in its own worker thread
 *   (MachineWorker), on one NetSwitch in the main thread; QEMU: two qemu-system-i386 processes
 *   on `-netdev dgram` pointed at each other;
 * - the average ping round trip between the two guests (busybox ping, five echoes).
 * The virtkit machines run on the realtime clock; their blk and net figures are timed on the host
 * (around the guest command), because the guest's own clock loses ticks while it is busy (the
 * ratio is reported as guest-clock-rate); the ping round trip is the guest's. QEMU's figures are
 * its guest's `time`. Ratios are virtkit / QEMU TCG (for MiB/s higher is better, for the round
 * trip lower).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NetSwitch } from "../src/devices/net/switch.js";
import type { NetSpec } from "../src/host/node/devices.js";
import type { DefaultGuest } from "../src/host/node/guest/build.js";
import { GUEST_PROMPT, GUEST_READY_MARKER } from "../src/host/node/guest/initramfs.js";
import { haveQemu, runQemuGuest } from "../src/host/node/guest/qemu.js";
import {
  BLK_MIB,
  BLK_PASSES,
  blkReadCommand,
  field,
  GuestBenchError,
  NET_MIB,
  netListenCommand,
  netSendCommand,
  parsePingAvgMs,
  parseRealSeconds,
  rate,
} from "../test/guest-bench-util.js";
import { findGuest } from "../test/guest-session.js";
import { GuestWorkerSession } from "../test/guest-worker-session.js";
import { freeUdpPort, INTEROP_CMDLINE } from "../test/interop-util.js";
import type { BenchSuite } from "./harness.js";

const IP_A = "10.0.3.1";
const IP_B = "10.0.3.2";
const READY = new RegExp(`${GUEST_READY_MARKER} modules=\\d+ failed=none`);

interface Figures {
  blkMiBs: number;
  netMiBs: number;
  pingMs: number;
  /** virtkit: guest seconds (busybox `time`) per host second over the net transfer. */
  guestClockRate?: number;
}

/** Five pings after a first one (which resolves ARP); prints the summary and `PINGRC=[status]`. */
const pingCommand = (ip: string): string =>
  `ping -c 1 -W 10 ${ip} >/dev/null; ping -c 5 -W 5 ${ip}; echo "PINGRC=[$?]"`;

function blkRate(out: string, who: string): number {
  if (field(out, "BLKPASSES") !== BLK_PASSES)
    throw new GuestBenchError(`guest bench: ${who}: dd failed: ${out.slice(-500)}`);
  return rate(BLK_MIB * BLK_PASSES, parseRealSeconds(out), `${who} blk read`);
}

function checkNet(sendOut: string, recvOut: string, who: string): number {
  if (field(sendOut, "SENDRC") !== 0)
    throw new GuestBenchError(`guest bench: ${who}: the sender failed: ${sendOut.slice(-500)}`);
  const got = field(recvOut, "RECV");
  if (got !== NET_MIB * 1024 * 1024)
    throw new GuestBenchError(`guest bench: ${who}: the receiver counted ${got} bytes, not ${NET_MIB} MiB`);
  return rate(NET_MIB, parseRealSeconds(sendOut), `${who} net transfer`);
}

async function virtkitFigures(g: DefaultGuest, image: string): Promise<Figures> {
  const hubs = new Map([["bench", new NetSwitch()]]);
  // apic: false, as QEMU's `-cpu qemu32,-apic` below
  const config = { cmdline: INTEROP_CMDLINE, clock: "realtime" as const, apic: false, hubs };
  const nic = (mac: string): NetSpec => ({ kind: "hub", hub: "bench", mac });
  const [a, b] = await Promise.all([
    GuestWorkerSession.start(g, {
      ...config,
      name: "a",
      devices: {
        disks: [{ path: image, readonly: true, overlay: false }],
        nets: [nic("52:54:00:00:03:01")],
      },
    }),
    GuestWorkerSession.start(g, { ...config, name: "b", devices: { nets: [nic("52:54:00:00:03:02")] } }),
  ]);
  try {
    const t0 = performance.now();
    await Promise.all(
      [a, b].map(async (s) => {
        await s.waitFor(READY, 900_000);
        await s.waitFor(GUEST_PROMPT, 60_000);
      }),
    );
    console.error(
      `bench guest: two virtkit guests (one worker thread each) at the prompt after ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
    await a.run(`ifconfig eth0 ${IP_A} netmask 255.255.255.0 up`);
    await b.run(`ifconfig eth0 ${IP_B} netmask 255.255.255.0 up`);

    // Timed on the host: on the realtime clock the guest's own clock loses time while the guest
    // is busy (the PIT coalesces periods it missed into one tick), so `time` in the guest
    // reads short. The guest's figures still have to be valid (all passes, every byte).
    let t = performance.now();
    blkRate(await a.run(blkReadCommand(), 600_000), "virtkit");
    const blkMiBs = rate(BLK_MIB * BLK_PASSES, (performance.now() - t) / 1000, "virtkit blk read");

    const ping = await a.run(pingCommand(IP_B), 60_000);
    if (field(ping, "PINGRC") !== 0) throw new GuestBenchError(`guest bench: virtkit: no ping: ${ping}`);
    const pingMs = parsePingAvgMs(ping);
    b.send(`${netListenCommand()}\n`);
    await new Promise((r) => setTimeout(r, 3000)); // the shell reads the line and starts nc -l
    t = performance.now();
    const sendOut = await a.run(netSendCommand(IP_B), 900_000);
    const netHostSeconds = (performance.now() - t) / 1000;
    const recvOut = await b.waitFor(/RECV=\[\d+\]/, 60_000);
    checkNet(sendOut, recvOut, "virtkit");
    return {
      blkMiBs,
      netMiBs: rate(NET_MIB, netHostSeconds, "virtkit net transfer"),
      pingMs,
      guestClockRate: parseRealSeconds(sendOut) / netHostSeconds,
    };
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

async function qemuFigures(g: DefaultGuest, image: string): Promise<Figures> {
  const base = { kernel: g.kernel, initrd: g.initrd, append: `${INTEROP_CMDLINE} reboot=t` };
  const cpu = ["-cpu", "qemu32,-apic"];
  const blk = await runQemuGuest({
    ...base,
    args: [...cpu, "-drive", `file=${image},format=raw,if=virtio,readonly=on`],
    commands: [blkReadCommand(), "reboot -f"],
    timeoutMs: 300_000,
  });
  if (blk.timedOut) throw new GuestBenchError(`guest bench: QEMU timed out: ${blk.log.slice(-1000)}`);
  const blkMiBs = blkRate(blk.log, "QEMU");

  const [portA, portB] = [await freeUdpPort(), await freeUdpPort()];
  const netdev = (local: number, remote: number): string[] => [
    "-netdev",
    `dgram,id=n,local.type=inet,local.host=127.0.0.1,local.port=${local},remote.type=inet,remote.host=127.0.0.1,remote.port=${remote}`,
  ];
  const up = (ip: string): string => `ip link set eth0 up && ip addr add ${ip}/24 dev eth0`;
  const [sender, receiver] = await Promise.all([
    runQemuGuest({
      ...base,
      args: [...cpu, ...netdev(portA, portB), "-device", "virtio-net-pci,netdev=n,mac=52:54:00:00:03:01"],
      commands: [
        `${up(IP_A)}; n=0; until ping -c 1 -W 1 ${IP_B} >/dev/null 2>&1; do n=$((n+1)); [ $n -gt 120 ] && break; sleep 1; done; ${pingCommand(IP_B)}; sleep 1; ${netSendCommand(IP_B)}`,
        "reboot -f",
      ],
      timeoutMs: 600_000,
    }),
    runQemuGuest({
      ...base,
      args: [...cpu, ...netdev(portB, portA), "-device", "virtio-net-pci,netdev=n,mac=52:54:00:00:03:02"],
      // One line: `nc -l` reads the console, so a second typed line would go to the socket.
      commands: [`${up(IP_B)}; ${netListenCommand()}; reboot -f`],
      timeoutMs: 600_000,
    }),
  ]);
  if (sender.timedOut || receiver.timedOut)
    throw new GuestBenchError(
      `guest bench: QEMU net timed out:\n${sender.log.slice(-1000)}\n---\n${receiver.log.slice(-1000)}`,
    );
  if (field(sender.log, "PINGRC") !== 0)
    throw new GuestBenchError(`guest bench: QEMU: no ping: ${sender.log.slice(-1000)}`);
  return { blkMiBs, netMiBs: checkNet(sender.log, receiver.log, "QEMU"), pingMs: parsePingAvgMs(sender.log) };
}

export const suite: BenchSuite = {
  name: "guest",
  async run(report) {
    const g = findGuest();
    if (!g) {
      console.error("bench guest: the default guest is not built (virtkit guest build); skipped");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "virtkit-bench-guest-"));
    try {
      const image = join(dir, "read.img");
      const bytes = new Uint8Array(BLK_MIB * 1024 * 1024);
      for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i >>> 12) & 0xff;
      writeFileSync(image, bytes);

      const vk = await virtkitFigures(g, image);
      report("guest.virtkit.blk-seq-read", vk.blkMiBs, "MiB/s");
      report("guest.virtkit.net-tcp-2-guests", vk.netMiBs, "MiB/s");
      report("guest.virtkit.net-ping-rtt", vk.pingMs, "ms (guest clock)");
      if (vk.guestClockRate !== undefined)
        report("guest.virtkit.guest-clock-rate", vk.guestClockRate, "guest s per host s (net transfer)");
      if (!haveQemu()) {
        console.error("bench guest: qemu-system-i386 is not installed: no reference figures");
        return;
      }
      const q = await qemuFigures(g, image);
      report("guest.qemu-tcg.blk-seq-read", q.blkMiBs, "MiB/s");
      report("guest.qemu-tcg.net-tcp-2-guests", q.netMiBs, "MiB/s");
      report("guest.qemu-tcg.net-ping-rtt", q.pingMs, "ms");
      report("guest.blk-seq-read.virtkit-vs-qemu-tcg", vk.blkMiBs / q.blkMiBs, "x (higher is better)");
      report("guest.net-tcp.virtkit-vs-qemu-tcg", vk.netMiBs / q.netMiBs, "x (higher is better)");
      report(
        "guest.net-ping-rtt.virtkit-vs-qemu-tcg",
        vk.pingMs / q.pingMs,
        "x (time ratio, lower is better)",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
