/**
 * What a role that can only connect can do to budgets: gov_cost has no notification channel,
 * and its counters and functions are out of reach without privileges on the schema.
 */
import { randomBytes } from "node:crypto";
import { createStore, type Store, silentLogger, sql } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness } from "./__fixtures__";

const postgres = testEngines().find((engine) => engine.name === "postgres");

describe("a role that can only connect (real Postgres)", () => {
  let h: CostHarness;
  let attacker: Store;
  let role: string;

  beforeEach(async () => {
    if (!postgres?.available) return;
    h = await costHarness(postgres);
    role = `gov_attacker_${randomBytes(5).toString("hex")}`;
    await h.store.query(sql.raw(`create role ${role} login`));
    const url = new URL(h.store.connectionString as string);
    url.username = role;
    url.password = "";
    attacker = await createStore({
      databaseUrl: url.toString(),
      logger: silentLogger,
      pool: { max: 1 },
    });
  });

  afterEach(async () => {
    await attacker?.close().catch(() => undefined);
    if (role) {
      // Revokes what a test granted it (drop owned), then drops it.
      await h?.store.query(sql.raw(`drop owned by ${role}`)).catch(() => undefined);
      await h?.store.query(sql.raw(`drop role if exists ${role}`));
    }
    await h?.close();
  });

  // Budgets are enforced in SQL functions (EXECUTE is granted to PUBLIC by default): without
  // USAGE on the schema, a role that can connect must not reach them, nor the counters.
  it.skipIf(!postgres?.available)(
    "cannot read or reset counters, nor call the budget functions",
    async () => {
      h.cost.register({ agentId: "a", perSessionUsd: 1 });
      await h.cost.track("a", "s", { tokens: 1, usd: "0.5" });
      const attempts = [
        sql`select usd from gov_cost.sessions`,
        sql`update gov_cost.sessions set usd = 0`,
        sql`delete from gov_cost.reservations`,
        sql`select gov_cost.reserve('[]'::jsonb)`,
        sql`select gov_cost.settle('[]'::jsonb)`,
        sql`select gov_cost.check_and_reserve('[]'::jsonb)`,
        sql`select gov_cost.record_usage('[]'::jsonb)`,
        sql`select gov_cost.release('{}'::uuid[])`,
        sql`select gov_cost.release_expired(1000)`,
      ];
      for (const attempt of attempts) {
        await expect(attacker.query(attempt)).rejects.toThrow(/permission denied/);
      }
      expect(await h.sessionRow("a", "s")).toMatchObject({ usd: "0.500000000000000" });
    },
  );

  // EXECUTE stays granted to PUBLIC: the functions run with the caller's privileges (none is
  // SECURITY DEFINER), so a role given USAGE on the schema (to read it, say) still cannot move
  // a budget through them without privileges on the tables.
  it.skipIf(!postgres?.available)(
    "with USAGE on the schema but no table privileges, the budget functions change nothing",
    async () => {
      h.cost.register({ agentId: "a", perSessionUsd: 1 });
      await h.cost.track("a", "s", { tokens: 1, usd: "0.5" });
      await h.store.query(sql.raw(`grant usage on schema gov_cost to ${role}`));
      const reserve = JSON.stringify([
        {
          reservationId: "00000000-0000-4000-8000-000000000001",
          agentId: "a",
          sessionId: "s",
          day: "2026-11-23",
          tokens: "0",
          usd: "0.4",
          model: null,
          ttlMs: 60_000,
        },
      ]);
      const record = JSON.stringify([
        {
          usageId: "00000000-0000-4000-8000-0000000000a1",
          agentId: "a",
          sessionId: "s",
          day: "2026-11-23",
          model: null,
          kind: "usage",
          tokens: "0",
          usd: "-0.5",
        },
      ]);
      const attempts = [
        sql`select gov_cost.check_and_reserve(${reserve}::jsonb)`,
        sql`select gov_cost.record_usage(${record}::jsonb)`,
        sql`select gov_cost.release_expired(1000)`,
      ];
      for (const attempt of attempts) {
        await expect(attacker.query(attempt)).rejects.toThrow(/permission denied/);
      }
      expect(await h.sessionRow("a", "s")).toMatchObject({
        usd: "0.500000000000000",
        reserved_usd: "0.000000000000000",
      });
    },
  );
});
