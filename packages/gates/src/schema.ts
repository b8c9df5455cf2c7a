import { sql } from "drizzle-orm";
import {
  check,
  index,
  jsonb,
  pgSchema,
  smallint,
  text,
  timestamp,
  unique,
  uuid,
} from "drizzle-orm/pg-core";

/** Everything @gov/gates stores lives in this Postgres schema. */
export const gatesSchema = pgSchema("gov_gates");

/**
 * One row per approval request. What is stored is what verification needs, never the
 * token: a domain-separated SHA-256 of it (`token_digest`), the id of the key that signed
 * it, and the fields it signs (`request_id`, `action_hash`, `expires_at`). A database
 * reader cannot rebuild a token from a row.
 *
 * `status` moves once: `pending` → `granting` / `denying` (the single-use claim, invisible to
 * waiters; `resolved_at` is when it was claimed) → `granted` / `denied` once the audit event
 * is durable; a claim whose audit event could not be written, or that is older than
 * `staleClaimMs` (its process died), goes back to `pending` (or to `expired`). `pending` →
 * `expired` by clean-up. The decision columns are signed (`decision_mac` under the key
 * `decision_key_id`, which must be the request's `key_id`), so that a row flipped to `granted`
 * by hand is refused by every waiter; the decision MAC is written only when the decision is
 * published (a claim holds a claim MAC, which never verifies as a decision), so a released
 * claim copied back grants nothing. A trigger (migrations 0002, 0004, 0005 and 0007) keeps a row
 * born pending and undecided, what was signed immutable, statuses one-way, a decision published
 * only with its own MAC, and an executed row (`executed_at` set) final.
 */
export const requests = gatesSchema.table(
  "requests",
  {
    requestId: uuid("request_id").primaryKey(),
    /** What is being approved, e.g. `deploy.production`. */
    kind: text("kind").notNull(),
    /** The agent that asked. */
    agentId: text("agent_id").notNull(),
    /** SHA-256 (hex) of the RFC 8785 form of the payload. */
    actionHash: text("action_hash").notNull(),
    /** The payload, for the reviewer to read (console, CLI). */
    payload: jsonb("payload").notNull(),
    /** 1 (legacy) or 2. */
    tokenVersion: smallint("token_version").notNull(),
    /** The 16-character id of the key that signed the token. */
    keyId: text("key_id").notNull(),
    /** SHA-256 (hex) of `gov.gates.token-digest\0` + the token. */
    tokenDigest: text("token_digest").notNull(),
    status: text("status").notNull().default("pending"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "string" }).notNull(),
    /** Who granted or denied it. */
    reviewerId: text("reviewer_id"),
    /** Why (required for a denial, optional for a grant). */
    reason: text("reason"),
    /** When it was granted, denied or expired. */
    resolvedAt: timestamp("resolved_at", { withTimezone: true, mode: "string" }),
    /** The key that signed the decision. */
    decisionKeyId: text("decision_key_id"),
    /**
     * HMAC-SHA256 (hex) of the decision (`granted` / `denied`), written when it is published.
     * During a claim (`granting` / `denying`) it holds the claim's MAC, which identifies the
     * claim and never verifies as a decision; null when pending or expired.
     */
    decisionMac: text("decision_mac"),
    /** When the approved action was executed by `verifyAction` / `requireApproval` (once; final). */
    executedAt: timestamp("executed_at", { withTimezone: true, mode: "string" }),
    /** The operator bound to the agent when the request was made (null: none). */
    operatorId: text("operator_id"),
    /**
     * Whether that operator was looked up (`ok`) or the lookup failed (`failed`: the request
     * cannot be granted). Null for requests made before this column existed.
     */
    operatorLookup: text("operator_lookup"),
    /**
     * HMAC-SHA256 (hex), under the key `key_id`, of what the request is — id, kind, agent,
     * action hash, token version, key id, token digest, creation and expiry times, and the
     * operator at request time — written when the request is made, so that a row re-targeted
     * in the table cannot be granted. Null for requests made before this column existed:
     * those can be denied, not granted.
     */
    requestMac: text("request_mac"),
    /**
     * The caller's key for the request (`request(kind, agentId, { key })`, e.g. the AI SDK's tool
     * call id), by which `findRequest` finds it again from any process; unique per agent and
     * kind. Covered by the request MAC when set. Null for requests made without one, and for
     * requests made before this column existed.
     */
    requestKey: text("request_key"),
  },
  (table) => [
    check(
      "requests_status",
      sql`${table.status} in ('pending', 'granting', 'denying', 'granted', 'denied', 'expired')`,
    ),
    check("requests_action_hash", sql`${table.actionHash} ~ '^[0-9a-f]{64}$'`),
    check("requests_token_digest", sql`${table.tokenDigest} ~ '^[0-9a-f]{64}$'`),
    check("requests_token_version", sql`${table.tokenVersion} in (1, 2)`),
    check("requests_operator_lookup", sql`${table.operatorLookup} in ('ok', 'failed')`),
    check("requests_request_mac", sql`${table.requestMac} ~ '^[0-9a-f]{64}$'`),
    check(
      "requests_decision_complete",
      sql`(${table.status} in ('pending', 'expired')) = (${table.decisionMac} is null)`,
    ),
    index("requests_pending_expiry").on(table.expiresAt).where(sql`${table.status} = 'pending'`),
    index("requests_agent_created").on(table.agentId, table.createdAt),
    // Nulls are distinct: requests without a key never conflict.
    unique("requests_agent_kind_key").on(table.agentId, table.kind, table.requestKey),
  ],
);
