import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../common/errors.js";
import { fakeKernelModule } from "./fake-module.js";
import { ModuleFormatError, canonicalModuleName, elfSection, readModInfo } from "./modinfo.js";
import {
  findModule,
  indexModuleTree,
  modulesDepText,
  readBuiltin,
  readModuleFile,
  resolveModules,
} from "./modules.js";

const work = mkdtempSync(join(tmpdir(), "virtkit-modules-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const haveXz = !spawnSync("xz", ["--version"], { stdio: "ignore" }).error;

describe("readModInfo", () => {
  for (const elf64 of [false, true]) {
    it(`reads name, depends, softdep, aliases from an ELF${elf64 ? 64 : 32} module`, () => {
      const ko = fakeKernelModule(
        [
          ["alias", "crypto-foo"],
          ["alias", "pci:v00001AF4d*"],
          ["softdep", "pre: crypto-crc32c post: bar"],
          ["depends", "virtio,virtio_ring"],
          ["name", "virtio-thing"],
          ["vermagic", "6.1.0-50-686 SMP preempt mod_unload modversions 686 "],
        ],
        { elf64 },
      );
      const mi = readModInfo(ko);
      expect(mi.name).toBe("virtio_thing");
      expect(mi.depends).toEqual(["virtio", "virtio_ring"]);
      expect(mi.softPre).toEqual(["crypto-crc32c"]);
      expect(mi.softPost).toEqual(["bar"]);
      expect(mi.aliases).toEqual(["crypto-foo", "pci:v00001AF4d*"]);
      expect(mi.vermagic).toMatch(/^6\.1\.0/);
    });
  }

  it("uses the fallback name and handles empty depends", () => {
    const mi = readModInfo(fakeKernelModule([["depends", ""]]), "crc16");
    expect(mi.name).toBe("crc16");
    expect(mi.depends).toEqual([]);
    expect(() => readModInfo(fakeKernelModule([["depends", ""]]))).toThrow(/no name=/);
  });

  it("refuses files that are not modules", () => {
    expect(() => readModInfo(new Uint8Array(10))).toThrow(ModuleFormatError);
    expect(() => readModInfo(new TextEncoder().encode("#!/bin/sh\n".repeat(10)))).toThrow(/no ELF magic/);
    const noInfo = fakeKernelModule([["name", "x"]]);
    // Rename .modinfo to .modinfX in the section name table.
    const at = new TextDecoder("latin1").decode(noInfo).lastIndexOf(".modinfo");
    expect(at).toBeGreaterThan(0);
    noInfo[at + 7] = 0x58;
    expect(() => readModInfo(noInfo)).toThrow(/no .modinfo section/);
  });

  it("never throws anything but ModuleFormatError on mutated or random input", () => {
    const base = fakeKernelModule([
      ["name", "m"],
      ["depends", "a,b"],
    ]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc
            .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
            .map((m) => {
              const b = base.slice();
              for (const [p, v] of m) b[p % b.length] = v;
              return b;
            }),
          fc.nat(base.length).map((n) => base.slice(0, n)),
        ),
        (bytes) => {
          try {
            readModInfo(bytes, "fallback");
          } catch (e) {
            expect(e).toBeInstanceOf(ModuleFormatError);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("finds a section by name", () => {
    const ko = fakeKernelModule([["name", "x"]]);
    expect(Array.from(elfSection(ko, ".text")!)).toEqual([0x90, 0x90, 0x90, 0xc3]);
    expect(elfSection(ko, ".data")).toBeUndefined();
    expect(canonicalModuleName("virtio-rng")).toBe("virtio_rng");
  });
});

function writeTree(root: string, files: Record<string, Uint8Array | string>): void {
  for (const [rel, data] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, data);
  }
}

function mod(name: string, depends: string[], extra: Array<[string, string]> = []): Uint8Array {
  return fakeKernelModule([...extra, ["depends", depends.join(",")], ["name", name]]);
}

function xz(data: Uint8Array): Uint8Array {
  const r = spawnSync("xz", ["-c", "--check=crc32"], { input: data });
  return new Uint8Array(r.stdout);
}

describe("module trees", () => {
  const root = join(work, "lib/modules/6.1.0-test");
  writeTree(root, {
    "kernel/drivers/virtio/virtio.ko": mod("virtio", []),
    "kernel/drivers/virtio/virtio_ring.ko.gz": gzipSync(mod("virtio_ring", [])),
    "kernel/drivers/virtio/virtio_pci.ko": mod("virtio_pci", ["virtio_ring", "virtio"]),
    "kernel/drivers/char/hw_random/virtio-rng.ko": mod("virtio_rng", ["virtio", "virtio_ring", "rng_core"]),
    "kernel/fs/ext4/ext4.ko": mod("ext4", ["jbd2", "crc16"], [["softdep", "pre: crypto-crc32c"]]),
    "kernel/fs/jbd2/jbd2.ko": mod("jbd2", [], [["softdep", "pre: crypto-crc32c"]]),
    "kernel/lib/crc16.ko": mod("crc16", []),
    "kernel/crypto/crc32c_intel.ko": mod("crc32c_intel", [], [["alias", "crypto-crc32c"]]),
    "kernel/crypto/crc32c_generic.ko": mod("crc32c_generic", [], [["alias", "crypto-crc32c"]]),
    "kernel/misc/loop_a.ko": mod("loop_a", ["loop_b"]),
    "kernel/misc/loop_b.ko": mod("loop_b", ["loop_a"]),
    "kernel/misc/broken.ko": mod("broken", ["nowhere"]),
    ...(haveXz ? { "kernel/misc/packed.ko.xz": xz(mod("packed", ["virtio"])) } : {}),
    "modules.builtin": "kernel/drivers/char/hw_random/rng-core.ko\n",
  });

  it("indexes every module with its compression", () => {
    const tree = indexModuleTree(root);
    expect(tree.modules.get("virtio_ring")!.compression).toBe("gzip");
    expect(tree.modules.get("virtio_rng")!.path).toBe("kernel/drivers/char/hw_random/virtio-rng.ko");
    if (haveXz) {
      const packed = tree.modules.get("packed")!;
      expect(packed.compression).toBe("xz");
      expect(readModInfo(readModuleFile(root, packed)).depends).toEqual(["virtio"]);
    }
    expect(() => indexModuleTree(join(work, "nope"))).toThrow(ConfigError);
  });

  it("resolves dependencies and soft dependencies in load order, skipping built-ins", () => {
    const tree = indexModuleTree(root);
    const builtin = readBuiltin(root);
    expect(builtin.has("rng_core")).toBe(true);
    const order = resolveModules(tree, ["virtio_pci", "virtio-rng", "ext4"], builtin).map((m) => m.name);
    expect(order).toEqual([
      "virtio_ring",
      "virtio",
      "virtio_pci",
      "virtio_rng",
      "crc32c_generic",
      "jbd2",
      "crc16",
      "ext4",
    ]);
    // Every module comes after all it depends on.
    for (const [i, name] of order.entries()) {
      for (const d of tree.modules.get(name)!.depends) {
        if (!builtin.has(d)) expect(order.indexOf(d)).toBeLessThan(i);
      }
    }
    expect(findModule(tree, "crypto-crc32c")!.name).toBe("crc32c_generic");
  });

  it("refuses missing modules, missing dependencies and cycles", () => {
    const tree = indexModuleTree(root);
    expect(() => resolveModules(tree, ["nonexistent"])).toThrow(/neither in/);
    expect(() => resolveModules(tree, ["broken"])).toThrow(/depends on nowhere/);
    expect(() => resolveModules(tree, ["loop_a"])).toThrow(/cycle: loop_a -> loop_b -> loop_a/);
  });

  it("writes a modules.dep with the full closure of each module", () => {
    const tree = indexModuleTree(root);
    const order = resolveModules(tree, ["virtio_pci", "ext4"], readBuiltin(root));
    const text = modulesDepText(order, (m) => m.path.replace(/\.gz$/, ""));
    expect(text).toContain(
      "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n",
    );
    expect(text).toContain("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n");
    expect(text).toContain("kernel/drivers/virtio/virtio_ring.ko:\n");
  });

  it("takes dependencies from modules.dep when the tree has one", () => {
    const root2 = join(work, "lib/modules/6.1.0-dep");
    writeTree(root2, {
      "kernel/a.ko": mod("a", []),
      "kernel/b.ko": mod("b", []),
      "modules.dep": "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n",
    });
    const tree = indexModuleTree(root2);
    expect(tree.modules.get("a")!.depends).toEqual(["b"]);
    expect(resolveModules(tree, ["a"]).map((m) => m.name)).toEqual(["b", "a"]);
  });
});
