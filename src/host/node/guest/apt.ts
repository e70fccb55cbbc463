/**
 * apt with private package lists: Debian's i386 packages are looked up and downloaded with the
 * host's apt sources but a state and cache directory of our own, so the system's apt
 * configuration, lists and cache are never touched.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VirtkitError } from "../../../common/errors.js";

/** Building the default guest failed; the message says why and what to do. */
export class GuestBuildError extends VirtkitError {
  constructor(message: string) {
    super("GUEST_BUILD", message);
  }
}

export const NO_APT_HINT =
  "The default guest is built from Debian 12's i386 packages with apt and dpkg-deb. Where they are not available, pass a kernel and initramfs of your own: --kernel FILE --initrd FILE.";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command, handing each output line to `onLine` as it arrives. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; onLine?: (line: string) => void } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C", DEBIAN_FRONTEND: "noninteractive" },
    });
    let stdout = "";
    let stderr = "";
    let pending = "";
    const feed = (chunk: string): void => {
      if (!opts.onLine) return;
      pending += chunk;
      const lines = pending.split(/\r?\n|\r/);
      pending = lines.pop() ?? "";
      for (const l of lines) if (l.trim() !== "") opts.onLine(l);
    };
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
      feed(c);
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      feed(c);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (pending.trim() !== "") opts.onLine?.(pending);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** True when `cmd` can be run (found on PATH). */
export function haveCommand(cmd: string): boolean {
  const r = spawnSync(cmd, ["--version"], { stdio: "ignore" });
  return !r.error;
}

function tail(s: string, lines = 6): string {
  return s.trim().split("\n").slice(-lines).join("\n");
}

/** One package's record from `apt-cache show`. */
export interface AptPackage {
  name: string;
  version: string;
  depends: string[];
  filename: string;
}

export class PrivateApt {
  readonly dir: string;
  readonly arch: string;
  private readonly opts: string[];

  constructor(dir: string, arch = "i386") {
    this.dir = dir;
    this.arch = arch;
    mkdirSync(join(dir, "lists", "partial"), { recursive: true });
    mkdirSync(join(dir, "cache", "archives", "partial"), { recursive: true });
    const status = join(dir, "status");
    try {
      statSync(status);
    } catch {
      writeFileSync(status, "");
    }
    this.opts = [
      `-oAPT::Architecture=${arch}`,
      `-oAPT::Architectures=${arch}`,
      `-oDir::State::Lists=${join(dir, "lists")}`,
      `-oDir::Cache=${join(dir, "cache")}`,
      `-oDir::State::status=${status}`,
    ];
    // As root, apt drops to the _apt user to download, which cannot write to a user's cache.
    if (typeof process.getuid === "function" && process.getuid() === 0)
      this.opts.push("-oAPT::Sandbox::User=root");
  }

  /** Age of the package lists in ms, or undefined when there are none. */
  listsAge(): number | undefined {
    let newest = 0;
    for (const f of readdirSync(join(this.dir, "lists"))) {
      if (!f.endsWith("_Packages") && !f.includes("_Packages.")) continue;
      newest = Math.max(newest, statSync(join(this.dir, "lists", f)).mtimeMs);
    }
    return newest === 0 ? undefined : Date.now() - newest;
  }

  /**
   * `apt-get update` into the private lists. Returns the warnings of a partial failure (one
   * index failed, the rest were fetched); throws when apt-get cannot be run.
   */
  async update(onLine?: (line: string) => void): Promise<string | undefined> {
    const r = await run("apt-get", [...this.opts, "update"], { onLine }).catch((e: Error) => {
      throw new GuestBuildError(`cannot run apt-get: ${e.message}. ${NO_APT_HINT}`);
    });
    return r.code === 0 ? undefined : tail(r.stderr || r.stdout);
  }

  /** The candidate version's record, or undefined when apt does not know the package. */
  async show(pkg: string): Promise<AptPackage | undefined> {
    const r = await run("apt-cache", [...this.opts, "show", "--no-all-versions", pkg]);
    if (r.code !== 0 || r.stdout.trim() === "") return undefined;
    const field = (k: string): string | undefined => {
      const m = new RegExp(`^${k}: (.*)$`, "m").exec(r.stdout);
      return m?.[1]?.trim();
    };
    const version = field("Version");
    if (!version) return undefined;
    return {
      name: field("Package") ?? pkg,
      version,
      depends: (field("Depends") ?? "")
        .split(",")
        .map((d) => d.trim())
        .filter((d) => d !== ""),
      filename: field("Filename") ?? "",
    };
  }

  /** Downloads the packages (name=version) into `dest`; returns the .deb paths in the same order. */
  async download(
    pkgs: readonly AptPackage[],
    dest: string,
    onLine?: (line: string) => void,
  ): Promise<string[]> {
    mkdirSync(dest, { recursive: true });
    const found = (p: AptPackage): string | undefined => {
      const ver = p.version.replace(/^\d+:/, "");
      return readdirSync(dest).find((f) => {
        const d = decodeURIComponent(f);
        return d.startsWith(`${p.name}_`) && d.includes(ver) && d.endsWith(`_${this.arch}.deb`);
      });
    };
    const missing = pkgs.filter((p) => !found(p));
    if (missing.length > 0) {
      const r = await run(
        "apt-get",
        [...this.opts, "download", ...missing.map((p) => `${p.name}=${p.version}`)],
        {
          cwd: dest,
          onLine,
        },
      );
      if (r.code !== 0) {
        throw new GuestBuildError(
          `apt-get download ${missing.map((p) => p.name).join(" ")} failed:\n${tail(r.stderr || r.stdout)}\n${NO_APT_HINT}`,
        );
      }
    }
    return pkgs.map((p) => {
      const f = found(p);
      if (!f) throw new GuestBuildError(`apt-get download did not leave ${p.name} ${p.version} in ${dest}`);
      return join(dest, f);
    });
  }
}
