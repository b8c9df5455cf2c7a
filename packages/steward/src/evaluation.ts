/**
 * The steps of one evaluation, in order: tripwires → checks and the quality score →
 * evidence and thresholds → conformance → trust debt → state. {@link runSteps} runs them and
 * releases a stateful reservation when a step throws; `GovernanceSteward.evaluate` reads the
 * input, selects the blueprint and turns the outcome into a result (see `result.ts`).
 */
import type { Logger } from "@gov/core";
import type { AuditWriter } from "./audit-writer";
import type { CompiledBlueprint } from "./blueprint";
import { type EvaluationBound, evaluateWithinBudget, firstLineOf, prepareInput } from "./cel";
import type { StewardCounters } from "./metrics";
import {
  type CognitiveTrace,
  type ConformanceLevel,
  type Hook,
  type InterventionType,
  STEWARD_AUDIT_KINDS,
} from "./models";
import type { Scorer } from "./options";
import { missingEvidence, scoreChecks } from "./scoring";
import type { DebtDecay, StateStorage, TrustDebtStorage } from "./state";
import { unreadable } from "./trace";

const RANK: Record<InterventionType, number> = {
  OK: 0,
  FLAG: 0,
  NUDGE: 1,
  ESCALATE: 2,
  BLOCK: 3,
  HALT: 4,
};

/** The stricter of two decisions (FLAG ranks as OK: it is orthogonal). */
export function stricter(a: InterventionType, b: InterventionType): InterventionType {
  return RANK[b] > RANK[a] ? b : a;
}

const HOUR_MS = 3_600_000;

/** A tripwire that fired, as results and audit events report it. */
export interface Fired {
  id: string;
  decision: InterventionType;
  severity: string;
  reason: string;
  error?: string;
  /** Set when the evaluation ran past a bound (it then fired, at least BLOCK). */
  exceeded?: EvaluationBound;
}

/** What the steps use of the steward that runs them (the same for every evaluation). */
export interface StepPorts {
  readonly conformance: ConformanceLevel;
  readonly state: StateStorage;
  readonly debt: TrustDebtStorage;
  readonly scorers: Readonly<Record<string, Scorer>>;
  readonly logger: Logger;
  readonly counters: StewardCounters;
  readonly audit: AuditWriter;
  /** Remember a stateful ESCALATE until the host commits it; returns its commit id. */
  rememberEscalation(agentId: string, counted: { amount: number }): string;
}

/** One evaluation in progress: what its steps read and share. */
export interface Evaluation {
  readonly trace: CognitiveTrace;
  readonly traceId: string;
  readonly agentId: string;
  readonly hook: Hook;
  readonly nowMs: number;
  readonly blueprint: CompiledBlueprint;
  /** The trace's parameters, as given (`{}` when absent). */
  readonly args: Record<string, unknown>;
  /** The host's context (`context` in CEL), as given. */
  readonly context: Record<string, unknown>;
  /** What CEL reads; `args`, `parameters` and `context` are replaced by their prepared forms. */
  readonly celContext: Record<string, unknown>;
  /** The result's metadata, written by the steps. */
  readonly metadata: Record<string, unknown>;
  /** What a stateful evaluation adds to `daily_total` (see {@link countedAmount}). */
  readonly counted: { amount: number };
  /** The input's bound problem, once computed (`undefined` before). */
  inputProblem: string | null | undefined;
  /** Whether this evaluation holds a reservation in the state storage. */
  reserved: boolean;
  /** Whether a throw must release the reservation (it is not settled yet). */
  held: boolean;
  /** Why the state storage could not be read, or null. */
  stateError: string | null;
}

/** What the steps decided. */
export interface StepsOutcome {
  decision: InterventionType;
  flagged: boolean;
  fired: Fired[];
  quality: number;
  risk: number;
  debt: { before: number; after: number; levels: string[] };
}

/** An evaluation about to run its steps. */
export function startEvaluation(
  fields: Pick<
    Evaluation,
    "trace" | "traceId" | "agentId" | "hook" | "nowMs" | "blueprint" | "args" | "context"
  > & { agentTier: string },
): Evaluation {
  const { trace, agentId, agentTier, args, context } = fields;
  return {
    trace,
    traceId: fields.traceId,
    agentId,
    hook: fields.hook,
    nowMs: fields.nowMs,
    blueprint: fields.blueprint,
    args,
    context,
    celContext: {
      action: trace.action,
      args,
      parameters: args,
      reasoning: trace.reasoning ?? "",
      confidence: trace.confidence ?? null,
      agent: { id: agentId, tier: agentTier },
      context,
    },
    metadata: {},
    counted: { amount: countedAmount(args.amount) },
    inputProblem: undefined,
    reserved: false,
    held: false,
    stateError: null,
  };
}

