import { sql } from "drizzle-orm";
import { bigint, jsonb, pgSchema, text, timestamp } from "drizzle-orm/pg-core";

/** Everything @gov/scope stores lives in this Postgres schema. */
export const scopeSchema = pgSchema("gov_scope");

/**
 * Where revisions come from: every registration takes the next value (and never less than one
 * past the row's own revision), so that a row deleted and written again does not start over
 * at 1 below the revision that running processes hold.
 */
export const policyRevisionSequence = scopeSchema.sequence("policy_revision");

/**
 * The registered policies, one row per agent: what other processes load and the console
 * shows. `revision` grows on every registration (from {@link policyRevisionSequence}), so
 * that a process applies a row only when it is newer than the policy it holds.
 *
 * `mac` is HMAC-SHA256, under the chain key named by `key_id`, of the row's canonical form
 * (agent id, the four lists, revision, and the domain tag `gov.scope.policy.v1`): a row
 * whose MAC does not verify is refused by every process. Rows written before signing was
 * added have neither and are refused until the policy is registered again.
 */
export const policies = scopeSchema.table("policies", {
  agentId: text("agent_id").primaryKey(),
  allowedTools: jsonb("allowed_tools").$type<string[]>().notNull(),
  allowedApis: jsonb("allowed_apis").$type<string[]>().notNull(),
  hiddenTools: jsonb("hidden_tools").$type<string[]>().notNull(),
  allowedModels: jsonb("allowed_models").$type<string[]>().notNull(),
  revision: bigint("revision", { mode: "number" }).notNull().default(1),
  /** HMAC-SHA256 (64 lowercase hex characters) of the row's signed form; null on rows written before signing. */
  mac: text("mac"),
  /** Id of the chain key that made `mac` (a key fingerprint prefix); null with `mac`. */
  keyId: text("key_id"),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" })
    .notNull()
    .default(sql`now()`),
});
