import { sql } from "drizzle-orm";
import type { Client, Pool, PoolConfig } from "pg";
import type { StoreConfig } from "./config";
import type { DatabaseTarget } from "./database-url";
import { ConfigError } from "./errors";
import type { Logger } from "./logger";
import type { GovDatabase, ListenOptions, Store, Subscription } from "./store";
import { BaseStore } from "./store-base";
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
  readonly #reconnectHandlers = new Set<() => void>();
  #client: Client | null = null;
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
    let handlers = this.#handlers.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.#handlers.set(channel, handlers);
      try {
        await client.query(`LISTEN ${channel}`);
      } catch (error) {
        this.#handlers.delete(channel);
        throw toStoreError(error, this.#description);
      }
    }
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
    const client = new this.#pg.Client(this.#config);
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
    return client;
  }

  #lost(client: Client): void {
    if (this.#client !== client) return;
    this.#client = null;
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

  constructor(db: GovDatabase, pool: Pool, listener: PostgresListener, description: string) {
    super(db, description);
    this.#pool = pool;
    this.#listener = listener;
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
  const connection: PoolConfig = {
    connectionString: target.connectionString,
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
  // An idle client's error is emitted on the pool; unhandled, it would crash the host.
  pool.on("error", (error) => {
    logger.warn(`An idle connection to ${target.description} failed; the pool replaces it.`, {
      code: (error as NodeJS.ErrnoException).code,
    });
  });
  const db = drizzle({ client: pool }) as unknown as GovDatabase;
  const listener = new PostgresListener(pg, connection, logger, target.description);
  const store = new PostgresStore(db, pool, listener, target.description);
  try {
    await store.query(sql`select 1`);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
