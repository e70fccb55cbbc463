/**
 * The default guest in a MachineWorker (its own thread), with GuestSession's interface:
 * `waitFor`, `run`, `send`, `log`, `tail`, `finished`, `stop`. Its NICs are `hub:NAME` specs,
 * joined to the switches in `hubs` (owned by this, the main thread).
 */
import { appendFileSync } from "node:fs";
import type { NetSwitch } from "../src/devices/net/switch.js";
import { type DeviceSpecs, emptyDeviceSpecs } from "../src/host/node/devices.js";
import type { DefaultGuest } from "../src/host/node/guest/build.js";
import { MachineWorker } from "../src/host/node/worker/machine-worker.js";
import type { WorkerMachineSpec } from "../src/host/node/worker/protocol.js";
import type { StopReason } from "../src/machine/machine.js";

/** The guest shell's prompt, with busybox's cursor-position query (ESC [6n) after it. */
const PROMPT_RE = new RegExp(`virtkit# (${String.fromCharCode(27)}\\[6n)?`, "g");

/** GuestSession's command line (crypto self-tests skipped). */
export const WORKER_GUEST_CMDLINE = "console=ttyS0 acpi=off pci=nomsi panic=-1 cryptomgr.notests";

export interface GuestWorkerOptions extends Partial<Omit<WorkerMachineSpec, "devices">> {
  devices?: Partial<DeviceSpecs>;
  /** The main thread's switches, by hub name (shared between sessions to link guests). */
  hubs?: Map<string, NetSwitch>;
  /** A name for errors, switch ports and the VIRTKIT_GUEST_LOG file (FILE.NAME). */
  name?: string;
}

export class GuestWorkerSession {
  private out = "";
  private cursor = 0;
  private stopped: StopReason | null = null;
  private echoOff = false;
  private readonly running: Promise<StopReason>;

  private constructor(readonly vm: MachineWorker) {
    this.running = vm.finished.then((r) => {
      this.stopped = r;
      return r;
    });
  }

  /** Starts the guest's worker; resolves when the machine runs (the guest is still booting). */
  static async start(guest: DefaultGuest, options: GuestWorkerOptions = {}): Promise<GuestWorkerSession> {
    const { hubs, name, devices, ...rest } = options;
    const logFile = process.env.VIRTKIT_GUEST_LOG
      ? `${process.env.VIRTKIT_GUEST_LOG}${name ? `.${name}` : ""}`
      : undefined;
    let session: GuestWorkerSession | null = null;
    const early: Uint8Array[] = [];
    const vm = await MachineWorker.start(
      {
        kernel: guest.kernel,
        vmlinux: guest.vmlinux,
        initrd: guest.initrd,
        memory: 256 * 1024 * 1024,
        cmdline: WORKER_GUEST_CMDLINE,
        clock: "virtual",
        wallClock: Date.UTC(2026, 10, 23),
        devices: { ...emptyDeviceSpecs(), ...devices },
        ...rest,
      },
      {
        hubs,
        name,
        onSerial: (b) => {
          if (logFile) appendFileSync(logFile, b);
          if (session) session.out += Buffer.from(b).toString("latin1");
          else early.push(b);
        },
      },
    );
    session = new GuestWorkerSession(vm);
    for (const b of early) session.out += Buffer.from(b).toString("latin1");
    return session;
  }

  /** Everything the guest printed on COM1 so far. */
  get log(): string {
    return this.out;
  }

  /** Waits until `pattern` appears after the read cursor; moves the cursor past it. */
  async waitFor(pattern: RegExp | string, timeoutMs = 1_200_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.out.slice(this.cursor);
      const m = typeof pattern === "string" ? rest.indexOf(pattern) : rest.search(pattern);
      if (m >= 0) {
        const len = typeof pattern === "string" ? pattern.length : (rest.match(pattern)?.[0].length ?? 0);
        const text = rest.slice(0, m + len);
        this.cursor += m + len;
        return text;
      }
      if (this.stopped)
        throw new Error(
          `guest ${this.vm.name} stopped (${describe(this.stopped)}) before ${pattern}\n${this.tail()}`,
        );
      if (Date.now() > end)
        throw new Error(`guest ${this.vm.name}: timed out waiting for ${pattern}\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  tail(lines = 30): string {
    return this.out.split("\n").slice(-lines).join("\n");
  }

  /** Types `text` into the console (the worker queues what the UART cannot take yet). */
  send(text: string): void {
    this.vm.serialWrite(text);
  }

  /** Runs a shell command and returns its output (as GuestSession.run: echo off, prompts removed). */
  async run(cmd: string, timeoutMs = 1_200_000): Promise<string> {
    if (!this.echoOff) {
      this.echoOff = true;
      await this.run("stty -echo", timeoutMs);
    }
    const id = Math.floor(Math.random() * 1e9);
    this.send(`${cmd}; echo "@@END""${id}@@ $?"\n`);
    const text = await this.waitFor(new RegExp(`@@END${id}@@ \\d+`), timeoutMs);
    return text
      .slice(0, text.lastIndexOf(`@@END${id}@@`))
      .replace(PROMPT_RE, "")
      .replace(/\r/g, "");
  }

  /** Waits for the machine to stop. */
  finished(): Promise<StopReason> {
    return this.running;
  }

  stop(): Promise<StopReason> {
    return this.vm.stop("test finished");
  }
}

function describe(r: StopReason): string {
  if (r.kind !== "error") return JSON.stringify(r);
  const e = r.error;
  return `error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
}
