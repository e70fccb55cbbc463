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
import { GUEST_CMDLINE, GuestConsole } from "./guest-session.js";

export interface GuestWorkerOptions extends Partial<Omit<WorkerMachineSpec, "devices">> {
  devices?: Partial<DeviceSpecs>;
  /** The main thread's switches, by hub name (shared between sessions to link guests). */
  hubs?: Map<string, NetSwitch>;
  /** A name for errors, switch ports and the VIRTKIT_GUEST_LOG file (FILE.NAME). */
  name?: string;
}

export class GuestWorkerSession extends GuestConsole {
  protected readonly who: string;
  private readonly running: Promise<StopReason>;

  private constructor(readonly vm: MachineWorker) {
    super();
    this.who = `guest ${vm.name}`;
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
        cmdline: GUEST_CMDLINE,
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

  /** Types `text` into the console (the worker queues what the UART cannot take yet). */
  send(text: string): void {
    this.vm.serialWrite(text);
  }

  /** Waits for the machine to stop. */
  finished(): Promise<StopReason> {
    return this.running;
  }

  stop(): Promise<StopReason> {
    return this.vm.stop("test finished");
  }
}
