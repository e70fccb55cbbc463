import {
  VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_SUSPEND,
} from "../../device.js";

/** What the transport must do after a device_status write. */
export type StatusAction = "none" | "reset" | "activate" | "ignored";

export interface StatusOutcome {
  status: number;
  action: StatusAction;
  /** The rule that decided, for counters and logs. */
  rule: string;
}

/** What the status rules need to know about the device. */
export interface StatusEnv {
  /** Null when the accepted features are a valid subset of the offered ones, else why not. */
  featuresProblem(): string | null;
  /** Null when every enabled queue has a valid layout, else why not. */
  queuesProblem(): string | null;
}

interface Rule {
  name: string;
  /** Section and the sentence the rule implements. */
  spec: string;
  /** Returns an outcome to stop at, or a new `written` value for the following rules. */
  apply(current: number, written: number, env: StatusEnv): StatusOutcome | number;
}

/**
 * The device status rules of sections 2.1, 2.2, 3.1 and 4.1.4.3, in the order they apply to a
 * write of `written` over `current`. Each rule quotes the spec.
 */
export const STATUS_RULES: readonly Rule[] = [
  {
    name: "reset",
    spec: '4.1.4.3.1: "The device MUST reset when 0 is written to device_status, and present a 0 in device_status once that is done."',
    apply: (_c, w) => (w === 0 ? { status: 0, action: "reset", rule: "reset" } : w),
  },
  {
    name: "no-clear",
    spec: '2.1.1: "The driver MUST NOT clear a device status bit." A write that clears a set bit (other than by reset) is ignored.',
    apply: (c, w) => {
      const driverBits = c & ~VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET;
      return (driverBits & ~w) !== 0 ? { status: c, action: "ignored", rule: "no-clear" } : w;
    },
  },
  {
    name: "device-owned-bits",
    spec: '2.1: "DEVICE_NEEDS_RESET (64) Indicates that the device has experienced an error from which it can\'t recover." Only the device sets it; SUSPEND needs VIRTIO_F_SUSPEND, which is not offered.',
    apply: (c, w) =>
      (w & ~(VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET | VIRTIO_CONFIG_S_SUSPEND)) |
      (c & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET),
  },
  {
    name: "features-ok",
    spec: '2.2.2: "The device SHOULD accept any valid subset of features the driver accepts, otherwise it MUST fail to set the FEATURES_OK device status bit when the driver writes it." and 6.2: "A device MAY fail to operate further if VIRTIO_F_VERSION_1 is not accepted."',
    apply: (c, w, env) => {
      if (
        w & VIRTIO_CONFIG_S_FEATURES_OK &&
        !(c & VIRTIO_CONFIG_S_FEATURES_OK) &&
        env.featuresProblem() !== null
      ) {
        return w & ~VIRTIO_CONFIG_S_FEATURES_OK;
      }
      return w;
    },
  },
  {
    name: "driver-ok-needs-features-ok",
    spec: '3.1.1: the driver sets FEATURES_OK, re-reads it, performs device-specific setup, and only then "Set the DRIVER_OK status bit." DRIVER_OK without FEATURES_OK is not taken.',
    apply: (_c, w) =>
      w & VIRTIO_CONFIG_S_DRIVER_OK && !(w & VIRTIO_CONFIG_S_FEATURES_OK)
        ? w & ~VIRTIO_CONFIG_S_DRIVER_OK
        : w,
  },
  {
    name: "driver-ok",
    spec: '3.1.1: "Set the DRIVER_OK status bit. At this point the device is \\"live\\"." A queue layout the device cannot use sets DEVICE_NEEDS_RESET instead (2.1.2: "The device SHOULD set DEVICE_NEEDS_RESET when it enters an error state that a reset is needed.").',
    apply: (c, w, env) => {
      if (!(w & VIRTIO_CONFIG_S_DRIVER_OK) || c & VIRTIO_CONFIG_S_DRIVER_OK) return w;
      if (w & VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET) return { status: w, action: "none", rule: "driver-ok" };
      if (env.queuesProblem() !== null) {
        return {
          status: w | VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET,
          action: "none",
          rule: "driver-ok-bad-queues",
        };
      }
      return { status: w, action: "activate", rule: "driver-ok" };
    },
  },
];

/** Applies STATUS_RULES to a device_status write. */
export function nextStatus(current: number, written: number, env: StatusEnv): StatusOutcome {
  let w = written & 0xff;
  for (const r of STATUS_RULES) {
    const out = r.apply(current, w, env);
    if (typeof out !== "number") return out;
    w = out;
  }
  return { status: w, action: "none", rule: "set-bits" };
}
