import { sql } from "drizzle-orm";
import { bigint, check, index, jsonb, pgSchema, text, timestamp } from "drizzle-orm/pg-core";

/** Everything @gov/presence stores lives in this Postgres schema. */
export const presenceSchema = pgSchema("gov_presence");

/**
 * Orders halt and resume changes across processes: every halt and every resume takes the
 * next value, and a cache applies a change only when it is newer than what it holds.
 */
export const haltVersionSequence = presenceSchema.sequence("halt_version");

/**
 * One row per agent. The presence columns (`status`, `last_seen`, `metadata`,
 * `operator_id`) are written by heartbeats; the halt columns (`halted_*`, `halt_*`,
 * `resumed_*`) only by `halt()` and `resume()` — a heartbeat's upsert never names them, so
 * it can never clear a halt — and are signed under the chain key (`halt_mac`).
 */
export const agents = presenceSchema.table(
  "agents",
  {
    agentId: text("agent_id").primaryKey(),
    /** `live`, `idle` or `unresponsive`, as last set by a heartbeat, markIdle or checkStale. */
    status: text("status").notNull(),
    /** The last heartbeat; null for an agent halted before it was ever seen. */
    lastSeen: timestamp("last_seen", { withTimezone: true, mode: "string" }),
    firstSeen: timestamp("first_seen", { withTimezone: true, mode: "string" }).notNull(),
    operatorId: text("operator_id"),
    metadata: jsonb("metadata"),
    /** Set while the agent is halted; null otherwise. */
    haltedAt: timestamp("halted_at", { withTimezone: true, mode: "string" }),
    haltedBy: text("halted_by"),
    haltReason: text("halt_reason"),
    /** The last halt or resume's place in {@link haltVersionSequence}. */
    haltVersion: bigint("halt_version", { mode: "number" }),
    resumedAt: timestamp("resumed_at", { withTimezone: true, mode: "string" }),
    resumedBy: text("resumed_by"),
    resumeReason: text("resume_reason"),
    /**
     * HMAC-SHA256 (hex), under the chain key named by `halt_key_id`, of the halt state the
     * row holds: agent, version, halted or resumed, by whom, when and why (see
     * `haltStatePayload`). Written by every `halt()` and `resume()`; a row whose MAC does not
     * verify is refused and enforced as a halt. Null on rows written before halts were signed.
     */
    haltMac: text("halt_mac"),
    /** The id of the chain key that signed `halt_mac`. */
    haltKeyId: text("halt_key_id"),
  },
  (table) => [
    check("agents_status", sql`${table.status} in ('live', 'idle', 'unresponsive')`),
    check(
      "agents_halt_complete",
      sql`(${table.haltedAt} is null) = (${table.haltedBy} is null) and (${table.haltedAt} is null) = (${table.haltReason} is null)`,
    ),
    index("agents_halt_version").on(table.haltVersion).where(sql`${table.haltVersion} is not null`),
  ],
);
