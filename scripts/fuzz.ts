/**
 * npm run fuzz -- [--seconds N | --cases N] [--device NAME]... [--seed S] [--case N]
 *
 * Feeds every virtio device (or the ones named) random and hostile register writes, rings,
 * descriptor chains, payloads and resets through the real virtio-PCI transport, and prints per
 * device the cases run and the escapes found, ending with one line "N passed, M failed".
 * Default: 60 seconds. `--case N` (with --device and --seed) replays the chunk up to case N and
 * prints its failures with their traces.
 */
import {
  FUZZ_CHUNK,
  FUZZ_DEVICES,
  type FuzzFailure,
  fuzzDevice,
  runDeviceCases,
  runFuzz,
} from "../src/fuzz/index.js";
import { emptyStats } from "../src/fuzz/world.js";

function usage(msg: string): never {
  console.error(`fuzz: ${msg}`);
  console.error("usage: npm run fuzz -- [--seconds N | --cases N] [--device NAME]... [--seed S] [--case N]");
  console.error(`devices: ${FUZZ_DEVICES.map((d) => d.name).join(", ")}`);
  process.exit(2);
}

const args = process.argv.slice(2);
let seconds: number | undefined;
let cases: number | undefined;
let seed = (Date.now() ^ (Math.random() * 0x1_0000_0000)) >>> 0;
let replay: number | undefined;
const names: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const val = () => {
    const v = args[++i];
    if (v === undefined) usage(`${a} needs a value`);
    return v;
  };
  const num = (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) usage(`${a}: not a number: ${v}`);
    return n;
  };
  if (a === "--seconds") seconds = num(val());
  else if (a === "--cases") cases = Math.floor(num(val()));
  else if (a === "--seed") seed = num(val()) >>> 0;
  else if (a === "--case") replay = Math.floor(num(val()));
  else if (a === "--device") names.push(val());
  else if (a === "--help" || a === "-h") usage("help");
  else usage(`unknown argument ${a}`);
}
const devices = names.map((n) => fuzzDevice(n) ?? usage(`no device ${n}`));
const unhandled: unknown[] = [];
process.on("unhandledRejection", (e) => unhandled.push(e));
process.on("uncaughtException", (e) => unhandled.push(e));
let finished = false;
process.on("exit", () => {
  if (!finished)
    console.log("fuzz: stopped with work that never settled (a device hang?); 0 passed, 1 failed");
});

function printFailure(f: FuzzFailure): void {
  console.log(`  ${f.kind} in case ${f.caseIndex}: ${f.message}`);
  console.log(`    reproduce: npm run fuzz -- --device ${f.device} --seed ${f.seed} --case ${f.caseIndex}`);
}

if (replay !== undefined) {
  if (devices.length !== 1) usage("--case needs exactly one --device");
  const d = devices[0]!;
  const failures = await runDeviceCases(d, FUZZ_DEVICES.indexOf(d), seed, replay, replay + 1, emptyStats());
  console.log(
    `replayed ${d.name} case ${replay} (seed ${seed}, chunk from ${replay - (replay % FUZZ_CHUNK)})`,
  );
  for (const f of failures.filter((x) => x.caseIndex === replay)) {
    printFailure(f);
    console.log(`    trace:\n${f.trace.map((t) => `      ${t}`).join("\n")}`);
  }
  finished = true;
  process.exit(failures.length > 0 ? 1 : 0);
}

if (cases === undefined && seconds === undefined) seconds = 60;
console.log(
  `fuzzing ${(devices.length > 0 ? devices : FUZZ_DEVICES).map((d) => d.name).join(", ")} with seed ${seed}, ${cases !== undefined ? `${cases} cases per device` : `${seconds} s`}`,
);
const reports = await runFuzz({
  seed,
  ...(cases !== undefined ? { cases } : {}),
  ...(seconds !== undefined ? { millis: seconds * 1000 } : {}),
  ...(devices.length > 0 ? { devices } : {}),
});
let passed = 0;
let failed = 0;
for (const r of reports) {
  const s = r.stats;
  const rate = r.ms > 0 ? Math.round((s.cases / r.ms) * 1000) : 0;
  console.log(
    `${r.device.padEnd(9)} ${String(s.cases).padStart(8)} cases  ${String(r.failures.length).padStart(3)} escapes  (${s.actions} actions, ${s.chains} chains, ${s.fatalChains} malformed, ${s.needsResetChecked} DEVICE_NEEDS_RESET checks, ${s.guestErrors} guest errors, ${s.neighbourMemoryHits} neighbour-memory hits undone, ${rate} cases/s)`,
  );
  for (const f of r.failures.slice(0, 5)) printFailure(f);
  if (r.failures.length === 0) passed++;
  else failed++;
}
if (unhandled.length > 0) {
  console.log(`unhandled errors outside the harness: ${unhandled.length}`);
  for (const e of unhandled.slice(0, 3))
    console.log(`  ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  failed++;
}
console.log(`${passed} passed, ${failed} failed`);
finished = true;
process.exit(failed > 0 ? 1 : 0);