/**
 * The input's static bound, checked once when something is evaluated; within it, CEL reads
 * the prepared input (plain objects as Maps: see `prepareInput`).
 *
 * @throws {InvalidArgumentError} for input that cannot be read (bad input, not a bound).
 */
export function inputProblemOf(evaluation: Evaluation): string | null {
  if (evaluation.inputProblem === undefined) {
    const celContext = evaluation.celContext;
    const prepared = prepareInput([evaluation.args, evaluation.context]);
    if (prepared.unreadable) {
      // Bad input, not a bound: refused (a reservation held is released on the way out).
      const field = prepared.unreadable.root === 0 ? "trace.parameters" : "context";
      throw unreadable(field, prepared.unreadable.reason);
    }
    evaluation.inputProblem = prepared.problem;
    if (prepared.problem === null) {
      const [preparedArgs, preparedContext] = prepared.values;
      celContext.args = preparedArgs;
      celContext.parameters = preparedArgs;
      celContext.context = preparedContext;
    }
  }
  return evaluation.inputProblem;
}

/**
 * Run the steps of an evaluation. A step that throws (input that cannot be read, a scorer
 * whose fallback is `raise`) releases the reservation held, then rethrows.
 */
export async function runSteps(ports: StepPorts, evaluation: Evaluation): Promise<StepsOutcome> {
  const blueprint = evaluation.blueprint;
  try {
    // 1. Tripwires.
    let { decision, flagged, fired } = await runTripwires(ports, evaluation);
    let quality = 1;
    if (decision !== "HALT") {
      // 2. Checks and the quality score.
      if (blueprint.checks.length > 0) {
        const scored = await scoreChecks(ports, evaluation, () => inputProblemOf(evaluation));
        quality = scored.quality;
        if (scored.decision) decision = stricter(decision, scored.decision);
      }
      // Evidence requirements: enforced at `complete`, reported otherwise.
      if (blueprint.evidence) {
        const missing = missingEvidence(blueprint.evidence, evaluation.trace);
        if (missing.length > 0) {
          evaluation.metadata.missingEvidence = missing;
          if (ports.conformance === "complete") {
            decision = stricter(decision, blueprint.evidence.onMissing);
          }
        }
      }
      // 3. Thresholds.
      decision = stricter(decision, decisionByRisk(blueprint, roundRisk(1 - quality)));
    }
    const risk = decision === "HALT" ? 1 : roundRisk(1 - quality);

    // 4. Conformance: minimal knows only OK and BLOCK.
    if (ports.conformance === "minimal") {
      decision = RANK[decision] >= RANK.ESCALATE ? "BLOCK" : "OK";
      flagged = false;
    }

    // 5. Trust debt.
    let debt: StepsOutcome["debt"] = { before: 0, after: 0, levels: [] };
    if (ports.conformance !== "minimal" && blueprint.trustDebt.enabled) {
      ({ decision, flagged, debt } = await accrueTrustDebt(ports, evaluation, decision, flagged));
    }

    // 6. State: an allowed action stays counted; a refused one is released.
    if (blueprint.requiresState) await settleState(ports, evaluation, decision);
    evaluation.held = false;
    return { decision, flagged, fired, quality, risk, debt };
  } catch (cause) {
    if (evaluation.held) {
      evaluation.held = false;
      try {
        await ports.state.release(evaluation.agentId, evaluation.counted, evaluation.nowMs);
      } catch (error) {
        ports.logger.warn("steward: a reservation could not be released after an error", {
          agentId: evaluation.agentId,
          error: firstLineOf(error),
        });
      }
    }
    throw cause;
  }
}

/** The decision the blueprint's scoring thresholds give a risk. */
function decisionByRisk(blueprint: CompiledBlueprint, risk: number): InterventionType {
  const { ok, nudge, escalate } = blueprint.scoring;
  return risk <= ok ? "OK" : risk <= nudge ? "NUDGE" : risk <= escalate ? "ESCALATE" : "BLOCK";
}

/**
 * Step 1: the blueprint's tripwires at the evaluation's hook (and for its action), in order;
 * a HALT stops them. The state storage is read (and the action reserved) before the first
 * stateful tripwire; a tripwire that cannot be evaluated — an error, a bound — fires.
 */
