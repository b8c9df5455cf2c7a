import { InvalidArgumentError, isUuid, type Store, sql } from "@gov/core";
import { AGENT_CHAIN_PREFIX } from "./models";
import {
  chainName,
  checkedDate,
  type EventFilters,
  METHOD_OPTION_KEYS,
  refuseUnknownOptions,
  type VerifyChainOptions,
} from "./options";
import { type AuditEventRecord, type PayloadFields, recordFromPayload } from "./record";

/** A stored row's record, read from its signed payload. */
export function storedRecord(row: { payload: string; hmac: string }): AuditEventRecord {
  return recordFromPayload(JSON.parse(row.payload) as PayloadFields, row.hmac);
}

/**
 * The rows matching `filters`, oldest first, with their chains (see
 * {@link AuditModule.getEvents}).
 */
export async function readEvents(
  store: Store,
  filters: EventFilters,
): Promise<{ payload: string; hmac: string; chain: string }[]> {
  refuseUnknownOptions(
    METHOD_OPTION_KEYS.getEvents,
    filters,
    "Call getEvents() for every event, or getEvents({ sessionId, limit }).",
    "filters",
  );
  const limit = filters.limit ?? 1_000;
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new InvalidArgumentError(
      "limit",
      `must be an integer from 1 to 10000, got ${String(limit)}.`,
      "Page through results with since/until.",
    );
  }
  const conditions = [sql`true`];
  if (filters.sessionId !== undefined)
    conditions.push(sql`chain = ${chainName(filters.sessionId, "sessionId")}`);
  if (filters.agentId !== undefined)
    conditions.push(sql`agent_id = ${chainName(filters.agentId, "agentId")}`);
  if (filters.kind !== undefined) conditions.push(sql`kind = ${chainName(filters.kind, "kind")}`);
  if (filters.since !== undefined)
    conditions.push(
      sql`created_at >= ${checkedDate(filters.since, "since").toISOString()}::timestamptz`,
    );
  if (filters.until !== undefined)
    conditions.push(
      sql`created_at < ${checkedDate(filters.until, "until").toISOString()}::timestamptz`,
    );
  return store.query<{ payload: string; hmac: string; chain: string }>(
    sql`select payload, hmac, chain from gov_audit.events where ${sql.join(conditions, sql` and `)} order by created_at, chain, seq limit ${limit}`,
  );
}

/** The options that verify one chain, by its name. */
export function chainFilter(chain: string): VerifyChainOptions {
  return chain.startsWith(AGENT_CHAIN_PREFIX)
    ? { agentId: chain.slice(AGENT_CHAIN_PREFIX.length) }
    : { sessionId: chain };
}

/**
 * An event and its provenance: the event, its parent, the parent's parent, … up to the
 * root (at most 256 steps).
 */
export async function traceEvent(store: Store, eventId: string): Promise<AuditEventRecord[]> {
  // Either case, unlike core's isUuid (lower case only): Postgres reads a `uuid` in either case,
  // and trace() has always accepted both.
  if (typeof eventId !== "string" || !isUuid(eventId.toLowerCase())) {
    throw new InvalidArgumentError(
      "eventId",
      "must be the UUID of an audit event.",
      "Pass the eventId of a record returned by log().",
    );
  }
  const chain: AuditEventRecord[] = [];
  const seen = new Set<string>();
  let next: string | null = eventId;
  while (next !== null && chain.length < 256) {
    if (seen.has(next)) break;
    seen.add(next);
    const rows: { payload: string; hmac: string }[] = await store.query<{
      payload: string;
      hmac: string;
    }>(sql`select payload, hmac from gov_audit.events where event_id = ${next}::uuid`);
    const row = rows[0];
    if (!row) break;
    const record = storedRecord(row);
    chain.push(record);
    next = record.parentEventId;
  }
  return chain;
}
