/**
 * The fuzzing harness: one hostile device and one well-behaved neighbour (virtio-rng with a
 * correct driver) on the same guest memory, each behind its own VirtioPciTransport. A case is
 * a short run of hostile actions (register writes, rings and chains, resets, host events),
 * each followed by the checks:
 *
 * - nothing thrown out of the transport, the device or a host-side device API ("escape");
 * - no access outside guest memory (every access goes through GuardedMemory);
 * - a chain that is certainly a guest error (section 2.7), on a queue the device takes buffers
 *   from at once, ends in DEVICE_NEEDS_RESET, with a configuration change notification;
 * - once DEVICE_NEEDS_RESET is set, no running queue moves (no buffer taken, none used) until
 *   the driver resets the device;
 * - asynchronous work (block completions, deferred transmit turns) settles;
 * - after every case the neighbour serves a request and interrupts as a correct device must.
 */
import { VirtkitError } from "../common/errors.js";
import { FlatMemory } from "../common/memory.js";
import type { U64 } from "../common/u64.js";
import {
  VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_RESET,
} from "../devices/device.js";
import {
  directAccess,
  IntxRecorder,
  MsiRecorder,
  type PciAccess,
  VirtioPciDriver,
} from "../devices/transport/pci/driver.js";
import { VIRTIO_MSI_NO_VECTOR } from "../devices/transport/pci/regs.js";
import { VirtioPciTransport } from "../devices/transport/pci/transport.js";
import type { VirtQueue } from "../virtqueue/queue.js";
import {
  type BuiltChain,
  BufferArena,
  buildChain,
  type ChainMutation,
  FATAL_MUTATIONS,
  ODD_MUTATIONS,
} from "./chain.js";
import type { FuzzDevice, FuzzDeviceFactory, FuzzEnv } from "./devices.js";
import { GuardedMemory } from "./guarded-memory.js";
import { Neighbour } from "./neighbour.js";
import { Prng, mixSeed } from "./prng.js";
import { hostileRegisterAction } from "./registers.js";

/** Guest memory of every world: 1 MiB. */
export const FUZZ_MEMORY_SIZE = 1 << 20;
/** The neighbour's driver memory: rings and buffers of the well-behaved rng. */
export const GOOD_BASE = 0x1000;
export const GOOD_END = 0x4_0000;
/** The hostile driver's memory: rings from its bring-ups, then buffers and tables. */
export const HOSTILE_BASE = 0x4_0000;
export const HOSTILE_RINGS_END = 0x8_0000;
/** A world is rebuilt every FUZZ_CHUNK cases: a failure replays from its chunk's start. */
export const FUZZ_CHUNK = 1000;

export type FailureKind =
  | "escape"
  | "out-of-range"
  | "needs-reset-missing"
  | "config-interrupt-missing"
  | "processing-after-needs-reset"
  | "hang"
  | "bring-up"
  | "neighbour";

export interface FuzzFailure {
  device: string;
  seed: number;
  caseIndex: number;
  kind: FailureKind;
  message: string;
  /** The actions of the case up to the failure. */
  trace: string[];
}

/** Counters of one device's run. */
export interface FuzzStats {
  cases: number;
  actions: number;
  chains: number;
  fatalChains: number;
  /** Fatal chains the checks could require DEVICE_NEEDS_RESET for. */
  needsResetChecked: number;
  guestErrors: number;
  neighbourRequests: number;
  /** Times the hostile guest's device wrote over the neighbour's rings or buffers (undone). */
  neighbourMemoryHits: number;
}

const ACTIONS = [
  "chain",
  "registers",
  "host",
  "ring-scribble",
  "reset",
  "queue-reset",
  "bring-up",
  "pci-reset",
  "save-restore",
  "settle",
] as const;
const ACTION_WEIGHTS = [34, 30, 12, 4, 2, 3, 3, 1, 2, 3];

interface Frozen {
  queue: VirtQueue;
  avail: number;
  used: number;
}

function describe(e: unknown): string {
  if (e instanceof Error)
    return `${e.name}: ${e.message}${e.stack ? `\n${e.stack.split("\n").slice(1, 6).join("\n")}` : ""}`;
  return String(e);
}

