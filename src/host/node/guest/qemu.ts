/**
 * Boots a kernel and initramfs under Debian's qemu-system-i386 (software emulation) with the
 * serial console on a pipe, waits for the default guest's shell, types commands and collects
 * the console log. The reference against which virtkit's own machine is compared, and the peer
 * for interop tests.
 */
import { spawn, spawnSync } from "node:child_process";
import { GUEST_PROMPT, GUEST_READY_MARKER } from "./initramfs.js";

export const QEMU_I386 = "qemu-system-i386";

/** True when qemu-system-i386 can be run. */
export function haveQemu(binary = QEMU_I386): boolean {
  const r = spawnSync(binary, ["--version"], { stdio: "ignore" });
  return !r.error && r.status === 0;
}

export interface QemuGuestOptions {
  kernel: string;
  /** The initramfs (omit for a Multiboot kernel that carries its own). */
  initrd?: string;
  /** The command line (omit for a Multiboot kernel that carries its own). */
  append?: string;
  /** RAM in MiB (default 256). */
  memoryMiB?: number;
  /** More QEMU arguments (devices, drives, -cpu ...). */
  args?: readonly string[];
  /** Shell command lines typed once the prompt shows, one after another. */
  commands?: readonly string[];
  /** Kill QEMU after this long (default 90 s). */
  timeoutMs?: number;
  /** The output that ends the run once seen after the commands (default: QEMU exiting). */
  doneWhen?: RegExp;
  binary?: string;
  /** QEMU's -serial backend (default "stdio"; use "null" when the console is a virtconsole on stdio). */
  serial?: string;
  /** Kills QEMU when aborted (the run then resolves as it does after a timeout, with `aborted` set). */
  signal?: AbortSignal;
}

export interface QemuGuestResult {
  /** Everything the serial console printed. */
  log: string;
  /** ms from start to the kernel's first line, the ready marker and the first prompt (undefined if never). */
  firstLineMs: number | undefined;
  readyMs: number | undefined;
  promptMs: number | undefined;
  totalMs: number;
  exitCode: number | null;
  timedOut: boolean;
  /** True when `signal` ended the run. */
  aborted: boolean;
}

/** Runs QEMU as described; never rejects for guest behaviour, only when QEMU cannot start. */
export function runQemuGuest(opts: QemuGuestOptions): Promise<QemuGuestResult> {
  const args = [
    "-nographic",
    "-monitor",
    "none",
    "-serial",
    opts.serial ?? "stdio",
    "-no-reboot",
    "-m",
    String(opts.memoryMiB ?? 256),
    "-kernel",
    opts.kernel,
    ...(opts.initrd !== undefined ? ["-initrd", opts.initrd] : []),
    ...(opts.append !== undefined ? ["-append", opts.append] : []),
    ...(opts.args ?? []),
  ];
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(opts.binary ?? QEMU_I386, args, { stdio: ["pipe", "pipe", "pipe"] });
    let log = "";
    let firstLineMs: number | undefined;
    let readyMs: number | undefined;
    let promptMs: number | undefined;
    let timedOut = false;
    const commands = [...(opts.commands ?? [])];
    let sent = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 90_000);
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      child.kill("SIGKILL");
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    const onData = (chunk: Buffer): void => {
      log += chunk.toString("latin1");
      const now = performance.now() - start;
      if (firstLineMs === undefined && /\[\s*\d+\.\d+\]/.test(log)) firstLineMs = now;
      if (readyMs === undefined && log.includes(GUEST_READY_MARKER)) readyMs = now;
      if (promptMs === undefined && readyMs !== undefined && log.includes(GUEST_PROMPT)) {
        promptMs = now;
        if (!sent && commands.length > 0) {
          sent = true;
          // One line at a time: the shell reads them from the serial line as typed.
          child.stdin.write(`${commands.join("\n")}\n`);
        }
      }
      if (opts.doneWhen && sent && opts.doneWhen.test(log)) child.kill("SIGTERM");
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (c: Buffer) => {
      log += c.toString("latin1");
    });
    child.stdin.on("error", () => {});
    child.on("error", (e) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      resolve({
        log,
        firstLineMs,
        readyMs,
        promptMs,
        totalMs: performance.now() - start,
        exitCode: code,
        timedOut,
        aborted,
      });
    });
  });
}

/** Lines of a kernel log that a healthy boot must not have: oopses, warnings, IRQ trouble. */
export function kernelLogProblems(log: string): string[] {
  return log
    .split(/\r?\n/)
    .filter((l) =>
      /Oops|Call Trace|WARNING:|BUG:|Kernel panic|No IRQ known|unable to open an initial console/.test(l),
    );
}
