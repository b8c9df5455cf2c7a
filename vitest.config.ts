import { defineConfig } from "vitest/config";

// `pnpm vitest` at the root runs every project in one process; `pnpm test` runs them per
// package through turbo. Both read the same per-package configs.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tests/*", "examples"],
  },
});
