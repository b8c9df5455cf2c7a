/**
 * Run by multiprocess.test.ts as one of several OS processes: waits at a barrier (a shared
 * advisory lock the test holds), then appends <count> events to one session, a few dozen
 * at a time, and prints how many were stored.
 */
import { ChainKey, createStore, Keyring, silentLogger, sql, systemClock } from "@gov/core";
import { AuditModule } from "../module";

const [url, secret, sessionId, count, barrier, worker] = process.argv.slice(2);
if (!url || !secret || !sessionId || !count || !barrier || !worker)
  throw new Error("usage: append-child.ts <url> <secret> <session> <count> <barrier> <worker>");
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 3 } });
const audit = new AuditModule(
  { store, keyring: new Keyring(new ChainKey(secret)), clock: systemClock, logger: silentLogger },
  { spoolDirectory: null },
);
try {
  process.stdout.write("ready\n");
  await store.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock_shared(${barrier}::bigint)`);
  });
  let stored = 0;
  for (let index = 0; index < Number(count); index += 50) {
    const records = await Promise.all(
      Array.from({ length: Math.min(50, Number(count) - index) }, (_, offset) =>
        audit.log({
          agentId: `worker-${worker}`,
          kind: "append",
          sessionId,
          metadata: { worker: Number(worker), index: index + offset },
        }),
      ),
    );
    stored += records.filter((record) => record.status === "stored").length;
  }
  process.stdout.write(`${JSON.stringify({ stored })}\n`);
} finally {
  await audit.close();
  await store.close();
}
