/**
 * The SQL call format: what the cost module sends to `gov_cost.check_and_reserve(jsonb)` and
 * `gov_cost.record_usage(jsonb)` (migration 0004), one JSON array per batch, and what it keeps
 * in the usage spool while the store is away. Every field is named here; this file is the one
 * place that writes them. Amounts travel as decimal strings (USD to 15 places, whole tokens),
 * so that no float rounds them on the way.
 *
 * The previous version wrote single letters (`a`, `s`, `d`, `t`, `u`, …) in spool lines of
 * version 1: {@link settleItemFromSpool} reads those too, so that a spool left by that version
 * is replayed after an upgrade.
 */
import { type Store, StoreError, sql } from "@gov/core";
import { ItemFailure } from "./batcher";
import type { BudgetCap, BudgetPolicy, ExactCaps } from "./budget-policy";
import { femtoToUsd } from "./money";

/** The caps of a policy as the SQL functions take them: limits as decimal strings, only those set. */
export type CapLimits = Partial<Record<BudgetCap, string>>;

/** One check of `check_and_reserve`: refuse when a cap would be exceeded, else reserve. */
export interface ReserveRequest extends CapLimits {
  /** The reservation's id (a UUID made by the caller). */
  reservationId: string;
  agentId: string;
  sessionId: string;
  /** The UTC day (`YYYY-MM-DD`) the reservation counts against. */
  day: string;
  /** Tokens projected (whole, decimal string). */
  tokens: string;
  /** USD projected (decimal string). */
  usd: string;
  model: string | null;
  /** How long the reservation waits for its usage before the sweep releases it. */
  ttlMs: number;
}

/** What `check_and_reserve` answers for one request. */
export interface ReserveResult {
  ok: boolean;
  /** True when something was reserved (a projection above zero). */
  reserved?: boolean;
  /** On a refusal: the cap, and its amounts as decimal strings. */
  cap?: BudgetCap;
  used?: string;
  committed?: string;
  projected?: string;
  limit?: string;
}

/** Which surface recorded a usage record. */
export type UsageKind = "track" | "usage" | "reconcile";

/** The alert thresholds a usage record is checked against (the policy's alert). */
export interface AlertRequest
  extends Partial<Record<Exclude<BudgetCap, "perSessionSeconds">, string>> {
  /** Percent of a cap at which the alert fires. */
  thresholdPercent: number;
}

/** One usage record of `record_usage` (and of the spool). */
export interface SettleItem {
  /** The usage record's id: the same on every retry, so that it is recorded once. */
  usageId: string;
  agentId: string;
  sessionId: string;
  day: string;
  model: string | null;
  kind: UsageKind;
  tokens: string;
  usd: string;
  /** The reservation it settles (for a share of a lease: the share's id); absent: none named. */
  reservationId?: string;
  /** A share of a budget lease: the lease, and the share's part of it that the record releases. */
  leaseId?: string;
  shareUsd?: string;
  shareTokens?: string;
  /** Without a named reservation: settle the session's oldest open one. */
  oldestReservation?: true;
  /** Why a stream ended (reconcile). */
  reason?: string;
  /** The priced breakdown, stored with the record. */
  detail?: unknown;
  alert?: AlertRequest;
}

/** What `record_usage` answers for one item. */
export interface SettleResult {
  recorded: boolean;
  released: boolean;
  reservationId?: string;
  note?: string;
  day?: string;
  alerts?: { cap: BudgetCap; used: string; limit: string }[];
}

/** A spool line of the previous version: single letters (see the migration 0004 notes). */
interface LegacySettleItem {
  id: string;
  a: string;
  s: string;
  d: string;
  m: string | null;
  k: UsageKind;
  t: string;
  u: string;
  r?: string;
  fifo?: boolean;
  why?: string;
  detail?: unknown;
  alert?: { p: number; su?: string; st?: string; du?: string; dt?: string };
}

/** A usage record waiting in the durable spool: version 2 names its fields, version 1 did not. */
export type SpoolLine = { v: 2; item: SettleItem } | { v: 1; item: LegacySettleItem };

/** The spool line of a usage record. */
export function spoolLineOf(item: SettleItem): SpoolLine {
  return { v: 2, item };
}

