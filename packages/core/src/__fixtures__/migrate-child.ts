/**
 * Run by migrations.test.ts as a separate process: waits for a common start time, then
 * migrates the fixture modules and prints how many migrations it applied.
 */
import { createStore, runMigrations, silentLogger } from "../index";
import { gadgetsMigrations, widgetsMigrations } from "./index";

const [url, startAt] = process.argv.slice(2);
if (!url || !startAt)
  throw new Error("usage: migrate-child.ts <database url> <start at, epoch ms>");
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 1 } });
try {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));
  const report = await runMigrations(store, [widgetsMigrations, gadgetsMigrations]);
  const applied = report.modules.reduce((sum, module) => sum + module.applied.length, 0);
  process.stdout.write(`${JSON.stringify({ applied })}\n`);
} finally {
  await store.close();
}
