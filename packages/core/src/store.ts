import { createHash } from "node:crypto";
import { type ExtractTablesWithRelations, type SQL, sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from "drizzle-orm/pg-core";
import { readConfig, type StoreConfig, type StoreOptionsInput, storeOptionsSchema } from "./config";
import { type DatabaseTarget, parseDatabaseUrl } from "./database-url";
import { ConfigError, InvalidArgumentError, requireOptionsObject } from "./errors";
import type { Logger } from "./logger";
import { createConsoleLogger } from "./logger";

/** Result of `db.execute()` on either engine: both drivers return `{ rows }`. */
export interface GovQueryResult<Row> {
  rows: Row[];
}

/** drizzle's result-type slot for {@link GovQueryResult}. */
export interface GovQueryResultHKT extends PgQueryResultHKT {
  type: GovQueryResult<this["row"]>;
}

/**
 * The drizzle database of a store. The same API over real Postgres and PGlite; write queries
 * with drizzle's builder (or `sql` templates, always parameterized) and they run on both.
 */
export type GovDatabase = PgDatabase<GovQueryResultHKT, Record<string, never>>;

/** A transaction: the drizzle database bound to one connection, inside BEGIN … COMMIT. */
export type GovTransaction = PgTransaction<
  GovQueryResultHKT,
  Record<string, never>,
  ExtractTablesWithRelations<Record<string, never>>
>;

/** Isolation levels Postgres offers. */
export type IsolationLevel = "read committed" | "repeatable read" | "serializable";

/** Options of {@link Store.transaction}. */
export interface TransactionOptions {
  /** The isolation level. @default "read committed" */
  isolationLevel?: IsolationLevel;
  /**
   * Advisory lock names to take (in this order) as the transaction's first statements; they
   * are held until it commits or rolls back. See {@link acquireTransactionLock}.
   */
  locks?: readonly string[];
}

/** A subscription made with {@link Store.listen}. */
export interface Subscription {
  /** Stop receiving notifications; safe to call twice. */
  unsubscribe(): Promise<void>;
}

/** Options of {@link Store.listen}. */
export interface ListenOptions {
  /**
   * Called after the listening connection was lost and re-established. Notifications sent
   * in between are lost (Postgres does not queue them): poll the state you follow here.
   */
  onReconnect?: () => void;
}

/** What {@link Store.health} reports. Never contains the connection string. */
export interface HealthReport {
  ok: boolean;
  engine: "postgres" | "pglite";
  /** Safe description of the database, e.g. `Postgres at db:5432/gov`. */
  description: string;
  /** Round-trip time of `select 1`, when it succeeded. */
  latencyMs: number | null;
  /** The failure, when `ok` is false. */
  error: { code: string; message: string } | null;
}

/**
 * One drizzle-backed store over either a real Postgres (a `pg` pool) or an embedded PGlite
 * (on a worker thread, in a directory or in memory). Every module keeps its data here, in
 * its own Postgres schema.
 *
 * Create it with {@link createStore}; close it with {@link Store.close} (or `await using`).
 */
export interface Store extends AsyncDisposable {
  /** Which engine runs underneath. */
  readonly engine: "postgres" | "pglite";
  /** Safe description for logs: never the connection string. */
  readonly description: string;
  /**
   * The governance home of an embedded database (where the key file and spools live), or
   * `null` for a real Postgres or `memory://`.
   */
  readonly directory: string | null;
  /** The drizzle database. */
  readonly db: GovDatabase;
  /** True once {@link Store.close} was called. */
  readonly closed: boolean;

  /**
   * Run a raw, parameterized query and return its rows.
   *
   * @example
   * ```ts
   * const rows = await store.query<{ n: number }>(sql`select ${41} + 1 as n`);
   * ```
   * @throws {StoreError} classified (connection, unique, serialization, deadlock, …).
   */
  query<Row extends Record<string, unknown> = Record<string, unknown>>(query: SQL): Promise<Row[]>;

  /**
   * Run `work` in a transaction on one connection. Commits when it resolves, rolls back
   * when it throws (and rethrows, database errors classified as {@link StoreError}).
   * Inside, use the `tx` argument for every query.
   *
   * @example
   * ```ts
   * await store.transaction(async (tx) => {
   *   await tx.insert(events).values(row);
   * }, { locks: [`gov_audit:session:${sessionId}`] });
   * ```
   */
  transaction<T>(
    work: (tx: GovTransaction) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;

  /**
   * Receive Postgres notifications on `channel` (a lower-case identifier, ≤ 63 bytes).
   * Works on both engines; on Postgres one dedicated connection listens and reconnects by
   * itself.
   */
  listen(
    channel: string,
    handler: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<Subscription>;

  /**
   * Send a notification on `channel` (payload < 8000 bytes). Inside a transaction, send it
   * with `pg_notify` on `tx` instead so that it is delivered only on commit.
   */
  notify(channel: string, payload?: string): Promise<void>;

  /** Check that the database answers; never throws. */
  health(options?: { timeoutMs?: number }): Promise<HealthReport>;

  /** Close every connection (and stop the embedded database). Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link createStore}. */
export interface CreateStoreOptions extends StoreOptionsInput {
  /** Where log lines go. @default a console logger at "info" */
  logger?: Logger;
  /** Directory relative paths are resolved against. @default process.cwd() */
  cwd?: string;
  /**
   * Whether this is a production deployment (the SDK passes `NODE_ENV === "production"`).
   * An embedded database in production is warned about, once per process: PGlite runs
   * with `fsync` off, so a power failure can lose what it wrote. @default false
   */
  production?: boolean;
}

/** Whether the embedded-database-in-production warning was given in this process. */
let warnedEmbeddedInProduction = false;

/** The warning given once per process when production runs on the embedded database. */
export const EMBEDDED_IN_PRODUCTION_WARNING =
  "The embedded database (PGlite) is for development: it runs with fsync off, so a power failure or an operating-system crash can lose recent writes, audit evidence included. Set GOVERNANCE_DATABASE_URL=postgres://… in production.";

/**
 * Open a store.
 *
 * - `databaseUrl: "postgres://…"`: a `pg` pool of `pool.max` connections.
 * - `databaseUrl: "memory://"`: an embedded PGlite in memory, gone on close.
 * - a directory (or `file:` URL): an embedded PGlite kept in that directory.
 * - no URL: an embedded PGlite in `./.governance/`, with a one-line notice.
 *
 * The embedded database runs on a worker thread so that it never holds the host's event
 * loop, and its first start copies a pre-initialized data directory instead of running
 * initdb. One process at a time may open an embedded directory; a second is refused with
 * `STORE_LOCKED`.
 *
 * @example
 * ```ts
 * await using store = await createStore({ databaseUrl: process.env.GOVERNANCE_DATABASE_URL });
 * const report = await store.health();
 * ```
 * @throws {ConfigError} for bad options, and when the driver the URL needs is not installed
 *   (`pg` for postgres://, `@electric-sql/pglite` otherwise): the error says what to
 *   install, and nothing was created. {@link StoreError} when the database cannot be opened.
 */
export async function createStore(options: CreateStoreOptions = {}): Promise<Store> {
  requireOptionsObject(
    options,
    "options",
    "Pass { databaseUrl, pool, pglite, logger, cwd, production }, or nothing for the embedded database in ./.governance/.",
  );
  const { logger = createConsoleLogger(), cwd, production = false, ...rest } = options;
  const config = readConfig(storeOptionsSchema, [], {}, { options: rest, env: {} });
  const target = resolveTarget(config, cwd);
  if (target.engine === "postgres") {
    const { openPostgresStore } = await import("./store-postgres");
    return openPostgresStore(target, config, logger);
  }
  const { assertPgliteInstalled, openPgliteStore } = await import("./store-pglite");
  // Without the driver, say what to install before announcing a database it cannot open.
  assertPgliteInstalled();
  if (production && !warnedEmbeddedInProduction) {
    warnedEmbeddedInProduction = true;
    logger.warn(EMBEDDED_IN_PRODUCTION_WARNING, { database: target.description });
  }
  if (target.isDefault) {
    logger.info(
      `No database URL given: using the embedded database in ${target.directory} (set GOVERNANCE_DATABASE_URL=postgres://… for a real Postgres).`,
    );
  }
  return openPgliteStore(target, config, logger);
}

/** Parse the configured URL into a target; the config schema has already vetted it. */
export function resolveTarget(
  config: Pick<StoreConfig, "databaseUrl">,
  cwd?: string,
): DatabaseTarget {
  const target = parseDatabaseUrl(config.databaseUrl, cwd);
  if (!target) {
    throw new ConfigError([
      {
        source: "option",
        name: "databaseUrl",
        problem: "is not a postgres:// URL, memory://, a file: URL, or a directory path.",
        fix: "Use postgres://user:password@host:5432/database, memory://, or a directory path.",
      },
    ]);
  }
  return target;
}

/**
 * The 64-bit advisory lock key of a lock name: the first 8 bytes of its SHA-256, as a
 * signed integer. Deterministic across processes and engines, so every process that locks
 * `gov_audit:session:42` contends for the same lock.
 */
export function advisoryLockKey(name: string): bigint {
  if (typeof name !== "string" || name.length === 0 || name.length > 512) {
    throw new InvalidArgumentError(
      "lock name",
      "must be a non-empty string of at most 512 characters.",
      "Name locks like `<schema>:<what>:<id>`.",
    );
  }
  return createHash("sha256").update(name, "utf8").digest().readBigInt64BE(0);
}

/**
 * Take a transaction-scoped advisory lock: waits until no other transaction holds `name`,
 * then holds it until this transaction commits or rolls back. This is how appends to one
 * audit session, or migrations of one module, are serialized across processes.
 *
 * @example
 * ```ts
 * await store.transaction(async (tx) => {
 *   await acquireTransactionLock(tx, `gov_cost:agent:${agentId}`);
 *   // … read, check and update, with no other process in between
 * });
 * ```
 */
export async function acquireTransactionLock(tx: GovTransaction, name: string): Promise<void> {
  const key = advisoryLockKey(name);
  await tx.execute(sql`select pg_advisory_xact_lock(${key.toString()}::bigint)`);
}

/**
 * Like {@link acquireTransactionLock} but does not wait.
 * @returns true when the lock was taken, false when another transaction holds it.
 */
export async function tryAcquireTransactionLock(
  tx: GovTransaction,
  name: string,
): Promise<boolean> {
  const key = advisoryLockKey(name);
  const result = await tx.execute<{ locked: boolean }>(
    sql`select pg_try_advisory_xact_lock(${key.toString()}::bigint) as locked`,
  );
  return result.rows[0]?.locked === true;
}

const CHANNEL_PATTERN = /^[a-z_][a-z0-9_]*$/;
/** Largest NOTIFY payload Postgres accepts, in bytes (exclusive). */
export const MAX_NOTIFY_PAYLOAD_BYTES = 8000;

/** @internal Validate a LISTEN/NOTIFY channel name. */
export function assertChannel(channel: string): void {
  if (
    typeof channel !== "string" ||
    !CHANNEL_PATTERN.test(channel) ||
    Buffer.byteLength(channel) > 63
  ) {
    throw new InvalidArgumentError(
      "channel",
      "must be a lower-case identifier (letters, digits, underscores; not starting with a digit) of at most 63 bytes.",
      "Use a name like gov_scope_policies.",
    );
  }
}

/** @internal Validate a NOTIFY payload. */
export function assertPayload(payload: string): void {
  if (
    typeof payload !== "string" ||
    Buffer.byteLength(payload, "utf8") >= MAX_NOTIFY_PAYLOAD_BYTES
  ) {
    throw new InvalidArgumentError(
      "payload",
      `must be a string shorter than ${MAX_NOTIFY_PAYLOAD_BYTES} bytes.`,
      "Send an id and let listeners read the row, instead of the row itself.",
    );
  }
}

/** @internal Shared by both engines: begin statement options. */
export function transactionConfig(options: TransactionOptions | undefined) {
  return options?.isolationLevel ? { isolationLevel: options.isolationLevel } : undefined;
}
