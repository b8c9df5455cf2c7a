import { type AuditSink, type Store, StoreError, sql } from "@gov/core";
import { recordingLogger, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness, rejection } from "./__fixtures__";
import { BudgetExceeded } from "./errors";
import { CostModule } from "./module";

const A = "billing-agent";

/** The text of a query's parameters, to tell which batch a query carries. */
function paramsOf(query: Parameters<Store["query"]>[0]): string {
  const chunks = (query as unknown as { queryChunks: unknown[] }).queryChunks;
  return chunks
    .map((chunk) =>
      typeof chunk === "string"
        ? chunk
        : typeof chunk === "object" && chunk !== null && "value" in chunk
          ? String(chunk.value)
          : "",
    )
    .join(" ");
}

/** A store that refuses, as Postgres refuses bad data (SQLSTATE 22P02), any batch naming `poison`. */
function poisoning(store: Store): Store {
  return Object.create(store, {
    query: {
      value: (query: Parameters<Store["query"]>[0]) =>
        paramsOf(query).includes("poison")
          ? Promise.reject(
              new StoreError({
                kind: "query",
                message: "invalid input syntax for type json",
                sqlState: "22P02",
              }),
            )
          : store.query(query),
    },
  });
}

describe.each(testEngines())("failure isolation on $name", (engine: TestEngine) => {
  let h: CostHarness;

  beforeEach(async () => {
    if (engine.available) h = await costHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  it.skipIf(!engine.available)(
    "one record the database refuses does not take its batch-mates down with it",
    async () => {
      const logger = recordingLogger();
      const cost = new CostModule(
        { store: poisoning(h.store), logger, audit: h.audit, halt: h.halt, clock: h.clock },
        { sweepIntervalMs: null, spoolDirectory: null },
      );
      cost.register({ agentId: A, perSessionUsd: 1 });
      cost.register({ agentId: "poison-agent", perSessionUsd: 1 });
      // Sent together: two go at once, alone; the next three share one batch.
      const tracks = await Promise.allSettled([
        cost.track(A, "s-1", { tokens: 1, usd: "0.1" }),
        cost.track(A, "s-1", { tokens: 1, usd: "0.1" }),
        cost.track(A, "s-1", { tokens: 1, usd: "0.1" }),
        cost.track("poison-agent", "s-1", { tokens: 1, usd: "0.1" }),
        cost.track(A, "s-1", { tokens: 1, usd: "0.1" }),
      ]);
      expect(
        tracks.map((result) => result.status === "fulfilled" && result.value.recorded),
      ).toEqual([true, true, true, false, true]);
      expect(await h.sessionRow(A, "s-1")).toMatchObject({ usd: "0.400000000000000" });
      const checks = await Promise.allSettled([
        cost.checkOrRaise(A, "s-2", { projectedUsd: "0.1" }),
        cost.checkOrRaise(A, "s-2", { projectedUsd: "0.1" }),
        cost.checkOrRaise(A, "s-2", { projectedUsd: "0.1" }),
        cost.checkOrRaise("poison-agent", "s-2", { projectedUsd: "0.1" }),
        cost.checkOrRaise(A, "s-2", { projectedUsd: "0.1" }),
      ]);
      expect(checks.map((result) => result.status)).toEqual([
        "fulfilled",
        "fulfilled",
        "fulfilled",
        "rejected",
        "fulfilled",
      ]);
      expect(checks[3]).toMatchObject({ reason: { code: "BUDGET_CHECK_FAILED" } });
      expect(h.audit.events.map((event) => event.kind).sort()).toEqual([
        "budget.check_failed",
        "budget.usage_dropped",
      ]);
      expect(cost.metrics()).toMatchObject({ usageDropped: 1, backlog: 0 });
      await cost.close();
    },
  );

  it.skipIf(!engine.available)(
    "an audit sink that refuses an event never turns a decision or a sweep into a crash",
    async () => {
      const refusing: AuditSink = {
        log: async () => {
          throw new Error("InvalidAuditEventError: refused");
        },
      };
      const cost = new CostModule(
        { store: h.store, logger: h.logger, audit: refusing, halt: h.halt, clock: h.clock },
        { sweepIntervalMs: null, spoolDirectory: null, reservationTtlSeconds: 1 },
      );
      cost.register({ agentId: A, perSessionUsd: "0.01" });
      await cost.checkOrRaise(A, "s-1", { projectedUsd: "0.01" });
      expect(await rejection(cost.checkOrRaise(A, "s-1", { projectedUsd: "0.01" }))).toBeInstanceOf(
        BudgetExceeded,
      );
      await h.store.query(
        sql`update gov_cost.reservations set expires_at = now() - interval '1 second'`,
      );
      await expect(cost.releaseExpired()).resolves.toBe(1);
      expect(
        h.logger.lines.filter((line) =>
          line.message.includes("could not be written to the audit chain"),
        ),
      ).toHaveLength(2);
      await cost.close();
    },
  );

  it.skipIf(!engine.available)(
    "close() waits for the calls already made, and loses none",
    async () => {
      const cost = new CostModule(
        { store: h.store, logger: h.logger, audit: h.audit, halt: h.halt, clock: h.clock },
        { sweepIntervalMs: null, spoolDirectory: null },
      );
      const calls = Array.from({ length: 100 }, () =>
        cost.track(A, "s-1", { tokens: 1, usd: "0.01" }),
      );
      await cost.close();
      expect((await Promise.all(calls)).every((receipt) => receipt.recorded)).toBe(true);
      expect(await h.sessionRow(A, "s-1")).toMatchObject({
        usd: "1.000000000000000",
        tokens: "100",
      });
    },
  );

  it.skipIf(!engine.available)(
    "a full backlog drops its oldest records, each logged and audit-logged by id; the rest are written",
    async () => {
      await h.close();
      h = await costHarness(engine, { maxBacklog: 3 });
      h.setDown(true);
      const receipts = [];
      for (let index = 1; index <= 5; index++) {
        receipts.push(await h.cost.track(A, "s-1", { tokens: index, usd: 0 }));
      }
      expect(h.cost.metrics()).toMatchObject({ usageQueued: 5, usageDropped: 2, backlog: 3 });
      h.setDown(false);
      expect(await h.cost.flush()).toBe(0);
      expect(h.audit.events.map((event) => event.metadata?.usageId)).toEqual([
        receipts[0]?.usageId,
        receipts[1]?.usageId,
      ]);
      expect(await h.sessionRow(A, "s-1")).toMatchObject({ tokens: String(3 + 4 + 5) });
    },
  );
});

// Migration 0004: reserve() and settle() stay, in the single letters of the previous version,
// for the processes of that version still running while a deployment is upgraded.
describe.each(testEngines())(
  "a process of the previous version calling reserve()/settle() after 0004 on $name",
  (engine: TestEngine) => {
    it.skipIf(!engine.available)(
      "reserve() in letters still enforces perSessionUsd, settle() in letters still records",
      async () => {
        const h = await costHarness(engine);
        try {
          const request = (i: string) => ({
            i,
            a: "old",
            s: "s1",
            d: "2026-11-23",
            t: "0",
            u: "0.6",
            m: null,
            ttl: 60,
            su: "1",
          });
          const reserve = (i: string) =>
            h.store.query<{ r: { ok: boolean; cap?: string }[] }>(
              sql`select gov_cost.reserve(${JSON.stringify([request(i)])}::jsonb) as r`,
            );
          const first = await reserve("00000000-0000-4000-8000-000000000001");
          const second = await reserve("00000000-0000-4000-8000-000000000002");
          expect(first[0]?.r[0]?.ok).toBe(true);
          expect(second[0]?.r[0]).toMatchObject({ ok: false, cap: "perSessionUsd" });
          const item = {
            id: "00000000-0000-4000-8000-0000000000a1",
            a: "old",
            s: "s1",
            d: "2026-11-23",
            m: null,
            k: "usage",
            t: "5",
            u: "0.5",
            r: "00000000-0000-4000-8000-000000000001",
            detail: { x: null },
          };
          const settled = await h.store.query<{ r: { recorded: boolean; released: boolean }[] }>(
            sql`select gov_cost.settle(${JSON.stringify([item])}::jsonb) as r`,
          );
          expect(settled[0]?.r[0]).toMatchObject({ recorded: true, released: true });
          const row = await h.sessionRow("old", "s1");
          expect(Number(row?.usd)).toBe(0.5);
          expect(Number(row?.reserved_usd)).toBe(0);
          const detail = await h.store.query<{ detail: unknown }>(
            sql`select detail from gov_cost.usage`,
          );
          expect(detail[0]?.detail).toEqual({ x: null });
        } finally {
          await h.close();
        }
      },
    );
  },
);
