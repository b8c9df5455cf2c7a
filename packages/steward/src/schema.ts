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
 * canonical JSON and an HMAC-SHA256 under the chain key (`signature`, by the key `key_id`)
 * over the domain tag `gov.steward.blueprint.v1`, the id, the version, the content hash and
 * the content. `id` is `name@version`. Rows written before signatures have neither and are
 * refused when loaded (publish the same content again to sign them).
 */
export const blueprints = stewardSchema.table("blueprints", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  version: text("version").notNull(),
  content: jsonb("content").$type<Record<string, unknown>>().notNull(),
  contentHash: text("content_hash").notNull(),
  /** The id of the chain key that signed the row (the first 16 hex of its fingerprint). */
  keyId: text("key_id"),
  /** HMAC-SHA256 (hex) of the signed form; null for a row written before signatures. */
  signature: text("signature"),
  publishedAt: timestamp("published_at", { withTimezone: true, mode: "string" })
    .notNull()
    .default(sql`now()`),
});

/**
 * What was ever published under each blueprint id: the content hash of its one version, with
 * an HMAC-SHA256 under the chain key (`signature`, by the key `key_id`) over the domain tag
 * `gov.steward.blueprint-ledger.v1`, the id and the content hash. Never deleted by the module:
 * `publish` refuses other content for an id recorded here even after its row in `blueprints`
 * was deleted, and a row whose hash differs from its entry is refused when read (an older
 * signed row put back). Entries copied from `blueprints` by migration `0003` are unsigned and
 * signed in place when the same content is published again.
 */
export const blueprintLedger = stewardSchema.table("blueprint_ledger", {
  id: text("id").primaryKey(),
  contentHash: text("content_hash").notNull(),
  /** The id of the chain key that signed the entry; null for an entry copied by a migration. */
  keyId: text("key_id"),
  /** HMAC-SHA256 (hex) of the entry's signed form; null for an entry copied by a migration. */
  signature: text("signature"),
  recordedAt: timestamp("recorded_at", { withTimezone: true, mode: "string" })
    .notNull()
    .default(sql`now()`),
});
