#!/usr/bin/env node
/**
 * The `virtkit` command: `run` boots a kernel, `guest build` makes the default guest, `start`
 * builds it if missing and boots it.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ConfigError, VirtkitError } from "../../common/errors.js";
import { Machine, type StopReason } from "../../machine/machine.js";
import { buildDefaultGuest, defaultCacheDir, findCachedGuest } from "./guest/build.js";
import {
  applyConfigObject,
  checkMemory,
  defaultRunSpec,
  parseClock,
  parseOnOff,
  parseSerial,
  parseSize,
  type RunSpec,
} from "./options.js";
import { startControl } from "./control.js";
import { buildDevices, parseConsole, parseDisk, parseNet } from "./devices.js";
import { attachStdin, serialSink, WatchedSerial } from "./serial.js";

/** The command line the default guest boots with (and the one we document). */
export const DEFAULT_CMDLINE = "console=ttyS0 panic=-1";

const HELP = `virtkit: a virtio device framework and an x86 machine that boots Linux.

Usage:
  virtkit run --kernel FILE [options]   boot a Linux bzImage
  virtkit start [options]                build the default guest if missing, then boot it
  virtkit guest build [--out DIR]        build (or find) the default Debian 12 i386 guest
  virtkit --help                         this text

Options of run and start:
  --kernel FILE          the bzImage to boot
  --initrd FILE          an initramfs (gzip'ed or plain newc cpio)
  --append "CMDLINE"     the kernel command line (default: "${DEFAULT_CMDLINE}")
  --memory SIZE          guest RAM, 16M to 3G (default 256M)
  --serial stdio|file:PATH|none
                         where COM1 (ttyS0) goes (default stdio; on a terminal it is raw
                         and interactive: Ctrl-A X quits)
  --clock realtime|virtual
                         realtime follows the host clock; virtual derives time from the
                         instruction count, so runs with the same inputs behave the same
  --no-reboot            stop instead of rebooting when the guest resets
  --apic on|off          a local APIC and an I/O APIC, virtio devices with MSI-X (default
                         on); off: the 8259 PICs only, virtio devices with INTx
  --disk FILE[,readonly][,overlay]
                         a virtio-blk disk from a raw image (repeatable); overlay: the
                         guest's writes stay in memory and the file is not changed
  --net hub[:NAME]|udp:LOCAL_PORT:REMOTE_HOST:REMOTE_PORT[,mac=52:54:00:12:34:56]
                         a virtio-net NIC (repeatable): on an in-process switch, or one
                         Ethernet frame per UDP datagram (QEMU's -netdev dgram/socket,udp)
  --pcap FILE            capture the frames of the --net before it to a pcap file
  --console stdio|file:PATH|tcp:PORT|unix:PATH[,name=NAME]
                         virtio-console: the first is port 0 (hvc0), more are named ports
                         (/dev/vport*, /dev/virtio-ports/NAME)
  --balloon              a virtio-balloon (its target is set through --control)
  --rng                  a virtio-rng fed from the host's cryptographic random source
  --control PATH         a Unix socket taking JSON lines: {"cmd":"status"},
                         {"cmd":"balloon.set","bytes":N}, {"cmd":"balloon.get"},
                         {"cmd":"balloon.stats"}, {"cmd":"quit"}
  --config FILE          a JSON file with any of: kernel, initrd, append, memory, serial,
                         clock, noReboot, apic, disks, nets, consoles (arrays of the flags' text),
                         balloon, rng, control (paths relative to the file); flags add to it

Exit status: 0 when the guest powers off, halts or resets with --no-reboot; 1 on a triple
fault, a kernel panic on the console, or an internal error; 2 on a usage error.`;

interface Parsed {
  command: "run" | "start" | "guest-build" | "help";
  spec: RunSpec;
  outDir?: string;
}

