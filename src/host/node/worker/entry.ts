/**
 * The worker thread's side of MachineWorker: builds the Machine from the spec in `workerData`,
 * runs it, and talks to the main thread over the control port (serial both ways, status, stop).
 * Loaded by machine-worker.ts (through tsx in source form, as dist/worker.js when built).
 */
import { readFileSync } from "node:fs";
import { isMainThread, workerData } from "node:worker_threads";
import { ConfigError } from "../../../common/errors.js";
import { Machine, type StopReason } from "../../../machine/machine.js";
import type { Server } from "node:net";
import { startControl } from "../control.js";
import { type BuiltDevices, buildDevices, emptyDeviceSpecs } from "../devices.js";
import { checkMemory, DEFAULT_MEMORY } from "../options.js";
import { WatchedSerial } from "../serial.js";
import { portBackend, type PortBackend } from "./port-backend.js";
import {
  type FileOrBytes,
  type FromWorker,
  type MachineStatus,
  type ToWorker,
  toWireError,
  toWireStopReason,
  type WorkerInit,
  type WorkerMachineSpec,
} from "./protocol.js";

function readInput(value: FileOrBytes | undefined, field: string): Uint8Array | undefined {
  if (value === undefined) return undefined;
  if (value instanceof Uint8Array) return value;
  if (typeof value !== "string") throw new ConfigError(`${field} must be a file path or bytes`);
  try {
    return new Uint8Array(readFileSync(value));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === "ENOENT" ? "no such file" : err.code === "EISDIR" ? "it is a directory" : err.message;
    throw new ConfigError(`${field} ${value}: ${why}`);
  }
}

/** Checks what structured cloning cannot: the fields' types and ranges. */
function checkSpec(spec: WorkerMachineSpec): void {
  if (typeof spec !== "object" || spec === null) throw new ConfigError("machine spec must be an object");
  if (typeof spec.cmdline !== "string") throw new ConfigError("machine spec: cmdline must be a string");
  if (spec.clock !== undefined && spec.clock !== "realtime" && spec.clock !== "virtual")
    throw new ConfigError(`machine spec: clock '${String(spec.clock)}' is not realtime or virtual`);
  if (spec.memory !== undefined) checkMemory(spec.memory, "machine spec");
  for (const c of spec.devices?.consoles ?? []) {
    if (c.kind === "stdio")
      throw new ConfigError(
        "machine spec: a console on stdio cannot run in a worker thread (use file:, tcp: or unix:)",
      );
  }
}

class WorkerMain {
  private readonly post: (m: FromWorker, transfer?: ArrayBuffer[]) => void;
  private machine: Machine | null = null;
  private built: BuiltDevices | null = null;
  private control: Server | null = null;
  private readonly links: PortBackend[] = [];
  private stopped = false;
  /** A stop asked for before the machine was built. */
  private pendingStop: string | null = null;
  /** Serial input not yet taken by the UART. */
  private input: Uint8Array[] = [];
  /** Serial output gathered until the next turn of the event loop. */
  private output: Uint8Array[] = [];
  private outputBytes = 0;
  private flushQueued = false;

  constructor(private readonly init: WorkerInit) {
    const control = init.control;
    this.post = (m, transfer) => control.postMessage(m, transfer ?? []);
    control.on("message", (m: ToWorker) => this.onMessage(m));
  }

  private onMessage(m: ToWorker): void {
    switch (m.t) {
      case "serial":
        this.input.push(m.bytes);
        this.feed();
        break;
      case "stop":
        if (this.machine) this.machine.requestStop({ kind: "stopped", detail: m.detail });
        else this.pendingStop ??= m.detail;
        break;
      case "status":
        this.post({ t: "status", id: m.id, status: this.status() });
        break;
    }
  }

  private status(): MachineStatus {
    const mc = this.machine;
    return {
      state: this.stopped || mc === null ? "stopped" : "running",
      instructions: mc?.cpu.instructions ?? 0,
      guestTimeNs: mc?.timers.now() ?? 0,
    };
  }

  /** Offers queued input to COM1; what it cannot take waits for onSerialRxSpace. */
  private feed(): void {
    const m = this.machine;
    if (m === null) return;
    while (this.input.length > 0) {
      const head = this.input[0]!;
      const n = m.serialReceive(head);
      if (n >= head.length) this.input.shift();
      else {
        this.input[0] = head.subarray(n);
        break;
      }
    }
  }

  private serialOut(bytes: Uint8Array): void {
    this.output.push(bytes.slice());
    this.outputBytes += bytes.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      // Runs when the machine's run loop next awaits (it yields every few ms): one message per
      // burst instead of one per byte.
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.outputBytes === 0) return;
    const all = new Uint8Array(this.outputBytes);
    let off = 0;
    for (const b of this.output) {
      all.set(b, off);
      off += b.length;
    }
    this.output = [];
    this.outputBytes = 0;
    this.post({ t: "serial", bytes: all }, [all.buffer]);
  }

  async main(): Promise<void> {
    try {
      const spec = this.init.spec;
      checkSpec(spec);
      const kernel = readInput(spec.kernel, "kernel")!;
      const initrd = readInput(spec.initrd, "initrd");
      const vmlinux = readInput(spec.vmlinux, "vmlinux");
      const ports = [...this.init.hubPorts];
      this.built = await buildDevices(spec.devices ?? emptyDeviceSpecs(), {
        hubPort: (hub, index) => {
          const port = ports.shift();
          if (port === undefined)
            throw new ConfigError(`machine spec: no hub port for NIC ${index} (hub:${hub})`);
          const link = portBackend(port);
          this.links.push(link);
          return link;
        },
      });
      const serial = spec.stopOnPanic
        ? new WatchedSerial(
            (b) => this.serialOut(b),
            (line) => this.machine?.requestStop({ kind: "stopped", detail: `kernel panic: ${line}` }),
          )
        : { write: (b: Uint8Array) => this.serialOut(b) };
      const wall = spec.wallClock;
      this.machine = new Machine({
        memory: spec.memory ?? DEFAULT_MEMORY,
        kernel,
        initrd,
        vmlinux,
        cmdline: spec.cmdline,
        clock: spec.clock,
        nsPerInstruction: spec.nsPerInstruction,
        acpi: spec.acpi,
        apic: spec.apic,
        wallClock: wall === undefined ? undefined : () => wall,
        devices: this.built.devices,
        serial,
        onSerialRxSpace: () => this.feed(),
        log: (message) => this.post({ t: "log", message }),
      });
      if (spec.control !== undefined)
        this.control = await startControl(spec.control, this.machine, this.built);
    } catch (e) {
      await this.cleanup();
      this.post({ t: "failed", error: toWireError(e) });
      return;
    }
    this.post({ t: "started" });
    if (this.pendingStop !== null) this.machine.requestStop({ kind: "stopped", detail: this.pendingStop });
    this.feed();
    const reason: StopReason = await this.machine.run({
      yieldToHost: () => new Promise((r) => setImmediate(r)),
      maxInstructions: this.init.spec.maxInstructions,
    });
    this.stopped = true;
    this.flush();
    await this.cleanup();
    this.post({ t: "stopped", reason: toWireStopReason(reason), status: this.status() });
  }

  private async cleanup(): Promise<void> {
    this.control?.close();
    for (const l of this.links) l.close();
    try {
      await this.built?.close();
    } catch (e) {
      this.post({ t: "log", message: `closing the devices: ${(e as Error).message}` });
    }
  }
}

if (!isMainThread && workerData !== null && typeof workerData === "object" && "control" in workerData) {
  void new WorkerMain(workerData as WorkerInit).main();
}