/** One hostile device and its neighbour on one guest memory. */
export class FuzzWorld {
  readonly raw: FlatMemory;
  readonly memory: GuardedMemory;
  readonly env: FuzzEnv;
  readonly fd: FuzzDevice;
  readonly transport: VirtioPciTransport;
  readonly access: PciAccess;
  readonly msi = new MsiRecorder();
  readonly intx = new IntxRecorder();
  readonly arena: BufferArena;
  readonly failures: FuzzFailure[] = [];
  readonly stats: FuzzStats;
  private readonly good: Neighbour;
  private frozen: (Frozen | null)[] = [];
  private trace: string[] = [];
  private caseIndex = 0;

  constructor(
    readonly factory: FuzzDeviceFactory,
    readonly seed: number,
    worldSeed: number,
    stats: FuzzStats,
  ) {
    this.stats = stats;
    this.raw = new FlatMemory(FUZZ_MEMORY_SIZE);
    this.memory = new GuardedMemory(this.raw);
    this.env = { memorySize: FUZZ_MEMORY_SIZE, hostileBase: HOSTILE_BASE, hostileEnd: FUZZ_MEMORY_SIZE };
    this.arena = new BufferArena(HOSTILE_RINGS_END, FUZZ_MEMORY_SIZE);
    this.good = new Neighbour(this.memory, this.raw, worldSeed, GOOD_BASE, GOOD_END);
    // The hostile side.
    this.fd = factory.create(worldSeed, this.env);
    this.transport = new VirtioPciTransport(this.fd.device, {
      memory: this.memory,
      msiTarget: this.msi,
      log: () => {},
      ...(new Prng(worldSeed).chance(0.2) ? { msixVectors: 0 } : {}),
    });
    this.transport.connectIntx(this.intx);
    this.access = directAccess(this.transport);
  }

  private fail(kind: FailureKind, message: string): void {
    this.failures.push({
      device: this.factory.name,
      seed: this.seed,
      caseIndex: this.caseIndex,
      kind,
      message,
      trace: this.trace.slice(),
    });
  }

  /** Features the device runs with (what the driver accepted of the offered ones). */
  negotiated(): U64 {
    const t = this.transport;
    return {
      lo: (t.driverFeatures.lo & t.offeredFeatures.lo) >>> 0,
      hi: (t.driverFeatures.hi & t.offeredFeatures.hi) >>> 0,
    };
  }

