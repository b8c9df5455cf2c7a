import { sql } from "drizzle-orm";
import { bigint, jsonb, pgSchema, text, timestamp } from "drizzle-orm/pg-core";

/** Everything @gov/scope stores lives in this Postgres schema. */
export const scopeSchema = pgSchema("gov_scope");

/**
 * The registered policies, one row per agent: what other processes load and the console
 * shows. `revision` grows by one on every registration, so that a process applies a row only
 * when it is newer than the policy it holds.
 */
export const policies = scopeSchema.table("policies", {
  agentId: text("agent_id").primaryKey(),
  allowedTools: jsonb("allowed_tools").$type<string[]>().notNull(),
  allowedApis: jsonb("allowed_apis").$type<string[]>().notNull(),
  hiddenTools: jsonb("hidden_tools").$type<string[]>().notNull(),
  allowedModels: jsonb("allowed_models").$type<string[]>().notNull(),
  revision: bigint("revision", { mode: "number" }).notNull().default(1),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" })
    .notNull()
    .default(sql`now()`),
});