async function runTripwires(
  ports: StepPorts,
  evaluation: Evaluation,
): Promise<{ decision: InterventionType; flagged: boolean; fired: Fired[] }> {
  const { blueprint, trace, agentId, celContext, hook } = evaluation;
  const counters = ports.counters;
  let decision: InterventionType = "OK";
  let flagged = false;
  const fired: Fired[] = [];
  let stateLoaded = false;
  // What reaches CEL is walked (checked and prepared) once, and only when something is
  // evaluated.
  let inputWalked = false;
  // Elapsed time, read once per tripwire: each one starts when the previous one ended.
  let mark = performance.now();
  for (const tripwire of blueprint.tripwires) {
    if (tripwire.hook !== hook) continue;
    if (tripwire.tools !== null && !tripwire.tools.has(trace.action)) continue;
    let fires: boolean;
    let error: string | undefined;
    let exceeded: EvaluationBound | undefined;
    if (tripwire.requiresState && !stateLoaded) {
      stateLoaded = true;
      await reserveState(ports, evaluation);
      // Time spent waiting for the storage is no tripwire's.
      mark = performance.now();
    }
    if (tripwire.requiresState && evaluation.stateError !== null) {
      fires = true;
      error = `state unavailable: ${evaluation.stateError}`;
    } else {
      if (!inputWalked) {
        inputWalked = true;
        inputProblemOf(evaluation);
        mark = performance.now();
      }
      const outcome = evaluateWithinBudget(
        tripwire.evaluateCondition,
        celContext,
        tripwire.budgetMs,
        inputProblemOf(evaluation),
        mark,
      );
      mark = outcome.endedAt;
      if (outcome.overranMs !== undefined) {
        counters.overran(
          { agentId, blueprintId: blueprint.id, tripwireId: tripwire.id },
          tripwire.budgetMs,
          outcome.overranMs,
          outcome.kind === "exceeded",
        );
      }
      if (outcome.kind === "value") {
        const value = outcome.value;
        if (value === true) fires = true;
        else if (value === false) fires = false;
        else {
          fires = true;
          error = `condition yielded ${typeof value}, not a bool`;
        }
      } else if (outcome.kind === "error") {
        fires = true;
        error = outcome.error;
      } else {
        // Over a bound, the answer is unknown and the agent may have caused it: the
        // tripwire fires, and the decision is at least BLOCK (a HALT stays a HALT).
        fires = true;
        error = outcome.reason;
        exceeded = outcome.bound;
      }
    }
    if (!fires) continue;
    const onFail =
      exceeded === undefined
        ? tripwire.onFail.decision
        : stricter(tripwire.onFail.decision, "BLOCK");
    fired.push({
      id: tripwire.id,
      decision: onFail,
      severity: tripwire.severity,
      reason: tripwire.onFail.reason ?? `Tripwire "${tripwire.id}" fired.`,
      ...(error === undefined ? {} : { error }),
      ...(exceeded === undefined ? {} : { exceeded }),
    });
    if (exceeded !== undefined) {
      counters.limitsExceeded++;
      ports.logger.warn("steward: a tripwire ran past its evaluation bounds; it fires", {
        agentId,
        blueprintId: blueprint.id,
        tripwireId: tripwire.id,
        bound: exceeded,
        reason: error,
      });
    } else if (error !== undefined) counters.tripwireErrors++;
    if (onFail === "FLAG") flagged = true;
    else decision = stricter(decision, onFail);
    if (onFail === "HALT") break;
  }
  counters.tripwireViolations += fired.length;
  return { decision, flagged, fired };
}

/**
 * Read the agent's state for the stateful tripwires, reserving the action (counted until it is
 * refused); a storage that fails makes every stateful tripwire fire.
 */
async function reserveState(ports: StepPorts, evaluation: Evaluation): Promise<void> {
  const { agentId, counted, nowMs } = evaluation;
  try {
    evaluation.celContext.state = await ports.state.reserve(agentId, counted, nowMs);
    evaluation.reserved = true;
    evaluation.held = true;
  } catch (cause) {
    evaluation.stateError = firstLineOf(cause);
    ports.logger.warn("steward: the state storage could not be read; stateful tripwires fire", {
      agentId,
      error: evaluation.stateError,
    });
  }
}

/**
 * Step 5: add the decision's trust debt; crossing a threshold upwards is counted and audited,
 * and may escalate (never halt): elevated monitoring flags, restricted mode and re-tiering
 * review need a human. A storage that fails escalates (fail closed).
 */
