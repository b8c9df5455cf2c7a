import { sql } from "drizzle-orm";
import type { Client, Pool, PoolClient, PoolConfig } from "pg";
import type { StoreConfig } from "./config";
import type { DatabaseTarget } from "./database-url";
import { ConfigError } from "./errors";
import type { Logger } from "./logger";
import type {
  GovDatabase,
  GovTransaction,
  ListenOptions,
  Store,
  Subscription,
  TransactionOptions,
} from "./store";
import { BaseStore, TEXT_RESULT_TYPES } from "./store-base";
import { StoreError, toStoreError } from "./store-errors";

type PgModule = typeof import("pg");

async function loadPg(): Promise<PgModule> {
  try {
    const module = (await import("pg")) as PgModule & { default?: PgModule };
    return module.default ?? module;
  } catch {
    throw new ConfigError([
      {
        source: "option",
        name: "databaseUrl",
        problem: "points to a real Postgres, but the `pg` driver is not installed.",
        fix: "Install it: npm install pg (or use @gov/sdk, which includes it).",
      },
    ]);
  }
}

type Handler = (payload: string) => void;

/** How often the listening connection is checked, and how long it may take to answer. */
const HEARTBEAT_INTERVAL_MS = 30_000;
const HEARTBEAT_TIMEOUT_MS = 10_000;

/**
 * LISTEN on one dedicated connection (a pooled connection would be handed to other work).
 * When the connection drops, it reconnects with backoff, listens again, and tells
 * subscribers to catch up, since Postgres does not queue notifications for a lost session.
 */
class PostgresListener {
  readonly #pg: PgModule;
  readonly #config: PoolConfig;
  readonly #logger: Logger;
  readonly #description: string;
  readonly #handlers = new Map<string, Set<Handler>>();
  readonly #listening = new Map<string, Promise<void>>();
  readonly #reconnectHandlers = new Set<() => void>();
  #client: Client | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #connecting: Promise<Client> | null = null;
  #closed = false;
  #retryDelayMs = 250;
  #retryTimer: NodeJS.Timeout | null = null;

  constructor(pg: PgModule, config: PoolConfig, logger: Logger, description: string) {
    this.#pg = pg;
    this.#config = config;
    this.#logger = logger;
    this.#description = description;
  }

  async subscribe(
    channel: string,
    handler: Handler,
    options: ListenOptions | undefined,
  ): Promise<Subscription> {
    const client = await this.#connect();
    let listening = this.#listening.get(channel);
    if (!listening) {
      // The first subscriber of a channel issues LISTEN; those who come while it is in
      // flight wait for the same outcome, so that none holds a subscription that never fires.
      this.#handlers.set(channel, new Set());
      listening = client.query(`LISTEN ${channel}`).then(
        () => undefined,
        (error: unknown) => {
          this.#handlers.delete(channel);
          this.#listening.delete(channel);
          throw toStoreError(error, this.#description);
        },
      );
      this.#listening.set(channel, listening);
    }
    await listening;
    const handlers = this.#handlers.get(channel);
    if (!handlers) throw new StoreError({ kind: "closed", message: "The store is closed." });
    handlers.add(handler);
    const onReconnect = options?.onReconnect;
    if (onReconnect) this.#reconnectHandlers.add(onReconnect);
    let active = true;
    return {
      unsubscribe: async () => {
        if (!active) return;
        active = false;
        if (onReconnect) this.#reconnectHandlers.delete(onReconnect);
        const set = this.#handlers.get(channel);
        set?.delete(handler);
        if (set && set.size === 0) {
          this.#handlers.delete(channel);
          this.#listening.delete(channel);
          await this.#client?.query(`UNLISTEN ${channel}`).catch(() => undefined);
        }
      },
    };
  }

  async #connect(): Promise<Client> {
    if (this.#closed) throw new StoreError({ kind: "closed", message: "The store is closed." });
    if (this.#client) return this.#client;
    if (!this.#connecting) {
      this.#connecting = this.#open().finally(() => {
        this.#connecting = null;
      });
    }
    return this.#connecting;
  }

  async #open(): Promise<Client> {
    // TCP keepalive, and a heartbeat below: a half-open connection (a NAT timeout, a
    // failover that drops packets) raises no error by itself, and notifications would
    // silently stop.
    const client = new this.#pg.Client({
      ...this.#config,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client.on("notification", (message) => {
      const handlers = this.#handlers.get(message.channel);
      if (!handlers) return;
      for (const handler of handlers) {
        try {
          handler(message.payload ?? "");
        } catch (error) {
          this.#logger.warn("A notification handler threw; the others still ran.", {
            channel: message.channel,
            error,
          });
        }
      }
    });
    client.on("error", (error) => {
      this.#logger.warn(`The listening connection to ${this.#description} failed; reconnecting.`, {
        code: (error as NodeJS.ErrnoException).code,
      });
      this.#lost(client);
    });
    client.on("end", () => this.#lost(client));
    try {
      await client.connect();
      for (const channel of this.#handlers.keys()) await client.query(`LISTEN ${channel}`);
    } catch (error) {
      client.removeAllListeners("end");
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
      throw toStoreError(error, this.#description);
    }
    this.#client = client;
    this.#retryDelayMs = 250;
    this.#startHeartbeat(client);
    return client;
  }

  #startHeartbeat(client: Client): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      let timer: NodeJS.Timeout | undefined;
      Promise.race([
        client.query("select 1"),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("heartbeat timed out")), HEARTBEAT_TIMEOUT_MS);
        }),
      ]).then(
        () => clearTimeout(timer),
        () => {
          clearTimeout(timer);
          this.#logger.warn(
            `The listening connection to ${this.#description} stopped answering; reconnecting.`,
          );
          this.#lost(client);
        },
      );
    }, HEARTBEAT_INTERVAL_MS);
    this.#heartbeat.unref();
  }

  #lost(client: Client): void {
    if (this.#client !== client) return;
    this.#client = null;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    client.removeAllListeners("end");
    client.on("error", () => undefined);
    client.end().catch(() => undefined);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer || this.#handlers.size === 0) return;
    const delay = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, 5_000);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#connect().then(
        () => {
          for (const handler of this.#reconnectHandlers) {
            try {
              handler();
            } catch (error) {
              this.#logger.warn("An onReconnect handler threw.", { error });
            }
          }
        },
        () => this.#scheduleReconnect(),
      );
    }, delay);
    this.#retryTimer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const client = this.#client ?? (await this.#connecting?.catch(() => null)) ?? null;
    this.#client = null;
    if (client) {
      client.removeAllListeners("end");
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
    }
  }
}

