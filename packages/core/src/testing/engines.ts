/**
 * The engines a database suite runs on: PGlite always, real Postgres when configured.
 * @module
 */
import type { Store } from "../store";

/** The variable that points the real-Postgres half of the tests at a server. */
export const TEST_DATABASE_URL_ENV = "GOVERNANCE_TEST_DATABASE_URL";

/** An engine a database suite runs on. */
export interface TestEngine {
  name: "pglite" | "postgres";
  /** False when the engine is not configured here; skip its tests (visibly). */
  available: boolean;
  /** The admin URL of the test server, for `postgres`. */
  url?: string;
}

/**
 * Both engines: PGlite, always available, and real Postgres, available when
 * `GOVERNANCE_TEST_DATABASE_URL` is set.
 */
export function testEngines(env: Record<string, string | undefined> = process.env): TestEngine[] {
  const url = env[TEST_DATABASE_URL_ENV];
  return [
    { name: "pglite", available: true },
    url ? { name: "postgres", available: true, url } : { name: "postgres", available: false },
  ];
}

/** A store on a database of its own; `close()` also deletes the database. */
export interface TestStore extends Store {
  /** The engine it runs on. */
  readonly engineName: "pglite" | "postgres";
  /** A connection string for another process (real Postgres only), or null. */
  readonly connectionString: string | null;
}
