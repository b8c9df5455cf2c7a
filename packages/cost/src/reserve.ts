/**
 * The reservation path of `checkOrRaise`: the projection of a call (validated, then priced),
 * and the check of every cap of the agent's policy with the reservation of that projection in
 * one statement — or the evidence of a breach or of a check that could not be made.
 */
import { randomUUID } from "node:crypto";
import {
  describeError,
  type HaltCheckContext,
  InvalidArgumentError,
  type Store,
  typeOf,
} from "@gov/core";
import type { ItemFailure } from "./batcher";
import { type BudgetCap, type BudgetPolicy, CAP_UNITS } from "./budget-policy";
import { BudgetCheckFailedError, BudgetExceeded } from "./errors";
import { writeEvidence } from "./evidence";
import { type BudgetReservation, type CheckOptions, COST_LIMITS } from "./models";
import { femtoToUsd, trimDecimal } from "./money";
import { type CostRuntime, priceOf, today } from "./runtime";
import { callBudgetFunction, capLimitsOf, type ReserveRequest, type ReserveResult } from "./sql";
import {
  callOptions,
  checkIds,
  checkModel,
  checkTokens,
  checkUsd,
  countsOf,
  exactFemto,
  readCallOptions,
} from "./validate";

/**
 * How many times a refused check waits for the settlements in flight and checks again; a
 * settlement that starts meanwhile can refuse it once more, but not forever.
 */
const MAX_RECHECKS = 3;

/**
 * The longest a refused check waits for the usage records in flight, in all (they are one
 * round trip each; one that takes longer does not hold the caller: the refusal stands).
 */
const RECHECK_WAIT_MS = 1_000;

const CHECK_CONTEXT: HaltCheckContext = Object.freeze({ path: "cost.checkOrRaise" });

const CHECK_OPTIONS = callOptions(
  ["model", "inputTokens", "maxTokens", "choices", "projectedTokens", "projectedUsd"],
  'checkOrRaise(agentId, sessionId, { model: "gpt-4o", maxTokens: 1024 })',
);

/** A check's projection as declared, validated. */
interface Declared {
  tokens: number;
  input: number;
  output: number;
  model: string | null;
  usd: bigint | null;
}

/**
 * Pre-call enforcement (`CostModule.checkOrRaise`): the halt check, then every cap of the
 * agent's policy checked, and the projection reserved, in one statement.
 */
