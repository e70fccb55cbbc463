/**
 * Builds the default guest from the command line (for CI setup and until the CLI's
 * `virtkit guest build` calls buildDefaultGuest):
 *
 *   npx tsx src/host/node/guest/main.ts [--cache-dir DIR] [--refresh] [--rebuild] [--json]
 *
 * Prints progress on stderr and the guest's paths on stdout; exits 1 with the reason (and what
 * to do instead) when the guest cannot be built.
 */
import { VirtkitError } from "../../../common/errors.js";
import { buildDefaultGuest } from "./build.js";

const USAGE = "usage: main.ts [--cache-dir DIR] [--refresh] [--rebuild] [--json]";

async function main(argv: string[]): Promise<number> {
  let cacheDir: string | undefined;
  let refresh = false;
  let rebuild = false;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--cache-dir") {
      cacheDir = argv[++i];
      if (!cacheDir) {
        process.stderr.write(`--cache-dir needs a folder\n${USAGE}\n`);
        return 2;
      }
    } else if (a === "--refresh") refresh = true;
    else if (a === "--rebuild") rebuild = true;
    else if (a === "--json") json = true;
    else if (a === "--help" || a === "-h") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else {
      process.stderr.write(`unknown option ${a}\n${USAGE}\n`);
      return 2;
    }
  }
  try {
    const g = await buildDefaultGuest({
      cacheDir,
      refresh,
      rebuild,
      onProgress: (m) => process.stderr.write(`guest: ${m}\n`),
    });
    if (json) process.stdout.write(`${JSON.stringify(g, null, 2)}\n`);
    else {
      process.stdout.write(
        `kernel  ${g.kernel}\ninitrd  ${g.initrd}\nvmlinux ${g.vmlinux ?? "(none)"}\nversion ${g.version}\nmodules ${g.modules.join(" ")}\n`,
      );
    }
    return 0;
  } catch (e) {
    if (e instanceof VirtkitError) {
      process.stderr.write(`guest build failed: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
