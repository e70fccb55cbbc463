import { ConfigError } from "../../common/errors.js";

/**
 * A small AML (ACPI Machine Language, ACPI 6.4 chapter 20) encoder: just the terms this
 * machine's DSDT needs (Name, Scope, Device, Package, Buffer, integers, strings, EisaId, and
 * the resource descriptors of a PCI host bridge's _CRS). Each function returns the encoded
 * bytes of one term; the DSDT builder concatenates them. Opcodes as named in the spec.
 */

export const AmlOp = {
  ZeroOp: 0x00,
  OneOp: 0x01,
  NameOp: 0x08,
  BytePrefix: 0x0a,
  WordPrefix: 0x0b,
  DWordPrefix: 0x0c,
  StringPrefix: 0x0d,
  ScopeOp: 0x10,
  BufferOp: 0x11,
  PackageOp: 0x12,
  DualNamePrefix: 0x2e,
  MultiNamePrefix: 0x2f,
  ExtOpPrefix: 0x5b,
  DeviceOp: 0x82, // after ExtOpPrefix
  RootChar: 0x5c,
} as const;

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * PkgLength (20.2.4) for `contentLength` bytes that follow it: the encoded length counts the
 * PkgLength bytes themselves. One byte up to 63, else a lead byte with the byte count in bits
 * 7:6 and the low nibble, followed by 1-3 bytes.
 */
