import { sql } from "@gov/core";
import { createTestStore, type TestEngine, testEngines } from "@gov/core/testing";
import { getTableConfig } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import { auditMigrations } from "./module";
import { checkpoints, events, keyRotations } from "./schema";
import type { CheckpointRow, RawRow, RotationRow } from "./sql";

// The hand-written row types of the raw SQL, by the columns they read (a type cannot be
// listed at run time; `satisfies` keeps these lists in step with the types).
const EVENT_ROW = {
  event_id: 1,
  chain: 1,
  seq: 1,
  prev_hash: 1,
  hmac: 1,
  key_id: 1,
  created_at: 1,
  agent_id: 1,
  kind: 1,
  session_id: 1,
  parent_event_id: 1,
  payload: 1,
} satisfies Record<keyof RawRow & string, 1>;
const ROTATION_ROW = {
  rotation_id: 1,
  old_key_id: 1,
  new_key_id: 1,
  rotated_at: 1,
  payload: 1,
  hmac_old: 1,
  hmac_new: 1,
} satisfies Record<keyof RotationRow & string, 1>;
const CHECKPOINT_ROW = {
  checkpoint_id: 1,
  chain: 1,
  seq: 1,
  hash: 1,
  created_at: 1,
  key_id: 1,
  hmac: 1,
  payload: 1,
  signature: 1,
  signing_key_id: 1,
} satisfies Record<keyof CheckpointRow & string, 1>;

describe.each(testEngines())("the raw SQL's row types on $name", (engine: TestEngine) => {
  // Guards against: a hand-written column list drifting from the migrated tables (the raw
  // SQL of the hot paths does not go through the drizzle schema).
  it.skipIf(!engine.available)(
    "name exactly the columns of the migrated tables and of the drizzle schema",
    async () => {
      const store = await createTestStore(engine, { migrations: [auditMigrations] });
      try {
        for (const [table, row, schema] of [
          ["events", EVENT_ROW, events],
          ["key_rotations", ROTATION_ROW, keyRotations],
          ["checkpoints", CHECKPOINT_ROW, checkpoints],
        ] as const) {
          const columns = await store.query<{ column_name: string }>(
            sql`select column_name from information_schema.columns where table_schema = 'gov_audit' and table_name = ${table} order by column_name`,
          );
          const migrated = columns.map((column) => column.column_name);
          expect(Object.keys(row).sort(), table).toEqual(migrated);
          const drizzle = getTableConfig(schema).columns.map((column) => column.name);
          expect(drizzle.sort(), table).toEqual(migrated);
        }
      } finally {
        await store.close();
      }
    },
  );
});
