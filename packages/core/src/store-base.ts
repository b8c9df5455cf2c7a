import { inspect } from "node:util";
import { type SQL, sql } from "drizzle-orm";
import type { PgDialect } from "drizzle-orm/pg-core";
import {
  acquireTransactionLock,
  assertChannel,
  assertPayload,
  type GovDatabase,
  type GovTransaction,
  type HealthReport,
  type ListenOptions,
  type Store,
  type Subscription,
  type TransactionOptions,
} from "./store";
import { StoreError, toStoreError } from "./store-errors";

/**
 * Types whose values stay as the database's text in query results (timestamps, dates,
 * intervals and arrays of them, numeric arrays): the same choice drizzle makes, so that a
 * raw query and a drizzle query read a row alike on both engines.
 */
export const TEXT_RESULT_TYPES: readonly number[] = [
  1184, 1114, 1082, 1186, 1231, 1115, 1185, 1187, 1182,
];

/**
 * Postgres turns COMMIT of a transaction in which a statement failed into a silent
 * ROLLBACK. When `work` caught such a failure and returned normally, the caller would be
 * told its writes were committed while nothing was; one statement before COMMIT tells.
 */
async function assertNotAborted(tx: GovTransaction): Promise<void> {
  try {
    await tx.execute(sql`select 1`);
  } catch (error) {
    const classified = toStoreError(error);
    if (StoreError.isInstance(classified) && classified.sqlState === "25P02") {
      throw new StoreError({
        kind: "query",
        sqlState: "25P02",
        message:
          "A statement inside the transaction failed and its error was caught; Postgres rolled the whole transaction back, so nothing was committed.",
        cause: error,
      });
    }
    throw classified;
  }
}

/**
 * What both engines share: errors classified at every exit, use after close refused,
 * advisory locks taken first in a transaction, NOTIFY, and the health check. An engine
 * supplies LISTEN and the release of its connections.
 */
export abstract class BaseStore implements Store {
  abstract readonly engine: "postgres" | "pglite";
  abstract readonly directory: string | null;
  readonly description: string;
  readonly db: GovDatabase;
  #closing: Promise<void> | null = null;

  constructor(db: GovDatabase, description: string) {
    this.db = db;
    this.description = description;
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /** @throws {StoreError} `STORE_CLOSED` after {@link close}. */
  protected assertOpen(): void {
    if (this.#closing) {
      throw new StoreError({
        kind: "closed",
        message: `The store (${this.description}) is closed.`,
      });
    }
  }

  async query<Row extends Record<string, unknown>>(query: SQL): Promise<Row[]> {
    this.assertOpen();
    // Straight to the driver: the hot checks of every module go through here, and drizzle's
    // session would build a prepared-query object with a dozen closures for each call.
    const { sql: text, params } = (this.db as unknown as { dialect: PgDialect }).dialect.sqlToQuery(
      query,
    );
    try {
      return (await this.runQuery(text, params)) as Row[];
    } catch (error) {
      throw toStoreError(error, this.description);
    }
  }

  /**
   * Run one parameterized statement outside a transaction and return its rows, with the
   * date and time types (and numeric arrays) left as the database's text, as drizzle does.
   */
  protected abstract runQuery(text: string, params: unknown[]): Promise<Record<string, unknown>[]>;

  async transaction<T>(
    work: (tx: GovTransaction) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    this.assertOpen();
    try {
      return await this.runTransaction(
        async (tx) => {
          for (const lock of options?.locks ?? []) await acquireTransactionLock(tx, lock);
          const result = await work(tx);
          await assertNotAborted(tx);
          return result;
        },
        options?.isolationLevel ? { isolationLevel: options.isolationLevel } : undefined,
      );
    } catch (error) {
      throw toStoreError(error, this.description);
    }
  }

  /** Run drizzle's BEGIN … COMMIT around `work`; an engine may manage the connection itself. */
  protected runTransaction<T>(
    work: (tx: GovTransaction) => Promise<T>,
    config: { isolationLevel: NonNullable<TransactionOptions["isolationLevel"]> } | undefined,
  ): Promise<T> {
    return this.db.transaction(work, config);
  }

  async listen(
    channel: string,
    handler: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<Subscription> {
    assertChannel(channel);
    this.assertOpen();
    return this.subscribe(channel, handler, options);
  }

  /** Engine-specific LISTEN; the channel is already validated. */
  protected abstract subscribe(
    channel: string,
    handler: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<Subscription>;

  async notify(channel: string, payload = ""): Promise<void> {
    assertChannel(channel);
    assertPayload(payload);
    await this.query(sql`select pg_notify(${channel}, ${payload})`);
  }

  async health(options?: { timeoutMs?: number }): Promise<HealthReport> {
    const timeoutMs = options?.timeoutMs ?? 2_000;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.query(sql`select 1 as ok`),
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new StoreError({
                  kind: "timeout",
                  message: `The database did not answer within ${timeoutMs} ms.`,
                }),
              ),
            timeoutMs,
          );
        }),
      ]);
      return {
        ok: true,
        engine: this.engine,
        description: this.description,
        latencyMs: performance.now() - started,
        error: null,
      };
    } catch (error) {
      const classified = toStoreError(error, this.description);
      return {
        ok: false,
        engine: this.engine,
        description: this.description,
        latencyMs: null,
        error: StoreError.isInstance(classified)
          ? { code: classified.code, message: classified.message }
          : { code: "STORE_QUERY_FAILED", message: "The health check failed." },
      };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.release();
    return this.#closing;
  }

  /** Release the engine's connections; called once. */
  protected abstract release(): Promise<void>;

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** What `console.log(store)` shows: the engine and the safe description, never the driver's options. */
  [inspect.custom](): string {
    return `Store(${this.engine}, ${this.description}${this.closed ? ", closed" : ""})`;
  }

  toJSON(): { engine: string; description: string; closed: boolean } {
    return { engine: this.engine, description: this.description, closed: this.closed };
  }
}
