/**
 * The "newc" cpio format (magic 070701), the one the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst): per entry a 110-byte ASCII
 * header of 13 eight-digit hex fields, the NUL-terminated name padded to a multiple of 4
 * bytes (counting the header), then the data padded to a multiple of 4, and a last entry named
 * "TRAILER!!!". Platform-neutral: the result is a Uint8Array; compress it on the host.
 */
import { VirtkitError } from "../../common/errors.js";

/** A malformed archive, or an entry the writer refuses. */
export class CpioError extends VirtkitError {
  constructor(message: string) {
    super("CPIO", message);
  }
}

/** File type bits of st_mode. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export const NEWC_MAGIC = "070701";
export const NEWC_CRC_MAGIC = "070702";
export const TRAILER_NAME = "TRAILER!!!";
const HEADER_SIZE = 110;

/** One archive member, as written or read back. `name` has no leading "/". */
export interface CpioEntry {
  name: string;
  /** Type and permission bits (S_IFREG | 0o644, ...). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  nlink: number;
  ino: number;
  devmajor: number;
  devminor: number;
  /** Device number of a character or block device node. */
  rdevmajor: number;
  rdevminor: number;
  /** File contents, or the target of a symlink. */
  data: Uint8Array;
}

/** Ownership, time and permission bits for an added entry. */
export interface CpioAttrs {
  /** Permission bits (0o7777 at most); the type bits come from the kind of entry. */
  perm?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
}

const utf8 = new TextEncoder();

function normalizeName(path: string): string {
  if (typeof path !== "string") throw new CpioError("cpio entry name must be a string");
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0) throw new CpioError(`cpio entry name "${path}" names no file`);
  for (const p of parts) {
    if (p === "..") throw new CpioError(`cpio entry name "${path}" contains ".."`);
    if (p.includes("\0")) throw new CpioError(`cpio entry name "${path}" contains a NUL byte`);
  }
  const name = parts.join("/");
  if (name === TRAILER_NAME) throw new CpioError(`"${TRAILER_NAME}" is reserved for the archive's end`);
  return name;
}

function checkU32(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new CpioError(`${what} ${v} does not fit a cpio header field (0 .. 0xFFFFFFFF)`);
  }
  return v;
}

function parentOf(name: string): string | undefined {
  const i = name.lastIndexOf("/");
  return i < 0 ? undefined : name.slice(0, i);
}

/**
 * Builds a newc archive. Paths are relative to the archive root ("/init" and "init" are the
 * same); parent directories are added (mode 0755) when missing, since the kernel does not
 * create them. Adding a path twice is refused, except a directory added again as a directory.
 * The output is deterministic: inode numbers follow insertion order and mtime defaults to 0.
 */
export class CpioWriter {
  private readonly entries: CpioEntry[] = [];
  private readonly byName = new Map<string, CpioEntry>();
  private nextIno = 1;
  private readonly defaults: Required<Omit<CpioAttrs, "perm">>;

  constructor(defaults: Omit<CpioAttrs, "perm"> = {}) {
    this.defaults = { uid: defaults.uid ?? 0, gid: defaults.gid ?? 0, mtime: defaults.mtime ?? 0 };
  }

  /** Number of entries so far (the trailer not counted). */
  get size(): number {
    return this.entries.length;
  }

  /** True when the archive has an entry at `path`. */
  has(path: string): boolean {
    return this.byName.has(normalizeName(path));
  }

  /** Adds a directory (and its parents). Idempotent for directories. */
  dir(path: string, attrs: CpioAttrs = {}): this {
    const name = normalizeName(path);
    const existing = this.byName.get(name);
    if (existing) {
      if ((existing.mode & S_IFMT) === S_IFDIR) return this;
      throw new CpioError(`cpio: "${name}" already exists and is not a directory`);
    }
    this.add(name, S_IFDIR, attrs.perm ?? 0o755, attrs, new Uint8Array(0), 0, 0, 2);
    return this;
  }

  /** Adds a regular file; a string is stored as UTF-8. */
  file(path: string, data: Uint8Array | string, attrs: CpioAttrs = {}): this {
    const bytes = typeof data === "string" ? utf8.encode(data) : data;
    this.add(normalizeName(path), S_IFREG, attrs.perm ?? 0o644, attrs, bytes, 0, 0, 1);
    return this;
  }

