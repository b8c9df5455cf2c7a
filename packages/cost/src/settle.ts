/**
 * The settle path: usage recorded (`track`, `trackUsage`, `reconcile`) settles its
 * reservation through the settle batcher, or waits in the backlog while the store is away;
 * reservations released by hand (`release`) or by the sweep (`releaseExpired`); and what
 * follows a settled record (counters, warnings, threshold alerts) or a dropped one.
 */
import { randomUUID } from "node:crypto";
import { checkId, describeError, InvalidArgumentError, type Store, sql } from "@gov/core";
import { ItemFailure } from "./batcher";
import type { BudgetPolicy } from "./budget-policy";
import { writeEvidence } from "./evidence";
import {
  COST_LIMITS,
  type ReconcileOptions,
  type TrackSpendOptions,
  type TrackUsageOptions,
  type UsageReceipt,
} from "./models";
import { femtoToUsd, trimDecimal } from "./money";
import type { PriceBreakdown } from "./price-table";
import { type CostRuntime, priceOf, today } from "./runtime";
import {
  alertOf,
  callBudgetFunction,
  isTransient,
  type SettleItem,
  type SettleResult,
  type UsageKind,
} from "./sql";
import type { ProviderUsage } from "./usage";
import {
  callOptions,
  checkCounts,
  checkIds,
  checkModel,
  checkReservationId,
  checkTokens,
  checkUsd,
  countsOf,
  exactFemto,
  hasCounts,
  readCallOptions,
} from "./validate";

const TRACK_OPTIONS = callOptions(
  ["tokens", "usd", "model", "reservationId"],
  "track(agentId, sessionId, { tokens: 150, usd: 0.003 })",
);
const USAGE_KEYS = [
  "model",
  "usage",
  "reservationId",
  "inputTokens",
  "outputTokens",
  "cachedInputTokens",
  "cacheWriteTokens",
  "reasoningTokens",
];
const TRACK_USAGE_OPTIONS = callOptions(
  USAGE_KEYS,
  'trackUsage(agentId, sessionId, { model: "gpt-4o", usage: response.usage })',
);
const RECONCILE_OPTIONS = callOptions(
  [...USAGE_KEYS, "chunks", "reason"],
  'reconcile(agentId, sessionId, { reservationId, model: "gpt-4o", reason: "cancelled", chunks: 12 })',
);

/** Reservations one `release` call may name. */
const MAX_RELEASE = 10_000;

/** Usage with its USD given (`CostModule.track`). */
export async function trackSpend(
  runtime: CostRuntime,
  agentId: string,
  sessionId: string,
  given: TrackSpendOptions,
): Promise<UsageReceipt> {
  checkIds(agentId, sessionId);
  const options = readCallOptions(TRACK_OPTIONS, given);
  const tokens = checkTokens("tokens", options.tokens, true);
  const femto = checkUsd("usd", options.usd);
  const model = options.model == null ? null : checkModel("model", options.model);
  const reservationId = checkReservationId(options.reservationId, false);
  return recordUsage(runtime, agentId, sessionId, {
    kind: "track",
    model,
    tokens,
    femto,
    reservationId,
    matchOldest: options.reservationId === undefined,
    breakdown: null,
    reason: null,
  });
}

/** A call's usage, priced from the price table part by part (`CostModule.trackUsage`). */
export async function trackUsage(
  runtime: CostRuntime,
  agentId: string,
  sessionId: string,
  given: TrackUsageOptions,
): Promise<UsageReceipt> {
  checkIds(agentId, sessionId);
  const options = readCallOptions(TRACK_USAGE_OPTIONS, given);
  checkCounts(options);
  const reservationId = checkReservationId(options.reservationId, false);
  if ((options.usage === undefined || options.usage === null) && !hasCounts(options)) {
    throw new InvalidArgumentError(
      "usage",
      "is missing: trackUsage needs the provider's usage payload or at least one token count.",
      "Pass usage (e.g. response.usage), or inputTokens/outputTokens/cachedInputTokens/cacheWriteTokens/reasoningTokens.",
    );
  }
  const breakdown = priceOf(runtime, options.model, options.usage ?? countsOf(options));
  return recordUsage(runtime, agentId, sessionId, {
    kind: "usage",
    model: options.model,
    tokens: breakdown.tokens.totalTokens,
    femto: exactFemto(breakdown),
    reservationId,
    matchOldest: options.reservationId === undefined,
    breakdown,
    reason: null,
  });
}