  /** Runs `fn`; anything it throws is an escape. */
  guard(what: string, fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      this.fail("escape", `${what} threw ${describe(e)}`);
      return false;
    }
  }

  /** Runs one case (its own PRNG from seed, device and index). */
  async runCase(caseIndex: number, deviceIndex: number): Promise<void> {
    this.caseIndex = caseIndex;
    this.trace = [];
    this.stats.cases++;
    const rng = new Prng(mixSeed(this.seed, deviceIndex, caseIndex));
    // Mostly start from a live device: one that needs a reset (or never got DRIVER_OK) only
    // takes register accesses, so a correct driver usually brings it back first.
    const live =
      (this.transport.status & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET)) ===
      VIRTIO_CONFIG_S_DRIVER_OK;
    if (caseIndex % FUZZ_CHUNK === 0 || rng.chance(live ? 0.05 : 0.6)) await this.step("bring-up", rng);
    const n = rng.range(1, 8);
    for (let i = 0; i < n; i++) await this.step(ACTIONS[rng.weighted(ACTION_WEIGHTS)]!, rng);
    if (this.fd.busy()) await this.step("settle", rng);
    this.neighbourCheck();
    this.msi.messages.length = 0;
  }

  private async step(action: (typeof ACTIONS)[number], rng: Prng): Promise<void> {
    this.stats.actions++;
    const t = this.transport;
    const before = t.status;
    const msgsBefore = t.msix?.sent ?? 0;
    let expect: BuiltChain | null = null;
    let label: string = action;
    switch (action) {
      case "chain": {
        const r = this.chainAction(rng);
        expect = r.expect;
        label = r.label;
        break;
      }
      case "registers":
        this.guard("register access", () => {
          label = hostileRegisterAction(this, rng);
        });
        break;
      case "host":
        this.guard("host event", () => this.fd.hostEvent(rng));
        break;
      case "ring-scribble":
        label = this.scribble(rng);
        break;
      case "reset":
        this.guard("device_status = 0", () => this.access.barWrite(0, 20, 1, 0));
        break;
      case "queue-reset":
        label = this.queueReset(rng);
        break;
      case "bring-up":
        label = this.bringUp(rng);
        break;
      case "pci-reset":
        this.guard("PCI function reset", () => t.reset());
        break;
      case "save-restore":
        this.guard("save/restore", () => {
          let saved: ReturnType<VirtioPciTransport["save"]>;
          try {
            saved = t.save();
          } catch (e) {
            // A device with requests in flight refuses to be saved (a documented host error).
            if (e instanceof VirtkitError) return;
            throw e;
          }
          t.restore(JSON.parse(JSON.stringify(saved)));
        });
        break;
      case "settle":
        try {
          const ok = await this.fd.settle();
          if (!ok) this.fail("hang", "asynchronous work did not settle");
        } catch (e) {
          this.fail("escape", `settling threw ${describe(e)}`);
        }
        break;
    }
    this.trace.push(label);
    this.check(before, msgsBefore, expect);
  }

  // ---- checks ------------------------------------------------------------------------------

  private check(before: number, msgsBefore: number, expect: BuiltChain | null): void {
    const m = this.memory;
    if (m.violationCount > 0) {
      const v = m.violations.map((a) => `${a.kind} 0x${a.addr.toString(16)}+${a.len}`).join(", ");
      this.fail("out-of-range", `${m.violationCount} accesses outside guest memory: ${v}`);
      m.clear();
    }
    const t = this.transport;
    const status = t.status;
    const nr = (status & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET) !== 0;
    if (expect && !nr) {
      this.fail(
        "needs-reset-missing",
        `chain (head ${expect.head}, ${expect.mutation}) is a guest error but DEVICE_NEEDS_RESET is not set (status 0x${status.toString(16)})`,
      );
    }
    if (nr && !(before & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET)) {
      this.stats.guestErrors++;
      if (status & VIRTIO_CONFIG_S_DRIVER_OK && !this.configInterruptSent(msgsBefore)) {
        this.fail(
          "config-interrupt-missing",
          "DEVICE_NEEDS_RESET set without a configuration change notification",
        );
      }
    }
    // Frozen queues: once DEVICE_NEEDS_RESET is set, nothing may move until reset. The queues
    // are the ones running when it was set (a transport may hide them from the device then).
    for (let q = 0; q < t.numQueues; q++) {
      const live = t.queue(q);
      if (!nr) {
        this.frozen[q] = live ? { queue: live, avail: live.nextAvailIdx, used: live.nextUsedIdx } : null;
        continue;
      }
      const f = this.frozen[q];
      const vq = live ?? f?.queue ?? null;
      if (!vq) continue;
      if (
        before & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET &&
        f &&
        f.queue === vq &&
        (f.avail !== vq.nextAvailIdx || f.used !== vq.nextUsedIdx)
      ) {
        this.fail(
          "processing-after-needs-reset",
          `queue ${q} moved after DEVICE_NEEDS_RESET: next_avail ${f.avail} -> ${vq.nextAvailIdx}, next_used ${f.used} -> ${vq.nextUsedIdx}`,
        );
      }
      this.frozen[q] = { queue: vq, avail: vq.nextAvailIdx, used: vq.nextUsedIdx };
    }
  }

  private configInterruptSent(msgsBefore: number): boolean {
    const t = this.transport;
    const x = t.msix;
    if (x?.enabled) {
      const v = t.configMsixVector;
      if (v === VIRTIO_MSI_NO_VECTOR) return true; // nowhere to send it (the driver's choice)
      return x.sent > msgsBefore || x.isPending(v);
    }
    return (t.peekIsr() & 2) !== 0;
  }

  /** The neighbour serves one request and interrupts. */
  private neighbourCheck(): void {
    this.stats.neighbourRequests++;
    const hitsBefore = this.good.memoryHits;
    const problem = this.good.check();
    this.stats.neighbourMemoryHits += this.good.memoryHits - hitsBefore;
    if (problem) this.fail("neighbour", problem);
  }

  // ---- actions -----------------------------------------------------------------------------

  /** A hostile address: in the hostile region, straddling the end of memory, or outside it. */
  hostileAddr(rng: Prng, len = 0, align = 1): number {
    const size = FUZZ_MEMORY_SIZE;
    let a: number;
    switch (rng.int(8)) {
      case 0:
        a = size - len + rng.range(-4, 8);
        break;
      case 1:
        a = size + rng.int(1 << 24);
        break;
      case 2:
        a = 0xffff_ffff - rng.int(64);
        break;
      default:
        a = HOSTILE_BASE + rng.int(size - HOSTILE_BASE - Math.min(len, size - HOSTILE_BASE - 1));
    }
    a = Math.max(HOSTILE_BASE, a);
    return (a - (a % align)) >>> 0;
  }

  private runningQueues(): number[] {
    const out: number[] = [];
    for (let q = 0; q < this.transport.numQueues; q++) if (this.transport.queue(q)) out.push(q);
    return out;
  }

  private chainAction(rng: Prng): { expect: BuiltChain | null; label: string } {
    const t = this.transport;
    const running = this.runningQueues();
    if (running.length === 0) return { expect: null, label: "chain: no running queue" };
    const q = rng.pick(running);
    const vq = t.queue(q)!;
    const f = this.negotiated();
    const req = this.fd.request(rng, q, f);
    const r = rng.int(100);
    const mutation: ChainMutation =
      r < 55 ? "none" : r < 85 ? rng.pick(FATAL_MUTATIONS) : rng.pick(ODD_MUTATIONS);
    const pendingBefore = (this.raw.readU16(vq.avail + 2) - vq.nextAvailIdx) & 0xffff;
    const built = buildChain(
      this.raw,
      {
        size: vq.size,
        desc: vq.desc,
        avail: vq.avail,
        used: vq.used,
        nextAvail: vq.nextAvailIdx,
        indirect: vq.indirect,
      },
      req,
      this.arena,
      rng,
      mutation,
    );
    this.stats.chains++;
    if (built.fatal) this.stats.fatalChains++;
    const label = `chain q${q} head ${built.head} ${mutation}${req.mustFail ? " must-fail" : ""} r=${req.readable.map((b) => b.length).join("/")} w=${req.writable.join("/")}`;
    const notify = rng.chance(0.92);
    const canExpect =
      notify &&
      pendingBefore === 0 &&
      (t.status & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET)) ===
        VIRTIO_CONFIG_S_DRIVER_OK &&
      t.busMasterEnabled &&
      t.memorySpaceEnabled &&
      this.fd.consumes(q, f);
    if (notify) this.guard(`notify queue ${q}`, () => this.access.barWrite(0, 0x3000 + 4 * q, 2, q));
    const must = built.fatal || (built.exact && req.mustFail);
    if (canExpect && must) {
      this.stats.needsResetChecked++;
      return { expect: built, label };
    }
    return { expect: null, label };
  }

  private scribble(rng: Prng): string {
    const running = this.runningQueues();
    if (running.length === 0) return "scribble: no running queue";
    const q = rng.pick(running);
    const vq = this.transport.queue(q)!;
    const areas = [
      [vq.desc, 16 * vq.size],
      [vq.avail, 6 + 2 * vq.size],
      [vq.used, 6 + 8 * vq.size],
    ] as const;
    const [base, len] = rng.pick(areas);
    const n = rng.range(1, 8);
    for (let i = 0; i < n; i++) {
      const at = base + rng.int(len);
      this.raw.writeU8(at, rng.chance(0.5) ? rng.int(256) : rng.pick([0, 1, 0xff]));
    }
    this.guard(`notify queue ${q}`, () => this.access.barWrite(0, 0x3000 + 4 * q, 2, q));
    return `scribble q${q} @0x${base.toString(16)}`;
  }

  private queueReset(rng: Prng): string {
    const t = this.transport;
    const q = rng.int(t.numQueues + 1);
    let label = `queue reset q${q}`;
    this.guard("queue reset", () => {
      this.access.barWrite(0, 22, 2, q); // queue_select
      this.access.barWrite(0, 58, 2, 1); // queue_reset
      if (rng.chance(0.7)) {
        const size = 1 << rng.int(6);
        const base = this.hostileAddr(rng, 16 * size + 6 + 2 * size + 6 + 8 * size + 8, 16);
        if (rng.chance(0.5) && this.raw.inRange(base, 0x1000)) this.raw.fill(base, 0x1000, 0);
        this.access.barWrite(0, 24, 2, size);
        this.access.barWrite(0, 32, 4, base);
        this.access.barWrite(0, 40, 4, base + 16 * size);
        this.access.barWrite(0, 48, 4, (base + 16 * size + 6 + 2 * size + 3) & ~3);
        this.access.barWrite(0, 28, 2, 1); // queue_enable
        label += ` re-enabled size ${size} at 0x${base.toString(16)}`;
      }
    });
    return label;
  }

  /** A correct driver's bring-up (after whatever came before), with random features and queues. */
  private bringUp(rng: Prng): string {
    const t = this.transport;
    const mode = t.msix && rng.chance(0.7) ? "msix" : "intx";
    let label = `bring-up ${mode}`;
    try {
      if (rng.chance(0.1)) t.reset();
      const driver = new VirtioPciDriver(t, this.raw, {
        interrupts: mode,
        msi: this.msi,
        intx: this.intx,
        dmaBase: HOSTILE_BASE,
        dmaSize: HOSTILE_RINGS_END - HOSTILE_BASE,
        indirectEntries: 0,
      });
      const wanted: number[] = [];
      for (let b = 0; b < 64; b++) {
        const offered = b < 32 ? (t.offeredFeatures.lo >>> b) & 1 : (t.offeredFeatures.hi >>> (b - 32)) & 1;
        if (offered && rng.chance(0.75)) wanted.push(b);
      }
      if (rng.chance(0.5) && !wanted.includes(VIRTIO_F_INDIRECT_DESC)) wanted.push(VIRTIO_F_INDIRECT_DESC);
      if (rng.chance(0.3) && !wanted.includes(VIRTIO_F_RING_RESET)) wanted.push(VIRTIO_F_RING_RESET);
      driver.init(wanted);
      const n = driver.numQueues;
      for (let i = 0; i < n; i++) if (rng.chance(0.85)) driver.setupQueue(i, 1 << rng.int(6));
      if (rng.chance(0.95)) driver.driverOk();
      label += ` features ${t.driverFeatures.hi.toString(16)}:${t.driverFeatures.lo.toString(16)} status 0x${t.status.toString(16)}`;
    } catch (e) {
      this.fail("bring-up", `a correct driver failed to bring the device up: ${describe(e)}`);
    }
    return label;
  }
}

