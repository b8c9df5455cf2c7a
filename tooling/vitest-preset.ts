import { fileURLToPath } from "node:url";
import type { UserWorkspaceConfig } from "vitest/config";

/**
 * Resolve workspace packages to their TypeScript sources (the `@gov/source` export
 * condition), then as Vite does on the server by default.
 */
const SOURCE_CONDITIONS = ["@gov/source", "module", "node", "development|production"];

/**
 * The vitest project config every package shares: sources resolved through the
 * `@gov/source` condition (no build needed), generous timeouts for database tests, and a
 * global setup that says in one line when the real-Postgres half of the suite is skipped.
 */
export function govTestProject(
  name: string,
  options: { sourceConditions?: boolean } = {},
): UserWorkspaceConfig {
  const conditions = options.sourceConditions === false ? undefined : SOURCE_CONDITIONS;
  return {
    resolve: conditions ? { conditions } : {},
    ssr: conditions ? { resolve: { conditions } } : {},
    test: {
      name,
      include: ["src/**/*.test.ts"],
      // Long enough for a multi-process test on a 2-core machine running every package's suite
      // at once (CI); a hang still fails.
      testTimeout: 120_000,
      // One module graph per worker, not per test file: most of a file's CPU was spent
      // importing (and, for the AI SDK, transforming) the same modules again. No test mocks
      // modules or stubs globals, and each test opens its own database.
      isolate: false,
      hookTimeout: 120_000,
      globalSetup: [fileURLToPath(new URL("./vitest-global-setup.ts", import.meta.url))],
    },
  };
}
