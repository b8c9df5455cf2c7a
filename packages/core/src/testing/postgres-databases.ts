/**
 * Per-test Postgres databases, copied from a template database migrated once per set of
 * migrations and server; and the sweep of databases that killed test processes left behind.
 * @module
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { silentLogger } from "../logger";
import { type MigrationSource, runMigrations } from "../migrations";
import { createStore, type Store } from "../store";
import { StoreError } from "../store-errors";
import { TEST_DATABASE_URL_ENV, type TestEngine } from "./engines";

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

const postgresTemplates = new Map<string, Promise<string>>();
const sweptServers = new Map<string, Promise<void>>();
const adminStores = new Map<string, Promise<Store>>();

/**
 * One connection pool per server and process for creating and dropping the per-test
 * databases: a new connection for each is a backend started and stopped on the server, twice
 * per test. Idle connections close after two seconds, so that a process that is done exits.
 */
function adminStore(adminUrl: string): Promise<Store> {
  let pending = adminStores.get(adminUrl);
  if (!pending) {
    pending = createStore({
      databaseUrl: adminUrl,
      logger: silentLogger,
      pool: { max: 2, idleTimeoutMs: 2_000 },
    });
    adminStores.set(adminUrl, pending);
    pending.catch(() => adminStores.delete(adminUrl));
  }
  return pending;
}

const serverVersions = new Map<string, Promise<number>>();

/** The server's `server_version_num` (150000 for 15.0), read once per server and process. */
function serverVersion(adminUrl: string): Promise<number> {
  let pending = serverVersions.get(adminUrl);
  if (!pending) {
    pending = adminStore(adminUrl)
      .then((admin) =>
        admin.query<{ v: string }>(sql`select current_setting('server_version_num') as v`),
      )
      .then((rows) => Number(rows[0]?.v ?? 0));
    serverVersions.set(adminUrl, pending);
    pending.catch(() => serverVersions.delete(adminUrl));
  }
  return pending;
}

/** Run an administrative statement, once more if the pool's connection had died. */
async function administer(adminUrl: string, statement: string): Promise<void> {
  const admin = await adminStore(adminUrl);
  try {
    await admin.query(sql.raw(statement));
  } catch (error) {
    if (!StoreError.isInstance(error) || error.kind !== "connection") throw error;
    await admin.query(sql.raw(statement));
  }
}

/** Sweep once per server and process, before the first per-test database is made. */
function sweepOnce(adminUrl: string): Promise<void> {
  let pending = sweptServers.get(adminUrl);
  if (!pending) {
    // A sweep that fails must not fail the test that asked for a database.
    pending = sweepStaleTestDatabases(adminUrl).then(
      () => undefined,
      () => undefined,
    );
    sweptServers.set(adminUrl, pending);
  }
  return pending;
}

/**
 * Drop the per-test databases that test processes of this machine left behind when they
 * were killed (a timeout, a ^C): `gov_test_<pid>_…` whose process is gone. Only on a server
 * on this machine, where those pids are this machine's.
 * @returns the databases dropped.
 */
export async function sweepStaleTestDatabases(adminUrl: string): Promise<string[]> {
  const host = new URL(adminUrl).hostname;
  if (!["127.0.0.1", "localhost", "[::1]", "::1"].includes(host)) return [];
  const admin = await createStore({
    databaseUrl: adminUrl,
    logger: silentLogger,
    pool: { max: 1 },
  });
  const dropped: string[] = [];
  try {
    const rows = await admin.query<{ datname: string }>(
      sql`select datname from pg_database where left(datname, 9) = 'gov_test_'`,
    );
    for (const { datname } of rows) {
      const pid = Number(/^gov_test_(\d+)_[0-9a-f]+$/.exec(datname)?.[1]);
      if (!Number.isSafeInteger(pid) || pid <= 0 || processAlive(pid)) continue;
      try {
        await admin.query(sql.raw(`drop database if exists "${datname}" with (force)`));
        dropped.push(datname);
      } catch {
        // Another process swept it first.
      }
    }
  } finally {
    await admin.close();
  }
  return dropped;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** A template database with `migrations` applied, made once per set and server. */
async function migratedPostgresTemplate(
  adminUrl: string,
  id: string,
  migrations: readonly MigrationSource[],
): Promise<string> {
  const key = `${adminUrl}\0${id}`;
  let pending = postgresTemplates.get(key);
  if (!pending) {
    pending = (async () => {
      const name = `gov_tpl_${id}`;
      // Two connections: one holds the lock in a transaction, the other runs CREATE DATABASE,
      // which cannot run inside a transaction block.
      const lock = await createStore({
        databaseUrl: adminUrl,
        logger: silentLogger,
        pool: { max: 1 },
      });
      const admin = await createStore({
        databaseUrl: adminUrl,
        logger: silentLogger,
        pool: { max: 1 },
      });
      try {
        // Several test processes may start at once: one builds the template, the others wait.
        await lock.transaction(async (tx) => {
          await tx.execute(sql`select pg_advisory_xact_lock(4242, 1)`);
          const exists = await tx.execute<{ ok: boolean }>(
            sql`select exists(select 1 from pg_database where datname = ${name}) as ok`,
          );
          if (exists.rows[0]?.ok) return;
          // Build under a temporary name and rename when complete, so that a template is
          // never seen half-migrated.
          const building = `${name}_b${randomBytes(3).toString("hex")}`;
          await admin.query(sql.raw(`create database "${building}" template template0`));
          const store = await createStore({
            databaseUrl: withDatabase(adminUrl, building),
            logger: silentLogger,
            pool: { max: 1 },
          });
          try {
            await runMigrations(store, migrations);
          } finally {
            await store.close();
          }
          await admin.query(sql.raw(`alter database "${building}" rename to "${name}"`));
        });
      } finally {
        await admin.close();
        await lock.close();
      }
      return name;
    })();
    postgresTemplates.set(key, pending);
    pending.catch(() => postgresTemplates.delete(key));
  }
  return pending;
}

/** A fresh database copied from the migrated template; `dispose()` drops it. */
export async function postgresTestDatabase(
  engine: TestEngine,
  id: string,
  migrations: readonly MigrationSource[],
): Promise<{ databaseUrl: string; dispose(): Promise<void> }> {
  if (!engine.url) {
    throw new Error(
      `${TEST_DATABASE_URL_ENV} is not set; skip this test when engine.available is false`,
    );
  }
  const adminUrl = engine.url;
  await sweepOnce(adminUrl);
  const template = await migratedPostgresTemplate(adminUrl, id, migrations);
  const database = `gov_test_${process.pid}_${randomBytes(5).toString("hex")}`;
  // FILE_COPY copies the template's files: less than half the server's CPU of WAL_LOG (the
  // default since Postgres 15, which added the choice) for these small databases.
  const strategy = (await serverVersion(adminUrl)) >= 150_000 ? " strategy file_copy" : "";
  await administer(adminUrl, `create database "${database}" template "${template}"${strategy}`);
  let disposed: Promise<void> | null = null;
  return {
    databaseUrl: withDatabase(adminUrl, database),
    dispose: () => {
      disposed ??= administer(adminUrl, `drop database if exists "${database}" with (force)`);
      return disposed;
    },
  };
}