/** Runs cases [from, to) of one device (worlds rebuilt at each chunk boundary). */
export async function runDeviceCases(
  factory: FuzzDeviceFactory,
  deviceIndex: number,
  seed: number,
  from: number,
  to: number,
  stats: FuzzStats,
  onWorld?: (w: FuzzWorld) => void,
): Promise<FuzzFailure[]> {
  const failures: FuzzFailure[] = [];
  let world: FuzzWorld | null = null;
  for (let c = from; c < to; c++) {
    if (world === null || c % FUZZ_CHUNK === 0) {
      if (world) failures.push(...world.failures);
      const chunk = Math.floor(c / FUZZ_CHUNK);
      world = new FuzzWorld(factory, seed, mixSeed(seed, deviceIndex, chunk, 0x776f726c), stats);
      onWorld?.(world);
      // Cases of a chunk depend on the ones before them: replay from the chunk's start.
      for (let k = chunk * FUZZ_CHUNK; k < c; k++) await world.runCase(k, deviceIndex);
      world.failures.length = 0;
    }
    await world.runCase(c, deviceIndex);
  }
  if (world) failures.push(...world.failures);
  return failures;
}

export function emptyStats(): FuzzStats {
  return {
    cases: 0,
    actions: 0,
    chains: 0,
    fatalChains: 0,
    needsResetChecked: 0,
    guestErrors: 0,
    neighbourRequests: 0,
    neighbourMemoryHits: 0,
  };
}
