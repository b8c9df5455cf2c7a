import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GovernanceError, InvalidArgumentError } from "./errors";
import { silentLogger } from "./logger";
import {
  acquireTransactionLock,
  advisoryLockKey,
  createStore,
  tryAcquireTransactionLock,
} from "./store";
import { StoreError } from "./store-errors";
import { createTestStore, type TestEngine, type TestStore, testEngines } from "./testing";

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.each(testEngines())("store on $name", (engine: TestEngine) => {
  let store: TestStore;

  beforeEach(async () => {
    if (engine.available) store = await createTestStore(engine);
  });

  afterEach(async () => {
    await store?.close();
  });

  it.skipIf(!engine.available)("runs parameterized queries and reports its engine", async () => {
    const hostile = "'; drop table pg_class; --";
    const rows = await store.query<{ n: number; echoed: string }>(
      sql`select ${41}::int + 1 as n, ${hostile}::text as echoed`,
    );
    expect(rows).toEqual([{ n: 42, echoed: hostile }]);
    expect(store.engine).toBe(engine.name);
    expect(store.description).not.toMatch(/postgres:\/\/\w+@/);
  });

  it.skipIf(!engine.available)(
    "commits a transaction and rolls one back when its work throws",
    async () => {
      await store.query(sql`create table items (id int primary key)`);
      await store.transaction(async (tx) => {
        await tx.execute(sql`insert into items values (1)`);
      });
      const failure = new Error("boom");
      await expect(
        store.transaction(async (tx) => {
          await tx.execute(sql`insert into items values (2)`);
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await store.query(sql`select id from items order by id`)).toEqual([{ id: 1 }]);
    },
  );

  it.skipIf(!engine.available)(
    "classifies a unique violation and rolls the whole transaction back",
    async () => {
      await store.query(sql`create table items (id int primary key)`);
      const error = await store
        .transaction(async (tx) => {
          await tx.execute(sql`insert into items values (1)`);
          await tx.execute(sql`insert into items values (1)`);
        })
        .catch((caught: unknown) => caught);
      expect(StoreError.isInstance(error)).toBe(true);
      const storeError = error as StoreError;
      expect(storeError.code).toBe("STORE_UNIQUE_VIOLATION");
      expect(storeError.kind).toBe("unique");
      expect(storeError.sqlState).toBe("23505");
      expect(storeError.constraint).toBe("items_pkey");
      expect(storeError.isRetryable).toBe(false);
      expect(await store.query(sql`select count(*)::int as n from items`)).toEqual([{ n: 0 }]);
    },
  );

  it.skipIf(!engine.available)(
    "classifies other database errors without losing the SQLSTATE",
    async () => {
      const error = (await store
        .query(sql`select * from no_such_table`)
        .catch((caught: unknown) => caught)) as StoreError;
      expect(StoreError.isInstance(error)).toBe(true);
      expect(error.code).toBe("STORE_QUERY_FAILED");
      expect(error.sqlState).toBe("42P01");
      expect(error.message).toContain("no_such_table");
    },
  );

  it.skipIf(!engine.available)(
    "serializes transactions that take the same advisory lock",
    async () => {
      await store.query(sql`create table counter (n int not null)`);
      await store.query(sql`insert into counter values (0)`);
      // Read-modify-write with a pause in between: without the lock, concurrent increments
      // would read the same value and lose updates (on Postgres; PGlite has one connection).
      const increment = () =>
        store.transaction(
          async (tx) => {
            const current = await tx.execute<{ n: number }>(sql`select n from counter`);
            await new Promise((resolve) => setTimeout(resolve, 5));
            await tx.execute(sql`update counter set n = ${(current.rows[0]?.n ?? 0) + 1}`);
          },
          { locks: ["gov_test:counter"] },
        );
      await Promise.all(Array.from({ length: 8 }, increment));
      expect(await store.query(sql`select n from counter`)).toEqual([{ n: 8 }]);
    },
  );

  it.skipIf(!engine.available)(
    "try-locks without waiting and releases the lock at commit",
    async () => {
      await store.transaction(async (tx) => {
        expect(await tryAcquireTransactionLock(tx, "gov_test:try")).toBe(true);
        await acquireTransactionLock(tx, "gov_test:try"); // re-entrant within one transaction
      });
      if (engine.name === "postgres") {
        let release: () => void = () => undefined;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        let locked!: () => void;
        const isLocked = new Promise<void>((resolve) => {
          locked = resolve;
        });
        const holder = store.transaction(async (tx) => {
          await acquireTransactionLock(tx, "gov_test:try");
          locked();
          await held;
        });
        await isLocked;
        expect(await store.transaction((tx) => tryAcquireTransactionLock(tx, "gov_test:try"))).toBe(
          false,
        );
        release();
        await holder;
        expect(await store.transaction((tx) => tryAcquireTransactionLock(tx, "gov_test:try"))).toBe(
          true,
        );
      }
    },
  );

  it.skipIf(!engine.available)(
    "delivers notifications, and those sent in a transaction only on commit",
    async () => {
      const received: string[] = [];
      const subscription = await store.listen("gov_test_events", (payload) =>
        received.push(payload),
      );
      await store.notify("gov_test_events", "direct");
      await waitFor(() => received.length === 1);
      await store
        .transaction(async (tx) => {
          await tx.execute(sql`select pg_notify('gov_test_events', 'rolled-back')`);
          throw new Error("abort");
        })
        .catch(() => undefined);
      await store.transaction(async (tx) => {
        await tx.execute(sql`select pg_notify('gov_test_events', 'committed')`);
      });
      await waitFor(() => received.length === 2);
      expect(received).toEqual(["direct", "committed"]);
      await subscription.unsubscribe();
      await subscription.unsubscribe();
      await store.notify("gov_test_events", "after");
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(received).toEqual(["direct", "committed"]);
    },
  );

  it.skipIf(!engine.available)(
    "refuses bad channels and oversized payloads, changing nothing",
    async () => {
      await expect(store.listen("Bad-Channel", () => undefined)).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      await expect(store.notify("gov_ok", "x".repeat(8000))).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
        field: "payload",
      });
      await expect(store.notify("1starts_with_digit")).rejects.toMatchObject({ field: "channel" });
    },
  );

  it.skipIf(!engine.available)(
    "reports health, and refuses use after close with STORE_CLOSED",
    async () => {
      const report = await store.health();
      expect(report).toMatchObject({ ok: true, engine: engine.name, error: null });
      expect(report.latencyMs).toBeGreaterThanOrEqual(0);
      await store.close();
      await store.close();
      expect(store.closed).toBe(true);
      await expect(store.query(sql`select 1`)).rejects.toMatchObject({ code: "STORE_CLOSED" });
      expect(await store.health()).toMatchObject({ ok: false, error: { code: "STORE_CLOSED" } });
    },
  );

  it.skipIf(engine.name !== "postgres" || !engine.available)(
    "listens again after losing its connection, and says so to catch up",
    async () => {
      const received: string[] = [];
      let reconnects = 0;
      await store.listen("gov_test_reconnect", (payload) => received.push(payload), {
        onReconnect: () => {
          reconnects++;
        },
      });
      // An operator (or a failover) kills the listening session.
      const killed = await store.query<{ ok: boolean }>(sql`
        select pg_terminate_backend(pid) as ok from pg_stat_activity
        where datname = current_database() and query ilike 'LISTEN%' and pid <> pg_backend_pid()`);
      expect(killed).toEqual([{ ok: true }]);
      await waitFor(() => reconnects === 1);
      await store.notify("gov_test_reconnect", "after reconnect");
      await waitFor(() => received.length === 1);
      expect(received).toEqual(["after reconnect"]);
    },
  );

  it.skipIf(engine.name !== "postgres" || !engine.available)(
    "classifies a statement that runs past pool.statementTimeoutMs as a retryable timeout",
    async () => {
      const limited = await createStore({
        databaseUrl: store.connectionString as string,
        logger: silentLogger,
        pool: { max: 1, statementTimeoutMs: 100 },
      });
      try {
        const error = (await limited
          .query(sql`select pg_sleep(2)`)
          .catch((caught: unknown) => caught)) as StoreError;
        expect(error).toMatchObject({
          code: "STORE_TIMEOUT",
          sqlState: "57014",
          isRetryable: true,
        });
      } finally {
        await limited.close();
      }
    },
  );

  it.skipIf(engine.name !== "pglite")(
    "refuses a query on the root connection inside a transaction instead of hanging",
    async () => {
      const error = await store
        .transaction(async () => {
          await store.query(sql`select 1`);
        })
        .catch((caught: unknown) => caught);
      expect(GovernanceError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain("Use the tx argument");
    },
  );
});

describe("advisoryLockKey", () => {
  it("is a stable signed 64-bit key per name", () => {
    const key = advisoryLockKey("gov_audit:session:42");
    expect(key).toBe(advisoryLockKey("gov_audit:session:42"));
    expect(key).not.toBe(advisoryLockKey("gov_audit:session:43"));
    expect(key >= -(2n ** 63n) && key < 2n ** 63n).toBe(true);
  });

  it("refuses an empty name", () => {
    expect(() => advisoryLockKey("")).toThrow(InvalidArgumentError);
  });
});
