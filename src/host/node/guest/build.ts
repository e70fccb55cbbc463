/**
 * `buildDefaultGuest`: Debian 12's i386 kernel (linux-image-686) and busybox-static, fetched with
 * a private apt, turned into a bzImage plus a gzip'ed newc initramfs holding busybox, the virtio
 * drivers and ext4. The result is cached in the user's cache directory, keyed by the package
 * versions, and reused until Debian publishes new ones.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { copyFile, mkdtemp } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parseSetupHeader } from "../../../machine/boot/setup-header.js";
import type { PayloadCompression } from "../../../machine/boot/setup-header.js";
import { GuestBuildError, NO_APT_HINT, PrivateApt, haveCommand, run } from "./apt.js";
import type { AptPackage } from "./apt.js";
import { decompressKernel } from "./decompress.js";
import { buildGuestInitramfs } from "./initramfs.js";
import type { GuestModuleFile } from "./initramfs.js";
import {
  DEFAULT_GUEST_MODULES,
  indexModuleTree,
  modulesDepText,
  readBuiltin,
  readModuleFile,
  resolveModules,
} from "./modules.js";
import type { ModuleCompression } from "./modules.js";

/** Bump when the initramfs layout or /init changes, so cached guests are rebuilt. */
export const GUEST_FORMAT_VERSION = 2;
export const KERNEL_META_PACKAGE = "linux-image-686";
export const BUSYBOX_PACKAGE = "busybox-static";
/** Package lists younger than this are used without `apt-get update`. */
const LISTS_MAX_AGE_MS = 24 * 3600 * 1000;

export interface DefaultGuest {
  /** The bzImage. */
  kernel: string;
  /** The gzip'ed newc initramfs. */
  initrd: string;
  /**
   * The bzImage's payload decompressed on the host (the vmlinux ELF), for loadLinux's `vmlinux`
   * option; undefined when it could not be decompressed (no xz program at build time).
   */
  vmlinux: string | undefined;
  /** The kernel release (`uname -r`, e.g. 6.1.0-50-686). */
  version: string;
  /** The cache folder holding both files and guest.json. */
  dir: string;
  /** The modules /init loads, in load order. */
  modules: string[];
  manifest: GuestManifest;
}

/** guest.json: what a cached guest was built from. */
export interface GuestManifest {
  format: number;
  key: string;
  kernelRelease: string;
  kernelPackage: string;
  kernelPackageVersion: string;
  busyboxVersion: string;
  /** Compression of the bzImage's payload (xz for Debian's kernel). */
  payloadCompression: PayloadCompression;
  /** Bytes of the host-decompressed vmlinux (0 when it was not made). */
  vmlinuxBytes: number;
  /** How the modules were shipped in the package (Debian 12: none, plain .ko). */
  moduleCompression: ModuleCompression[];
  modules: string[];
  initrdBytes: number;
  initrdUncompressedBytes: number;
  builtAt: string;
}

export interface BuildGuestOptions {
  /** Cache folder (default $XDG_CACHE_HOME/virtkit or ~/.cache/virtkit). */
  cacheDir?: string;
  /** Progress messages, one line each. */
  onProgress?: (message: string) => void;
  /** Refresh the package lists even when they are recent. */
  refresh?: boolean;
  /** Rebuild even when a cached guest of the same versions exists. */
  rebuild?: boolean;
}

/** The default cache folder: $XDG_CACHE_HOME/virtkit, else ~/.cache/virtkit. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg?.startsWith("/") ? xdg : join(homedir(), ".cache");
  return join(base, "virtkit");
}

function checkCacheDir(dir: string): void {
  if (dir.split(/[\\/]/).includes("node_modules")) {
    throw new GuestBuildError(`the guest cache must not be inside node_modules: ${dir}`);
  }
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9.+_-]/g, "_");
}

function guestKey(kernel: AptPackage, busybox: AptPackage): string {
  return safe(
    `debian12-i386-${kernel.name}_${kernel.version}-busybox_${busybox.version}-f${GUEST_FORMAT_VERSION}`,
  );
}

function readManifest(dir: string): GuestManifest | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, "guest.json"), "utf8")) as GuestManifest;
    if (m.format !== GUEST_FORMAT_VERSION) return undefined;
    if (!existsSync(join(dir, "vmlinuz")) || !existsSync(join(dir, "initrd.img"))) return undefined;
    return m;
  } catch {
    return undefined;
  }
}

function toGuest(dir: string, m: GuestManifest): DefaultGuest {
  return {
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
    vmlinux: m.vmlinuxBytes > 0 && existsSync(join(dir, "vmlinux")) ? join(dir, "vmlinux") : undefined,
    version: m.kernelRelease,
    dir,
    modules: m.modules,
    manifest: m,
  };
}

/** The cached default guest, if one was built (newest first), without touching the network. */
export function findCachedGuest(cacheDir = defaultCacheDir()): DefaultGuest | undefined {
  const root = join(cacheDir, "guest");
  if (!existsSync(root)) return undefined;
  const found = readdirSync(root)
    .map((d) => ({ dir: join(root, d), m: readManifest(join(root, d)) }))
    .filter((x): x is { dir: string; m: GuestManifest } => x.m !== undefined)
    .sort((a, b) => (a.m.builtAt < b.m.builtAt ? 1 : -1));
  return found[0] ? toGuest(found[0].dir, found[0].m) : undefined;
}

