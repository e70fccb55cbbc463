/**
 * Kernel module trees on the host: index /lib/modules/VERSION (names, dependencies, soft
 * dependencies and aliases read from each module's .modinfo, or from modules.dep when the tree
 * has one), resolve a list of wanted modules to every module they need, in load order, and
 * read module files (decompressing .ko.xz / .ko.gz / .ko.zst on the host, since Debian's
 * kernel has no CONFIG_MODULE_DECOMPRESS).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { gunzipSync } from "node:zlib";
import { ConfigError } from "../../../common/errors.js";
import { canonicalModuleName, readModInfo } from "./modinfo.js";

/** The virtio drivers, their helpers and ext4 with its dependencies: what the default guest loads. */
export const DEFAULT_GUEST_MODULES: readonly string[] = [
  "virtio",
  "virtio_ring",
  "virtio_pci_modern_dev",
  "virtio_pci_legacy_dev",
  "virtio_pci",
  "virtio_blk",
  "failover",
  "net_failover",
  "virtio_net",
  "virtio_console",
  "virtio_balloon",
  "rng_core",
  "virtio_rng",
  "crc16",
  "mbcache",
  "jbd2",
  "crc32c_generic",
  "ext4",
];

export type ModuleCompression = "none" | "xz" | "gzip" | "zstd";

export interface ModuleInfo {
  name: string;
  /** Path relative to the tree root (kernel/drivers/virtio/virtio.ko). */
  path: string;
  compression: ModuleCompression;
  depends: string[];
  softPre: string[];
  aliases: string[];
}

export interface ModuleTree {
  root: string;
  modules: Map<string, ModuleInfo>;
}

const EXT: Array<[string, ModuleCompression]> = [
  [".ko", "none"],
  [".ko.xz", "xz"],
  [".ko.gz", "gzip"],
  [".ko.zst", "zstd"],
];

function moduleFile(file: string): { base: string; compression: ModuleCompression } | undefined {
  for (const [ext, compression] of EXT) {
    if (file.endsWith(ext)) return { base: file.slice(0, -ext.length), compression };
  }
  return undefined;
}

function walk(dir: string, out: string[]): void {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) walk(p, out);
    else if (ent.isFile() && moduleFile(ent.name)) out.push(p);
  }
}

/** Reads a module file, decompressed. */
export function readModuleFile(root: string, m: Pick<ModuleInfo, "path" | "compression">): Uint8Array {
  const p = join(root, m.path);
  switch (m.compression) {
    case "none":
      return readFileSync(p);
    case "gzip":
      return gunzipSync(readFileSync(p));
    case "xz":
    case "zstd": {
      const tool = m.compression === "xz" ? "xz" : "zstd";
      const r = spawnSync(tool, ["-d", "-c", p], { maxBuffer: 256 * 1024 * 1024 });
      if (r.error || r.status !== 0) {
        throw new ConfigError(
          `cannot decompress ${p} with ${tool} -d: ${r.error?.message ?? String(r.stderr)} (install ${tool})`,
        );
      }
      return new Uint8Array(r.stdout);
    }
  }
}

/**
 * Indexes a module tree. With a modules.dep in the tree, dependencies come from it; otherwise
 * (a tree extracted from a .deb, where depmod has not run) from each module's .modinfo.
 * Soft dependencies and aliases always come from .modinfo.
 */
export function indexModuleTree(root: string): ModuleTree {
  if (!existsSync(join(root, "kernel"))) {
    throw new ConfigError(`${root} is not a kernel module tree (no kernel/ folder)`);
  }
  const files: string[] = [];
  walk(root, files);
  const modules = new Map<string, ModuleInfo>();
  for (const f of files.sort()) {
    const rel = relative(root, f);
    const mf = moduleFile(f)!;
    const fallback = canonicalModuleName(mf.base.slice(mf.base.lastIndexOf("/") + 1));
    const info = readModInfo(readModuleFile(root, { path: rel, compression: mf.compression }), fallback);
    modules.set(info.name, {
      name: info.name,
      path: rel,
      compression: mf.compression,
      depends: info.depends,
      softPre: info.softPre.map(canonicalModuleName),
      aliases: info.aliases.map(canonicalModuleName),
    });
  }
  const depFile = join(root, "modules.dep");
  if (existsSync(depFile)) applyModulesDep(modules, readFileSync(depFile, "utf8"));
  return { root, modules };
}

