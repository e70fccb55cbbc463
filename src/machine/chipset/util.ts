/**
 * Helpers shared by the chipset parts: multi-byte port access split into byte accesses, BCD,
 * and checks for restored state (a malformed snapshot is a `ConfigError` naming the field).
 */
import { ConfigError } from "../../common/errors.js";
import type { AccessSize } from "../io-bus.js";

/**
 * The legacy chips have 8-bit registers. A 16- or 32-bit access is split into byte accesses on
 * consecutive ports, as the ISA bus does; a byte outside the device's own range reads 0xFF.
 */
export function readBytes(
  port: number,
  size: AccessSize,
  base: number,
  length: number,
  readByte: (port: number) => number,
): number {
  if (size === 1) return readByte(port) & 0xff;
  let v = 0;
  for (let i = 0; i < size; i++) {
    const p = port + i;
    const b = p >= base && p < base + length ? readByte(p) & 0xff : 0xff;
    v |= b << (8 * i);
  }
  return v >>> 0;
}

export function writeBytes(
  port: number,
  size: AccessSize,
  value: number,
  base: number,
  length: number,
  writeByte: (port: number, value: number) => void,
): void {
  if (size === 1) {
    writeByte(port, value & 0xff);
    return;
  }
  for (let i = 0; i < size; i++) {
    const p = port + i;
    if (p >= base && p < base + length) writeByte(p, (value >>> (8 * i)) & 0xff);
  }
}

export function toBcd(v: number): number {
  return ((Math.floor(v / 10) % 10) << 4) | (v % 10);
}

export function fromBcd(v: number): number {
  return (v >> 4) * 10 + (v & 0x0f);
}

/** Checks one field of a restored state: an integer in [min, max]. */
export function checkInt(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `bad saved state: ${field} = ${String(value)} (expected an integer ${min}..${max})`,
    );
  }
  return value;
}

/** Checks one field of a restored state: a finite number (times in ns may be negative or fractional). */
export function checkNumber(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ConfigError(`bad saved state: ${field} = ${String(value)} (expected a finite number)`);
  }
  return value;
}

export function checkBool(value: unknown, field: string): boolean {
  if (typeof value !== "boolean") {
    throw new ConfigError(`bad saved state: ${field} = ${String(value)} (expected a boolean)`);
  }
  return value;
}

export function checkBytes(value: unknown, field: string, maxLength: number): number[] {
  if (!Array.isArray(value) || value.length > maxLength) {
    throw new ConfigError(`bad saved state: ${field} is not a byte array of at most ${maxLength} entries`);
  }
  for (let i = 0; i < value.length; i++) checkInt(value[i], `${field}[${i}]`, 0, 255);
  return value as number[];
}

export function checkObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`bad saved state: ${field} is not an object`);
  }
  return value as Record<string, unknown>;
}
