/**
 * Run by store-pglite.test.ts: opens an embedded store, has one query refused (a parameter
 * that cannot reach the database thread), queries it and ends without closing it. The
 * process must still exit on its own.
 */
import { createStore, silentLogger, sql } from "../index";

const store = await createStore({ databaseUrl: "memory://", logger: silentLogger });
await store.query(sql`select ${{ run: () => 1 } as never}::jsonb`).catch(() => undefined);
const rows = await store.query<{ one: number }>(sql`select 1 as one`);
process.stdout.write(`${JSON.stringify(rows)}\n`);