export function pkgLength(contentLength: number): Uint8Array {
  for (let k = 1; k <= 4; k++) {
    const total = contentLength + k;
    if (k === 1 && total < 0x40) return Uint8Array.of(total);
    if (k > 1 && total < 2 ** (4 + 8 * (k - 1))) {
      const out = new Uint8Array(k);
      out[0] = ((k - 1) << 6) | (total & 0x0f);
      for (let i = 1; i < k; i++) out[i] = (total >>> (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new ConfigError(`AML package too long: ${contentLength} bytes`);
}

/** A NameSeg: 4 characters, A-Z 0-9 _ (first not a digit), padded with '_'. */
export function nameSeg(seg: string): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new ConfigError(`AML name segment "${seg}" is not valid`);
  const s = seg.padEnd(4, "_");
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A NameString: an optional leading '\' and 1..255 segments separated by '.'. */
export function nameString(path: string): Uint8Array {
  const root = path.startsWith("\\");
  const body = root ? path.slice(1) : path;
  const segs = body.length === 0 ? [] : body.split(".").map(nameSeg);
  const prefix = root ? [Uint8Array.of(AmlOp.RootChar)] : [];
  if (segs.length === 0) return concat([...prefix, Uint8Array.of(0x00)]); // NullName
  if (segs.length === 1) return concat([...prefix, segs[0]!]);
  if (segs.length === 2) return concat([...prefix, Uint8Array.of(AmlOp.DualNamePrefix), ...segs]);
  return concat([...prefix, Uint8Array.of(AmlOp.MultiNamePrefix, segs.length), ...segs]);
}

/** The shortest integer encoding: ZeroOp, OneOp, or a Byte/Word/DWord constant. */
export function integer(v: number): Uint8Array {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff)
    throw new ConfigError(`AML integer out of range: ${v}`);
  if (v === 0) return Uint8Array.of(AmlOp.ZeroOp);
  if (v === 1) return Uint8Array.of(AmlOp.OneOp);
  if (v <= 0xff) return Uint8Array.of(AmlOp.BytePrefix, v);
  if (v <= 0xffff) return Uint8Array.of(AmlOp.WordPrefix, v & 0xff, v >>> 8);
  return Uint8Array.of(AmlOp.DWordPrefix, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
}

export function string(s: string): Uint8Array {
  if ([...s].some((c) => c.charCodeAt(0) < 1 || c.charCodeAt(0) > 0x7f))
    throw new ConfigError(`AML string must be ASCII without NUL: "${s}"`);
  return concat([
    Uint8Array.of(AmlOp.StringPrefix),
    Uint8Array.from(s, (c) => c.charCodeAt(0)),
    Uint8Array.of(0),
  ]);
}

/** EisaId("PNP0A03"): three letters compressed into 15 bits and four hex digits, as a DWord. */
export function eisaId(id: string): Uint8Array {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new ConfigError(`EISA ID "${id}" is not AAA#### (hex digits)`);
  const c = (i: number) => id.charCodeAt(i) - 0x40;
  const b0 = (c(0) << 2) | (c(1) >> 3);
  const b1 = ((c(1) & 7) << 5) | c(2);
  const prod = Number.parseInt(id.slice(3), 16);
  return integer((b0 | (b1 << 8) | ((prod >> 8) << 16) | ((prod & 0xff) << 24)) >>> 0);
}

/** Name(path, object). */
export function name(path: string, object: Uint8Array): Uint8Array {
  return concat([Uint8Array.of(AmlOp.NameOp), nameString(path), object]);
}

/** Package(n) { elements } (NumElements is a byte: at most 255). */
export function pkg(elements: readonly Uint8Array[]): Uint8Array {
  if (elements.length > 255)
    throw new ConfigError(`AML Package has ${elements.length} elements (at most 255)`);
  const body = concat([Uint8Array.of(elements.length), ...elements]);
  return concat([Uint8Array.of(AmlOp.PackageOp), pkgLength(body.length), body]);
}

/** Scope(path) { terms }. */
export function scope(path: string, terms: readonly Uint8Array[]): Uint8Array {
  const body = concat([nameString(path), ...terms]);
  return concat([Uint8Array.of(AmlOp.ScopeOp), pkgLength(body.length), body]);
}

/** Device(path) { terms }. */
export function device(path: string, terms: readonly Uint8Array[]): Uint8Array {
  const body = concat([nameString(path), ...terms]);
  return concat([Uint8Array.of(AmlOp.ExtOpPrefix, AmlOp.DeviceOp), pkgLength(body.length), body]);
}

/** Buffer() { bytes }. */
export function buffer(bytes: Uint8Array): Uint8Array {
  const body = concat([integer(bytes.length), bytes]);
  return concat([Uint8Array.of(AmlOp.BufferOp), pkgLength(body.length), body]);
}

// ---- resource descriptors (ACPI 6.4 section 6.4) ------------------------------------------

/** Address space descriptor resource types. */
export const ResourceType = { MEMORY: 0, IO: 1, BUS_NUMBER: 2 } as const;
/** General flags: MinFixed | MaxFixed, a producer (bit 0 clear), positive decode. */
const ADDRESS_FLAGS_FIXED = 0x0c;

/**
 * WordIO / WordBusNumber (Word Address Space Descriptor, 6.4.3.5.3): a 16-bit range
 * [min, max] with MinFixed and MaxFixed set. `typeFlags`: for I/O 0x03 (EntireRange).
 */
export function wordAddressSpace(type: number, typeFlags: number, min: number, max: number): Uint8Array {
  const len = max - min + 1;
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  b[0] = 0x88;
  v.setUint16(1, 13, true);
  b[3] = type;
  b[4] = ADDRESS_FLAGS_FIXED;
  b[5] = typeFlags;
  v.setUint16(6, 0, true); // granularity
  v.setUint16(8, min, true);
  v.setUint16(10, max, true);
  v.setUint16(12, 0, true); // translation offset
  v.setUint16(14, len, true);
  return b;
}

/**
 * DWordMemory (DWord Address Space Descriptor, 6.4.3.5.2): [min, max], MinFixed, MaxFixed,
 * ReadWrite; `cacheable` selects Cacheable (0x03) over NonCacheable (0x01).
 */
export function dwordMemory(min: number, max: number, cacheable: boolean): Uint8Array {
  const b = new Uint8Array(26);
  const v = new DataView(b.buffer);
  b[0] = 0x87;
  v.setUint16(1, 23, true);
  b[3] = ResourceType.MEMORY;
  b[4] = ADDRESS_FLAGS_FIXED;
  b[5] = cacheable ? 0x03 : 0x01;
  v.setUint32(6, 0, true);
  v.setUint32(10, min >>> 0, true);
  v.setUint32(14, max >>> 0, true);
  v.setUint32(18, 0, true);
  v.setUint32(22, (max - min + 1) >>> 0, true);
  return b;
}

/** IO(Decode16, min, max, alignment, length) (I/O Port Descriptor, 6.4.2.5). */
export function ioPort(min: number, max: number, alignment: number, length: number): Uint8Array {
  return Uint8Array.of(0x47, 0x01, min & 0xff, min >>> 8, max & 0xff, max >>> 8, alignment, length);
}

/** ResourceTemplate() { descriptors }: a Buffer ending with the End Tag (checksum 0 = none). */
export function resourceTemplate(descriptors: readonly Uint8Array[]): Uint8Array {
  return buffer(concat([...descriptors, Uint8Array.of(0x79, 0x00)]));
}
