import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { link, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { StoreConfig } from "./config";
import type { DatabaseTarget } from "./database-url";
import type { Logger } from "./logger";
import { assertPgliteInstalled, ensurePgliteTemplate, missingPgliteError } from "./pglite-template";
import { PgliteThread } from "./pglite-thread";
import type { GovDatabase, Store, Subscription } from "./store";
import { BaseStore, TEXT_RESULT_TYPES } from "./store-base";
import { StoreError, toStoreError } from "./store-errors";

/** Folder of the PGlite data directory inside the governance home. */
export const PGLITE_DATA_FOLDER = "pgdata";
/** Lock file that keeps a second process out of an embedded database. */
export const PGLITE_LOCK_FILE = "pgdata.lock";

/** A FIFO mutex: the embedded database has exactly one connection. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(work);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** Marks the async context of one open transaction. */
interface TransactionToken {
  active: boolean;
}

interface QueryOptions {
  rowMode?: "array" | "object";
  parsers?: Record<number, (value: string, typeId: number) => unknown>;
}

interface QueryResults {
  rows: unknown[];
  fields: { name: string; dataTypeID: number }[];
  affectedRows?: number;
}

/** Type parsers may only be "keep the text": anything else cannot cross the thread. */
function rawTypes(parsers: QueryOptions["parsers"]): number[] {
  if (!parsers) return [];
  const probe = "\u0000gov-probe";
  return Object.entries(parsers).map(([oid, parser]) => {
    if (parser(probe, Number(oid)) !== probe) {
      throw new Error(
        `only pass-through type parsers are supported by the embedded database (type ${oid})`,
      );
    }
    return Number(oid);
  });
}

/**
 * The subset of PGlite's client that drizzle's PGlite driver uses, forwarded to the worker
 * thread. One connection: a transaction holds it from BEGIN to COMMIT, and other queries
 * queue behind it, as in PGlite itself.
 */
class PgliteClient {
  readonly #thread: PgliteThread;
  readonly #mutex = new Mutex();
  readonly #transactionToken = new AsyncLocalStorage<TransactionToken>();

  constructor(thread: PgliteThread) {
    this.#thread = thread;
  }

  #send(
    sqlText: string,
    params: unknown[] | undefined,
    options: QueryOptions | undefined,
  ): Promise<QueryResults> {
    return this.#thread.call("query", {
      sql: sqlText,
      params,
      rowMode: options?.rowMode ?? "object",
      rawTypes: rawTypes(options?.parsers),
    }) as Promise<QueryResults>;
  }

  #assertNotNested(): void {
    if (this.#transactionToken.getStore()?.active) {
      // On one connection this would wait for the transaction it is part of, forever.
      throw new StoreError({
        kind: "query",
        message:
          "A query on the store's own database was made inside store.transaction(); it would wait for that transaction forever. Use the tx argument inside the transaction.",
      });
    }
  }

  query(sqlText: string, params?: unknown[], options?: QueryOptions): Promise<QueryResults> {
    this.#assertNotNested();
    return this.#mutex.run(() => this.#send(sqlText, params, options));
  }

  /** A statement with rows as objects and the {@link TEXT_RESULT_TYPES} kept as text. */
  async queryText(sqlText: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    this.#assertNotNested();
    const result = await this.#mutex.run(
      () =>
        this.#thread.call("query", {
          sql: sqlText,
          params,
          rowMode: "object",
          rawTypes: TEXT_RESULT_TYPES,
        }) as Promise<QueryResults>,
    );
    return result.rows as Record<string, unknown>[];
  }

  exec(sqlText: string): Promise<QueryResults[]> {
    this.#assertNotNested();
    return this.#mutex.run(
      () => this.#thread.call("exec", { sql: sqlText }) as Promise<QueryResults[]>,
    );
  }

  transaction<T>(
    work: (tx: { query: PgliteClient["query"]; exec: PgliteClient["exec"] }) => Promise<T>,
  ): Promise<T> {
    this.#assertNotNested();
    return this.#mutex.run(async () => {
      // The token is shared with everything `work` starts; it goes inactive at the end, so
      // that work outliving the transaction (a timer, a leaked tx) is not mistaken for it.
      const token: TransactionToken = { active: true };
      const ended = () =>
        new StoreError({
          kind: "closed",
          message: "This transaction has already committed or rolled back; use the store instead.",
        });
      const tx = {
        query: (sqlText: string, params?: unknown[], options?: QueryOptions) =>
          token.active ? this.#send(sqlText, params, options) : Promise.reject(ended()),
        exec: (sqlText: string) =>
          token.active
            ? (this.#thread.call("exec", { sql: sqlText }) as Promise<QueryResults[]>)
            : Promise.reject(ended()),
      };
      await tx.exec("BEGIN");
      try {
        const result = await this.#transactionToken.run(token, () => work(tx));
        await tx.exec("COMMIT");
        return result;
      } catch (error) {
        await tx.exec("ROLLBACK").catch(() => undefined);
        throw error;
      } finally {
        token.active = false;
      }
    });
  }

  /** Wait for queued work, then nothing else runs. */
  drain(): Promise<void> {
    return this.#mutex.run(async () => undefined);
  }
}

