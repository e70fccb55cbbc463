/**
 * The devices the fuzzer drives, each behind a small adapter: how to build it, what a random
 * (often malformed) request on each of its queues looks like, which notifies make it take its
 * buffers at once (so a malformed chain there must end in DEVICE_NEEDS_RESET), host-side events
 * (console input, frames from the network, balloon targets, block completions in any order),
 * and how to finish its asynchronous work.
 */
import type { U64 } from "../common/u64.js";
import type { VirtioDevice } from "../devices/device.js";
import { balloonFactory, consoleFactory, netFactory } from "./devices-io.js";
import { blkFactory, checksumFactory, rngFactory } from "./devices-simple.js";
import type { Prng } from "./prng.js";

/** A request to put in a chain: device-readable bytes, then device-writable lengths. */
export interface RequestShape {
  readable: Uint8Array[];
  writable: number[];
  /**
   * The device must answer this request with DEVICE_NEEDS_RESET when it takes it (a guest
   * error the device cannot even answer: no status byte, a short control message...).
   */
  mustFail: boolean;
}

/** Where the hostile driver's memory is (PFNs and addresses the adapter may name). */
export interface FuzzEnv {
  memorySize: number;
  hostileBase: number;
  hostileEnd: number;
}

/** One device under fuzzing. */
export interface FuzzDevice {
  readonly device: VirtioDevice;
  /** Whether a notify on `queue` makes the device pop its available buffers right away. */
  consumes(queue: number, features: U64): boolean;
  /** A random request for `queue` (well-formed or not at the request level). */
  request(rng: Prng, queue: number, features: U64): RequestShape;
  /** A random host-side event. */
  hostEvent(rng: Prng): void;
  /** Finishes asynchronous work (completions, deferred turns). Returns false if it never settles. */
  settle(): Promise<boolean> | boolean;
  /** Whether `settle` has anything to do (so cheap cases skip the await). */
  busy(): boolean;
}

export interface FuzzDeviceFactory {
  readonly name: string;
  create(seed: number, env: FuzzEnv): FuzzDevice;
}

/** Every device the fuzzer knows, by name. */
export const FUZZ_DEVICES: readonly FuzzDeviceFactory[] = [
  rngFactory,
  blkFactory,
  consoleFactory,
  netFactory,
  balloonFactory,
  checksumFactory,
];

export function fuzzDevice(name: string): FuzzDeviceFactory | undefined {
  return FUZZ_DEVICES.find((d) => d.name === name);
}