async function accrueTrustDebt(
  ports: StepPorts,
  evaluation: Evaluation,
  decision: InterventionType,
  flagged: boolean,
): Promise<{ decision: InterventionType; flagged: boolean; debt: StepsOutcome["debt"] }> {
  const { blueprint, agentId } = evaluation;
  const accumulation = blueprint.trustDebt.accumulation;
  const amount = amountFor(accumulation, decision) + (flagged ? accumulation.flag : 0);
  try {
    const change = await ports.debt.add(agentId, amount, evaluation.nowMs, decayOf(blueprint));
    const levels: string[] = [];
    const thresholds = blueprint.trustDebt.thresholds;
    for (const [name, limit] of [
      ["elevatedMonitoring", thresholds.elevatedMonitoring],
      ["restrictedMode", thresholds.restrictedMode],
      ["retieringReview", thresholds.retieringReview],
    ] as const) {
      if (change.after < limit || limit <= 0) continue;
      levels.push(name);
      if (change.before < limit) {
        ports.counters.crossings++;
        await ports.audit.write({
          agentId,
          kind: STEWARD_AUDIT_KINDS.trustDebtThreshold,
          metadata: {
            threshold: name,
            limit,
            trustDebtBefore: change.before,
            trustDebtAfter: change.after,
            traceId: evaluation.traceId,
            blueprintId: blueprint.id,
          },
        });
      }
    }
    let escalated = decision;
    if (levels.includes("restrictedMode") || levels.includes("retieringReview")) {
      escalated = stricter(decision, "ESCALATE");
    }
    return {
      decision: escalated,
      flagged: flagged || levels.includes("elevatedMonitoring"),
      debt: { before: change.before, after: change.after, levels },
    };
  } catch (cause) {
    // Fail closed: without the debt we cannot tell whether a threshold holds.
    ports.logger.warn("steward: trust debt could not be updated; the decision escalates", {
      agentId,
      error: firstLineOf(cause),
    });
    evaluation.metadata.trustDebtError = firstLineOf(cause);
    return {
      decision: stricter(decision, "ESCALATE"),
      flagged,
      debt: { before: 0, after: 0, levels: [] },
    };
  }
}

/**
 * Step 6: an allowed action stays counted (or is counted now); a refused one is released. An
 * ESCALATE is not counted until the host approves it: `commit(result)`.
 */
async function settleState(
  ports: StepPorts,
  evaluation: Evaluation,
  decision: InterventionType,
): Promise<void> {
  const { agentId, counted, nowMs, metadata } = evaluation;
  const allowed = RANK[decision] <= RANK.NUDGE;
  try {
    if (evaluation.reserved && !allowed) {
      evaluation.held = false;
      await ports.state.release(agentId, counted, nowMs);
    } else if (!evaluation.reserved && allowed && evaluation.stateError === null)
      await ports.state.reserve(agentId, counted, nowMs);
    if (decision === "ESCALATE" && evaluation.stateError === null) {
      // Keyed by an id of the steward's own: a trace id comes from the caller, and another
      // trace with the same id must not replace (or be committed as) this one.
      metadata.commitOnApproval = true;
      metadata.commitId = ports.rememberEscalation(agentId, counted);
    }
  } catch (cause) {
    ports.logger.warn("steward: the state storage could not be updated", {
      agentId,
      error: firstLineOf(cause),
    });
    metadata.stateUpdateError = firstLineOf(cause);
  }
}

/**
 * The amount a stateful evaluation adds to `daily_total`: `args.amount` when it is a finite
 * number or a bigint, but never below 0 — a negative amount (a "refund" of −5000) must not
 * lower the total that daily limits read. Anything else counts 0.
 */
export function countedAmount(raw: unknown): number {
  const value = typeof raw === "bigint" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isFinite(value)) return 0;
  return Math.max(value, 0);
}

function roundRisk(value: number): number {
  return Math.round(value * 1e9) / 1e9;
}

/** The trust-debt decay of a blueprint (the default decay when none applies). */
export function decayOf(blueprint: CompiledBlueprint | undefined): DebtDecay {
  const decay = blueprint?.trustDebt.decay ?? { rate: 0.1, periodHours: 24 };
  return { rate: decay.rate, periodMs: decay.periodHours * HOUR_MS };
}

function amountFor(
  accumulation: CompiledBlueprint["trustDebt"]["accumulation"],
  decision: InterventionType,
): number {
  switch (decision) {
    case "NUDGE":
      return accumulation.nudge;
    case "ESCALATE":
      return accumulation.escalate;
    case "BLOCK":
      return accumulation.block;
    case "HALT":
      return accumulation.halt;
    default:
      return accumulation.ok;
  }
}