/** The end of a stream: its reservation settled once (`CostModule.reconcile`). */
export async function reconcileUsage(
  runtime: CostRuntime,
  agentId: string,
  sessionId: string,
  given: ReconcileOptions,
): Promise<UsageReceipt> {
  checkIds(agentId, sessionId);
  const options = readCallOptions(RECONCILE_OPTIONS, given);
  checkCounts(options);
  const reservationId = checkReservationId(options.reservationId, true) as string;
  checkId(options.reason, "reason", { max: 64 });
  let usage: ProviderUsage;
  if (options.usage !== undefined && options.usage !== null) {
    usage = options.usage;
  } else if (options.chunks !== undefined) {
    const chunks = checkTokens("chunks", options.chunks, true);
    usage = countsOf({
      inputTokens: checkTokens("inputTokens", options.inputTokens ?? 0, true),
      outputTokens: Math.min(chunks * 8, COST_LIMITS.tokens),
    });
  } else if (hasCounts(options)) {
    usage = countsOf(options);
  } else {
    throw new InvalidArgumentError(
      "usage",
      "is missing: reconcile needs the final usage, the token counts, or the chunks received.",
      "Pass usage (the provider's usage payload), inputTokens/outputTokens, or chunks (estimated at 8 tokens each).",
    );
  }
  const breakdown = priceOf(runtime, options.model, usage);
  return recordUsage(runtime, agentId, sessionId, {
    // The reservation's own id: a repeated reconcile is the same record, whatever it names.
    usageId: reservationId,
    kind: "reconcile",
    model: options.model,
    tokens: breakdown.tokens.totalTokens,
    femto: exactFemto(breakdown),
    reservationId,
    matchOldest: false,
    breakdown,
    reason: options.reason,
  });
}

/** Release reservations whose calls were never made (`CostModule.release`). */
export async function releaseReservations(
  runtime: CostRuntime,
  reservationIds: string[],
): Promise<number> {
  if (reservationIds.length > MAX_RELEASE) {
    throw new InvalidArgumentError(
      "reservationIds",
      `are ${reservationIds.length}; the limit is ${MAX_RELEASE} per call.`,
      `Release at most ${MAX_RELEASE} reservations per call (expired ones are released by the sweep anyway).`,
    );
  }
  const checked = reservationIds.map((id) => checkReservationId(id, true) as string);
  // Shares of a budget lease go back to the lease, here.
  const ids = checked.filter((id) => runtime.leases?.release(id) !== true);
  const shares = checked.length - ids.length;
  if (ids.length === 0) return shares;
  const rows = await runtime.store.query<{ released: unknown[] }>(
    sql`select gov_cost.release(${`{${ids.join(",")}}`}::uuid[]) as released`,
  );
  return shares + (rows[0]?.released.length ?? 0);
}

/** Release reservations whose time ran out, each audit-logged (`CostModule.releaseExpired`). */
export async function releaseExpiredReservations(runtime: CostRuntime): Promise<number> {
  let released: {
    id: string;
    agentId: string;
    sessionId: string;
    day: string;
    model: string | null;
    usd: string;
    tokens: string;
    createdAt: string;
  }[];
  try {
    const rows = await runtime.store.query<{ released: typeof released }>(
      sql`select gov_cost.release_expired(${1_000}) as released`,
    );
    released = rows[0]?.released ?? [];
  } catch (error) {
    runtime.logger.warn(
      "Expired budget reservations could not be released; the next sweep retries.",
      {
        error: describeError(error),
      },
    );
    return 0;
  }
  runtime.metrics.reservationsExpired += released.length;
  await Promise.all(
    released.map((reservation) =>
      writeEvidence(runtime, {
        agentId: reservation.agentId,
        sessionId: reservation.sessionId,
        kind: "budget.reservation_expired",
        model: reservation.model,
        metadata: {
          reservationId: reservation.id,
          usd: trimDecimal(reservation.usd),
          tokens: Number(reservation.tokens),
          day: reservation.day,
          reservedAt: reservation.createdAt,
        },
      }),
    ),
  );
  return released.length;
}

/** Send a batch of usage records to `gov_cost.record_usage` (the settle batcher's run). */
export function runSettle(
  store: Store,
  items: SettleItem[],
): Promise<(SettleResult | ItemFailure)[]> {
  return callBudgetFunction<SettleResult>(store, "settle", items);
}

