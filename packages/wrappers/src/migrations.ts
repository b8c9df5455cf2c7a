import type { MigrationSource } from "@gov/core";

/**
 * The coverage registry's migrations: schema `gov_coverage`. At the root of `src/` (and so of
 * `dist/`, where the bundler puts the code that uses it), so that `../drizzle` is the
 * package's `drizzle/` folder from both.
 */
export const coverageMigrations: MigrationSource = {
  name: "coverage",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};