/** The usage record of a spool line, of this version or the previous one. */
export function settleItemFromSpool(line: SpoolLine): SettleItem {
  if (line.v === 2) return line.item;
  const legacy = line.item;
  const item: SettleItem = {
    usageId: legacy.id,
    agentId: legacy.a,
    sessionId: legacy.s,
    day: legacy.d,
    model: legacy.m,
    kind: legacy.k,
    tokens: legacy.t,
    usd: legacy.u,
  };
  if (legacy.r !== undefined) item.reservationId = legacy.r;
  else if (legacy.fifo) item.oldestReservation = true;
  if (legacy.why !== undefined) item.reason = legacy.why;
  if (legacy.detail !== undefined) item.detail = legacy.detail;
  if (legacy.alert) {
    const { p, su, st, du, dt } = legacy.alert;
    item.alert = {
      thresholdPercent: p,
      ...(su === undefined ? {} : { perSessionUsd: su }),
      ...(st === undefined ? {} : { perSessionTokens: st }),
      ...(du === undefined ? {} : { perAgentUsdDaily: du }),
      ...(dt === undefined ? {} : { perAgentTokensDaily: dt }),
    };
  }
  return item;
}

/** A policy's caps as decimal strings, only those set. */
export function capLimitsOf(caps: ExactCaps): CapLimits {
  const out: CapLimits = {};
  if (caps.perSessionSeconds !== null) out.perSessionSeconds = String(caps.perSessionSeconds);
  if (caps.perSessionUsd !== null) out.perSessionUsd = femtoToUsd(caps.perSessionUsd);
  if (caps.perSessionTokens !== null) out.perSessionTokens = String(caps.perSessionTokens);
  if (caps.perAgentUsdDaily !== null) out.perAgentUsdDaily = femtoToUsd(caps.perAgentUsdDaily);
  if (caps.perAgentTokensDaily !== null) out.perAgentTokensDaily = String(caps.perAgentTokensDaily);
  return out;
}

/** The alert request of a policy with an alert (the time cap has no alert). */
export function alertOf(policy: BudgetPolicy | undefined): Pick<SettleItem, "alert"> {
  if (!policy?.alert) return {};
  const { perSessionSeconds: _seconds, ...caps } = capLimitsOf(policy.exact);
  return { alert: { thresholdPercent: policy.alert.thresholdPercent, ...caps } };
}

/**
 * Whether a failed write is worth keeping for a retry: everything but the database refusing
 * this very record (a data exception or a constraint, SQLSTATE classes 22 and 23), which would
 * fail the same way every time and block what waits behind it.
 */
export function isTransient(error: unknown): boolean {
  if (!StoreError.isInstance(error)) return true;
  const state = error.sqlState ?? "";
  return !(state.startsWith("22") || state.startsWith("23"));
}

/** Store errors worth retrying at once: another transaction got in the way. */
function isContention(error: unknown): boolean {
  return (
    StoreError.isInstance(error) && (error.kind === "deadlock" || error.kind === "serialization")
  );
}

async function withRetry<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= 3 || !isContention(error)) throw error;
    }
  }
}

/**
 * One call of a budget function for a batch (retried on deadlock or serialization failure).
 * When the database refuses the batch for its data (SQLSTATE classes 22 and 23), the items
 * are sent one by one, so that only the item at fault fails and its batch-mates — other
 * agents' checks — are not denied with it.
 */
export async function callBudgetFunction<R>(
  store: Store,
  fn: "reserve" | "settle",
  items: readonly (ReserveRequest | SettleItem)[],
): Promise<(R | ItemFailure)[]> {
  const call = (batch: readonly (ReserveRequest | SettleItem)[]) =>
    withRetry(async () => {
      const json = JSON.stringify(batch);
      const rows = await store.query<{ r: R[] }>(
        fn === "reserve"
          ? // A reservation is a hold, not a record of spend: it commits without waiting for the
            // WAL flush (visible to every other check at once, as any commit). A database crash
            // can lose the last few; their calls' usage is recorded anyway (as spend with no
            // reservation to release), so a lost hold never loses money.
            sql`select gov_cost.check_and_reserve(${json}::jsonb) as r, set_config('synchronous_commit', 'off', true)`
          : sql`select gov_cost.record_usage(${json}::jsonb) as r`,
      );
      return rows[0]?.r ?? [];
    });
  try {
    return await call(items);
  } catch (error) {
    if (items.length === 1 || isTransient(error)) throw error;
    const results: (R | ItemFailure)[] = [];
    for (const item of items) {
      try {
        const [result] = await call([item]);
        results.push(result as R);
      } catch (itemError) {
        if (isTransient(itemError)) throw itemError;
        results.push(new ItemFailure(itemError));
      }
    }
    return results;
  }
}