  /** Adds a symbolic link to `target` (stored as the link's data). */
  symlink(path: string, target: string, attrs: CpioAttrs = {}): this {
    if (target.length === 0 || target.includes("\0")) {
      throw new CpioError(`cpio: symlink target "${target}" for "${path}" is empty or contains NUL`);
    }
    this.add(normalizeName(path), S_IFLNK, attrs.perm ?? 0o777, attrs, utf8.encode(target), 0, 0, 1);
    return this;
  }

  /** Adds a character device node. */
  charDevice(path: string, major: number, minor: number, attrs: CpioAttrs = {}): this {
    this.add(normalizeName(path), S_IFCHR, attrs.perm ?? 0o600, attrs, new Uint8Array(0), major, minor, 1);
    return this;
  }

  /** Adds a block device node. */
  blockDevice(path: string, major: number, minor: number, attrs: CpioAttrs = {}): this {
    this.add(normalizeName(path), S_IFBLK, attrs.perm ?? 0o600, attrs, new Uint8Array(0), major, minor, 1);
    return this;
  }

  /** Adds a named pipe. */
  fifo(path: string, attrs: CpioAttrs = {}): this {
    this.add(normalizeName(path), S_IFIFO, attrs.perm ?? 0o644, attrs, new Uint8Array(0), 0, 0, 1);
    return this;
  }

  /** The entries added so far, in archive order. */
  list(): readonly CpioEntry[] {
    return this.entries;
  }

  private add(
    name: string,
    type: number,
    perm: number,
    attrs: CpioAttrs,
    data: Uint8Array,
    rdevmajor: number,
    rdevminor: number,
    nlink: number,
  ): void {
    if (this.byName.has(name)) throw new CpioError(`cpio: "${name}" was already added`);
    if (!Number.isInteger(perm) || perm < 0 || perm > 0o7777) {
      throw new CpioError(`cpio: permission bits 0o${perm.toString(8)} of "${name}" are not in 0 .. 0o7777`);
    }
    const entry: CpioEntry = {
      name,
      mode: type | perm,
      uid: checkU32("uid", attrs.uid ?? this.defaults.uid),
      gid: checkU32("gid", attrs.gid ?? this.defaults.gid),
      mtime: checkU32("mtime", attrs.mtime ?? this.defaults.mtime),
      nlink,
      ino: 0,
      devmajor: 0,
      devminor: 0,
      rdevmajor: checkU32("device major", rdevmajor),
      rdevminor: checkU32("device minor", rdevminor),
      data,
    };
    checkU32(`size of "${name}"`, data.length);
    const parent = parentOf(name);
    if (parent !== undefined) {
      const p = this.byName.get(parent);
      if (!p) this.dir(parent);
      else if ((p.mode & S_IFMT) !== S_IFDIR) {
        throw new CpioError(`cpio: cannot add "${name}": "${parent}" is not a directory`);
      }
    }
    entry.ino = this.nextIno++;
    this.entries.push(entry);
    this.byName.set(name, entry);
  }

  /** The archive, ending with the trailer. */
  toBytes(): Uint8Array {
    return writeCpio(this.entries);
  }
}

function pad4(n: number): number {
  return (4 - (n & 3)) & 3;
}

