import type { TestProject } from "vitest/node";

/**
 * Runs once per package test run: says in one visible line whether the real-Postgres half
 * of the database tests runs, and prepares the embedded-database template so that test
 * workers do not each pay PGlite's initdb.
 */
export default async function setup(project: TestProject): Promise<void> {
  const name = project.name;
  if (process.env.GOVERNANCE_TEST_DATABASE_URL) {
    process.stdout.write(`[${name}] database tests run on PGlite and on real Postgres.\n`);
  } else {
    process.stdout.write(
      `[${name}] GOVERNANCE_TEST_DATABASE_URL is not set: the real-Postgres half of the database tests is SKIPPED (PGlite only).\n`,
    );
  }
  // Relative to this file: the tooling folder is not a package and cannot resolve @gov/core.
  const { ensurePgliteTemplate } = await import("../packages/core/src/pglite-template");
  await ensurePgliteTemplate();
}
