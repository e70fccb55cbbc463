import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    testing: "src/testing.ts",
    cli: "src/host/node/cli.ts",
    node: "src/host/node/index.ts",
    worker: "src/host/node/worker/entry.ts",
  },
  format: ["esm"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
});
