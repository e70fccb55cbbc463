import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type BenchSuite, type Figure, sig3 } from "./harness.js";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes("--json");
const names = args.filter((a) => !a.startsWith("--"));

const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort();
const suites: BenchSuite[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { suite?: BenchSuite };
  if (mod.suite) suites.push(mod.suite);
}
const known = suites.map((s) => s.name);
for (const n of names) {
  if (!known.includes(n)) {
    console.error(`bench: unknown suite '${n}'. Suites: ${known.join(", ")}`);
    process.exit(2);
  }
}
const figures: Figure[] = [];
for (const s of suites) {
  if (names.length > 0 && !names.includes(s.name)) continue;
  await s.run((name, value, unit) => {
    const fig = { name, value: sig3(value), unit };
    figures.push(fig);
    if (!json) console.log(`${fig.name} ${fig.value} ${fig.unit}`);
  });
}
if (json) console.log(JSON.stringify(figures, null, 2));