/** Removes cached guests built by an older GUEST_FORMAT_VERSION (they are never used again). */
function pruneOldFormats(root: string, keep: string): void {
  for (const d of readdirSync(root)) {
    const dir = join(root, d);
    if (dir === keep || d.startsWith(".build-")) continue;
    try {
      const m = JSON.parse(readFileSync(join(dir, "guest.json"), "utf8")) as { format?: unknown };
      if (typeof m.format === "number" && m.format < GUEST_FORMAT_VERSION)
        rmSync(dir, { recursive: true, force: true });
    } catch {
      // Not a guest folder of ours: leave it.
    }
  }
}

/** Finds `rel` under `root` or `root/usr` (merged /usr layouts). */
function findIn(root: string, rel: string): string | undefined {
  for (const p of [join(root, rel), join(root, "usr", rel)]) if (existsSync(p)) return p;
  return undefined;
}

interface Fetched {
  kernelPkg: AptPackage;
  busybox: AptPackage;
  key: string;
  outDir: string;
  kernelDeb: string;
  busyboxDeb: string;
}

/** Resolves the package versions; returns the cached guest for them, or downloads their .debs. */
async function resolveAndFetch(
  apt: PrivateApt,
  cacheDir: string,
  rebuild: boolean,
  progress: (m: string) => void,
): Promise<Fetched | DefaultGuest> {
  const meta = await apt.show(KERNEL_META_PACKAGE);
  const kernelDep = meta?.depends
    .map((d) => /^(linux-image-[^\s|(]+)/.exec(d)?.[1])
    .find((d) => d !== undefined);
  const kernelPkg = kernelDep ? await apt.show(kernelDep) : undefined;
  const busybox = await apt.show(BUSYBOX_PACKAGE);
  if (!kernelPkg || !busybox) {
    const cached = findCachedGuest(cacheDir);
    if (cached) {
      progress(`apt cannot resolve the packages now; using the cached guest in ${cached.dir}`);
      return cached;
    }
    throw new GuestBuildError(
      `apt on this host does not know Debian 12's i386 packages ${!kernelPkg ? KERNEL_META_PACKAGE : BUSYBOX_PACKAGE} (are Debian bookworm sources configured and reachable?). ${NO_APT_HINT}`,
    );
  }
  const key = guestKey(kernelPkg, busybox);
  const outDir = join(cacheDir, "guest", key);
  const existing = rebuild ? undefined : readManifest(outDir);
  if (existing) {
    progress(`default guest ${key} is cached in ${outDir}`);
    return toGuest(outDir, existing);
  }
  progress(`fetching ${kernelPkg.name} ${kernelPkg.version} and ${busybox.name} ${busybox.version}`);
  const debs = join(cacheDir, "debs");
  const [kernelDeb, busyboxDeb] = await apt.download([kernelPkg, busybox], debs, (l) => {
    if (/^(Get|Err|W|E):/.test(l)) progress(`apt: ${l}`);
  });
  // Older versions of these packages are not needed again.
  for (const f of readdirSync(debs)) {
    const p = join(debs, f);
    if (p !== kernelDeb && p !== busyboxDeb && /^(linux-image-|busybox-static_)/.test(f))
      rmSync(p, { force: true });
  }
  return { kernelPkg, busybox, key, outDir, kernelDeb: kernelDeb!, busyboxDeb: busyboxDeb! };
}

/**
 * Builds (or finds in the cache) the default guest. Throws GuestBuildError with what to do when
 * apt or dpkg-deb is missing or Debian's packages cannot be found.
 */
export async function buildDefaultGuest(options: BuildGuestOptions = {}): Promise<DefaultGuest> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  checkCacheDir(cacheDir);
  const progress = options.onProgress ?? (() => {});
  if (!haveCommand("apt-get") || !haveCommand("apt-cache") || !haveCommand("dpkg-deb")) {
    const cached = findCachedGuest(cacheDir);
    if (cached) {
      progress(`apt is not available; using the cached guest in ${cached.dir}`);
      return cached;
    }
    throw new GuestBuildError(`apt-get, apt-cache or dpkg-deb is not installed. ${NO_APT_HINT}`);
  }
  mkdirSync(cacheDir, { recursive: true });
  const apt = new PrivateApt(join(cacheDir, "apt"));

  let updated = false;
  const update = async (): Promise<void> => {
    progress("updating private i386 package lists (apt-get update)");
    const warn = await apt.update((l) => {
      if (/^(Get|Err|W|E):/.test(l)) progress(`apt: ${l}`);
    });
    if (warn) progress(`apt-get update reported problems (continuing with what it fetched):\n${warn}`);
    updated = true;
  };
  const age = apt.listsAge();
  if (options.refresh || age === undefined || age > LISTS_MAX_AGE_MS) await update();
  let fetched: Fetched | DefaultGuest;
  try {
    fetched = await resolveAndFetch(apt, cacheDir, options.rebuild ?? false, progress);
  } catch (e) {
    // Lists a day old may name packages the mirror no longer has: refresh once and retry.
    if (!(e instanceof GuestBuildError) || updated) throw e;
    progress(`${e.message.split("\n")[0]}; refreshing the package lists and trying again`);
    await update();
    fetched = await resolveAndFetch(apt, cacheDir, options.rebuild ?? false, progress);
  }
  if (!("kernelDeb" in fetched)) return fetched;
  const { kernelPkg, busybox, key, outDir, kernelDeb, busyboxDeb } = fetched;

  mkdirSync(join(cacheDir, "guest"), { recursive: true });
  const work = await mkdtemp(join(cacheDir, "guest", ".build-"));
  try {
    progress("extracting packages (dpkg-deb -x)");
    for (const deb of [kernelDeb, busyboxDeb]) {
      const r = await run("dpkg-deb", ["-x", deb, join(work, "root")]);
      if (r.code !== 0) throw new GuestBuildError(`dpkg-deb -x ${deb} failed: ${r.stderr.trim()}`);
    }
    const root = join(work, "root");
    const bootDir = findIn(root, "boot");
    const vmlinuzName = bootDir ? readdirSync(bootDir).find((f) => f.startsWith("vmlinuz-")) : undefined;
    if (!bootDir || !vmlinuzName) throw new GuestBuildError(`${kernelPkg.name} holds no /boot/vmlinuz-*`);
    const release = vmlinuzName.slice("vmlinuz-".length);
    const kernelBytes = readFileSync(join(bootDir, vmlinuzName));
    const hdr = parseSetupHeader(kernelBytes);
    const modRoot = findIn(root, `lib/modules/${release}`);
    if (!modRoot) throw new GuestBuildError(`${kernelPkg.name} holds no lib/modules/${release}`);
    const busyboxPath = findIn(root, "bin/busybox");
    if (!busyboxPath) throw new GuestBuildError(`${busybox.name} holds no bin/busybox`);

    progress(`indexing modules of ${release}`);
    const tree = indexModuleTree(modRoot);
    const mods = resolveModules(tree, DEFAULT_GUEST_MODULES, readBuiltin(modRoot));
    const guestPath = (p: string): string => p.replace(/\.(xz|gz|zst)$/, "");
    const files: GuestModuleFile[] = mods.map((m) => ({
      name: m.name,
      path: guestPath(m.path),
      data: readModuleFile(modRoot, m),
    }));
    const depText = modulesDepText(mods, (m) => guestPath(m.path));

    progress(`building the initramfs (${files.length} modules: ${mods.map((m) => m.name).join(" ")})`);
    const cpio = buildGuestInitramfs({
      kernelRelease: release,
      busybox: readFileSync(busyboxPath),
      modules: files,
      modulesDep: depText,
    });
    const gz = gzipSync(cpio, { level: 9 });

    const stage = join(work, "out");
    mkdirSync(stage);
    await copyFile(join(bootDir, vmlinuzName), join(stage, "vmlinuz"));
    writeFileSync(join(stage, "initrd.img"), gz);
    let vmlinuxBytes = 0;
    try {
      progress(`decompressing the kernel's ${hdr.payloadCompression} payload on the host (vmlinux)`);
      const vmlinux = decompressKernel(kernelBytes);
      writeFileSync(join(stage, "vmlinux"), vmlinux);
      vmlinuxBytes = vmlinux.length;
    } catch (e) {
      progress(`no vmlinux: ${(e as Error).message} (the guest still boots from the bzImage)`);
    }
    const manifest: GuestManifest = {
      format: GUEST_FORMAT_VERSION,
      key,
      kernelRelease: release,
      kernelPackage: kernelPkg.name,
      kernelPackageVersion: kernelPkg.version,
      busyboxVersion: busybox.version,
      payloadCompression: hdr.payloadCompression,
      vmlinuxBytes,
      moduleCompression: [...new Set(mods.map((m) => m.compression))],
      modules: mods.map((m) => m.name),
      initrdBytes: gz.length,
      initrdUncompressedBytes: cpio.length,
      builtAt: new Date().toISOString(),
    };
    writeFileSync(join(stage, "guest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(outDir, { recursive: true, force: true });
    renameSync(stage, outDir);
    pruneOldFormats(join(cacheDir, "guest"), outDir);
    progress(`default guest ready in ${outDir} (kernel ${release}, initramfs ${gz.length} bytes)`);
    return toGuest(outDir, manifest);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
