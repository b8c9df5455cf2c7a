import { sql } from "@gov/core";
import { createTestStore, type TestEngine, testEngines } from "@gov/core/testing";
import { getTableColumns } from "drizzle-orm";
import { getTableConfig } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import { gatesMigrations } from "./definition";
import { ROW_COLUMN_NAMES } from "./rows";
import { requests } from "./schema";

// The raw SQL of the module names the table and its columns through the drizzle table; this
// checks that table against what the migrations built, so that the two cannot drift.
describe.each(testEngines())("gov_gates.requests as migrated on $name", (engine: TestEngine) => {
  it.skipIf(!engine.available)(
    "has exactly the drizzle table's columns, types and nullability",
    async () => {
      const store = await createTestStore(engine, { migrations: [gatesMigrations] });
      try {
        const config = getTableConfig(requests);
        const rows = await store.query<{
          column_name: string;
          data_type: string;
          is_nullable: string;
        }>(sql`
          select column_name, data_type, is_nullable from information_schema.columns
          where table_schema = ${config.schema ?? "public"} and table_name = ${config.name}
          order by column_name`);
        const expected = Object.values(getTableColumns(requests))
          .map((column) => ({
            column_name: column.name,
            data_type: column.getSQLType().replace(/^timestamp with time zone$/, "timestamp"),
            is_nullable: column.notNull ? "NO" : "YES",
          }))
          .sort((a, b) => a.column_name.localeCompare(b.column_name));
        const actual = rows.map((row) => ({
          ...row,
          data_type: row.data_type.replace(/^timestamp with time zone$/, "timestamp"),
        }));
        expect(actual).toEqual(expected);
        // What a RequestRow holds: every column but the payload.
        expect([...ROW_COLUMN_NAMES].sort()).toEqual(
          rows.map((row) => row.column_name).filter((name) => name !== "payload"),
        );
      } finally {
        await store.close();
      }
    },
  );
});
