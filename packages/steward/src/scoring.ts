/**
 * Step 2 of an evaluation: the blueprint's checks — tier-0 rules (CEL, bounded like
 * tripwires), built-in metrics and tier-1 scorers (bounded by their latency budget, with a
 * fallback) — and the weighted quality score; and the evidence a blueprint requires.
 */
import type { CompiledBlueprint, CompiledCheck } from "./blueprint";
import { evaluateWithinBudget, firstLineOf } from "./cel";
import { BudgetExceeded } from "./errors";
import type { Evaluation, StepPorts } from "./evaluation";
import { type CognitiveTrace, type InterventionType, STEWARD_LIMITS } from "./models";
import type { Scorer } from "./options";

/** Most check ids detailed in `metadata.checkLimitsExceeded`. */
const REPORTED_LIMITS = 20;

/**
 * Score the blueprint's checks: the weighted mean of their scores (1 when there are none), and
 * BLOCK when a rule ran past a bound or a scorer failed with fallback `deny`. Writes
 * `checkScores`, `scorerFailures` and `checkLimitsExceeded` into the evaluation's metadata.
 *
 * @throws {BudgetExceeded} when a scorer with `fallback: raise` blew its budget.
 */
export async function scoreChecks(
  ports: StepPorts,
  evaluation: Evaluation,
  inputProblemOf: () => string | null,
): Promise<{ quality: number; decision: InterventionType | null }> {
  const { blueprint, trace, celContext, context, metadata } = evaluation;
  const counters = ports.counters;
  let weighted = 0;
  let weights = 0;
  let decision: InterventionType | null = null;
  const scores: Record<string, number> = {};
  const failures: Record<string, string> = {};
  const exceeded: Record<string, string> = {};
  const pending: Promise<void>[] = [];
  const record = (check: CompiledCheck, score: number) => {
    scores[check.id] = score;
    weighted += check.weight * score;
    weights += check.weight;
  };
  for (const check of blueprint.checks) {
    if (check.evaluateRule) {
      const inputProblem = inputProblemOf();
      // A rule is tier 0, bounded like a tripwire (by the tier-0 budget); an error scores 0,
      // and a rule over its bounds scores 0 and makes the decision at least BLOCK.
      const outcome = evaluateWithinBudget(
        check.evaluateRule,
        celContext,
        STEWARD_LIMITS.tier0LatencyBudgetMs,
        inputProblem,
      );
      if (outcome.kind === "exceeded") {
        if (Object.keys(exceeded).length < REPORTED_LIMITS) exceeded[check.id] = outcome.reason;
        decision = "BLOCK";
        counters.limitsExceeded++;
      }
      if (outcome.overranMs !== undefined) {
        counters.overran(
          { blueprintId: blueprint.id, checkId: check.id },
          STEWARD_LIMITS.tier0LatencyBudgetMs,
          outcome.overranMs,
          outcome.kind === "exceeded",
        );
      }
      record(check, outcome.kind === "value" && outcome.value === true ? 1 : 0);
    } else if (check.metric) {
      record(check, metricScore(check, trace));
    } else if (check.scorer !== undefined) {
      const scorer = ports.scorers[check.scorer] as Scorer;
      pending.push(
        runScorer(ports, scorer, check, blueprint.id, trace, context).then((outcome) => {
          if (outcome.kind === "score") record(check, outcome.score);
          else {
            failures[check.id] = outcome.kind;
            if (outcome.kind === "timeout") counters.timeouts++;
            const fallback = check.fallback;
            if (fallback === "raise" && outcome.kind === "timeout")
              throw new BudgetExceeded(check.id, check.latencyBudgetMs);
            if (fallback === "deny" || fallback === "raise") {
              decision = "BLOCK";
              record(check, 0);
            } else if (fallback === "allow") record(check, 1);
            else record(check, fallback);
          }
        }),
      );
    }
  }
  if (pending.length > 0) await Promise.all(pending);
  metadata.checkScores = scores;
  if (Object.keys(failures).length > 0) metadata.scorerFailures = failures;
  if (Object.keys(exceeded).length > 0) metadata.checkLimitsExceeded = exceeded;
  return { quality: weights === 0 ? 1 : weighted / weights, decision };
}

/** Run a tier-1 scorer within its check's latency budget; never throws. */
async function runScorer(
  ports: StepPorts,
  scorer: Scorer,
  check: CompiledCheck,
  blueprintId: string,
  trace: CognitiveTrace,
  context: Record<string, unknown>,
): Promise<{ kind: "score"; score: number } | { kind: "timeout" | "error" }> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), check.latencyBudgetMs);
  });
  try {
    const outcome = await Promise.race([
      Promise.resolve().then(() =>
        scorer(trace, { signal: controller.signal, blueprintId, checkId: check.id, context }),
      ),
      timeout,
    ]);
    if (outcome === "timeout") {
      controller.abort();
      return { kind: "timeout" };
    }
    if (typeof outcome !== "number" || !(outcome >= 0 && outcome <= 1)) return { kind: "error" };
    return { kind: "score", score: outcome };
  } catch (cause) {
    ports.logger.warn("steward: a scorer failed; its fallback applies", {
      checkId: check.id,
      error: firstLineOf(cause),
    });
    return { kind: "error" };
  } finally {
    clearTimeout(timer);
  }
}

/** The evidence requirements a trace misses (by requirement name). */
export function missingEvidence(
  evidence: NonNullable<CompiledBlueprint["evidence"]>,
  trace: CognitiveTrace,
): string[] {
  const missing: string[] = [];
  const reasoning = trace.reasoning ?? "";
  if (evidence.requireReasoning && reasoning.trim().length === 0) missing.push("reasoning");
  if (reasoning.length < evidence.minReasoningLength) missing.push("minReasoningLength");
  if ((trace.evidence?.length ?? 0) < evidence.minCitations) missing.push("minCitations");
  if (evidence.requireConfidence && (trace.confidence === undefined || trace.confidence === null))
    missing.push("confidence");
  return missing;
}

function metricScore(check: CompiledCheck, trace: CognitiveTrace): number {
  switch (check.metric) {
    case "reasoning_length": {
      const min = check.min ?? 50;
      const length = (trace.reasoning ?? "").trim().length;
      return min === 0 ? 1 : Math.min(1, length / min);
    }
    case "confidence":
      return typeof trace.confidence === "number" ? trace.confidence : 0;
    case "evidence": {
      const min = check.min ?? 1;
      const count = trace.evidence?.length ?? 0;
      return min === 0 ? 1 : Math.min(1, count / min);
    }
    case "tool_safety":
      if (check.unsafeTools?.includes(trace.action)) return 0;
      if (check.safeTools?.includes(trace.action)) return 1;
      return check.safeTools ? 0.5 : 1;
    default:
      return 0;
  }
}
