import { closeSync, openSync, writeSync } from "node:fs";
import type { SerialBackend } from "../../machine/chipset/uart.js";
import type { Machine } from "../../machine/machine.js";
import type { SerialSpec } from "./options.js";

/** Lines on the guest console that mean the guest is dead. */
const PANIC_PATTERNS = [/Kernel panic - not syncing/];

/**
 * A serial backend that sends the guest's output to `sink` and watches it, line by line, for a
 * kernel panic. `onPanic` is called once with the offending line.
 */
export class WatchedSerial implements SerialBackend {
  private line = "";
  private panicked = false;
  private readonly decoder = new TextDecoder();
  /** The last lines the guest printed (for error reports). */
  readonly tail: string[] = [];

  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    private readonly onPanic: (line: string) => void,
  ) {}

  write(bytes: Uint8Array): void {
    this.sink(bytes);
    const text = this.decoder.decode(bytes, { stream: true });
    for (const ch of text) {
      if (ch === "\n") {
        this.endLine(this.line.replace(/\r$/, ""));
        this.line = "";
      } else if (this.line.length < 4096) {
        this.line += ch;
      }
    }
  }

  private endLine(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 40) this.tail.shift();
    if (!this.panicked && PANIC_PATTERNS.some((p) => p.test(line))) {
      this.panicked = true;
      this.onPanic(line);
    }
  }
}

/** Where a SerialSpec's bytes go, and how to close it. */
export function serialSink(spec: SerialSpec): { write: (b: Uint8Array) => void; close: () => void } {
  if (spec.kind === "stdio") return { write: (b) => process.stdout.write(b), close: () => {} };
  if (spec.kind === "none") return { write: () => {}, close: () => {} };
  const fd = openSync(spec.path, "w");
  return { write: (b) => writeSync(fd, b), close: () => closeSync(fd) };
}

/**
 * Connects the process's stdin to the guest's COM1. On a terminal, stdin goes to raw mode and
 * Ctrl-A X quits (Ctrl-A Ctrl-A sends one Ctrl-A), as in QEMU. Input the UART cannot take yet
 * pauses stdin until it has room (nothing is dropped). Returns a function that undoes it all.
 */
export function attachStdin(
  machine: Machine,
  onQuit: () => void,
): { detach: () => void; rxSpace: () => void } {
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  let pending: Uint8Array | null = null;
  let ctrlA = false;
  const feed = (): void => {
    while (pending !== null && pending.length > 0) {
      const n = machine.serialReceive(pending);
      pending = n >= pending.length ? null : pending.subarray(n);
      if (n === 0) break;
    }
    if (pending === null) stdin.resume();
    else stdin.pause();
  };
  const onData = (chunk: Buffer): void => {
    let bytes = new Uint8Array(chunk);
    if (tty) {
      const out: number[] = [];
      for (const b of bytes) {
        if (ctrlA) {
          ctrlA = false;
          if (b === 0x78 || b === 0x58) {
            onQuit();
            return;
          }
          if (b === 0x01) out.push(0x01);
          continue;
        }
        if (b === 0x01) ctrlA = true;
        else out.push(b);
      }
      bytes = Uint8Array.from(out);
    }
    pending = pending === null ? bytes : concat(pending, bytes);
    feed();
  };
  if (tty) stdin.setRawMode(true);
  stdin.on("data", onData);
  stdin.resume();
  return {
    rxSpace: feed,
    detach: () => {
      stdin.off("data", onData);
      if (tty) stdin.setRawMode(false);
      stdin.pause();
    },
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