/** A replayed record's outcome: recorded (or a duplicate), or refused by the database for its data. */
export async function replaySettled(
  runtime: CostRuntime,
  item: SettleItem,
  result: SettleResult | ItemFailure | undefined,
  policy: BudgetPolicy | undefined,
): Promise<void> {
  if (result === undefined) return;
  if (result instanceof ItemFailure) {
    await dropUsage(
      runtime,
      item,
      result.error,
      "The database refused a waiting usage record; it was dropped.",
    );
    return;
  }
  afterSettle(runtime, item, result, policy);
}

/** Usage that will never be written: logged and audit-logged as `budget.usage_dropped`. */
export async function dropUsage(
  runtime: CostRuntime,
  item: SettleItem,
  error: unknown,
  message: string,
): Promise<void> {
  runtime.metrics.usageDropped++;
  runtime.logger.error(message, {
    agentId: item.agentId,
    sessionId: item.sessionId,
    usd: item.usd,
    tokens: item.tokens,
    error: describeError(error),
  });
  await writeEvidence(runtime, {
    agentId: item.agentId,
    sessionId: item.sessionId,
    kind: "budget.usage_dropped",
    model: item.model,
    metadata: {
      usageId: item.usageId,
      usd: item.usd,
      tokens: Number(item.tokens),
      ...(error === null ? {} : { error: describeError(error) }),
    },
  });
}

/**
 * Record one usage: settled through the batcher, queued in the backlog when the store is away,
 * dropped when the store refuses it for its data.
 */
async function recordUsage(
  runtime: CostRuntime,
  agentId: string,
  sessionId: string,
  entry: {
    usageId?: string;
    kind: UsageKind;
    model: string | null;
    tokens: number;
    femto: bigint;
    /** The reservation the usage names; null: none. */
    reservationId: string | null;
    /** Without a named reservation, settle the session's oldest open one. */
    matchOldest: boolean;
    breakdown: PriceBreakdown | null;
    reason: string | null;
  },
): Promise<UsageReceipt> {
  const policy = runtime.policies.get(agentId);
  // A share of a budget lease: the record releases the share's part of the lease.
  const share =
    entry.reservationId === null
      ? null
      : (runtime.leases?.settle(entry.reservationId, agentId, sessionId) ?? null);
  const item: SettleItem = {
    usageId: entry.usageId ?? randomUUID(),
    agentId,
    sessionId,
    day: today(runtime),
    model: entry.model,
    kind: entry.kind,
    tokens: String(entry.tokens),
    usd: femtoToUsd(entry.femto),
    ...(entry.reservationId
      ? { reservationId: entry.reservationId, ...share }
      : entry.matchOldest
        ? { oldestReservation: true as const }
        : {}),
    ...(entry.reason ? { reason: entry.reason } : {}),
    ...(entry.breakdown
      ? {
          detail: {
            matched: entry.breakdown.matched,
            match: entry.breakdown.match,
            tokens: entry.breakdown.tokens,
            rates: entry.breakdown.rates,
            usd: entry.breakdown.exactUsd,
          },
        }
      : {}),
    ...alertOf(policy),
  };
  const receipt = (recorded: boolean, queued: boolean, reservationId: string | null) =>
    Object.freeze({
      usageId: item.usageId,
      recorded,
      queued,
      reservationId,
      tokens: entry.tokens,
      usd: Number(item.usd),
      exactUsd: item.usd,
      breakdown: entry.breakdown,
    });
  try {
    const result = await runtime.settle.submit(item);
    afterSettle(runtime, item, result, policy);
    return receipt(result.recorded, false, result.reservationId ?? null);
  } catch (error) {
    if (!isTransient(error)) {
      // Not the store being away: retrying would fail the same way and block the backlog.
      await dropUsage(runtime, item, error, "Usage could not be recorded and was dropped.");
      return receipt(false, false, entry.reservationId);
    }
    runtime.metrics.usageQueued++;
    await runtime.backlog.enqueue({ item, policy }, error);
    return receipt(false, true, entry.reservationId);
  }
}

function afterSettle(
  runtime: CostRuntime,
  item: SettleItem,
  result: SettleResult,
  policy: BudgetPolicy | undefined,
): void {
  if (!result.recorded) {
    runtime.metrics.usageDuplicates++;
    return;
  }
  runtime.metrics.usageRecorded++;
  if (result.note) {
    runtime.logger.warn(`Usage was recorded without settling its reservation: ${result.note}.`, {
      agentId: item.agentId,
      sessionId: item.sessionId,
      reservationId: item.reservationId,
    });
  }
  for (const alert of result.alerts ?? [])
    runtime.alerts.dispatch(item, alert, result.day ?? item.day, policy);
}