/** Parses argv (without node and the script). Throws ConfigError naming the bad flag. */
export function parseArgs(argv: readonly string[], readConfig = readJson): Parsed {
  const args = [...argv];
  if (args.length === 0 || args[0] === "--help" || args[0] === "-h" || args[0] === "help") {
    return { command: "help", spec: defaultRunSpec() };
  }
  const first = args.shift()!;
  let command: Parsed["command"];
  if (first === "run") command = "run";
  else if (first === "start") command = "start";
  else if (first === "guest" && args[0] === "build") {
    args.shift();
    command = "guest-build";
  } else throw new ConfigError(`unknown command '${first}' (commands: run, start, guest build; see --help)`);

  // --config first, so the other flags override it wherever they stand
  let spec = defaultRunSpec();
  const ci = args.indexOf("--config");
  if (ci >= 0) {
    const file = args[ci + 1];
    if (file === undefined) throw new ConfigError("--config needs a FILE");
    spec = applyConfigObject(spec, readConfig(file), file);
    const base = dirname(resolve(file));
    if (spec.kernel) spec.kernel = resolve(base, spec.kernel);
    if (spec.initrd) spec.initrd = resolve(base, spec.initrd);
    if (spec.serial.kind === "file") spec.serial = { kind: "file", path: resolve(base, spec.serial.path) };
    args.splice(ci, 2);
  }
  let outDir: string | undefined;
  while (args.length > 0) {
    const flag = args.shift()!;
    if (flag === "--help" || flag === "-h") return { command: "help", spec };
    if (flag === "--no-reboot") {
      spec.noReboot = true;
      continue;
    }
    const value = (): string => {
      const v = args.shift();
      if (v === undefined || (v.startsWith("--") && v !== "--"))
        throw new ConfigError(`${flag} needs a value`);
      return v;
    };
    if (command === "guest-build") {
      if (flag === "--out") outDir = value();
      else throw new ConfigError(`unknown option '${flag}' for guest build (it takes --out DIR)`);
      continue;
    }
    switch (flag) {
      case "--kernel":
        spec.kernel = value();
        break;
      case "--initrd":
        spec.initrd = value();
        break;
      case "--append":
        spec.append = value();
        break;
      case "--memory":
        spec.memory = checkMemory(parseSize(value(), "--memory"), "--memory");
        break;
      case "--serial":
        spec.serial = parseSerial(value(), "--serial");
        break;
      case "--clock":
        spec.clock = parseClock(value(), "--clock");
        break;
      case "--apic":
        spec.apic = parseOnOff(value(), "--apic");
        break;
      case "--disk":
        spec.devices.disks.push(parseDisk(value()));
        break;
      case "--net":
        spec.devices.nets.push(parseNet(value()));
        break;
      case "--pcap": {
        const last = spec.devices.nets[spec.devices.nets.length - 1];
        if (!last) throw new ConfigError("--pcap FILE captures the --net before it: give a --net first");
        last.pcap = value();
        break;
      }
      case "--console":
        spec.devices.consoles.push(parseConsole(value()));
        break;
      case "--balloon":
        spec.devices.balloon = true;
        continue;
      case "--rng":
        spec.devices.rng = true;
        continue;
      case "--control":
        spec.control = value();
        break;
      default:
        throw new ConfigError(`unknown option '${flag}' (see virtkit --help)`);
    }
  }
  if (spec.serial.kind === "stdio" && spec.devices.consoles.some((c) => c.kind === "stdio")) {
    throw new ConfigError(
      "--console stdio and --serial stdio both want the terminal: give --serial file:PATH or none",
    );
  }
  if (command === "run" && spec.kernel === undefined)
    throw new ConfigError("run needs --kernel FILE (or a config with 'kernel')");
  return { command, spec, outDir };
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`--config: cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`--config: ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === "ENOENT" ? "no such file" : err.code === "EISDIR" ? "it is a directory" : err.message;
    throw new ConfigError(`${what} ${path}: ${why}`);
  }
}

/** Boots `spec` until the guest stops for good. Returns the process exit status. */
export async function runGuest(spec: RunSpec, extra: { vmlinux?: string } = {}): Promise<number> {
  const kernel = readInput(spec.kernel!, "--kernel");
  const initrd = spec.initrd ? readInput(spec.initrd, "--initrd") : undefined;
  const vmlinux = extra.vmlinux ? readInput(extra.vmlinux, "vmlinux") : undefined;
  const sink = serialSink(spec.serial);
  const log = (msg: string): void => void process.stderr.write(`virtkit: ${msg}\n`);
  try {
    for (;;) {
      let machine: Machine | null = null;
      let panicLine: string | null = null;
      const serial = new WatchedSerial(sink.write, (line) => {
        panicLine = line;
        machine?.requestStop({ kind: "stopped", detail: `kernel panic: ${line}` });
      });
      let stdin: ReturnType<typeof attachStdin> | null = null;
      const built = await buildDevices(spec.devices);
      try {
        machine = new Machine({
          devices: built.devices,
          memory: spec.memory,
          kernel,
          vmlinux,
          initrd,
          cmdline: spec.append ?? DEFAULT_CMDLINE,
          serial,
          clock: spec.clock,
          apic: spec.apic,
          log,
          onSerialRxSpace: () => stdin?.rxSpace(),
        });
      } catch (e) {
        await built.close();
        throw e;
      }
      const m = machine;
      const control = spec.control ? await startControl(spec.control, m, built) : null;
      if (spec.serial.kind === "stdio") {
        stdin = attachStdin(m, () => m.requestStop({ kind: "stopped", detail: "quit (Ctrl-A X)" }));
      }
      let reason: StopReason;
      try {
        reason = await m.run({ yieldToHost: () => new Promise((r) => setImmediate(r)) });
      } finally {
        stdin?.detach();
        control?.close();
        await built.close();
      }
      if (reason.kind === "reset" && !spec.noReboot && reason.cause !== "triple fault") {
        log(`guest reset (${reason.cause}): rebooting`);
        continue;
      }
      return report(reason, panicLine, log);
    }
  } finally {
    sink.close();
  }
}

