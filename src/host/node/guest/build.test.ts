import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { GuestBuildError } from "./apt.js";
import { buildDefaultGuest, defaultCacheDir, findCachedGuest } from "./build.js";

const work = mkdtempSync(join(tmpdir(), "virtkit-build-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("buildDefaultGuest: cache location and refusals", () => {
  const saved = { xdg: process.env.XDG_CACHE_HOME, path: process.env.PATH };
  afterEach(() => {
    if (saved.xdg === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved.xdg;
    process.env.PATH = saved.path;
  });

  it("caches under $XDG_CACHE_HOME/virtkit, else ~/.cache/virtkit", () => {
    process.env.XDG_CACHE_HOME = "/some/cache";
    expect(defaultCacheDir()).toBe("/some/cache/virtkit");
    process.env.XDG_CACHE_HOME = "relative/ignored";
    expect(defaultCacheDir()).toMatch(/\/\.cache\/virtkit$/);
    delete process.env.XDG_CACHE_HOME;
    expect(defaultCacheDir()).toMatch(/\/\.cache\/virtkit$/);
  });

  it("refuses a cache inside node_modules", async () => {
    await expect(buildDefaultGuest({ cacheDir: join(work, "node_modules", "x") })).rejects.toThrow(
      /must not be inside node_modules/,
    );
  });

  it("says to pass --kernel and --initrd where apt is not available", async () => {
    process.env.PATH = join(work, "empty-path");
    const err = await buildDefaultGuest({ cacheDir: join(work, "cache") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GuestBuildError);
    expect((err as Error).message).toMatch(/apt-get, apt-cache or dpkg-deb is not installed/);
    expect((err as Error).message).toMatch(/--kernel FILE --initrd FILE/);
  });

  it("finds no cached guest in an empty cache", () => {
    expect(findCachedGuest(join(work, "nothing"))).toBeUndefined();
  });
});
