/**
 * What the main thread and a machine's worker say to each other, and the serializable
 * description a worker builds its Machine from.
 */
import type { MessagePort } from "node:worker_threads";
import { ConfigError, VirtkitError } from "../../../common/errors.js";
import type { ClockMode, StopReason } from "../../../machine/machine.js";
import type { DeviceSpecs } from "../devices.js";

/** A file path (read in the worker) or the bytes themselves (copied to the worker). */
export type FileOrBytes = string | Uint8Array;

/**
 * A Machine, described so that another thread can build it: the `MachineConfig` fields that
 * are plain data, and the devices as the CLI's `DeviceSpecs` (`--disk`, `--net`, ... texts parse
 * to them with parseDisk/parseNet/parseConsole). A `hub` NIC is connected to the main thread's
 * switch of that name (see `MachineWorkerOptions.hubs`).
 */
export interface WorkerMachineSpec {
  kernel: FileOrBytes;
  initrd?: FileOrBytes;
  /** The bzImage's decompressed vmlinux, to skip in-guest decompression. */
  vmlinux?: FileOrBytes;
  cmdline: string;
  /** RAM in bytes (default 256 MiB). */
  memory?: number;
  clock?: ClockMode;
  nsPerInstruction?: number;
  acpi?: boolean;
  /** A local APIC and I/O APIC (MachineConfig.apic; the machine's default when absent). */
  apic?: boolean;
  /** A fixed wall-clock time for the RTC (ms since the epoch); default: the host's clock. */
  wallClock?: number;
  devices?: DeviceSpecs;
  /** Stop the machine (reason "stopped", "kernel panic: ...") when the console shows a panic. */
  stopOnPanic?: boolean;
  /** A control socket (control.ts: JSON lines) served from the worker, next to its machine. */
  control?: string;
  /** Stop after this many guest instructions. */
  maxInstructions?: number;
}

/** What a running worker reports about its machine. */
export interface MachineStatus {
  state: "running" | "stopped";
  /** Guest instructions executed so far. */
  instructions: number;
  /** Guest time in ns (the machine's timer clock). */
  guestTimeNs: number;
}

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/** StopReason with the error of kind "error" made serializable. */
export type WireStopReason = Exclude<StopReason, { kind: "error" }> | { kind: "error"; error: WireError };

/** The worker's startup data (its `workerData`). */
export interface WorkerInit {
  spec: WorkerMachineSpec;
  /** One port per `hub` NIC of `spec.devices.nets`, in order. */
  hubPorts: MessagePort[];
  /** The port for control messages (ToWorker in, FromWorker out). */
  control: MessagePort;
}

export type ToWorker =
  | { t: "serial"; bytes: Uint8Array }
  | { t: "stop"; detail: string }
  | { t: "status"; id: number };

export type FromWorker =
  | { t: "started" }
  | { t: "serial"; bytes: Uint8Array }
  | { t: "log"; message: string }
  | { t: "status"; id: number; status: MachineStatus }
  | { t: "stopped"; reason: WireStopReason; status: MachineStatus }
  | { t: "failed"; error: WireError };

export function toWireError(e: unknown): WireError {
  if (e instanceof Error) {
    const out: WireError = { name: e.name, message: e.message };
    if (e.stack !== undefined) out.stack = e.stack;
    if (e instanceof VirtkitError) out.code = e.code;
    return out;
  }
  return { name: "Error", message: String(e) };
}

/** An error raised inside a machine's worker thread; `remoteStack` is the stack there. */
export class MachineWorkerError extends VirtkitError {
  readonly remoteName: string;
  readonly remoteCode: string | undefined;
  readonly remoteStack: string | undefined;
  constructor(message: string, remote?: WireError) {
    super("MACHINE_WORKER", message);
    this.remoteName = remote?.name ?? "Error";
    this.remoteCode = remote?.code;
    this.remoteStack = remote?.stack;
  }
}

/**
 * The main thread's error for a worker's error: a ConfigError stays a ConfigError (same
 * message: it names the bad field or file); anything else is a MachineWorkerError naming where.
 */
export function fromWireError(w: WireError, where: string): VirtkitError {
  if (w.code === "CONFIG") return new ConfigError(w.message);
  return new MachineWorkerError(`${where}: ${w.name}: ${w.message}`, w);
}

export function toWireStopReason(r: StopReason): WireStopReason {
  return r.kind === "error" ? { kind: "error", error: toWireError(r.error) } : r;
}

export function fromWireStopReason(r: WireStopReason, where: string): StopReason {
  return r.kind === "error" ? { kind: "error", error: fromWireError(r.error, where) } : r;
}
