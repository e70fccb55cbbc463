/**
 * A Machine on its own thread. `MachineWorker.start(spec)` starts a worker_thread that builds
 * and runs the machine described by `spec`; the main thread keeps the network switches (a `hub`
 * NIC in the worker is one port of the main thread's NetSwitch of that name, linked through a
 * MessagePort), gets the guest's serial output, feeds its serial input, asks for its status and
 * stops it. Two guests on one thread share its time; in workers each runs on its own core.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import { ConfigError, type VirtkitError } from "../../../common/errors.js";
import { bridge } from "../../../devices/net/backend.js";
import { NetSwitch } from "../../../devices/net/switch.js";
import type { StopReason } from "../../../machine/machine.js";
import { portBackend } from "./port-backend.js";
import {
  type FromWorker,
  fromWireError,
  fromWireStopReason,
  type MachineStatus,
  MachineWorkerError,
  type ToWorker,
  type WorkerInit,
  type WorkerMachineSpec,
} from "./protocol.js";

export interface MachineWorkerOptions {
  /**
   * The switches `hub:NAME` NICs plug into, by name; a name not in the map gets a new switch,
   * added to it. Pass the same map to several workers to put their guests on one network.
   */
  hubs?: Map<string, NetSwitch>;
  /** The guest's serial (COM1) output, in the order it was written. */
  onSerial?: (bytes: Uint8Array) => void;
  /** The machine's diagnostics (MachineConfig.log). */
  onLog?: (message: string) => void;
  /** A name for errors and switch ports (default vmN). */
  name?: string;
  /** The worker script, to override where it is looked for (see `workerScript`). */
  workerUrl?: URL;
}

let counter = 0;

/**
 * How the worker is started. From the TypeScript sources (tests under vitest, `tsx` scripts)
 * the worker registers tsx's loader itself and then imports entry.ts: a worker's entry module
 * does not go through loader hooks given in execArgv on Node 20, and vitest's transform does
 * not reach worker threads. From the build, the entry is dist/worker.js beside this module.
 */
