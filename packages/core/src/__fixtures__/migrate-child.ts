/**
 * Run by migrations.test.ts as a separate process: connects, says "ready", waits at a
 * barrier (a shared advisory lock the test holds exclusively), then migrates the fixture
 * modules and prints how many migrations it applied.
 */
import { createStore, runMigrations, silentLogger, sql } from "../index";
import { gadgetsMigrations, widgetsMigrations } from "./index";

const [url, barrier] = process.argv.slice(2);
if (!url || !barrier) throw new Error("usage: migrate-child.ts <database url> <barrier lock key>");
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 1 } });
try {
  process.stdout.write("ready\n");
  await store.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock_shared(${barrier}::bigint)`);
  });
  const report = await runMigrations(store, [widgetsMigrations, gadgetsMigrations]);
  const applied = report.modules.reduce((sum, module) => sum + module.applied.length, 0);
  process.stdout.write(`${JSON.stringify({ applied })}\n`);
} finally {
  await store.close();
}