/** Serializes entries (as given, names not re-checked beyond NUL) followed by the trailer. */
export function writeCpio(entries: readonly CpioEntry[]): Uint8Array {
  const names = entries.map((e) => utf8.encode(e.name));
  const trailerName = utf8.encode(TRAILER_NAME);
  let total = 0;
  const entrySize = (nameLen: number, dataLen: number): number => {
    const h = HEADER_SIZE + nameLen + 1;
    return h + pad4(h) + dataLen + pad4(dataLen);
  };
  entries.forEach((e, i) => {
    total += entrySize(names[i]!.length, e.data.length);
  });
  total += entrySize(trailerName.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  const writeHeader = (e: Omit<CpioEntry, "name" | "data">, name: Uint8Array, dataLen: number): void => {
    const fields = [
      e.ino,
      e.mode,
      e.uid,
      e.gid,
      e.nlink,
      e.mtime,
      dataLen,
      e.devmajor,
      e.devminor,
      e.rdevmajor,
      e.rdevminor,
      name.length + 1,
      0,
    ];
    let h = NEWC_MAGIC;
    for (const f of fields) h += (f >>> 0).toString(16).padStart(8, "0");
    for (let i = 0; i < HEADER_SIZE; i++) out[off + i] = h.charCodeAt(i);
    off += HEADER_SIZE;
    out.set(name, off);
    off += name.length + 1; // NUL already zero
    off += pad4(HEADER_SIZE + name.length + 1);
  };
  entries.forEach((e, i) => {
    writeHeader(e, names[i]!, e.data.length);
    out.set(e.data, off);
    off += e.data.length + pad4(e.data.length);
  });
  writeHeader(
    {
      ino: 0,
      mode: 0,
      uid: 0,
      gid: 0,
      nlink: 1,
      mtime: 0,
      devmajor: 0,
      devminor: 0,
      rdevmajor: 0,
      rdevminor: 0,
    },
    trailerName,
    0,
  );
  return out;
}

/**
 * Reads a newc (or newc-with-CRC) archive up to its trailer. Entries that follow the trailer
 * in a concatenated archive are read too when `concatenated` is set (the kernel does this),
 * skipping the zero padding between archives. Throws CpioError on any malformed header.
 */
export function readCpio(bytes: Uint8Array, options: { concatenated?: boolean } = {}): CpioEntry[] {
  const out: CpioEntry[] = [];
  const dec = new TextDecoder("utf-8", { fatal: false });
  let off = 0;
  let sawTrailer = false;
  while (off < bytes.length) {
    if (sawTrailer) {
      if (!options.concatenated) break;
      // Zero padding between concatenated archives.
      while (off < bytes.length && bytes[off] === 0) off++;
      if (off >= bytes.length) break;
      sawTrailer = false;
    }
    if (off + HEADER_SIZE > bytes.length) {
      throw new CpioError(`cpio: truncated header at offset ${off} (${bytes.length - off} bytes left)`);
    }
    let magic = "";
    for (let i = 0; i < 6; i++) magic += String.fromCharCode(bytes[off + i]!);
    if (magic !== NEWC_MAGIC && magic !== NEWC_CRC_MAGIC) {
      throw new CpioError(`cpio: bad magic "${magic.replace(/[^\x20-\x7e]/g, "?")}" at offset ${off}`);
    }
    const f: number[] = [];
    for (let i = 0; i < 13; i++) {
      const s = off + 6 + i * 8;
      let v = 0;
      for (let j = 0; j < 8; j++) {
        const c = bytes[s + j]!;
        const d =
          c >= 0x30 && c <= 0x39
            ? c - 0x30
            : c >= 0x61 && c <= 0x66
              ? c - 87
              : c >= 0x41 && c <= 0x46
                ? c - 55
                : -1;
        if (d < 0) throw new CpioError(`cpio: non-hex digit in header field ${i} at offset ${off}`);
        v = v * 16 + d;
      }
      f.push(v);
    }
    const [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize] =
      f as [number, number, number, number, number, number, number, number, number, number, number, number];
    if (namesize === 0) throw new CpioError(`cpio: entry at offset ${off} has namesize 0`);
    const nameStart = off + HEADER_SIZE;
    if (nameStart + namesize > bytes.length) {
      throw new CpioError(`cpio: name of entry at offset ${off} runs past the end of the archive`);
    }
    if (bytes[nameStart + namesize - 1] !== 0) {
      throw new CpioError(`cpio: name of entry at offset ${off} is not NUL-terminated`);
    }
    const name = dec.decode(bytes.subarray(nameStart, nameStart + namesize - 1));
    const dataStart = nameStart + namesize + pad4(HEADER_SIZE + namesize);
    if (dataStart + filesize > bytes.length) {
      throw new CpioError(`cpio: data of "${name}" (${filesize} bytes) runs past the end of the archive`);
    }
    const data = bytes.slice(dataStart, dataStart + filesize);
    off = dataStart + filesize + pad4(filesize);
    if (name === TRAILER_NAME) {
      sawTrailer = true;
      continue;
    }
    out.push({
      name,
      mode,
      uid,
      gid,
      mtime,
      nlink,
      ino,
      devmajor,
      devminor,
      rdevmajor,
      rdevminor,
      data,
    });
  }
  if (!sawTrailer) throw new CpioError("cpio: archive ends without a TRAILER!!! entry");
  return out;
}
