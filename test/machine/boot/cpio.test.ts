import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CpioError,
  CpioWriter,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  readCpio,
  writeCpio,
} from "../../../src/machine/boot/cpio.js";

const text = new TextDecoder();

function sample(): CpioWriter {
  return new CpioWriter({ mtime: 1_700_000_000 })
    .dir("/dev")
    .charDevice("/dev/console", 5, 1)
    .blockDevice("dev/vda", 254, 0, { perm: 0o660, gid: 6 })
    .file("/init", "#!/bin/sh\necho hi\n", { perm: 0o755 })
    .file("/bin/busybox", new Uint8Array([1, 2, 3, 4, 5]), { perm: 0o755 })
    .symlink("/bin/sh", "busybox")
    .fifo("/run/fifo")
    .file("/etc/empty", new Uint8Array(0));
}

function cpioTool(): string | undefined {
  const r = spawnSync("cpio", ["--version"], { encoding: "utf8" });
  return r.status === 0 ? "cpio" : undefined;
}

describe("CpioWriter / readCpio", () => {
  it("round-trips files, directories, symlinks, device nodes and fifos with their modes", () => {
    const bytes = sample().toBytes();
    expect(bytes.length % 4).toBe(0);
    const entries = readCpio(bytes);
    const byName = new Map(entries.map((e) => [e.name, e]));
    // Parents come before children (the kernel needs that) and are added implicitly.
    expect(entries.map((e) => e.name)).toEqual([
      "dev",
      "dev/console",
      "dev/vda",
      "init",
      "bin",
      "bin/busybox",
      "bin/sh",
      "run",
      "run/fifo",
      "etc",
      "etc/empty",
    ]);
    expect(byName.get("dev")!.mode).toBe(S_IFDIR | 0o755);
    expect(byName.get("dev/console")!.mode).toBe(S_IFCHR | 0o600);
    expect([byName.get("dev/console")!.rdevmajor, byName.get("dev/console")!.rdevminor]).toEqual([5, 1]);
    expect(byName.get("dev/vda")!.mode).toBe(S_IFBLK | 0o660);
    expect(byName.get("dev/vda")!.gid).toBe(6);
    expect([byName.get("dev/vda")!.rdevmajor, byName.get("dev/vda")!.rdevminor]).toEqual([254, 0]);
    expect(byName.get("init")!.mode).toBe(S_IFREG | 0o755);
    expect(text.decode(byName.get("init")!.data)).toBe("#!/bin/sh\necho hi\n");
    expect(Array.from(byName.get("bin/busybox")!.data)).toEqual([1, 2, 3, 4, 5]);
    expect(byName.get("bin/sh")!.mode & S_IFMT).toBe(S_IFLNK);
    expect(text.decode(byName.get("bin/sh")!.data)).toBe("busybox");
    expect(byName.get("run/fifo")!.mode & S_IFMT).toBe(S_IFIFO);
    expect(byName.get("etc/empty")!.data.length).toBe(0);
    expect(byName.get("init")!.mtime).toBe(1_700_000_000);
    // Distinct inode numbers.
    expect(new Set(entries.map((e) => e.ino)).size).toBe(entries.length);
  });

  it("writes the exact newc layout: header, padded name, padded data, trailer", () => {
    const bytes = new CpioWriter().file("a", "xyz", { perm: 0o600 }).toBytes();
    const s = text.decode(bytes);
    // 110-byte header, "a\0" (112 -> pad to 112), data "xyz" + 1 pad byte.
    expect(s.slice(0, 6)).toBe("070701");
    expect(s.slice(6, 14)).toBe("00000001"); // ino
    expect(s.slice(14, 22)).toBe((S_IFREG | 0o600).toString(16).padStart(8, "0"));
    expect(s.slice(54, 62)).toBe("00000003"); // filesize
    expect(s.slice(94, 102)).toBe("00000002"); // namesize incl. NUL
    expect(s.slice(110, 112)).toBe("a\0");
    expect(s.slice(112, 115)).toBe("xyz");
    expect(bytes[115]).toBe(0);
    expect(s.slice(116, 122)).toBe("070701");
    expect(s.slice(116 + 110, 116 + 110 + 11)).toBe("TRAILER!!!\0");
    expect(bytes.length).toBe(116 + 112 + 12); // trailer header+name 121 -> 124
  });

  it("is deterministic", () => {
    expect(sample().toBytes()).toEqual(sample().toBytes());
  });

  it("refuses bad names, duplicates, a file under a file, bad modes and sizes", () => {
    const w = new CpioWriter().file("a", "1");
    expect(() => w.file("a", "2")).toThrow(CpioError);
    expect(() => w.file("/a/b", "2")).toThrow(/not a directory/);
    expect(() => w.dir("a")).toThrow(/not a directory/);
    expect(() => w.file("../etc/passwd", "")).toThrow(/\.\./);
    expect(() => w.file("/", "")).toThrow(/names no file/);
    expect(() => w.file("x\0y", "")).toThrow(/NUL/);
    expect(() => w.file("TRAILER!!!", "")).toThrow(/reserved/);
    expect(() => w.file("m", "", { perm: 0o10000 })).toThrow(/permission/);
    expect(() => w.file("u", "", { uid: -1 })).toThrow(/uid/);
    expect(() => w.symlink("l", "")).toThrow(/symlink target/);
    expect(() => w.charDevice("d", 2 ** 32, 0)).toThrow(/major/);
    // A directory added twice is fine.
    expect(() => new CpioWriter().dir("d").dir("/d/")).not.toThrow();
  });

  it("reads concatenated archives like the kernel, and refuses malformed ones", () => {
    const a = new CpioWriter().file("one", "1").toBytes();
    const b = new CpioWriter().file("two", "2").toBytes();
    const both = new Uint8Array(a.length + 8 + b.length);
    both.set(a);
    both.set(b, a.length + 8);
    expect(readCpio(both).map((e) => e.name)).toEqual(["one"]);
    expect(readCpio(both, { concatenated: true }).map((e) => e.name)).toEqual(["one", "two"]);

    expect(() => readCpio(new Uint8Array(0))).toThrow(/TRAILER/);
    expect(() => readCpio(a.subarray(0, 50))).toThrow(/truncated header/);
    const badMagic = a.slice();
    badMagic[5] = 0x39;
    expect(() => readCpio(badMagic)).toThrow(/bad magic/);
    const badHex = a.slice();
    badHex[10] = 0x7a;
    expect(() => readCpio(badHex)).toThrow(/non-hex/);
    const noTrailer = new CpioWriter().file("x", "y").toBytes();
    expect(() => readCpio(noTrailer.subarray(0, 116))).toThrow(/TRAILER/);
  });

  it("property: any set of entries round-trips; any byte mutation reads back or fails with CpioError", () => {
    const seg = fc.stringMatching(/^[a-z0-9._-]{1,12}$/).filter((s) => s !== "." && s !== "..");
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(fc.array(seg, { minLength: 1, maxLength: 3 }), fc.uint8Array({ maxLength: 40 })),
          {
            maxLength: 12,
            selector: ([p]) => p.join("/"),
          },
        ),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (files, pos, val) => {
          const w = new CpioWriter();
          const added = new Map<string, Uint8Array>();
          for (const [parts, data] of files) {
            const name = parts.join("/");
            try {
              w.file(name, data);
              added.set(name, data);
            } catch (e) {
              // A path under an existing file, or a file where a directory was made implicitly.
              expect(e).toBeInstanceOf(CpioError);
            }
          }
          const bytes = w.toBytes();
          const back = readCpio(bytes);
          for (const [name, data] of added) {
            const e = back.find((x) => x.name === name)!;
            expect(e.mode & S_IFMT).toBe(S_IFREG);
            expect(e.data).toEqual(data);
          }
          expect(writeCpio(back)).toEqual(bytes);
          const mutated = bytes.slice();
          mutated[pos % bytes.length] = val;
          try {
            readCpio(mutated);
          } catch (e) {
            expect(e).toBeInstanceOf(CpioError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("is read by the system's cpio -t (skipped when cpio is not installed)", (ctx) => {
    const tool = cpioTool();
    if (!tool) {
      ctx.skip("the cpio program is not installed; apt-get install cpio to run this check");
      return;
    }
    const bytes = sample().toBytes();
    const t = spawnSync(tool, ["-t", "--quiet"], { input: bytes, encoding: "utf8" });
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout.trim().split("\n")).toEqual([
      "dev",
      "dev/console",
      "dev/vda",
      "init",
      "bin",
      "bin/busybox",
      "bin/sh",
      "run",
      "run/fifo",
      "etc",
      "etc/empty",
    ]);
    const r = spawnSync(tool, ["-t", "-v", "--quiet"], { input: bytes, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[1]).toMatch(/^crw------- .* 5, +1 .*dev\/console$/);
    expect(lines[6]).toMatch(/bin\/sh -> busybox$/);
    expect(lines[1]).toMatch(/^crw-------/);
    expect(lines[2]).toMatch(/^brw-rw----/);
    expect(lines[3]).toMatch(/^-rwxr-xr-x/);
    expect(lines[6]).toMatch(/^lrwxrwxrwx/);
    expect(lines[8]).toMatch(/^prw-r--r--/);
  });
});
