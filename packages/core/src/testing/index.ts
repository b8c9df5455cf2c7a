/**
 * Test helpers for packages built on `@gov/core`: run one database suite on both engines,
 * each test on its own fresh database, without paying initdb or migrations per test.
 *
 * @example
 * ```ts
 * import { createTestStore, testEngines } from "@gov/core/testing";
 *
 * describe.each(testEngines())("audit on $name", (engine) => {
 *   let store: TestStore;
 *   beforeEach(async () => { store = await createTestStore(engine, { migrations: [auditMigrations] }); });
 *   afterEach(() => store.close());
 *   it.skipIf(!engine.available)("appends", async () => { … });
 * });
 * ```
 * @module
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { storeOptionsSchema } from "../config";
import { parseDatabaseUrl } from "../database-url";
import { AgentHaltedError } from "../errors";
import { type Logger, silentLogger } from "../logger";
import { loadMigrations, type MigrationSource, runMigrations } from "../migrations";
import {
  defaultTemplateCacheDirectory,
  ensurePgliteTemplate,
  installedPgliteVersion,
} from "../pglite-template";
import type { AuditEventInput, AuditSink, HaltCheckContext, HaltGuard } from "../ports";
import { createStore, type HealthReport, type Store, type Subscription } from "../store";
import { StoreError } from "../store-errors";
import { openPgliteStore } from "../store-pglite";

export { ensurePgliteTemplate } from "../pglite-template";

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

const pgliteTemplates = new Map<string, Promise<string>>();

/** An archive of a fresh embedded database with `migrations` applied, made once per set. */
async function migratedPgliteTemplate(
  id: string,
  migrations: readonly MigrationSource[],
): Promise<string> {
  let pending = pgliteTemplates.get(id);
  if (!pending) {
    pending = (async () => {
      // Keyed by the PGlite version too (a data directory belongs to one version), in the
      // user's own cache rather than a shared temporary folder.
      const folder = join(defaultTemplateCacheDirectory(), "test-templates");
      const file = join(folder, `pglite-${installedPgliteVersion()}-${id}.tar.gz`);
      if (existsSync(file)) return file;
      const base = await ensurePgliteTemplate();
      const config = storeOptionsSchema.parse({ databaseUrl: "memory://" });
      const target = parseDatabaseUrl("memory://");
      if (target?.engine !== "pglite") throw new Error("unreachable");
      const store = await openPgliteStore(target, config, silentLogger, { template: base });
      try {
        await runMigrations(store, migrations);
        const archive = await (store as unknown as { dump(): Promise<ArrayBuffer> }).dump();
        await mkdir(folder, { recursive: true, mode: 0o700 });
        const staging = `${file}.${process.pid}-${randomBytes(4).toString("hex")}`;
        await writeFile(staging, Buffer.from(archive));
        await rename(staging, file);
      } finally {
        await store.close();
      }
      return file;
    })();
    pgliteTemplates.set(id, pending);
    pending.catch(() => pgliteTemplates.delete(id));
  }
  return pending;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

const postgresTemplates = new Map<string, Promise<string>>();
const sweptServers = new Map<string, Promise<void>>();

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

/** Drop everything a test may have created, then migrate again: a fresh database. */
const RESET_SQL = `
do $$
declare s text;
begin
  for s in select nspname from pg_namespace
    where nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
      and nspname not like 'pg_temp%' and nspname not like 'pg_toast_temp%'
  loop
    execute format('drop schema %I cascade', s);
  end loop;
end $$
`;

const idlePglite = new Map<string, Store[]>();

async function bootPglite(
  id: string,
  migrations: readonly MigrationSource[],
  logger: Logger,
): Promise<Store> {
  const template =
    migrations.length === 0
      ? await ensurePgliteTemplate()
      : await migratedPgliteTemplate(id, migrations);
  const config = storeOptionsSchema.parse({ databaseUrl: "memory://" });
  const target = parseDatabaseUrl("memory://");
  if (target?.engine !== "pglite") throw new Error("unreachable");
  return openPgliteStore(target, config, logger, { template });
}

/**
 * An embedded database for one test. Booting PGlite costs most of a second of CPU, so each
 * test process keeps its instances: when a test closes its store, the database is wiped
 * (every schema dropped, session state discarded) and migrated again, then handed to the
 * next test, which sees a database as fresh as a new one.
 */
async function pooledPgliteStore(
  id: string,
  migrations: readonly MigrationSource[],
  logger: Logger,
): Promise<TestStore> {
  const idle = idlePglite.get(id) ?? [];
  idlePglite.set(id, idle);
  let inner = idle.pop();
  if (inner && !(await inner.health()).ok) {
    await inner.close();
    inner = undefined;
  }
  const store = inner ?? (await bootPglite(id, migrations, logger));
  const subscriptions = new Set<Subscription>();
  let closing: Promise<void> | null = null;
  const recycle = async () => {
    for (const subscription of subscriptions) await subscription.unsubscribe();
    try {
      if (store.closed) return;
      await store.query(sql.raw(RESET_SQL));
      await store.query(sql.raw("create schema public"));
      await store.query(sql.raw("discard all"));
      await runMigrations(store, migrations);
      idle.push(store);
    } catch {
      await store.close();
    }
  };
  const facade: TestStore = {
    engineName: "pglite",
    connectionString: null,
    engine: "pglite",
    description: store.description,
    directory: store.directory,
    db: store.db,
    get closed() {
      return closing !== null || store.closed;
    },
    query: (query) => (closing ? Promise.reject(closedError()) : store.query(query)),
    transaction: (work, options) =>
      closing ? Promise.reject(closedError()) : store.transaction(work, options),
    listen: async (channel, handler, options) => {
      if (closing) throw closedError();
      const subscription = await store.listen(channel, handler, options);
      subscriptions.add(subscription);
      return subscription;
    },
    notify: (channel, payload) =>
      closing ? Promise.reject(closedError()) : store.notify(channel, payload),
    health: async (options) =>
      closing ? { ...(await closedHealth(store)) } : store.health(options),
    close: () => {
      closing ??= recycle();
      return closing;
    },
    [Symbol.asyncDispose]: () => facade.close(),
  };
  return facade;
}

function closedError(): StoreError {
  return new StoreError({ kind: "closed", message: "The store is closed." });
}

async function closedHealth(store: Store): Promise<HealthReport> {
  const error = closedError();
  return {
    ok: false,
    engine: store.engine,
    description: store.description,
    latencyMs: null,
    error: { code: error.code, message: error.message },
  };
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

async function postgresTestDatabase(
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
  const admin = await createStore({
    databaseUrl: adminUrl,
    logger: silentLogger,
    pool: { max: 1 },
  });
  try {
    await admin.query(sql.raw(`create database "${database}" template "${template}"`));
  } finally {
    await admin.close();
  }
  let disposed: Promise<void> | null = null;
  return {
    databaseUrl: withDatabase(adminUrl, database),
    dispose: () => {
      disposed ??= (async () => {
        const cleanup = await createStore({
          databaseUrl: adminUrl,
          logger: silentLogger,
          pool: { max: 1 },
        });
        try {
          await cleanup.query(sql.raw(`drop database if exists "${database}" with (force)`));
        } finally {
          await cleanup.close();
        }
      })();
      return disposed;
    },
  };
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

// ---------------------------------------------------------------------------------------
// Doubles every module's tests need.

/** A logger that keeps what it was told, for assertions on warnings. */
export function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * An audit sink that keeps every event it is given, for assertions on what was recorded.
 * Each `log()` resolves on a later turn of the event loop, as a real sink's does.
 */
export function recordingAuditSink(): AuditSink & { events: AuditEventInput[] } {
  const events: AuditEventInput[] = [];
  return {
    events,
    async log(event) {
      await new Promise((resolve) => setImmediate(resolve));
      events.push(event);
      return { eventId: `event-${events.length}`, isPlaceholder: false };
    },
  };
}

/**
 * A halt guard that refuses the agents in `halted` (as an operator's halt would) and
 * remembers every check it was asked to make, for asserting that the halt check came first.
 */
export function recordingHaltGuard(halted: Iterable<string> = []): HaltGuard & {
  halted: Set<string>;
  calls: { agentId: string; context: HaltCheckContext }[];
} {
  const set = new Set(halted);
  const calls: { agentId: string; context: HaltCheckContext }[] = [];
  return {
    halted: set,
    calls,
    async assertAlive(agentId, context) {
      calls.push({ agentId, context });
      if (set.has(agentId)) {
        throw new AgentHaltedError({
          agentId,
          haltedBy: "operator@example.com",
          reason: "runaway spend",
          path: context.path,
        });
      }
    },
  };
}

/** A store whose every call fails as a refused connection would: a database that is down. */
export function unreachableStore(): Store {
  const fail = async () => {
    throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
  };
  const db = new Proxy(
    {},
    {
      get: () => () => {
        throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
      },
    },
  );
  return {
    engine: "postgres",
    description: "an unreachable Postgres",
    directory: null,
    db,
    closed: false,
    query: fail,
    transaction: fail,
    listen: fail,
    notify: fail,
    health: fail,
    close: async () => {},
    [Symbol.asyncDispose]: async () => {},
  } as unknown as Store;
}

/**
 * A store that can be made unreachable: while `down`, every query and transaction fails
 * as a lost connection would (`STORE_CONNECTION`), and nothing reaches the database.
 */
export function flakyStore(store: Store): { store: Store; setDown(down: boolean): void } {
  let down = false;
  const refuse = () =>
    Promise.reject(
      new StoreError({
        kind: "connection",
        message: "Could not reach the database (ECONNREFUSED).",
      }),
    );
  const wrapped: Store = Object.create(store, {
    query: {
      value: (query: Parameters<Store["query"]>[0]) => (down ? refuse() : store.query(query)),
    },
    transaction: {
      value: (
        work: Parameters<Store["transaction"]>[0],
        options: Parameters<Store["transaction"]>[1],
      ) => (down ? refuse() : store.transaction(work, options)),
    },
  });
  return {
    store: wrapped,
    setDown: (value) => {
      down = value;
    },
  };
}

/** Poll until `condition` holds (or fail after `timeoutMs`). */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A TypeScript fixture running in another OS process, spoken to in JSON lines. */
export interface JsonLinesChild<Line = Record<string, unknown>> {
  /** Write one JSON line to its stdin. */
  send(message: unknown): void;
  /** The next JSON line it prints (rejects, with its stderr, if it exits first). */
  next(): Promise<Line>;
  /** Wait for it to exit; rejects with its stderr unless it exits with 0. */
  exited(): Promise<void>;
  kill(): void;
}

/**
 * Run a TypeScript fixture (through tsx, reading workspace packages from source) in another
 * OS process, for multi-process tests: it reads JSON lines from stdin and prints JSON lines.
 *
 * @example
 * ```ts
 * const child = spawnJsonLinesChild(new URL("./__fixtures__/child.ts", import.meta.url), [url]);
 * expect(await child.next()).toEqual({ event: "ready" });
 * ```
 */
export function spawnJsonLinesChild<Line = Record<string, unknown>>(
  script: URL,
  args: readonly string[],
  options: { cwd: URL; env?: Record<string, string | undefined> },
): JsonLinesChild<Line> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=@gov/source", fileURLToPath(script), ...args],
    { cwd: fileURLToPath(options.cwd), env: options.env ?? process.env },
  );
  const lines: Line[] = [];
  const waiting: ((line: Line) => void)[] = [];
  const exitWaiters: (() => void)[] = [];
  let buffered = "";
  let stderr = "";
  let exit: { code: number | null } | null = null;
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = JSON.parse(buffered.slice(0, newline)) as Line;
      buffered = buffered.slice(newline + 1);
      const waiter = waiting.shift();
      if (waiter) waiter(line);
      else lines.push(line);
      newline = buffered.indexOf("\n");
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.on("close", (code) => {
    exit = { code };
    for (const wake of exitWaiters.splice(0)) wake();
  });
  const failure = () => new Error(`the child exited (code ${exit?.code}): ${stderr}`);
  return {
    send: (message) => {
      child.stdin.write(`${JSON.stringify(message)}\n`);
    },
    next: () => {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (exit) return Promise.reject(failure());
      return new Promise<Line>((resolve, reject) => {
        waiting.push(resolve);
        exitWaiters.push(() => reject(failure()));
      });
    },
    exited: () =>
      new Promise<void>((resolve, reject) => {
        const settle = () => (exit?.code === 0 ? resolve() : reject(failure()));
        if (exit) settle();
        else exitWaiters.push(settle);
      }),
    kill: () => {
      if (!exit) child.kill();
    },
  };
}

/**
 * What `run()`'s promise rejects with, for tests of the rule that a function returning a
 * promise reports bad input by rejecting. Throws (failing the test) when `run` throws
 * synchronously — a caller chaining `.catch()` would miss that — returns no promise, or
 * resolves.
 *
 * @example
 * ```ts
 * const error = await rejectionOf(() => cost.track(agentId, sessionId, null as never));
 * expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options" });
 * ```
 */
export async function rejectionOf(run: () => unknown): Promise<unknown> {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    throw new Error(`threw synchronously instead of rejecting: ${String(error)}`);
  }
  if (!(result instanceof Promise)) throw new Error("did not return a promise");
  try {
    await result;
  } catch (error) {
    return error;
  }
  throw new Error("resolved instead of rejecting");
}
