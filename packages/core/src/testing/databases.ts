/**
 * A fresh database for each test, on either engine, without paying initdb or migrations
 * per test.
 * @module
 */
import { createHash } from "node:crypto";
import { type Logger, silentLogger } from "../logger";
import { loadMigrations, type MigrationSource } from "../migrations";
import { createStore } from "../store";
import { TEST_DATABASE_URL_ENV, type TestEngine, type TestStore } from "./engines";
import { pooledPgliteStore } from "./pglite-pool";
import { postgresTestDatabase } from "./postgres-databases";

/** Options of {@link createTestStore}. */
export interface CreateTestStoreOptions {
  /** Migrations applied to the fresh database (once per set, then copied). */
  migrations?: readonly MigrationSource[];
  logger?: Logger;
}

async function migrationSetId(migrations: readonly MigrationSource[]): Promise<string> {
  const hash = createHash("sha256");
  for (const source of [...migrations].sort((a, b) => a.name.localeCompare(b.name))) {
    hash.update(`${source.name}\0`);
    for (const migration of await loadMigrations(source))
      hash.update(`${migration.tag}\0${migration.hash}\0`);
  }
  return hash.digest("hex").slice(0, 16);
}

/**
 * A store on a fresh database of its own, with `migrations` applied: on PGlite, a new
 * in-memory database copied from a migrated archive; on Postgres, a new database copied
 * from a migrated template database (and dropped on `close()`).
 */
export async function createTestStore(
  engine: TestEngine,
  options: CreateTestStoreOptions = {},
): Promise<TestStore> {
  const migrations = options.migrations ?? [];
  const logger = options.logger ?? silentLogger;
  const id = await migrationSetId(migrations);
  if (engine.name === "pglite") return pooledPgliteStore(id, migrations, logger);
  const database = await postgresTestDatabase(engine, id, migrations);
  const store = await createStore({ databaseUrl: database.databaseUrl, logger, pool: { max: 10 } });
  const close = store.close.bind(store);
  let dropped: Promise<void> | null = null;
  const closeAndDrop = () => {
    dropped ??= close().then(() => database.dispose());
    return dropped;
  };
  return Object.assign(store, {
    engineName: "postgres" as const,
    connectionString: database.databaseUrl,
    close: closeAndDrop,
    [Symbol.asyncDispose]: closeAndDrop,
  });
}

/**
 * The URL of a fresh database, for code that opens its own store (an SDK, a child
 * process): `memory://` on PGlite; on Postgres, a new database copied from a migrated
 * template, dropped by `dispose()`.
 */
export async function createTestDatabase(
  engine: TestEngine,
  options: { migrations?: readonly MigrationSource[] } = {},
): Promise<{ databaseUrl: string; dispose(): Promise<void> }> {
  const migrations = options.migrations ?? [];
  if (engine.name === "pglite") return { databaseUrl: "memory://", dispose: async () => undefined };
  return postgresTestDatabase(engine, await migrationSetId(migrations), migrations);
}

/**
 * A fresh, migrated Postgres database for a benchmark, on the server that
 * `GOVERNANCE_BENCH_DATABASE_URL` (or else `GOVERNANCE_TEST_DATABASE_URL`) names; `null` when
 * neither is set. `dispose()` drops it.
 */
export async function createBenchDatabase(
  migrations: readonly MigrationSource[],
  env: Record<string, string | undefined> = process.env,
): Promise<{ databaseUrl: string; dispose(): Promise<void> } | null> {
  const url = env.GOVERNANCE_BENCH_DATABASE_URL ?? env[TEST_DATABASE_URL_ENV];
  if (!url) return null;
  return createTestDatabase({ name: "postgres", available: true, url }, { migrations });
}
