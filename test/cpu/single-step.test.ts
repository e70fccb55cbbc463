/**
 * Runs the 80286 real-mode single-step vectors (../shared/cpu-tests) through the core. The
 * 286-vs-i686 differences are skipped or special-cased by rule (single-step.ts), never by id.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  lockAllowedOn386,
  type SingleStepTest,
  SingleStepHarness,
  SkipRule,
} from "../../src/cpu/single-step.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const base = resolve(root, "../shared/cpu-tests/80286");
const dir = join(base, "v1_real_mode");
const present = existsSync(dir);
if (!present) console.warn(`single-step vectors skipped: ${dir} is absent`);

describe.skipIf(!present)("80286 real-mode single-step vectors", () => {
  const metadata = present ? JSON.parse(readFileSync(join(dir, "metadata.json"), "utf8")) : { opcodes: {} };
  const revoked = new Set(
    present
      ? readFileSync(join(base, "revocation_list.txt"), "utf8")
          .split(/\s+/)
          .filter((s) => s.length > 0)
      : [],
  );
  const files = present ? readdirSync(dir).filter((f) => f.endsWith(".json.gz")) : [];

  it("has the vector files", () => {
    expect(files.length).toBeGreaterThan(300);
  });

  it("passes every vector except the documented 286/i686 differences", () => {
    const harness = new SingleStepHarness(metadata, revoked);
    let passed = 0;
    const skipped = new Map<string, number>();
    const failures: string[] = [];
    for (const f of files) {
      const key = f.replace(/\.json\.gz$/, "");
      const tests = JSON.parse(gunzipSync(readFileSync(join(dir, f))).toString("utf8")) as SingleStepTest[];
      for (const t of tests) {
        const r = harness.run(t, key);
        if (r.kind === "pass") passed++;
        else if (r.kind === "skip") skipped.set(r.rule, (skipped.get(r.rule) ?? 0) + 1);
        else if (failures.length < 20) failures.push(`${key} #${t.idx} ${t.name}: ${r.diffs.join("; ")}`);
        else failures.push("");
      }
    }
    expect(failures.filter((f) => f !== "").slice(0, 20)).toEqual([]);
    expect(failures.length).toBe(0);
    // The README's counts: 2,344 LOCK tests would #UD on a 386; 13 are over 10 bytes; 18 use FS/GS.
    expect(skipped.get(SkipRule.LOCK_UD)).toBe(2344);
    expect(skipped.get(SkipRule.TOO_LONG)).toBe(13);
    expect(skipped.get(SkipRule.SREG_FS_GS)).toBe(18);
    expect(passed).toBeGreaterThan(127_000);
  });
});

describe("lockAllowedOn386", () => {
  it("allows LOCK only on lockable read-modify-write instructions with a memory destination", () => {
    expect(lockAllowedOn386(0x00, 0x07)).toBe(true); // add [bx],al
    expect(lockAllowedOn386(0x00, 0xc0)).toBe(false); // add al,al
    expect(lockAllowedOn386(0x02, 0x07)).toBe(false); // add al,[bx]
    expect(lockAllowedOn386(0x80, 0x3f)).toBe(false); // cmp byte [bx],ib
    expect(lockAllowedOn386(0x80, 0x37)).toBe(true); // xor byte [bx],ib
    expect(lockAllowedOn386(0xf7, 0x17)).toBe(true); // not word [bx]
    expect(lockAllowedOn386(0xf7, 0x27)).toBe(false); // mul word [bx]
    expect(lockAllowedOn386(0xff, 0x17)).toBe(false); // call [bx]
    expect(lockAllowedOn386(0x88, 0x07)).toBe(false); // mov
  });
});