function startWorker(init: WorkerInit, transfer: MessagePort[], override?: URL): Worker {
  const here = import.meta.url;
  const opts = { workerData: init, transferList: transfer };
  if (override) return new Worker(override, opts);
  if (!here.endsWith(".ts")) return new Worker(new URL("./worker.js", here), opts);
  const entry = new URL("./entry.ts", here).href;
  const code = `import(${JSON.stringify(tsxApiUrl())}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  // execArgv: [] so that a parent started by tsx does not register tsx twice in the worker
  return new Worker(code, { ...opts, eval: true, execArgv: [] });
}

function tsxApiUrl(): string {
  const require = createRequire(import.meta.url);
  let pkgPath: string;
  try {
    pkgPath = require.resolve("tsx/package.json");
  } catch {
    throw new MachineWorkerError(
      "running a machine worker from the TypeScript sources needs the tsx package (npm install); the built dist/ does not",
    );
  }
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as {
    exports?: Record<string, { import?: { default?: string } } | string>;
  };
  const entry = pkg.exports?.["./esm/api"];
  const rel = typeof entry === "object" ? entry.import?.default : undefined;
  if (rel === undefined) throw new MachineWorkerError(`tsx at ${pkgPath} has no ./esm/api export`);
  return new URL(rel, pathToFileURL(pkgPath)).href;
}

export class MachineWorker {
  readonly name: string;
  /** Resolves with why the machine stopped (the worker is gone by then). */
  readonly finished: Promise<StopReason>;
  /** Where serial output goes; may be replaced at any time. */
  onSerial: (bytes: Uint8Array) => void;
  private readonly worker: Worker;
  private readonly control: MessagePort;
  private readonly unlink: (() => void)[];
  private readonly statusWaiters = new Map<number, (s: MachineStatus) => void>();
  private nextId = 1;
  private result: StopReason | null = null;
  private lastStatus: MachineStatus = { state: "running", instructions: 0, guestTimeNs: 0 };
  private resolveFinished!: (r: StopReason) => void;

  private constructor(
    worker: Worker,
    control: MessagePort,
    unlink: (() => void)[],
    name: string,
    options: MachineWorkerOptions,
  ) {
    this.worker = worker;
    this.control = control;
    this.unlink = unlink;
    this.name = name;
    this.onSerial = options.onSerial ?? (() => {});
    this.finished = new Promise((r) => {
      this.resolveFinished = r;
    });
  }

  /**
   * Starts a worker with the machine `spec` and resolves once the machine is built and running.
   * A bad spec, a missing file or a device that cannot open rejects with the worker's error
   * (a ConfigError naming what was wrong), and the worker is gone.
   */
  static async start(spec: WorkerMachineSpec, options: MachineWorkerOptions = {}): Promise<MachineWorker> {
    const name = options.name ?? `vm${counter++}`;
    const channel = new MessageChannel();
    const hubPorts: MessagePort[] = [];
    const unlink: (() => void)[] = [];
    const hubs = options.hubs ?? new Map<string, NetSwitch>();
    (spec.devices?.nets ?? []).forEach((n, i) => {
      if (n.kind !== "hub") return;
      let hub = hubs.get(n.hub);
      if (!hub) hubs.set(n.hub, (hub = new NetSwitch()));
      const link = new MessageChannel();
      const near = portBackend(link.port1);
      const undo = bridge(hub.port(`${name}.nic${i}`), near);
      unlink.push(() => {
        undo();
        near.close();
      });
      hubPorts.push(link.port2);
    });
    const init: WorkerInit = { spec, hubPorts, control: channel.port2 };
    let worker: Worker;
    try {
      worker = startWorker(init, [channel.port2, ...hubPorts], options.workerUrl);
    } catch (e) {
      for (const u of unlink) u();
      channel.port1.close();
      if (e instanceof Error && e.name === "DataCloneError")
        throw new ConfigError(`machine spec ${name}: not serializable: ${e.message}`);
      throw e;
    }
    const vm = new MachineWorker(worker, channel.port1, unlink, name, options);
    await new Promise<void>((resolve, reject) => {
      let started = false;
      vm.control.on("message", (m: FromWorker) => {
        switch (m.t) {
          case "started":
            started = true;
            resolve();
            break;
          case "failed": {
            const err = fromWireError(m.error, `machine ${name}`);
            vm.finish({ kind: "error", error: err });
            reject(err);
            break;
          }
          case "serial":
            vm.onSerial(m.bytes);
            break;
          case "log":
            options.onLog?.(m.message);
            break;
          case "status":
            vm.lastStatus = m.status;
            vm.statusWaiters.get(m.id)?.(m.status);
            vm.statusWaiters.delete(m.id);
            break;
          case "stopped":
            vm.lastStatus = m.status;
            vm.finish(fromWireStopReason(m.reason, `machine ${name}`));
            break;
        }
      });
      const early = (err: VirtkitError): void => {
        vm.finish({ kind: "error", error: err });
        if (!started) reject(err);
      };
      worker.on("error", (e) =>
        early(
          new MachineWorkerError(`machine ${name}: the worker thread failed: ${e.message}`, {
            name: e.name,
            message: e.message,
            stack: e.stack,
          }),
        ),
      );
      worker.on("exit", (code) => {
        if (vm.result === null)
          early(
            new MachineWorkerError(
              `machine ${name}: the worker thread exited (code ${code}) before its machine stopped`,
            ),
          );
      });
    });
    return vm;
  }

  /** Records the result once, ends the worker and unplugs its NICs from the switches. */
  private finish(reason: StopReason): void {
    if (this.result !== null) return;
    this.result = reason;
    for (const u of this.unlink) u();
    for (const w of this.statusWaiters.values()) w({ ...this.lastStatus, state: "stopped" });
    this.statusWaiters.clear();
    this.control.close();
    void this.worker.terminate();
    this.resolveFinished(reason);
  }

  /** Types bytes into COM1. Nothing is lost: the worker queues what the UART cannot take yet. */
  serialWrite(data: Uint8Array | string): void {
    if (this.result !== null) return;
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data.slice();
    const m: ToWorker = { t: "serial", bytes };
    this.control.postMessage(m, [bytes.buffer]);
  }

  /** The machine's state, asked of the worker (the last known one once it has stopped). */
  status(): Promise<MachineStatus> {
    if (this.result !== null) return Promise.resolve({ ...this.lastStatus, state: "stopped" });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.statusWaiters.set(id, resolve);
      const m: ToWorker = { t: "status", id };
      this.control.postMessage(m);
    });
  }

  /**
   * Stops the machine and resolves with why it stopped (an earlier stop of its own wins). A
   * worker that does not answer within `timeoutMs` is terminated.
   */
  async stop(detail = "stopped by the host", timeoutMs = 30_000): Promise<StopReason> {
    if (this.result !== null) return this.result;
    const m: ToWorker = { t: "stop", detail };
    this.control.postMessage(m);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
    });
    await Promise.race([this.finished, timeout]);
    clearTimeout(timer);
    this.finish({
      kind: "stopped",
      detail: `${detail} (the worker did not answer in ${timeoutMs} ms: terminated)`,
    });
    return this.result!;
  }
}
