import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "spec-tests/**/*.test.ts", "examples/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    pool: "forks",
    // One test file at a time: the end-to-end tests boot Linux (on our CPU and under QEMU) and
    // are CPU-bound; run side by side on CI's two cores they starve each other's I/O and the
    // QEMU tests lose serial output. The suite stays well inside CI's time either way.
    fileParallelism: false,
  },
});
