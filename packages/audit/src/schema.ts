import { sql } from "drizzle-orm";
import { bigint, index, pgSchema, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

/** Everything @gov/audit stores lives in this Postgres schema. */
export const auditSchema = pgSchema("gov_audit");

/**
 * The audit chain: append-only (triggers refuse UPDATE, DELETE and TRUNCATE). `payload` is
 * the signed record (see FORMAT.md); the other columns are projections of it, for queries,
 * and verification checks that they agree with it.
 */
export const events = auditSchema.table(
  "events",
  {
    eventId: uuid("event_id").primaryKey(),
    /** The chain: the session id, or `agent:<agentId>` for events without a session. */
    chain: text("chain").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    prevHash: text("prev_hash"),
    hmac: text("hmac").notNull(),
    keyId: text("key_id").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    agentId: text("agent_id").notNull(),
    kind: text("kind").notNull(),
    sessionId: text("session_id"),
    parentEventId: uuid("parent_event_id"),
    payload: text("payload").notNull(),
  },
  (table) => [
    uniqueIndex("events_chain_seq").on(table.chain, table.seq),
    // No two rows share a predecessor, and a chain has one root.
    uniqueIndex("events_chain_prev_hash").on(table.chain, table.prevHash),
    uniqueIndex("events_chain_root").on(table.chain).where(sql`prev_hash is null`),
    index("events_agent_created").on(table.agentId, table.createdAt),
    index("events_kind_created").on(table.kind, table.createdAt),
    index("events_created").on(table.createdAt),
    index("events_parent").on(table.parentEventId),
  ],
);

/** The head of each chain, so that an append reads one row. Derived, not evidence. */
export const heads = auditSchema.table("heads", {
  chain: text("chain").primaryKey(),
  seq: bigint("seq", { mode: "number" }).notNull(),
  hmac: text("hmac").notNull(),
  eventId: uuid("event_id").notNull(),
});

/**
 * Signed checkpoints of chain heads: a hash chain cannot show that its newest rows were
 * deleted; a checkpoint can. Append-only.
 */
export const checkpoints = auditSchema.table(
  "checkpoints",
  {
    checkpointId: uuid("checkpoint_id").primaryKey(),
    chain: text("chain").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    hash: text("hash").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    keyId: text("key_id").notNull(),
    hmac: text("hmac").notNull(),
    payload: text("payload").notNull(),
    /**
     * Ed25519 signature of `payload` (128 hex characters) under the key `signing_key_id`
     * names; null for a checkpoint signed with the HMAC only (before signing keys, or
     * without one).
     */
    signature: text("signature"),
    /** Id of the Ed25519 public key that verifies `signature` (FORMAT.md). */
    signingKeyId: text("signing_key_id"),
  },
  (table) => [index("checkpoints_chain_seq").on(table.chain, table.seq)],
);

/** Key rotations, each signed by the old key and by the new one. Append-only. */
export const keyRotations = auditSchema.table("key_rotations", {
  rotationId: uuid("rotation_id").primaryKey(),
  oldKeyId: text("old_key_id").notNull(),
  newKeyId: text("new_key_id").notNull(),
  rotatedAt: timestamp("rotated_at", { withTimezone: true, mode: "string" }).notNull(),
  payload: text("payload").notNull(),
  hmacOld: text("hmac_old").notNull(),
  hmacNew: text("hmac_new").notNull(),
});
