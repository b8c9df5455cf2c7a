/**
 * The one engine loop of the benchmarks: real Postgres when configured, then PGlite in a
 * directory, as the default install runs.
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../logger";
import { type MigrationSource, runMigrations } from "../migrations";
import { createStore, type Store } from "../store";
import { createBenchDatabase } from "./databases";

/** An engine a benchmark runs on, with a migrated store on a database of its own. */
export interface BenchEngine {
  /** The prefix of the results' names: `postgres.…`, `pglite.…`. */
  name: "postgres" | "pglite";
  /** The migrated store, closed after the run. */
  store: Store;
  /** The database's URL, for another process (a directory path on PGlite). */
  databaseUrl: string;
}

/** Options of {@link forEachBenchEngine}. */
export interface ForEachBenchEngineOptions {
  /** The pool of the Postgres store (PGlite has one connection). */
  postgresPool?: { max: number };
  /** Where `GOVERNANCE_BENCH_DATABASE_URL` / `GOVERNANCE_TEST_DATABASE_URL` are read. @default process.env */
  env?: Record<string, string | undefined>;
  /** Where the line saying that Postgres is skipped goes. @default process.stdout */
  out?: { write(text: string): unknown };
}

/**
 * Run `bench` once per engine, each on a fresh database with `migrations` applied: on real
 * Postgres (a database created for the bench on the server `GOVERNANCE_BENCH_DATABASE_URL`
 * or `GOVERNANCE_TEST_DATABASE_URL` names, dropped after; skipped, saying so, when neither
 * is set), then on PGlite in a temporary directory (removed after).
 *
 * @example
 * ```ts
 * await forEachBenchEngine([costMigrations], async (engine) => {
 *   await bench(engine.name, engine.store, engine.name === "postgres" ? 5_000 : 2_000);
 * }, { postgresPool: { max: 10 } });
 * ```
 */
export async function forEachBenchEngine(
  migrations: readonly MigrationSource[],
  bench: (engine: BenchEngine) => Promise<void>,
  options: ForEachBenchEngineOptions = {},
): Promise<void> {
  const out = options.out ?? process.stdout;
  const database = await createBenchDatabase(migrations, options.env ?? process.env);
  if (database) {
    const store = await createStore({
      databaseUrl: database.databaseUrl,
      logger: silentLogger,
      ...(options.postgresPool ? { pool: options.postgresPool } : {}),
    });
    try {
      await bench({ name: "postgres", store, databaseUrl: database.databaseUrl });
    } finally {
      await store.close();
      await database.dispose();
    }
  } else {
    out.write("GOVERNANCE_TEST_DATABASE_URL is not set: the postgres.* benchmarks are SKIPPED\n");
  }
  const home = mkdtempSync(join(tmpdir(), "gov-bench-"));
  const store = await createStore({ databaseUrl: home, logger: silentLogger });
  try {
    await runMigrations(store, migrations, { logger: silentLogger });
    await bench({ name: "pglite", store, databaseUrl: home });
  } finally {
    await store.close();
    rmSync(home, { recursive: true, force: true });
  }
}
