import { sql } from "@gov/core";
import { createTestStore, type TestEngine, type TestStore, testEngines } from "@gov/core/testing";
import { getTableConfig } from "drizzle-orm/pg-core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { costMigrations } from "./definition";
import { RAW_SQL_COLUMNS, RAW_SQL_FUNCTIONS } from "./reads";
import { agentDays, sessions, usage } from "./schema";

const DRIZZLE_TABLES = { sessions, agent_days: agentDays, usage } as const;

// Guards against raw SQL that names a column or function a migration renamed or dropped: the
// hand-written lists must match the migrated database and the drizzle schema.
describe.each(testEngines())(
  "raw SQL against the migrated schema on $name",
  (engine: TestEngine) => {
    let store: TestStore | undefined;

    beforeEach(async () => {
      if (engine.available) store = await createTestStore(engine, { migrations: [costMigrations] });
    });

    afterEach(async () => {
      await store?.close();
      store = undefined;
    });

    it.skipIf(!engine.available)(
      "every column the raw SQL names exists, with its type",
      async () => {
        const rows = await (store as TestStore).query<{
          table_name: string;
          column_name: string;
          data_type: string;
        }>(sql`
      select table_name, column_name, data_type from information_schema.columns
      where table_schema = 'gov_cost'`);
        const migrated = new Map(
          rows.map((row) => [`${row.table_name}.${row.column_name}`, row.data_type]),
        );
        for (const [table, columns] of Object.entries(RAW_SQL_COLUMNS)) {
          const drizzleColumns = new Set(
            getTableConfig(DRIZZLE_TABLES[table as keyof typeof DRIZZLE_TABLES]).columns.map(
              (column) => column.name,
            ),
          );
          for (const [column, dataType] of Object.entries(columns)) {
            expect(migrated.get(`${table}.${column}`), `${table}.${column}`).toBe(dataType);
            expect(drizzleColumns.has(column), `${table}.${column} in schema.ts`).toBe(true);
          }
        }
      },
    );

    it.skipIf(!engine.available)(
      "every function the raw SQL calls exists in gov_cost",
      async () => {
        const rows = await (store as TestStore).query<{ routine_name: string }>(sql`
      select routine_name from information_schema.routines where routine_schema = 'gov_cost'`);
        const names = new Set(rows.map((row) => row.routine_name));
        for (const name of RAW_SQL_FUNCTIONS) expect(names.has(name), name).toBe(true);
      },
    );
  },
);
