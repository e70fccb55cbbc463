/**
 * Boots the default guest (Debian 12's 686 kernel + the busybox initramfs that `virtkit guest
 * build` makes) in a virtkit Machine and talks to its shell over COM1. Used by the end-to-end
 * tests; skips (returns undefined from `findGuest`) where the guest has not been built.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { findCachedGuest, type DefaultGuest } from "../src/host/node/guest/build.js";
import { Machine, type MachineConfig, type StopReason } from "../src/machine/machine.js";

/** The guest shell's prompt, with busybox's cursor-position query (ESC [6n) after it. */
const PROMPT_RE = new RegExp(`virtkit# (${String.fromCharCode(27)}\\[6n)?`, "g");

/**
 * The test guests' command line. cryptomgr.notests skips the kernel's crypto self-tests (about
 * 2.5 G guest instructions); the boot tests of the default command line keep them.
 */
export const GUEST_CMDLINE = "console=ttyS0 acpi=off pci=nomsi panic=-1 cryptomgr.notests";

export function findGuest(): DefaultGuest | undefined {
  return findCachedGuest();
}

/** Kernel log lines ("[  1.234] ...") that must never appear in our tests. */
export function kernelProblems(log: string): string[] {
  // Two "unknown" lines are expected and explained: our own CPUID vendor string (the kernel
  // then uses its generic CPU setup) and the MMIO Stale Data status (also on QEMU's PC).
  const allowed = [/CPU: vendor_id '.*' unknown, using generic init/, /MMIO Stale Data: Unknown/];
  return log
    .split(/\r?\n/)
    .filter((l) => /\[\s*\d+\.\d{6}\]/.test(l)) // kernel messages only, not what commands printed
    .filter((l) => /Oops|Call Trace|WARNING:|BUG:|Kernel panic|No IRQ known|unknown/i.test(l))
    .filter((l) => !allowed.some((a) => a.test(l)));
}

/**
 * The guest's shell over its serial console: what it printed (`log`), `waitFor` a pattern past a
 * read cursor, and `run` a command. Subclasses feed `out` and `stopped`, and implement `send`.
 */
export abstract class GuestConsole {
  protected out = "";
  private cursor = 0;
  protected stopped: StopReason | null = null;
  private echoOff = false;

  /** How errors name this guest ("guest", "guest a"). */
  protected abstract readonly who: string;

  /** Types `text` into the console. */
  abstract send(text: string): void;

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
          `${this.who} stopped (${describeStop(this.stopped)}) before ${pattern}\n${this.tail()}`,
        );
      if (Date.now() > end) throw new Error(`${this.who}: timed out waiting for ${pattern}\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  tail(lines = 30): string {
    return this.out.split("\n").slice(-lines).join("\n");
  }

  /**
   * Runs a shell command and returns its output: what the guest printed before the end marker
   * (the terminal's echo is switched off first, so a long command line that the terminal wraps
   * cannot mix with the output; prompts are removed).
   */
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
}

/** A stop reason for an error message (an error's stack in full). */
function describeStop(r: StopReason): string {
  if (r.kind !== "error") return JSON.stringify(r);
  const e = r.error;
  return `error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
}

export class GuestSession extends GuestConsole {
  protected readonly who = "guest";
  readonly machine: Machine;
  private running: Promise<StopReason>;

  constructor(guest: DefaultGuest, extra: Partial<MachineConfig> = {}) {
    super();
    this.machine = new Machine({
      memory: 256 * 1024 * 1024,
      kernel: new Uint8Array(readFileSync(guest.kernel)),
      vmlinux: guest.vmlinux ? new Uint8Array(readFileSync(guest.vmlinux)) : undefined,
      initrd: new Uint8Array(readFileSync(guest.initrd)),
      cmdline: GUEST_CMDLINE,
      clock: "virtual",
      wallClock: () => Date.UTC(2026, 10, 23),
      serial: {
        write: (b) => {
          this.out += Buffer.from(b).toString("latin1");
          // VIRTKIT_GUEST_LOG=FILE: follow the guest's console while a test runs
          if (process.env.VIRTKIT_GUEST_LOG) appendFileSync(process.env.VIRTKIT_GUEST_LOG, b);
        },
      },
      ...extra,
    });
    this.running = this.machine.run({ yieldToHost: () => new Promise((r) => setImmediate(r)) }).then((r) => {
      this.stopped = r;
      return r;
    });
  }

  /** Types `text` into the console. */
  send(text: string): void {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    const push = (): void => {
      off += this.machine.serialReceive(bytes.subarray(off));
      if (off < bytes.length) setTimeout(push, 5);
    };
    push();
  }

  /** Waits for the machine to stop. */
  finished(): Promise<StopReason> {
    return this.running;
  }

  stop(): Promise<StopReason> {
    this.machine.requestStop({ kind: "stopped", detail: "test finished" });
    return this.running;
  }
}
