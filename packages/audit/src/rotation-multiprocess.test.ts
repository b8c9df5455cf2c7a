import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChainKey, Keyring, silentLogger, sql, systemClock } from "@gov/core";
import {
  createTestStore,
  eventually,
  spawnJsonLinesChild,
  type TestStore,
  testEngines,
} from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { SECRET_A, SECRET_B } from "./__fixtures__";
import { AuditModule, auditMigrations } from "./module";
import { KEY_ROTATION_GRACE_MS } from "./rotation-record";

const postgres = testEngines().find((engine) => engine.name === "postgres");
const KEY_A = new ChainKey(SECRET_A);
const KEY_B = new ChainKey(SECRET_B);

interface Counts {
  stored: number;
  spooled: number;
  placeholders: number;
}

function moduleOn(store: TestStore, keyring: Keyring, spoolDirectory: string): AuditModule {
  return new AuditModule(
    { store, keyring, clock: systemClock, logger: silentLogger },
    { spoolDirectory, retryIntervalMs: 50 },
  );
}

describe("key rotation across OS processes (real Postgres)", () => {
  // Guards against: processes that never learned of a rotation appending with the retired key.
  it.skipIf(!postgres?.available)(
    "processes still on the old key cannot append once the rotation is recorded; restarted with the new key, their events join the chain once an operator imports them",
    async () => {
      const store = await createTestStore(postgres as never, { migrations: [auditMigrations] });
      const spoolDirectory = await mkdtemp(join(tmpdir(), "gov-audit-rotation-"));
      const children = [0, 1].map((worker) =>
        spawnJsonLinesChild<Counts & { event?: string }>(
          new URL("./__fixtures__/stale-writer-child.ts", import.meta.url),
          [store.connectionString as string, "hot", spoolDirectory, String(worker)],
          {
            cwd: new URL("..", import.meta.url),
            env: { ...process.env, AUDIT_CHILD_SECRET: SECRET_A },
          },
        ),
      );
      const report = async (child: (typeof children)[number]) => {
        child.send({ op: "report" });
        return child.next();
      };
      const rotating = moduleOn(store, new Keyring(KEY_A), join(spoolDirectory, "rotating"));
      try {
        for (const child of children) expect(await child.next()).toEqual({ event: "ready" });
        // Both write under A while the rotation happens.
        for (const child of children)
          await eventually(async () => (await report(child)).stored > 0, 30_000);
        const rotatedAt = Date.now();
        await rotating.rotateChainKey({ newKey: SECRET_B, operatorId: "ops", reason: "test" });
        for (let index = 0; index < 20; index++)
          await rotating.log({ agentId: "rotating", kind: "append", sessionId: "hot" });
        for (const child of children)
          await eventually(async () => (await report(child)).spooled > 0, 30_000);
        const finals: Counts[] = [];
        for (const child of children) {
          child.send({ op: "stop" });
          finals.push(await child.next());
          await child.exited();
        }
        for (const counts of finals) expect(counts).toMatchObject({ placeholders: 0 });
        const [order] = await store.query<{ last_a: string; first_b: string; late_a: number }>(sql`
          select max(seq) filter (where key_id = ${KEY_A.id}) as last_a,
            min(seq) filter (where key_id = ${KEY_B.id}) as first_b,
            count(*) filter (where key_id = ${KEY_A.id} and created_at > ${new Date(rotatedAt + KEY_ROTATION_GRACE_MS).toISOString()}::timestamptz)::int as late_a
          from gov_audit.events where chain = 'hot'`);
        expect(Number(order?.last_a)).toBeLessThan(Number(order?.first_b));
        expect(order?.late_a).toBe(0);
        const verifier = moduleOn(store, new Keyring(KEY_B, [KEY_A]), join(spoolDirectory, "v"));
        expect(await verifier.verifyChain()).toBe(true);
        await verifier.close();

        // Restarted with the new key (and the old one to verify with), a process sets aside
        // what the stopped ones left in their spools: signed with the retired key, it could
        // have been written by whoever holds that key. The operator, who knows those
        // processes, imports it; it is signed with the new key.
        const before = await store.query<{ n: number }>(
          sql`select count(*)::int as n from gov_audit.events where chain = 'hot'`,
        );
        const restarted = moduleOn(store, new Keyring(KEY_B, [KEY_A]), spoolDirectory);
        await restarted.start();
        const kept = (await readdir(spoolDirectory)).filter((name) => name.startsWith("rejected-"));
        expect(kept.length).toBeGreaterThan(0);
        expect(restarted.metrics().spoolRejections).toBe(kept.length);
        for (const name of kept) {
          await restarted.importSpool(join(spoolDirectory, name), {
            operatorId: "ops",
            reason: "workers that ran on the old key until their restart",
            acceptRetiredKey: true,
          });
        }
        const spooled = finals.reduce((sum, counts) => sum + counts.spooled, 0);
        await eventually(async () => {
          await restarted.flush();
          const [after] = await store.query<{ n: number }>(
            sql`select count(*)::int as n from gov_audit.events where chain = 'hot'`,
          );
          return (after?.n ?? 0) >= (before[0]?.n ?? 0) + spooled;
        }, 30_000);
        expect(restarted.metrics()).toMatchObject({ placeholders: 0, spoolDepth: 0 });
        expect(await restarted.verifyChain()).toBe(true);
        await restarted.close();
      } finally {
        for (const child of children) child.kill();
        await rotating.close();
        await store.close();
        await rm(spoolDirectory, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
