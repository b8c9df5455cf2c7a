import { sql } from "drizzle-orm";
import { bigint, pgSchema, primaryKey, text, timestamp } from "drizzle-orm/pg-core";

/** Everything the coverage registry stores lives in this Postgres schema. */
export const coverageSchema = pgSchema("gov_coverage");

/**
 * The wrapped clients, one row per (agent, client): when the agent's client was first and last
 * seen governed, and how many governed calls went through it. An index for operators and
 * reports, not evidence: each wrapping is also recorded in the audit chain
 * (`wrapper.registered`), and each call (`llm.call`), where a change to this table shows.
 */
export const clients = coverageSchema.table(
  "clients",
  {
    agentId: text("agent_id").notNull(),
    /** The client, e.g. `openai`, `anthropic`, `ai-sdk`. */
    client: text("client").notNull(),
    firstSeenAt: timestamp("first_seen_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`now()`),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`now()`),
    /** Governed calls counted through this client (wrapping alone counts none). */
    calls: bigint("calls", { mode: "number" }).notNull().default(0),
  },
  (table) => [primaryKey({ columns: [table.agentId, table.client] })],
);
