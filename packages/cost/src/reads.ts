/**
 * The module's reads: `snapshot` and `modelBreakdown`, which never throw for a store failure,
 * and their statements, in raw SQL: the budget snapshot (a session's and an agent's day
 * counters in one statement, and what is left under each cap of the policy) and the spend per
 * model. The columns they name are listed in {@link RAW_SQL_COLUMNS}, which a test checks
 * against the migrated database on both engines.
 */
import { checkId, describeError, InvalidArgumentError, type Store, sql } from "@gov/core";
import { BUDGET_LIMITS, type ExactCaps } from "./budget-policy";
import type { BudgetSnapshot } from "./models";
import { decimalToUnits, FEMTO_DIGITS, femtoToUsd } from "./money";
import { type CostRuntime, today } from "./runtime";
import { callOptions, checkIds, readCallOptions } from "./validate";

const BREAKDOWN_OPTIONS = callOptions(
  ["since"],
  "modelBreakdown(agentId, { since: new Date(Date.now() - 86_400_000) })",
);

/** A session's counters as the snapshot reads them (`gov_cost.sessions`), decimals as text. */
export interface SessionCounters {
  usd: string;
  tokens: string;
  reserved_usd: string;
  reserved_tokens: string;
  /** Seconds since the session started, on the database's clock. */
  elapsed: string;
}

/** An agent's counters of one UTC day as the snapshot reads them (`gov_cost.agent_days`). */
export interface DailyCounters {
  usd: string;
  tokens: string;
  reserved_usd: string;
  reserved_tokens: string;
}

/**
 * Every column the module's raw SQL names (here, and the functions' calls in `sql.ts` and
 * `settle.ts`), per table of `gov_cost`, with its Postgres data type as
 * `information_schema.columns` reports it: `schema-columns.test.ts` checks them against the
 * migrated database and against the drizzle tables of `schema.ts`.
 */
export const RAW_SQL_COLUMNS = {
  sessions: {
    agent_id: "text",
    session_id: "text",
    usd: "numeric",
    tokens: "bigint",
    reserved_usd: "numeric",
    reserved_tokens: "bigint",
    started_at: "timestamp with time zone",
  },
  agent_days: {
    agent_id: "text",
    day: "date",
    usd: "numeric",
    tokens: "bigint",
    reserved_usd: "numeric",
    reserved_tokens: "bigint",
  },
  usage: {
    agent_id: "text",
    model: "text",
    usd: "numeric",
    tokens: "bigint",
    recorded_at: "timestamp with time zone",
  },
} as const;

/** The functions of `gov_cost` the module calls by name. */
export const RAW_SQL_FUNCTIONS = [
  "check_and_reserve",
  "record_usage",
  "release",
  "release_expired",
  "lease",
  "release_leases",
] as const;

/** Both counters of a snapshot; undefined where there is no row yet. Rejects when the store does. */
export async function readCounters(
  store: Store,
  agentId: string,
  sessionId: string,
  day: string,
): Promise<{ session: SessionCounters | undefined; daily: DailyCounters | undefined }> {
  const rows = await store.query<{ s: SessionCounters | null; d: DailyCounters | null }>(sql`
    select
      (select jsonb_build_object('usd', usd::text, 'tokens', tokens::text,
               'reserved_usd', reserved_usd::text, 'reserved_tokens', reserved_tokens::text,
               'elapsed', extract(epoch from now() - started_at)::text)
         from gov_cost.sessions where agent_id = ${agentId} and session_id = ${sessionId}) as s,
      (select jsonb_build_object('usd', usd::text, 'tokens', tokens::text,
               'reserved_usd', reserved_usd::text, 'reserved_tokens', reserved_tokens::text)
         from gov_cost.agent_days where agent_id = ${agentId} and day = ${day}::date) as d`);
  return { session: rows[0]?.s ?? undefined, daily: rows[0]?.d ?? undefined };
}

