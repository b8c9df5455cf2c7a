/**
 * Run by store-pglite.test.ts: opens an embedded store, queries it and ends without
 * closing it. The process must still exit on its own.
 */
import { createStore, silentLogger, sql } from "../index";

const store = await createStore({ databaseUrl: "memory://", logger: silentLogger });
const rows = await store.query<{ one: number }>(sql`select 1 as one`);
process.stdout.write(`${JSON.stringify(rows)}\n`);