class PostgresStore extends BaseStore {
  readonly engine = "postgres" as const;
  readonly directory = null;
  readonly #pool: Pool;
  readonly #listener: PostgresListener;
  readonly #bind: (client: PoolClient) => GovDatabase;
  /** A drizzle database bound to each pooled connection, made once per connection. */
  readonly #bound = new WeakMap<PoolClient, GovDatabase>();
  readonly #types: {
    getTypeParser: (oid: number, format?: "text" | "binary") => (value: string) => unknown;
  };

  constructor(
    db: GovDatabase,
    pool: Pool,
    listener: PostgresListener,
    description: string,
    pg: PgModule,
    bind: (client: PoolClient) => GovDatabase,
  ) {
    super(db, description);
    this.#pool = pool;
    this.#listener = listener;
    this.#bind = bind;
    const text = new Set(TEXT_RESULT_TYPES);
    const keep = (value: string) => value;
    this.#types = {
      getTypeParser: (oid, format) =>
        text.has(oid)
          ? keep
          : (pg.types.getTypeParser(oid, format ?? "text") as (value: string) => unknown),
    };
  }

  protected async runQuery(text: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    const result = await this.#pool.query({ text, values: params, types: this.#types });
    return result.rows;
  }

  /**
   * drizzle's own pooled transaction leaks its connection when BEGIN fails (it releases only
   * after BEGIN succeeded), and an outage makes BEGIN fail on a connection whose socket just
   * died: a few of those and the pool is full of dead connections forever. Here the
   * connection is checked out and always released, and one that broke is destroyed.
   */
  protected override async runTransaction<T>(
    work: (tx: GovTransaction) => Promise<T>,
    config: { isolationLevel: NonNullable<TransactionOptions["isolationLevel"]> } | undefined,
  ): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      let db = this.#bound.get(client);
      if (!db) {
        db = this.#bind(client);
        this.#bound.set(client, db);
      }
      return await db.transaction(work, config);
    } catch (error) {
      const classified = toStoreError(error);
      if (
        StoreError.isInstance(classified) &&
        (classified.kind === "connection" || classified.kind === "closed")
      ) {
        broken = classified;
      }
      throw error;
    } finally {
      // pg-pool also drops a connection that is no longer queryable; `broken` covers the
      // failures it cannot see from the client's state.
      client.release(broken);
    }
  }

  protected subscribe(
    channel: string,
    handler: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<Subscription> {
    return this.#listener.subscribe(channel, handler, options);
  }

  protected async release(): Promise<void> {
    await this.#listener.close();
    await this.#pool.end().catch(() => undefined);
  }
}

/** @internal Open a store over a real Postgres. */
export async function openPostgresStore(
  target: Extract<DatabaseTarget, { engine: "postgres" }>,
  config: StoreConfig,
  logger: Logger,
): Promise<Store> {
  const pg = await loadPg();
  const { drizzle } = await import("drizzle-orm/node-postgres");
  // The password is handed to pg as a function, never as a string or inside the connection
  // string: pg keeps its options on the pool, where a console.log(store) would print them.
  const { parse } = await import("pg-connection-string");
  const { password, ...parsed } = parse(target.connectionString);
  const connection: PoolConfig = {
    ...(parsed as PoolConfig),
    ...(password ? { password: () => password } : {}),
    connectionTimeoutMillis: config.pool.connectionTimeoutMs,
    application_name: config.applicationName,
    ...(config.pool.statementTimeoutMs > 0
      ? { statement_timeout: config.pool.statementTimeoutMs }
      : {}),
  };
  const pool = new pg.Pool({
    ...connection,
    max: config.pool.max,
    idleTimeoutMillis: config.pool.idleTimeoutMs,
  });
  // A connection that breaks while checked out (between the statements of a transaction)
  // emits "error" on its client; unhandled, that would crash the host. The statement that
  // next uses it fails and is classified, so here it only needs a listener.
  pool.on("connect", (client) => {
    client.on("error", (error) => {
      logger.debug(`A connection to ${target.description} failed while in use.`, {
        code: (error as NodeJS.ErrnoException).code,
      });
    });
  });
  // An idle client's error is emitted on the pool; unhandled, it would crash the host.
  pool.on("error", (error) => {
    logger.warn(`An idle connection to ${target.description} failed; the pool replaces it.`, {
      code: (error as NodeJS.ErrnoException).code,
    });
  });
  const db = drizzle({ client: pool }) as unknown as GovDatabase;
  const listener = new PostgresListener(pg, connection, logger, target.description);
  const store = new PostgresStore(
    db,
    pool,
    listener,
    target.description,
    pg,
    (client) => drizzle({ client }) as unknown as GovDatabase,
  );
  try {
    await store.query(sql`select 1`);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