/** The snapshot of counters read (zeros where there are none) under the policy's caps. */
export function budgetSnapshot(input: {
  agentId: string;
  sessionId: string;
  day: string;
  session: SessionCounters | undefined;
  daily: DailyCounters | undefined;
  caps: ExactCaps | undefined;
  degraded: boolean;
}): BudgetSnapshot {
  const { session, daily, caps } = input;
  const femto = (value: string | undefined) =>
    value === undefined ? 0n : (decimalToUnits(value, FEMTO_DIGITS) as bigint);
  const sessionUsd = femto(session?.usd);
  const sessionReserved = femto(session?.reserved_usd);
  const dailyUsd = femto(daily?.usd);
  const dailyReserved = femto(daily?.reserved_usd);
  const sessionTokens = Number(session?.tokens ?? 0);
  const sessionTokensReserved = Number(session?.reserved_tokens ?? 0);
  const dailyTokens = Number(daily?.tokens ?? 0);
  const dailyTokensReserved = Number(daily?.reserved_tokens ?? 0);
  const elapsed = session ? Number(session.elapsed) : null;
  const usdLeft = (limit: bigint | null | undefined, used: bigint) =>
    limit == null ? null : Number(femtoToUsd(limit > used ? limit - used : 0n));
  const tokensLeft = (limit: number | null | undefined, used: number) =>
    limit == null ? null : Math.max(0, limit - used);
  return Object.freeze({
    agentId: input.agentId,
    sessionId: input.sessionId,
    day: input.day,
    sessionUsdUsed: Number(femtoToUsd(sessionUsd)),
    sessionTokensUsed: sessionTokens,
    sessionUsdReserved: Number(femtoToUsd(sessionReserved)),
    sessionTokensReserved,
    agentDailyUsdUsed: Number(femtoToUsd(dailyUsd)),
    agentDailyTokensUsed: dailyTokens,
    agentDailyUsdReserved: Number(femtoToUsd(dailyReserved)),
    agentDailyTokensReserved: dailyTokensReserved,
    sessionSeconds: elapsed,
    sessionUsdRemaining: usdLeft(caps?.perSessionUsd, sessionUsd + sessionReserved),
    sessionTokensRemaining: tokensLeft(
      caps?.perSessionTokens,
      sessionTokens + sessionTokensReserved,
    ),
    agentDailyUsdRemaining: usdLeft(caps?.perAgentUsdDaily, dailyUsd + dailyReserved),
    agentDailyTokensRemaining: tokensLeft(
      caps?.perAgentTokensDaily,
      dailyTokens + dailyTokensReserved,
    ),
    sessionSecondsRemaining:
      caps?.perSessionSeconds == null ? null : Math.max(0, caps.perSessionSeconds - (elapsed ?? 0)),
    degraded: input.degraded,
  });
}

/** The agent's spend per model (usage recorded with a model), all time or since `since`. */
export async function readModelBreakdown(
  store: Store,
  agentId: string,
  since: Date | undefined,
): Promise<Record<string, { usd: number; tokens: number }>> {
  const rows = await store.query<{ model: string; usd: string; tokens: string }>(sql`
    select model, sum(usd)::text as usd, sum(tokens)::text as tokens
    from gov_cost.usage
    where agent_id = ${agentId} and model is not null
      ${since ? sql`and recorded_at >= ${since.toISOString()}::timestamptz` : sql``}
    group by model order by model`);
  const out: Record<string, { usd: number; tokens: number }> = {};
  for (const row of rows) out[row.model] = { usd: Number(row.usd), tokens: Number(row.tokens) };
  return out;
}

/**
 * Usage and remaining budget of the agent and session (`CostModule.snapshot`); zeros with
 * `degraded: true` when the store cannot be read.
 */
export async function readSnapshot(
  runtime: CostRuntime,
  agentId: string,
  sessionId: string,
): Promise<BudgetSnapshot> {
  checkIds(agentId, sessionId);
  const day = today(runtime);
  let counters: Awaited<ReturnType<typeof readCounters>> = {
    session: undefined,
    daily: undefined,
  };
  let degraded = false;
  try {
    counters = await readCounters(runtime.store, agentId, sessionId, day);
  } catch (error) {
    degraded = true;
    runtime.logger.error("snapshot could not read the budget; zeros are returned (degraded).", {
      agentId,
      sessionId,
      error: describeError(error),
    });
  }
  return budgetSnapshot({
    agentId,
    sessionId,
    day,
    ...counters,
    caps: runtime.policies.get(agentId)?.exact,
    degraded,
  });
}

/** The agent's spend per model (`CostModule.modelBreakdown`); `{}` when the store cannot be read. */
export async function modelBreakdown(
  runtime: CostRuntime,
  agentId: string,
  options: { since?: Date },
): Promise<Record<string, { usd: number; tokens: number }>> {
  checkId(agentId, "agentId", { max: BUDGET_LIMITS.agentId });
  const since = readCallOptions(BREAKDOWN_OPTIONS, options).since;
  if (since !== undefined && !(since instanceof Date && Number.isFinite(since.getTime()))) {
    throw new InvalidArgumentError(
      "since",
      "must be a valid Date.",
      "Pass a Date, or leave it out.",
    );
  }
  try {
    return await readModelBreakdown(runtime.store, agentId, since);
  } catch (error) {
    runtime.logger.error("modelBreakdown could not read usage; {} is returned.", {
      agentId,
      error: describeError(error),
    });
    return {};
  }
}
