import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  date,
  index,
  jsonb,
  numeric,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

/** Everything @gov/cost stores lives in this Postgres schema. */
export const costSchema = pgSchema("gov_cost");

/** USD amounts: exact decimals to the femto-dollar (10⁻¹⁵ USD). */
const usd = (name: string) => numeric(name, { precision: 38, scale: 15 });

/**
 * One row per (agent, session): what the session has spent (`usd`, `tokens`, only ever
 * growing), what is reserved by checks whose calls have not reported yet, and when it started
 * — on the database's clock, so that every host measures session time alike.
 */
export const sessions = costSchema.table(
  "sessions",
  {
    agentId: text("agent_id").notNull(),
    sessionId: text("session_id").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`now()`),
    usd: usd("usd").notNull().default("0"),
    tokens: bigint("tokens", { mode: "number" }).notNull().default(0),
    reservedUsd: usd("reserved_usd").notNull().default("0"),
    reservedTokens: bigint("reserved_tokens", { mode: "number" }).notNull().default(0),
    /** The alert threshold of the USD cap was crossed (the webhook fired once). */
    alertedUsd: boolean("alerted_usd").notNull().default(false),
    alertedTokens: boolean("alerted_tokens").notNull().default(false),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`now()`),
  },
  (table) => [
    primaryKey({ columns: [table.agentId, table.sessionId] }),
    check(
      "sessions_amounts",
      sql`${table.usd} >= 0 and ${table.tokens} >= 0 and ${table.reservedUsd} >= 0 and ${table.reservedTokens} >= 0`,
    ),
  ],
);

/** One row per (agent, UTC day): the agent's spend and reservations across all its sessions. */
export const agentDays = costSchema.table(
  "agent_days",
  {
    agentId: text("agent_id").notNull(),
    day: date("day", { mode: "string" }).notNull(),
    usd: usd("usd").notNull().default("0"),
    tokens: bigint("tokens", { mode: "number" }).notNull().default(0),
    reservedUsd: usd("reserved_usd").notNull().default("0"),
    reservedTokens: bigint("reserved_tokens", { mode: "number" }).notNull().default(0),
    alertedUsd: boolean("alerted_usd").notNull().default(false),
    alertedTokens: boolean("alerted_tokens").notNull().default(false),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`now()`),
  },
  (table) => [
    primaryKey({ columns: [table.agentId, table.day] }),
    check(
      "agent_days_amounts",
      sql`${table.usd} >= 0 and ${table.tokens} >= 0 and ${table.reservedUsd} >= 0 and ${table.reservedTokens} >= 0`,
    ),
  ],
);

/**
 * Open reservations: projected spend that a check let through and whose call has not reported
 * its usage yet. A reservation is deleted when it is settled (its usage recorded, the rest
 * released) or when it expires.
 */
export const reservations = costSchema.table(
  "reservations",
  {
    id: uuid("id").primaryKey(),
    agentId: text("agent_id").notNull(),
    sessionId: text("session_id").notNull(),
    day: date("day", { mode: "string" }).notNull(),
    model: text("model"),
    usd: usd("usd").notNull(),
    tokens: bigint("tokens", { mode: "number" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`now()`),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "string" }).notNull(),
    /**
     * A budget lease: one process's hold on the budget of several calls, which it admits
     * locally. Its calls' usage releases their part of it; it is never matched to a usage
     * that names no reservation, and whatever is left is released when the lease ends.
     */
    lease: boolean("lease").notNull().default(false),
  },
  (table) => [
    index("reservations_session").on(table.agentId, table.sessionId, table.createdAt),
    index("reservations_expiry").on(table.expiresAt),
  ],
);

/**
 * Every usage recorded, once: `id` is chosen by the process before its first attempt (so a
 * retried write is not counted twice), and a reservation is settled by at most one usage.
 */
export const usage = costSchema.table(
  "usage",
  {
    id: uuid("id").primaryKey(),
    /** The reservation this usage names: each is settled by at most one usage. */
    reservationId: uuid("reservation_id").unique("usage_reservation"),
    /** The session's oldest open reservation, settled by a usage that named none. */
    matchedReservationId: uuid("matched_reservation_id"),
    agentId: text("agent_id").notNull(),
    sessionId: text("session_id").notNull(),
    day: date("day", { mode: "string" }).notNull(),
    model: text("model"),
    /** `track`, `usage` (trackUsage) or `reconcile`. */
    kind: text("kind").notNull(),
    usd: usd("usd").notNull(),
    tokens: bigint("tokens", { mode: "number" }).notNull(),
    /** The priced parts, when the USD was computed from a price. */
    detail: jsonb("detail"),
    /** Why a reconcile recorded this (`completed`, `cancelled`, …). */
    reason: text("reason"),
    recordedAt: timestamp("recorded_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`now()`),
  },
  (table) => [
    index("usage_agent_model").on(table.agentId, table.model),
    index("usage_session").on(table.agentId, table.sessionId),
    check("usage_kind", sql`${table.kind} in ('track', 'usage', 'reconcile')`),
    check("usage_amounts", sql`${table.usd} >= 0 and ${table.tokens} >= 0`),
  ],
);