export async function reserveBudget(
  runtime: CostRuntime,
  agentId: string,
  sessionId: string,
  options: CheckOptions,
): Promise<BudgetReservation> {
  checkIds(agentId, sessionId);
  const declared = declaredOf(runtime, options);
  await runtime.halt.assertAlive(agentId, CHECK_CONTEXT);
  runtime.metrics.checks++;
  const day = today(runtime);
  const policy = runtime.policies.get(agentId);
  const unchecked = (failOpen: boolean, unbudgeted: boolean): BudgetReservation =>
    Object.freeze({
      reservationId: null,
      agentId,
      sessionId,
      tokens: 0,
      usd: 0,
      exactUsd: "0",
      day,
      failOpen,
      unbudgeted,
    });
  const projection = project(runtime, declared);
  if (!policy) {
    if (!runtime.warnedUnbudgeted.has(agentId) && runtime.warnedUnbudgeted.size < 10_000) {
      runtime.warnedUnbudgeted.add(agentId);
      runtime.logger.warn(
        "checkOrRaise: the agent has no budget policy, so nothing is checked; register one with cost.register().",
        { agentId },
      );
    }
    runtime.metrics.passed++;
    return unchecked(false, true);
  }
  warnUnprojected(runtime, policy, projection);
  const request: ReserveRequest = {
    reservationId: randomUUID(),
    agentId,
    sessionId,
    day,
    tokens: String(projection.tokens),
    usd: femtoToUsd(projection.femto),
    model: options.model ?? null,
    ttlMs: runtime.options.reservationTtlMs,
    ...capLimitsOf(policy.exact),
  };
  const leases = projection.tokens > 0 || projection.femto > 0n ? runtime.leases : null;
  const share = leases?.admit(request, policy, projection) ?? null;
  if (share !== null) {
    runtime.metrics.passed++;
    return reserved(request, projection, share);
  }
  let first: ReserveResult & { reservationId: string };
  try {
    first =
      leases === null
        ? { ...(await runtime.reserve.submit(request)), reservationId: request.reservationId }
        : await leases.reserve(request, policy, projection);
  } catch (error) {
    runtime.metrics.checkFailures++;
    const failOpen = runtime.options.failOpen;
    runtime.logger.error(
      failOpen
        ? "checkOrRaise could not read the budget; the call is let through unchecked (costFailOpen)."
        : "checkOrRaise could not read the budget; the call is denied (fail-closed).",
      { agentId, sessionId, error: describeError(error) },
    );
    await writeEvidence(runtime, {
      agentId,
      sessionId,
      kind: "budget.check_failed",
      model: options.model ?? null,
      metadata: {
        failOpen,
        decision: failOpen ? "allowed" : "denied",
        error: describeError(error),
        projectedTokens: projection.tokens,
        projectedUsd: femtoToUsd(projection.femto),
      },
    });
    if (failOpen) {
      runtime.metrics.failOpenPasses++;
      return unchecked(true, false);
    }
    throw new BudgetCheckFailedError(agentId, sessionId, error);
  }
  const result = first.ok ? first : await recheck(runtime, request, first);
  const reservationId = result === first ? first.reservationId : request.reservationId;
  if (!result.ok) {
    runtime.metrics.exceeded++;
    const cap = result.cap as BudgetCap;
    const details = {
      agentId,
      sessionId,
      cap,
      unit: CAP_UNITS[cap],
      used: Number(result.used),
      committed: Number(result.committed),
      projected: Number(result.projected),
      limit: Number(result.limit),
    };
    await writeEvidence(runtime, {
      agentId,
      sessionId,
      kind: "budget.exceeded",
      model: options.model ?? null,
      metadata: {
        cap,
        unit: details.unit,
        used: trimDecimal(result.used),
        committed: trimDecimal(result.committed),
        projected: trimDecimal(result.projected),
        limit: trimDecimal(result.limit),
        day: request.day,
      },
    });
    throw new BudgetExceeded(details);
  }
  runtime.metrics.passed++;
  return reserved(request, projection, result.reserved ? reservationId : null);
}

/** The reservation a passed check returns (`reservationId`: its own, a lease's share, or none). */
function reserved(
  request: ReserveRequest,
  projection: { tokens: number },
  reservationId: string | null,
): BudgetReservation {
  return Object.freeze({
    reservationId,
    agentId: request.agentId,
    sessionId: request.sessionId,
    tokens: projection.tokens,
    usd: Number(request.usd),
    exactUsd: request.usd,
    day: request.day,
    failOpen: false,
    unbudgeted: false,
  });
}

/**
 * A refused check, while this process is still writing usage records or releases that may
 * concern the agent: wait for them and check again, so that a check right after a call sees
 * that call's real spend rather than its worst case still reserved. Room that this process's
 * budget leases hold and cannot use for the check is released first (and waited for the same
 * way), so that a lease never refuses what a reservation would pass. At most
 * {@link MAX_RECHECKS} times and {@link RECHECK_WAIT_MS} of waiting in all; the agent's halt
 * is checked before each new check. A check that cannot be made again keeps the refusal it
 * has (a breach already seen is not turned into a failure, nor let through by `failOpen`).
 *
 * @returns The last answer: a reservation made, or the refusal that stands.
 * @throws {AgentHaltedError} the agent was halted meanwhile; nothing was reserved.
 */
async function recheck(
  runtime: CostRuntime,
  request: ReserveRequest,
  refused: ReserveResult,
): Promise<ReserveResult> {
  const deadline = performance.now() + RECHECK_WAIT_MS;
  let result = refused;
  for (let again = 0; again < MAX_RECHECKS && !result.ok; again++) {
    runtime.leases?.free(request, result.cap as BudgetCap);
    const settling = runtime.settling.of(request.agentId);
    const left = deadline - performance.now();
    if (settling.length === 0 || left <= 0) break;
    runtime.metrics.rechecks++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      Promise.all(settling).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), left);
        timer.unref?.();
      }),
    ]);
    clearTimeout(timer);
    if (!finished) break;
    await runtime.halt.assertAlive(request.agentId, CHECK_CONTEXT);
    request.day = today(runtime);
    try {
      result = await runtime.reserve.submit(request);
    } catch (error) {
      runtime.logger.warn(
        "checkOrRaise could not check again after waiting for usage in flight; the refusal stands.",
        { agentId: request.agentId, sessionId: request.sessionId, error: describeError(error) },
      );
      break;
    }
  }
  return result;
}

