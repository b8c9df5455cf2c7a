import { sql } from "drizzle-orm";
import {
  bigint,
  doublePrecision,
  integer,
  jsonb,
  pgSchema,
  text,
  timestamp,
} from "drizzle-orm/pg-core";

/** Everything @gov/steward stores lives in this Postgres schema. */
export const stewardSchema = pgSchema("gov_steward");

/**
 * The counters stateful tripwires read, one row per agent: a fixed hour bucket (with the
 * previous hour's count for the sliding estimate) and a UTC day bucket. Updated by one
 * upsert per allowed action, so that many processes count together.
 */
export const agentState = stewardSchema.table("agent_state", {
  agentId: text("agent_id").primaryKey(),
  hourStartMs: bigint("hour_start_ms", { mode: "number" }).notNull(),
  hourCount: integer("hour_count").notNull().default(0),
  previousHourCount: integer("previous_hour_count").notNull().default(0),
  dayStartMs: bigint("day_start_ms", { mode: "number" }).notNull(),
  dayCount: integer("day_count").notNull().default(0),
  dayAmount: doublePrecision("day_amount").notNull().default(0),
  total: bigint("total", { mode: "number" }).notNull().default(0),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" })
    .notNull()
    .default(sql`now()`),
});

/** Trust debt per agent, as of `updated_at_ms` (decayed on every read and addition). */
export const trustDebt = stewardSchema.table("trust_debt", {
  agentId: text("agent_id").primaryKey(),
  debt: doublePrecision("debt").notNull(),
  updatedAtMs: bigint("updated_at_ms", { mode: "number" }).notNull(),
});

/**
 * The blueprint registry: every published version, immutable, with the SHA-256 of its
 * canonical JSON. `id` is `name@version`.
 */
export const blueprints = stewardSchema.table("blueprints", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  version: text("version").notNull(),
  content: jsonb("content").$type<Record<string, unknown>>().notNull(),
  contentHash: text("content_hash").notNull(),
  publishedAt: timestamp("published_at", { withTimezone: true, mode: "string" })
    .notNull()
    .default(sql`now()`),
});