function nameOfPath(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return canonicalModuleName(moduleFile(base)?.base ?? base);
}

/** Replaces dependencies with those of a modules.dep text ("path: dep dep ..."). */
export function applyModulesDep(modules: Map<string, ModuleInfo>, text: string): void {
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const m = modules.get(nameOfPath(line.slice(0, colon).trim()));
    if (!m) continue;
    // modules.dep lists the whole closure; keep it (resolution dedups).
    m.depends = line
      .slice(colon + 1)
      .split(/\s+/)
      .filter((p) => p !== "")
      .map(nameOfPath);
  }
}

/** Finds a module by name, or by alias (preferring a *_generic implementation). */
export function findModule(tree: ModuleTree, nameOrAlias: string): ModuleInfo | undefined {
  const c = canonicalModuleName(nameOrAlias);
  const byName = tree.modules.get(c);
  if (byName) return byName;
  const hits = [...tree.modules.values()].filter((m) => m.aliases.includes(c));
  hits.sort(
    (a, b) =>
      Number(b.name.endsWith("_generic")) - Number(a.name.endsWith("_generic")) || (a.name < b.name ? -1 : 1),
  );
  return hits[0];
}

/**
 * Every module the wanted ones need, dependencies before dependents (the order to insmod in).
 * A wanted module that is missing is an error; a soft dependency that is missing is skipped,
 * as modprobe does. `builtin` names modules built into the kernel (modules.builtin), which are
 * satisfied without loading.
 */
export function resolveModules(
  tree: ModuleTree,
  wanted: readonly string[],
  builtin: ReadonlySet<string> = new Set(),
): ModuleInfo[] {
  const order: ModuleInfo[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (m: ModuleInfo, chain: string[]): void => {
    if (done.has(m.name)) return;
    if (visiting.has(m.name)) {
      throw new ConfigError(`module dependency cycle: ${[...chain, m.name].join(" -> ")}`);
    }
    visiting.add(m.name);
    for (const d of m.depends) {
      if (builtin.has(d)) continue;
      const dep = tree.modules.get(d);
      if (!dep) throw new ConfigError(`module ${m.name} depends on ${d}, which is not in ${tree.root}`);
      visit(dep, [...chain, m.name]);
    }
    for (const s of m.softPre) {
      if (builtin.has(s)) continue;
      const dep = findModule(tree, s);
      if (dep && dep.name !== m.name) visit(dep, [...chain, m.name]);
    }
    visiting.delete(m.name);
    done.add(m.name);
    order.push(m);
  };
  for (const w of wanted) {
    const c = canonicalModuleName(w);
    if (builtin.has(c)) continue;
    const m = findModule(tree, c);
    if (!m) throw new ConfigError(`module ${w} is neither in ${tree.root} nor built into the kernel`);
    visit(m, []);
  }
  return order;
}

/** Names in a modules.builtin file (one path per line). */
export function readBuiltin(root: string): Set<string> {
  const f = join(root, "modules.builtin");
  if (!existsSync(f)) return new Set();
  return new Set(
    readFileSync(f, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map(nameOfPath),
  );
}

/** A modules.dep for the given modules (paths as they will be in the guest, uncompressed). */
export function modulesDepText(mods: readonly ModuleInfo[], guestPath: (m: ModuleInfo) => string): string {
  const byName = new Map(mods.map((m) => [m.name, m]));
  const closure = (m: ModuleInfo, acc: Set<string>): void => {
    for (const d of m.depends) {
      const dm = byName.get(d);
      if (dm && !acc.has(d)) {
        acc.add(d);
        closure(dm, acc);
      }
    }
  };
  return mods
    .map((m) => {
      const acc = new Set<string>();
      closure(m, acc);
      const deps = mods.filter((x) => acc.has(x.name)).reverse();
      return `${guestPath(m)}:${deps.map((d) => ` ${guestPath(d)}`).join("")}\n`;
    })
    .join("");
}
