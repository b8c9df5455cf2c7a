/**
 * The gov_gates_resolved channel carries no state (issue 12, break 1 as it applies to gates):
 * a notification only wakes a waiter, which re-reads the row and verifies the decision's MAC.
 * Any role that can connect can NOTIFY; a flood of forged notifications must not resolve a
 * wait, change a row, or make waiters read the database as fast as the flood comes.
 */
import { randomUUID } from "node:crypto";
import { type Store, sql } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { PgDialect } from "drizzle-orm/pg-core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type GatesHarness, gatesHarness, roleStore, thrown, wrapQuery } from "./__fixtures__";
import { ApprovalTimeout } from "./errors";
import { GATES_RESOLVED_CHANNEL } from "./events";
import { WAKE_READ_SPACING_MS } from "./wait";

const postgres = testEngines().find((engine) => engine.name === "postgres");
const dialect = new PgDialect();

/** A store that counts the reads of gov_gates.requests made through it. */
function countingStore(store: Store): { store: Store; reads: () => number } {
  let reads = 0;
  const wrapped = wrapQuery(store, (statement, next) => {
    if (/^\s*select\b/i.test(dialect.sqlToQuery(statement).sql)) reads++;
    return next(statement);
  });
  return { store: wrapped, reads: () => reads };
}

describe("forged notifications from a role with no privileges (real Postgres)", () => {
  let h: GatesHarness;
  let intruder: Awaited<ReturnType<typeof roleStore>> | null = null;

  beforeEach(async () => {
    if (!postgres?.available) return;
    h = await gatesHarness(postgres);
    // A role with no privilege on gov_gates: it can connect, LISTEN and NOTIFY.
    intruder = await roleStore(h.store, "notifier");
  });

  afterEach(async () => {
    await intruder?.drop();
    intruder = null;
    await h?.close();
  });

  // Guards against: a forged NOTIFY resolving a wait, changing state, or making the waiter
  // hammer the database (one read per notification).
  it.skipIf(!postgres?.available)(
    "a flood of forged NOTIFYs leaves a waiter pending, changes nothing, and is read at a bounded rate",
    async () => {
      const db = (intruder as NonNullable<typeof intruder>).store;
      // The intruder can connect and notify, and nothing more.
      const denied = await thrown(() => db.query(sql`select * from gov_gates.requests`));
      expect(String((denied as Error).message)).toMatch(/permission denied/i);
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        payload: { pr: 142 },
      });
      const counting = countingStore(h.store);
      // Polling is an hour away: every read of this waiter is a wake-up.
      const waiter = h.another({ store: counting.store, gates: { pollIntervalMs: 60_000 } });
      const started = performance.now();
      // Long enough for well over 100 notifications on a loaded machine (about 50 a second).
      const waiting = thrown(() => waiter.waitFor(request.requestId, { timeoutMs: 3_000 }));
      // Every other notification names the request (a wake-up for the waiter); the others are
      // forged states and garbage.
      const forged = [
        JSON.stringify({ requestId: request.requestId, status: "granted" }),
        `${request.requestId}:granted`,
        "granted",
        "",
        randomUUID(),
        "x".repeat(7_000),
      ].flatMap((payload) => [request.requestId, payload]);
      let sent = 0;
      let stop = false;
      // Three connections at once; one statement per notification (Postgres folds identical
      // notifications within a transaction).
      const flood = Promise.all(
        [0, 1, 2].map(async () => {
          while (!stop) {
            await db.query(
              sql`select pg_notify(${GATES_RESOLVED_CHANNEL}, ${forged[sent % forged.length]})`,
            );
            sent++;
          }
        }),
      );
      const error = await waiting;
      const elapsed = performance.now() - started;
      stop = true;
      await flood;
      expect(ApprovalTimeout.isInstance(error)).toBe(true);
      expect((error as ApprovalTimeout).expired).toBe(false);
      expect(sent).toBeGreaterThan(100);
      // At most one read per WAKE_READ_SPACING_MS, whatever the rate of notifications (and
      // a few more for the first read and the deadline).
      expect(counting.reads()).toBeLessThanOrEqual(Math.ceil(elapsed / WAKE_READ_SPACING_MS) + 3);
      expect(await h.gates.getRequest(request.requestId)).toMatchObject({
        status: "pending",
        reviewerId: null,
        requestIntact: true,
      });
      expect(h.audit.events.map((event) => event.kind)).toEqual(["approval.requested"]);
      // A genuine decision still wakes a waiter.
      const second = h.another({ gates: { pollIntervalMs: 60_000 } });
      const granted = second.waitFor(request.requestId, { timeoutMs: 10_000 });
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      await expect(granted).resolves.toBe(true);
    },
    30_000,
  );
});
