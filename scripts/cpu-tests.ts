/**
 * Runs single-instruction CPU test files (SingleStepTests JSON, gzipped or not) and prints the
 * failures grouped by opcode file, the skipped-by-rule counts, and `N passed, M failed`.
 *   npm run cpu-tests -- [DIR] [--filter KEY] [--verbose N]
 * DIR defaults to ../shared/cpu-tests/80286/v1_real_mode relative to the repository root.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { type SingleStepTest, SingleStepHarness, type TestMetadata } from "../src/cpu/single-step.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
let dir = resolve(root, "../shared/cpu-tests/80286/v1_real_mode");
let filter: string | undefined;
let verbose = 3;
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === "--filter") filter = args[++i];
  else if (a === "--verbose") verbose = Number(args[++i]);
  else dir = resolve(a);
}
if (!existsSync(dir)) {
  console.error(`cpu-tests: no such directory: ${dir}`);
  process.exit(2);
}

function findUp(start: string, name: string): string | undefined {
  let d = start;
  for (let i = 0; i < 3; i++) {
    const p = join(d, name);
    if (existsSync(p)) return p;
    d = dirname(d);
  }
  return undefined;
}

const metaPath = findUp(dir, "metadata.json");
const metadata: TestMetadata = metaPath ? JSON.parse(readFileSync(metaPath, "utf8")) : { opcodes: {} };
const revPath = findUp(dir, "revocation_list.txt");
const revoked = new Set(
  revPath
    ? readFileSync(revPath, "utf8")
        .split(/\s+/)
        .filter((s) => s.length > 0)
    : [],
);
const harness = new SingleStepHarness(metadata, revoked);

const files = readdirSync(dir)
  .filter((f) => /\.json(\.gz)?$/.test(f) && f !== "metadata.json")
  .sort();
let passed = 0;
let failed = 0;
const skipped = new Map<string, number>();
const special = new Map<string, number>();
const failures: string[] = [];
for (const f of files) {
  const key = f.replace(/\.json(\.gz)?$/, "");
  if (filter !== undefined && !key.toUpperCase().startsWith(filter.toUpperCase())) continue;
  const raw = readFileSync(join(dir, f));
  const text = f.endsWith(".gz") ? gunzipSync(raw).toString("utf8") : raw.toString("utf8");
  const tests = JSON.parse(text) as SingleStepTest[];
  let fileFailed = 0;
  const examples: string[] = [];
  for (const t of tests) {
    const r = harness.run(t, key);
    if (r.kind === "pass") {
      passed++;
      if (r.rule !== undefined) special.set(r.rule, (special.get(r.rule) ?? 0) + 1);
    } else if (r.kind === "skip") skipped.set(r.rule, (skipped.get(r.rule) ?? 0) + 1);
    else {
      failed++;
      fileFailed++;
      if (examples.length < verbose)
        examples.push(
          `    #${t.idx} ${t.name} [${t.bytes.map((b) => b.toString(16)).join(" ")}]: ${r.diffs.join("; ")}`,
        );
    }
  }
  if (fileFailed > 0) failures.push(`${key}: ${fileFailed}/${tests.length} failed\n${examples.join("\n")}`);
}
if (failures.length > 0) {
  console.log("Failures by opcode:");
  for (const f of failures) console.log(f);
}
for (const [rule, n] of skipped) console.log(`skipped ${n}: ${rule}`);
for (const [rule, n] of special) console.log(`passed ${n} with special case: ${rule}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
