import { ConfigError } from "../../common/errors.js";
import { type DeviceSpecs, emptyDeviceSpecs, parseConsole, parseDisk, parseNet } from "./devices.js";

/** How the guest's serial port (COM1) is connected. */
export type SerialSpec = { kind: "stdio" } | { kind: "file"; path: string } | { kind: "none" };

/** What `virtkit run` was asked for: paths and switches, before any file is read. */
export interface RunSpec {
  kernel?: string;
  initrd?: string;
  append?: string;
  memory: number;
  serial: SerialSpec;
  clock: "realtime" | "virtual";
  noReboot: boolean;
  /** A local APIC and an I/O APIC (virtio devices then use MSI-X); absent: the machine's default (on). */
  apic?: boolean;
  devices: DeviceSpecs;
  /** A Unix socket for JSON-lines control (see control.ts). */
  control?: string;
}

export const DEFAULT_MEMORY = 256 * 1024 * 1024;
export const MIN_MEMORY = 16 * 1024 * 1024;
export const MAX_MEMORY = 3 * 1024 * 1024 * 1024;

export function defaultRunSpec(): RunSpec {
  return {
    memory: DEFAULT_MEMORY,
    serial: { kind: "stdio" },
    clock: "realtime",
    noReboot: false,
    devices: emptyDeviceSpecs(),
  };
}

/** Parses a size such as `256M`, `1G`, `65536K` or a plain byte count. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text.trim());
  if (!m) throw new ConfigError(`${what}: '${text}' is not a size (examples: 256M, 1G, 65536K)`);
  const unit = (m[2] ?? "").charAt(0).toUpperCase();
  const mult = unit === "K" ? 1024 : unit === "M" ? 1024 ** 2 : unit === "G" ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

export function checkMemory(bytes: number, what: string): number {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_MEMORY || bytes > MAX_MEMORY) {
    throw new ConfigError(`${what}: memory must be from 16M to 3G, got ${bytes} bytes`);
  }
  if (bytes % (1024 * 1024) !== 0) throw new ConfigError(`${what}: memory must be a whole number of MiB`);
  return bytes;
}

export function parseSerial(text: string, what: string): SerialSpec {
  if (text === "stdio") return { kind: "stdio" };
  if (text === "none") return { kind: "none" };
  if (text.startsWith("file:") && text.length > 5) return { kind: "file", path: text.slice(5) };
  throw new ConfigError(`${what}: '${text}' is not stdio, none or file:PATH`);
}

export function parseOnOff(text: string, what: string): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw new ConfigError(`${what}: '${text}' is not on or off`);
}

export function parseClock(text: string, what: string): "realtime" | "virtual" {
  if (text === "realtime" || text === "virtual") return text;
  throw new ConfigError(`${what}: '${text}' is not realtime or virtual`);
}

/**
 * Applies a JSON configuration object (the `--config FILE` format) over `spec`. Every error names
 * the field. Relative paths are resolved by the caller.
 */
export function applyConfigObject(spec: RunSpec, obj: unknown, where: string): RunSpec {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new ConfigError(`${where}: the configuration must be a JSON object`);
  }
  const out: RunSpec = { ...spec, devices: { ...spec.devices } };
  const list = (value: unknown, field: string): string[] => {
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw new ConfigError(`${field} must be an array of strings (the same text as the flag takes)`);
    }
    return value;
  };
  const bool = (value: unknown, field: string): boolean => {
    if (typeof value !== "boolean") throw new ConfigError(`${field} must be true or false`);
    return value;
  };
  for (const [key, value] of Object.entries(obj as Record<string, unknown>)) {
    const field = `${where}: field '${key}'`;
    const str = (): string => {
      if (typeof value !== "string") throw new ConfigError(`${field} must be a string`);
      return value;
    };
    switch (key) {
      case "kernel":
        out.kernel = str();
        break;
      case "initrd":
        out.initrd = str();
        break;
      case "append":
      case "cmdline":
        out.append = str();
        break;
      case "memory":
        if (typeof value === "number") out.memory = checkMemory(value, field);
        else out.memory = checkMemory(parseSize(str(), field), field);
        break;
      case "serial":
        out.serial = parseSerial(str(), field);
        break;
      case "clock":
        out.clock = parseClock(str(), field);
        break;
      case "noReboot":
        out.noReboot = bool(value, field);
        break;
      case "apic":
        out.apic = bool(value, field);
        break;
      case "disks":
        out.devices.disks = list(value, field).map((t, i) => parseDisk(t, `${field}[${i}]`));
        break;
      case "nets":
        out.devices.nets = list(value, field).map((t, i) => parseNet(t, `${field}[${i}]`));
        break;
      case "consoles":
        out.devices.consoles = list(value, field).map((t, i) => parseConsole(t, `${field}[${i}]`));
        break;
      case "balloon":
        out.devices.balloon = bool(value, field);
        break;
      case "rng":
        out.devices.rng = bool(value, field);
        break;
      case "control":
        out.control = str();
        break;
      default:
        throw new ConfigError(`${field} is not a known field`);
    }
  }
  return out;
}