function report(reason: StopReason, panicLine: string | null, log: (m: string) => void): number {
  switch (reason.kind) {
    case "poweroff":
      log("guest powered off");
      return 0;
    case "halted":
      log(`guest stopped: ${reason.detail}`);
      return 0;
    case "reset":
      log(`guest reset (${reason.cause})${reason.cause === "triple fault" ? "" : ", --no-reboot: stopping"}`);
      return reason.cause === "triple fault" ? 1 : 0;
    case "stopped":
      log(`stopped: ${reason.detail}`);
      return panicLine !== null ? 1 : 0;
    case "error": {
      const e = reason.error;
      log(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return 1;
    }
  }
}

/**
 * `virtkit start` with no device flags attaches one of each: a 64 MiB scratch disk in the cache
 * folder (/dev/vda), a NIC on an in-process switch (eth0), a console on a Unix socket
 * (/dev/hvc0), a balloon and an RNG, with the control socket beside them.
 */
function withDefaultDevices(spec: RunSpec): RunSpec {
  const d = spec.devices;
  if (d.disks.length + d.nets.length + d.consoles.length > 0 || d.balloon || d.rng) return spec;
  const dir = defaultCacheDir();
  mkdirSync(dir, { recursive: true });
  const disk = join(dir, "scratch-disk.img");
  if (!existsSync(disk)) {
    const fd = openSync(disk, "w");
    ftruncateSync(fd, 64 * 1024 * 1024);
    closeSync(fd);
  }
  const consoleSock = join(dir, "console.sock");
  const control = spec.control ?? join(dir, "control.sock");
  process.stderr.write(
    `virtkit: devices: disk ${disk} (/dev/vda), eth0 on a switch, /dev/hvc0 on ${consoleSock} (socat - UNIX-CONNECT:${consoleSock}), balloon and rng; control socket ${control}\n`,
  );
  return {
    ...spec,
    control,
    devices: {
      disks: [{ path: disk, readonly: false, overlay: false }],
      nets: [{ kind: "hub", hub: "default" }],
      consoles: [{ kind: "unix", path: consoleSock }],
      balloon: true,
      rng: true,
    },
  };
}

async function main(argv: string[]): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`virtkit: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const progress = (msg: string): void => void process.stderr.write(`virtkit: ${msg}\n`);
  try {
    switch (parsed.command) {
      case "help":
        process.stdout.write(`${HELP}\n`);
        return 0;
      case "guest-build": {
        const g = await buildDefaultGuest({ cacheDir: parsed.outDir, onProgress: progress });
        process.stdout.write(`kernel ${g.kernel}\ninitrd ${g.initrd}\nversion ${g.version}\n`);
        return 0;
      }
      case "run":
        return await runGuest(parsed.spec);
      case "start": {
        let g = findCachedGuest(defaultCacheDir());
        if (!g) {
          progress("the default guest is not built yet: building it (this downloads two Debian packages)");
          g = await buildDefaultGuest({ onProgress: progress });
        }
        const spec = withDefaultDevices({
          ...parsed.spec,
          kernel: parsed.spec.kernel ?? g.kernel,
          initrd: parsed.spec.initrd ?? g.initrd,
        });
        return await runGuest(spec, { vmlinux: parsed.spec.kernel ? undefined : g.vmlinux });
      }
    }
  } catch (e) {
    if (e instanceof VirtkitError) {
      process.stderr.write(`virtkit: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

const isMain = process.argv[1] !== undefined && /cli\.(ts|js|mjs)$/.test(process.argv[1]);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`virtkit: internal error: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
