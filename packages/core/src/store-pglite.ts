import { AsyncLocalStorage } from "node:async_hooks";
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { mkdir, open, readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { StoreConfig } from "./config";
import type { DatabaseTarget } from "./database-url";
import type { Logger } from "./logger";
import { ensurePgliteTemplate } from "./pglite-template";
import { PgliteThread } from "./pglite-thread";
import type { GovDatabase, Store, Subscription } from "./store";
import { BaseStore } from "./store-base";
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
  readonly #insideTransaction = new AsyncLocalStorage<boolean>();

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
    if (this.#insideTransaction.getStore()) {
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
      const tx = {
        query: (sqlText: string, params?: unknown[], options?: QueryOptions) =>
          this.#send(sqlText, params, options),
        exec: (sqlText: string) =>
          this.#thread.call("exec", { sql: sqlText }) as Promise<QueryResults[]>,
      };
      await tx.exec("BEGIN");
      let result: T;
      try {
        result = await this.#insideTransaction.run(true, () => work(tx));
      } catch (error) {
        await tx.exec("ROLLBACK").catch(() => undefined);
        throw error;
      }
      const [commit] = await tx.exec("COMMIT");
      if ((commit as { command?: string } | undefined)?.command === "ROLLBACK") {
        throw new StoreError({
          kind: "query",
          message:
            "The transaction was rolled back at COMMIT because a statement inside it had failed.",
        });
      }
      return result;
    });
  }

  /** Wait for queued work, then nothing else runs. */
  drain(): Promise<void> {
    return this.#mutex.run(async () => undefined);
  }
}

/**
 * Keeps a second process (or a second store in this process) out of an embedded database:
 * two PGlite instances writing one directory would corrupt it. A lock left by a process that
 * no longer runs is taken over.
 */
class DirectoryLock {
  readonly #path: string;
  readonly #token: string;
  #held = false;
  readonly #onExit = () => this.#releaseSync();

  private constructor(path: string) {
    this.#path = path;
    this.#token = JSON.stringify({
      pid: process.pid,
      host: hostname(),
      since: new Date().toISOString(),
    });
  }

  static async acquire(directory: string): Promise<DirectoryLock> {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const lock = new DirectoryLock(join(directory, PGLITE_LOCK_FILE));
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(lock.#path, "wx", 0o600);
        await handle.writeFile(lock.#token);
        await handle.close();
        lock.#held = true;
        process.once("exit", lock.#onExit);
        return lock;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new StoreError({
            kind: "connection",
            message: `Cannot create the embedded database's lock file in ${directory}: ${(error as Error).message}`,
            cause: error,
          });
        }
      }
      const holder = await readHolder(lock.#path);
      if (holder && isAlive(holder)) {
        throw new StoreError({
          kind: "locked",
          message: `The embedded database in ${directory} is open in another ${holder.pid === process.pid ? "store of this process" : `process (pid ${holder.pid})`}; an embedded database serves one process at a time.`,
        });
      }
      await unlink(lock.#path).catch(() => undefined);
    }
    throw new StoreError({
      kind: "locked",
      message: `Could not take the lock of the embedded database in ${directory}.`,
    });
  }

  async release(): Promise<void> {
    this.#releaseSync();
  }

  #releaseSync(): void {
    if (!this.#held) return;
    this.#held = false;
    process.removeListener("exit", this.#onExit);
    try {
      if (readFileSync(this.#path, "utf8") === this.#token) unlinkSync(this.#path);
    } catch {
      // Already gone.
    }
  }
}

async function readHolder(path: string): Promise<{ pid: number; host: string } | null> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as { pid?: unknown; host?: unknown };
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

/** @internal Open an embedded PGlite store on a worker thread. */
export async function openPgliteStore(
  target: Extract<DatabaseTarget, { engine: "pglite" }>,
  config: StoreConfig,
  logger: Logger,
  overrides: { template?: string | null } = {},
): Promise<Store> {
  // Start the thread (and the driver's import) first: both take a while and need nothing
  // from what follows, so they overlap with the lock and the template lookup.
  const thread = new PgliteThread();
  const driver = import("drizzle-orm/pglite");
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
    await driver.catch(() => undefined);
    await thread.terminate();
    await lock?.release();
    throw toStoreError(error, target.description);
  }
}