/** Send a batch of checks to `gov_cost.check_and_reserve` (the reserve batcher's run). */
export function runReserve(
  store: Store,
  items: ReserveRequest[],
): Promise<(ReserveResult | ItemFailure)[]> {
  return callBudgetFunction<ReserveResult>(store, "reserve", items);
}

/**
 * A capped agent checked with nothing projected against the cap: concurrent checks are then
 * held only against spend already recorded. Said once per agent.
 */
function warnUnprojected(
  runtime: CostRuntime,
  policy: BudgetPolicy,
  projection: { tokens: number; femto: bigint },
): void {
  const caps = policy.exact;
  const usd = caps.perSessionUsd !== null || caps.perAgentUsdDaily !== null;
  const tokens = caps.perSessionTokens !== null || caps.perAgentTokensDaily !== null;
  const missing =
    usd && projection.femto === 0n ? "USD" : tokens && projection.tokens === 0 ? "tokens" : null;
  if (missing === null || runtime.warnedUnprojected.has(policy.agentId)) return;
  if (runtime.warnedUnprojected.size >= 10_000) return;
  runtime.warnedUnprojected.add(policy.agentId);
  runtime.logger.warn(
    `checkOrRaise projected no ${missing} for an agent with a ${missing} cap: calls in flight are not reserved against it, so concurrent calls can pass it together. Pass model and maxTokens (or set defaultMaxTokens), or projectedUsd.`,
    { agentId: policy.agentId },
  );
}

/** The most completions one check projects (OpenAI allows 128). */
const MAX_CHOICES = 1_000;

/** `choices`, validated: whole, 1 to {@link MAX_CHOICES}; 1 when not given. */
function checkChoices(choices: unknown): number {
  if (choices === undefined) return 1;
  if (
    typeof choices === "number" &&
    Number.isInteger(choices) &&
    choices >= 1 &&
    choices <= MAX_CHOICES
  )
    return choices;
  throw new InvalidArgumentError(
    "choices",
    `must be a whole number of completions from 1 to ${MAX_CHOICES}, got ${typeof choices === "number" ? choices : typeOf(choices)}.`,
    "Pass the request's n (e.g. choices: 2), or leave it out for one completion.",
    { limit: MAX_CHOICES },
  );
}

/** The projection's inputs, validated (caller bugs are thrown before anything is checked). */
function declaredOf(runtime: CostRuntime, given: CheckOptions): Declared {
  const options = readCallOptions(CHECK_OPTIONS, given);
  const input =
    options.inputTokens === undefined ? 0 : checkTokens("inputTokens", options.inputTokens, true);
  let output: number;
  if (options.projectedTokens !== undefined) {
    output = Math.max(0, checkTokens("projectedTokens", options.projectedTokens, true) - input);
  } else {
    const ceiling =
      options.maxTokens === undefined
        ? (runtime.options.defaultMaxTokens ?? 0)
        : checkTokens("maxTokens", options.maxTokens, false);
    output = Math.min(ceiling * checkChoices(options.choices), COST_LIMITS.tokens);
  }
  return {
    tokens: input + output,
    input,
    output,
    model: options.model === undefined ? null : checkModel("model", options.model),
    usd: options.projectedUsd === undefined ? null : checkUsd("projectedUsd", options.projectedUsd),
  };
}

/**
 * The projection's USD: as declared, or its tokens priced for the model — input at the
 * input rate, output at the higher of the output and reasoning rates (the call may reason).
 */
function project(runtime: CostRuntime, declared: Declared): { tokens: number; femto: bigint } {
  if (declared.usd !== null) return { tokens: declared.tokens, femto: declared.usd };
  if (declared.model === null) return { tokens: declared.tokens, femto: 0n };
  const asOutput = exactFemto(
    priceOf(
      runtime,
      declared.model,
      countsOf({ inputTokens: declared.input, outputTokens: declared.output }),
    ),
  );
  const asReasoning = exactFemto(
    priceOf(
      runtime,
      declared.model,
      countsOf({ inputTokens: declared.input, reasoningTokens: declared.output }),
    ),
  );
  // biome-ignore lint/complexity/useMathMinMax: bigints; Math.max takes numbers only
  return { tokens: declared.tokens, femto: asOutput > asReasoning ? asOutput : asReasoning };
}