/** Lock files held (or being taken) by stores of this process. */
const heldHere = new Set<string>();

/** An empty or unreadable lock file younger than this is being written by its owner. */
const LOCK_CREATION_GRACE_MS = 10_000;
/** How long to keep trying while others take over a stale lock. */
const LOCK_ACQUIRE_TIMEOUT_MS = 5_000;

/**
 * Keeps a second process (or a second store in this process) out of an embedded database:
 * two PGlite instances writing one directory would corrupt it. The lock file appears whole
 * or not at all (written aside, then linked into place); a lock left by a process that no
 * longer runs is removed under a takeover file, so that of several contenders exactly one
 * takes it.
 */
class DirectoryLock {
  readonly #path: string;
  readonly #token: string;
  readonly #nonce = randomBytes(8).toString("hex");
  #held = false;
  readonly #onExit = () => this.#releaseSync();

  private constructor(path: string) {
    this.#path = path;
    this.#token = JSON.stringify({
      pid: process.pid,
      host: hostname(),
      nonce: this.#nonce,
      since: new Date().toISOString(),
    });
  }

  static async acquire(directory: string): Promise<DirectoryLock> {
    const path = join(directory, PGLITE_LOCK_FILE);
    const locked = (by: string) =>
      new StoreError({
        kind: "locked",
        message: `The embedded database in ${directory} is open in ${by}; an embedded database serves one process at a time.`,
      });
    if (heldHere.has(path)) throw locked("another store of this process");
    heldHere.add(path);
    try {
      await mkdir(directory, { recursive: true, mode: 0o700 });
      const lock = new DirectoryLock(path);
      // Wall time, as the lock file's modification time it is compared with (no clock here).
      const deadline = Date.now() + LOCK_ACQUIRE_TIMEOUT_MS;
      while (Date.now() < deadline) {
        if (await lock.#tryCreate()) {
          process.once("exit", lock.#onExit);
          return lock;
        }
        let content: string;
        let age: number;
        try {
          content = await readFile(path, "utf8");
          age = Date.now() - (await stat(path)).mtimeMs;
        } catch {
          continue; // Gone in between: try again.
        }
        const holder = parseHolder(content);
        if (!holder && age < LOCK_CREATION_GRACE_MS)
          throw locked("another process, which is opening it");
        // A lock naming this very process, yet held by none of its stores, was left by an
        // earlier process with the same pid (a restarted container): it is stale.
        const ours = holder?.pid === process.pid && holder.host === hostname();
        if (holder && !ours && isAlive(holder)) throw locked(`another process (pid ${holder.pid})`);
        await lock.#takeOverStale(content);
      }
      throw locked("another process that keeps taking it");
    } catch (error) {
      heldHere.delete(path);
      if (StoreError.isInstance(error)) throw error;
      throw new StoreError({
        kind: "connection",
        message: `Cannot take the embedded database's lock in ${directory}: ${(error as Error).message}`,
        cause: error,
      });
    }
  }

  /** Create the lock file with our token; false when one exists. */
  async #tryCreate(): Promise<boolean> {
    const temporary = `${this.#path}.${process.pid}.${this.#nonce}.tmp`;
    await writeFile(temporary, this.#token, { mode: 0o600 });
    try {
      await link(temporary, this.#path);
      this.#held = true;
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    } finally {
      await rm(temporary, { force: true });
    }
  }

  /**
   * Remove a stale lock. Only the process that holds the takeover file may do so, and only
   * after reading, under it, that the lock is still the stale one: a live lock is never
   * removed, and of several contenders exactly one then creates the new lock.
   */
  async #takeOverStale(staleContent: string): Promise<void> {
    const takeover = `${this.#path}.takeover`;
    const temporary = `${takeover}.${process.pid}.${this.#nonce}.tmp`;
    try {
      await writeFile(temporary, this.#token, { mode: 0o600 });
      await link(temporary, takeover);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // Someone else is taking over. A takeover file left by a process that died in those
      // few milliseconds is cleared once it is old.
      const age = await stat(takeover).then(
        (stats) => Date.now() - stats.mtimeMs,
        () => 0,
      );
      if (age > LOCK_CREATION_GRACE_MS) await rm(takeover, { force: true });
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 30));
      return;
    } finally {
      await rm(temporary, { force: true });
    }
    try {
      const current = await readFile(this.#path, "utf8").catch(() => null);
      if (current === staleContent) await rm(this.#path, { force: true });
    } finally {
      await rm(takeover, { force: true });
    }
  }

  async release(): Promise<void> {
    this.#releaseSync();
  }

  #releaseSync(): void {
    if (!this.#held) return;
    this.#held = false;
    heldHere.delete(this.#path);
    process.removeListener("exit", this.#onExit);
    try {
      if (readFileSync(this.#path, "utf8") === this.#token) unlinkSync(this.#path);
    } catch {
      // Already gone.
    }
  }
}

function parseHolder(content: string): { pid: number; host: string } | null {
  try {
    const parsed = JSON.parse(content) as { pid?: unknown; host?: unknown };
    return typeof parsed.pid === "number" && typeof parsed.host === "string"
      ? { pid: parsed.pid, host: parsed.host }
      : null;
  } catch {
    return null;
  }
}

function isAlive(holder: { pid: number; host: string }): boolean {
  // A lock from another host cannot be checked; trust it.
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

class PgliteStore extends BaseStore {
  readonly engine = "pglite" as const;
  readonly directory: string | null;
  readonly #thread: PgliteThread;
  readonly #client: PgliteClient;
  readonly #lock: DirectoryLock | null;
  readonly #logger: Logger;
  readonly #handlers = new Map<string, Set<(payload: string) => void>>();

  constructor(
    db: GovDatabase,
    parts: {
      thread: PgliteThread;
      client: PgliteClient;
      lock: DirectoryLock | null;
      directory: string | null;
    },
    description: string,
    logger: Logger,
  ) {
    super(db, description);
    this.#thread = parts.thread;
    parts.thread.onUnexpectedExit = () => {
      logger.error(
        `The embedded database's thread died; ${description} is closed and its lock released.`,
      );
      void this.close();
    };
    this.#client = parts.client;
    this.#lock = parts.lock;
    this.directory = parts.directory;
    this.#logger = logger;
    parts.thread.onNotification = (channel, payload) => {
      for (const handler of this.#handlers.get(channel) ?? []) {
        try {
          handler(payload);
        } catch (error) {
          this.#logger.warn("A notification handler threw; the others still ran.", {
            channel,
            error,
          });
        }
      }
    };
  }

  protected runQuery(text: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    return this.#client.queryText(text, params);
  }

  protected async subscribe(
    channel: string,
    handler: (payload: string) => void,
  ): Promise<Subscription> {
    let handlers = this.#handlers.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.#handlers.set(channel, handlers);
      try {
        await this.#client.exec(`LISTEN ${channel}`);
      } catch (error) {
        this.#handlers.delete(channel);
        throw toStoreError(error, this.description);
      }
    }
    handlers.add(handler);
    this.#thread.hold(1);
    let active = true;
    return {
      unsubscribe: async () => {
        if (!active) return;
        active = false;
        this.#thread.hold(-1);
        const set = this.#handlers.get(channel);
        set?.delete(handler);
        if (set && set.size === 0) {
          this.#handlers.delete(channel);
          if (!this.closed) await this.#client.exec(`UNLISTEN ${channel}`).catch(() => undefined);
        }
      },
    };
  }

  /** @internal Archive the database (for test templates). */
  async dump(): Promise<ArrayBuffer> {
    this.assertOpen();
    await this.#client.drain();
    return (await this.#thread.call("dump", { compression: "gzip" })) as ArrayBuffer;
  }

  protected async release(): Promise<void> {
    try {
      await this.#client.drain();
      await this.#thread.call("close", null);
    } catch (error) {
      this.#logger.warn("The embedded database did not close cleanly.", { error });
    } finally {
      await this.#thread.terminate();
      await this.#lock?.release();
    }
  }
}

export { assertPgliteInstalled };

/** Whether `error` says that the PGlite package could not be found. */
function isMissingPglite(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    message.includes("@electric-sql/pglite")
  );
}

/**
 * @internal Open an embedded PGlite store on a worker thread.
 * @throws {ConfigError} (a rejection) when `@electric-sql/pglite` is not installed; nothing
 *   is created then.
 */
export async function openPgliteStore(
  target: Extract<DatabaseTarget, { engine: "pglite" }>,
  config: StoreConfig,
  logger: Logger,
  overrides: { template?: string | null } = {},
): Promise<Store> {
  assertPgliteInstalled();
  // Start the thread (and the driver's import) first: both take a while and need nothing
  // from what follows, so they overlap with the lock and the template lookup. The import's
  // failure is handled where it is awaited; marked handled now, it cannot end the process
  // as an unhandled rejection while the lock is being taken.
  const thread = new PgliteThread();
  const driver = import("drizzle-orm/pglite");
  driver.catch(() => undefined);
  let lock: DirectoryLock | null = null;
  try {
    lock = target.directory ? await DirectoryLock.acquire(target.directory) : null;
    const dataDirectory = target.directory ? join(target.directory, PGLITE_DATA_FOLDER) : null;
    const needsTemplate = dataDirectory === null || !existsSync(join(dataDirectory, "PG_VERSION"));
    const template =
      overrides.template !== undefined
        ? overrides.template
        : needsTemplate
          ? await ensurePgliteTemplate({
              cacheDirectory: config.pglite.templateCacheDirectory,
              logger,
            })
          : null;
    const opened = (await thread.call("init", {
      directory: dataDirectory,
      template,
      relaxedDurability: config.pglite.relaxedDurability,
    })) as { serverVersion: string; fromTemplate: boolean; initdb: boolean };
    logger.debug("Embedded database open.", { ...opened, description: target.description });
    const client = new PgliteClient(thread);
    const { drizzle } = await driver;
    const db = drizzle({ client: client as never }) as unknown as GovDatabase;
    return new PgliteStore(
      db,
      { thread, client, lock, directory: target.directory },
      target.description,
      logger,
    );
  } catch (error) {
    const driverError = await driver.then(
      () => null,
      (failure: unknown) => failure,
    );
    await thread.terminate();
    await lock?.release();
    if (isMissingPglite(driverError) || isMissingPglite(error)) throw missingPgliteError();
    const classified = toStoreError(error, target.description);
    if (StoreError.isInstance(classified)) throw classified;
    throw new StoreError({
      kind: "connection",
      message: `Could not open ${target.description}: ${error instanceof Error ? error.message : String(error)}`,
      cause: error,
    });
  }
}
