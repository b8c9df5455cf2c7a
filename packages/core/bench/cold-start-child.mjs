// A fresh process, as an application starting: load @gov/core (the build), open the store,
// run a module's migrations, answer one query. Prints the milliseconds all of that took.
const [databaseUrl] = process.argv.slice(2);
const started = performance.now();
const { createStore, runMigrations, silentLogger, sql } = await import("../dist/index.js");
const store = await createStore({ databaseUrl, logger: silentLogger });
await runMigrations(store, [
  {
    name: "widgets",
    migrationsFolder: new URL("../src/__fixtures__/widgets/drizzle", import.meta.url),
  },
]);
await store.query(sql`select count(*) from gov_widgets.widgets`);
const elapsed = performance.now() - started;
await store.close();
process.stdout.write(`${elapsed}\n`);
