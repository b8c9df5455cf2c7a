import { sql } from "@gov/core";
import { createTestStore, spawnJsonLinesChild, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { costMigrations } from "./definition";

const postgres = testEngines().find((engine) => engine.name === "postgres");

/** A reserve child: prints "ready", waits for "go", prints its result. */
function spawnChild(url: string, agentId: string, sessionId: string, count: number) {
  return spawnJsonLinesChild(
    new URL("./__fixtures__/reserve-child.ts", import.meta.url),
    [url, agentId, sessionId, String(count)],
    { cwd: new URL("..", import.meta.url) },
  );
}

describe("reservations across OS processes (real Postgres)", () => {
  it.skipIf(!postgres?.available)(
    "200 concurrent $0.01 checks from 4 processes against a $1 cap: exactly 100 pass, committed spend never exceeds the cap",
    async () => {
      const store = await createTestStore(postgres as never, { migrations: [costMigrations] });
      try {
        const url = store.connectionString as string;
        const children = Array.from({ length: 4 }, () =>
          spawnChild(url, "hot-agent", "shared-session", 50),
        );
        for (const child of children) expect(await child.next()).toEqual({ event: "ready" });
        for (const child of children) child.send("go");
        const results = await Promise.all(children.map((child) => child.next()));
        const total = (key: string) =>
          results.reduce((sum, result) => sum + Number(result?.[key]), 0);
        expect(total("failed")).toBe(0);
        expect(total("passed")).toBe(100);
        expect(total("exceeded")).toBe(100);
        const [row] = await store.query<{ usd: string; reserved_usd: string; tokens: string }>(sql`
          select usd::text as usd, reserved_usd::text as reserved_usd, tokens::text as tokens
          from gov_cost.sessions where agent_id = 'hot-agent' and session_id = 'shared-session'`);
        expect(row).toEqual({
          usd: "1.000000000000000",
          reserved_usd: "0.000000000000000",
          tokens: "100",
        });
        const [usage] = await store.query<{ n: string; total: string }>(
          sql`select count(*)::text as n, sum(usd)::text as total from gov_cost.usage`,
        );
        expect(usage).toEqual({ n: "100", total: "1.000000000000000" });
      } finally {
        await store.close();
      }
    },
    120_000,
  );
});
