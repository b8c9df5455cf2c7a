import { sql } from "@gov/core";
import { createTestStore, type TestEngine, type TestStore, testEngines } from "@gov/core/testing";
import { getTableConfig } from "drizzle-orm/pg-core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stewardMigrations } from "./module";
import { RAW_SQL_ROWS } from "./persistence";
import * as schema from "./schema";

const TABLES = [schema.agentState, schema.trustDebt, schema.blueprints, schema.blueprintLedger];

// Issue 13: row types were written by hand beside the raw SQL; the drizzle schema, the
// migrations and the columns the raw SQL reads must not drift apart.
describe.each(testEngines())("the steward's schema on $name", (engine: TestEngine) => {
  let store: TestStore;

  beforeEach(async (context) => {
    if (!engine.available) return context.skip();
    store = await createTestStore(engine, { migrations: [stewardMigrations] });
  });
  afterEach(async () => {
    await store?.close();
  });

  async function columnsOf(schemaName: string, table: string): Promise<string[]> {
    const rows = await store.query<{ column_name: string }>(sql`
      select column_name from information_schema.columns
      where table_schema = ${schemaName} and table_name = ${table}
      order by column_name`);
    return rows.map((row) => row.column_name);
  }

  it("migrates exactly the columns of the drizzle tables", async () => {
    for (const table of TABLES) {
      const config = getTableConfig(table);
      expect(config.schema).toBe("gov_steward");
      expect(await columnsOf("gov_steward", config.name), config.name).toEqual(
        config.columns.map((column) => column.name).sort(),
      );
    }
  });

  it("has every column the raw SQL's row types read", async () => {
    for (const { table, columns } of RAW_SQL_ROWS) {
      const config = getTableConfig(table);
      const migrated = await columnsOf("gov_steward", config.name);
      for (const column of columns) expect(migrated, `${config.name}.${column}`).toContain(column);
    }
  });
});
