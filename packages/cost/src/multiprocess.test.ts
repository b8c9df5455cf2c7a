import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sql } from "@gov/core";
import { createTestStore, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { costMigrations } from "./module";

const postgres = testEngines().find((engine) => engine.name === "postgres");

interface Child {
  lines: Promise<Record<string, unknown>>[];
  go(): void;
}

/** Spawn a reserve child; `lines[0]` is its "ready", `lines[1]` its result. */
function spawnChild(url: string, agentId: string, sessionId: string, count: number): Child {
  const script = fileURLToPath(new URL("./__fixtures__/reserve-child.ts", import.meta.url));
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=@gov/source", script, url, agentId, sessionId, String(count)],
    { cwd: fileURLToPath(new URL("..", import.meta.url)) },
  );
  const resolvers: ((line: Record<string, unknown>) => void)[] = [];
  const rejecters: ((error: Error) => void)[] = [];
  const lines = [0, 1].map(
    () =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        resolvers.push(resolve);
        rejecters.push(reject);
      }),
  );
  let buffered = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      resolvers.shift()?.(JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>);
      rejecters.shift();
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.on("close", (code) => {
    for (const reject of rejecters.splice(0)) reject(new Error(`child exited ${code}: ${stderr}`));
  });
  return { lines, go: () => child.stdin.write("go\n") };
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
        for (const child of children) expect(await child.lines[0]).toEqual({ event: "ready" });
        for (const child of children) child.go();
        const results = await Promise.all(children.map((child) => child.lines[1]));
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
