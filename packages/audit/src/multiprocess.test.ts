import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ChainKey, Keyring, silentLogger, sql, systemClock } from "@gov/core";
import { createTestStore, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { SECRET_A } from "./__fixtures__";
import { AuditModule, auditMigrations } from "./module";

const postgres = testEngines().find((engine) => engine.name === "postgres");

describe("appends from several OS processes (real Postgres)", () => {
  it.skipIf(!postgres?.available)(
    "eight processes appending 1,000 events each to one session leave a gapless, fork-free chain",
    async () => {
      const store = await createTestStore(postgres as never, { migrations: [auditMigrations] });
      try {
        const url = store.connectionString as string;
        const barrier = "4245";
        let openBarrier: () => void = () => undefined;
        const barrierOpen = new Promise<void>((resolve) => {
          openBarrier = resolve;
        });
        let held: () => void = () => undefined;
        const isHeld = new Promise<void>((resolve) => {
          held = resolve;
        });
        const holder = store.transaction(async (tx) => {
          await tx.execute(sql`select pg_advisory_xact_lock(${barrier}::bigint)`);
          held();
          await barrierOpen;
        });
        await isHeld;
        const child = fileURLToPath(new URL("./__fixtures__/append-child.ts", import.meta.url));
        const runs = Array.from({ length: 8 }, (_, worker) => {
          return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
            const handle = spawn(
              process.execPath,
              [
                "--import",
                "tsx",
                "--conditions=@gov/source",
                child,
                url,
                SECRET_A,
                "hot-session",
                "1000",
                barrier,
                String(worker),
              ],
              {
                cwd: fileURLToPath(new URL("..", import.meta.url)),
                stdio: ["ignore", "pipe", "pipe"],
              },
            );
            let stdout = "";
            let stderr = "";
            handle.stdout.on("data", (chunk: Buffer) => {
              stdout += chunk.toString();
            });
            handle.stderr.on("data", (chunk: Buffer) => {
              stderr += chunk.toString();
            });
            handle.on("close", (code) => resolve({ code, stdout, stderr }));
          });
        });
        const deadline = Date.now() + 90_000;
        for (;;) {
          const [waiting] = await store.query<{ n: number }>(
            sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${Number(barrier)} and not granted`,
          );
          if ((waiting?.n ?? 0) >= 8) break;
          if (Date.now() > deadline) throw new Error("the processes never reached the barrier");
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        openBarrier();
        await holder;
        const results = await Promise.all(runs);
        for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0 });
        const stored = results.map(
          (result) =>
            (JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}") as { stored: number })
              .stored,
        );
        expect(stored).toEqual(Array.from({ length: 8 }, () => 1_000));
        const [shape] = await store.query<{
          n: number;
          max: number;
          distinct_seq: number;
          distinct_prev: number;
          roots: number;
        }>(sql`
          select count(*)::int as n, max(seq)::int as max, count(distinct seq)::int as distinct_seq,
            count(distinct prev_hash)::int as distinct_prev, count(*) filter (where prev_hash is null)::int as roots
          from gov_audit.events where chain = 'hot-session'`);
        expect(shape).toEqual({
          n: 8_000,
          max: 8_000,
          distinct_seq: 8_000,
          distinct_prev: 7_999,
          roots: 1,
        });
        const verifier = new AuditModule(
          {
            store,
            keyring: new Keyring(new ChainKey(SECRET_A)),
            clock: systemClock,
            logger: silentLogger,
          },
          { spoolDirectory: null },
        );
        expect(await verifier.verifyChain({ sessionId: "hot-session" })).toBe(true);
        // Each process's own events kept their order within the chain.
        for (let worker = 0; worker < 8; worker++) {
          const rows = await store.query<{ index: number }>(
            sql`select (payload::jsonb -> 'metadata' ->> 'index')::int as index from gov_audit.events where chain = 'hot-session' and agent_id = ${`worker-${worker}`} order by seq`,
          );
          const indexes = rows.map((row) => row.index);
          expect(indexes.length).toBe(1_000);
          // Events logged concurrently by one process may interleave; batches of 50 may not.
          for (let batch = 0; batch < 20; batch++) {
            const slice = indexes.slice(batch * 50, batch * 50 + 50).sort((a, b) => a - b);
            expect(slice).toEqual(Array.from({ length: 50 }, (_, offset) => batch * 50 + offset));
          }
        }
      } finally {
        await store.close();
      }
    },
    180_000,
  );
});
