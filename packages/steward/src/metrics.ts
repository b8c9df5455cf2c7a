/**
 * The steward's counters and its latency window: what `metrics()` reports.
 */
import type { Logger } from "@gov/core";
import type { InterventionType } from "./models";

/** What `metrics()` returns. */
export interface StewardMetrics {
  totalEvaluations: number;
  interventions: Record<InterventionType, number>;
  /** Evaluations that carried a FLAG (whatever their intervention). */
  flagged: number;
  averageLatencyMs: number;
  /** Over the last 4096 evaluations. */
  p99LatencyMs: number;
  /** Tier-1 scorers that blew their latency budget. */
  timeouts: number;
  /** Tripwires that fired (one evaluation may count several). */
  tripwireViolations: number;
  /** Tripwires that fired because their condition could not be evaluated (fail closed). */
  tripwireErrors: number;
  /**
   * Tier-0 evaluations (tripwire conditions, check rules) refused because they ran past a
   * bound: their step limit, the input bounds, or a gross overrun of their latency budget
   * (more than `STEWARD_LIMITS.grossOverrunFactor` times it). Each one fails closed (at least
   * BLOCK).
   */
  evaluationLimitsExceeded: number;
  /**
   * Tier-0 evaluations that took longer than their latency budget by the clock. Within
   * `STEWARD_LIMITS.grossOverrunFactor` times the budget (a stalled process: garbage
   * collection, a starved CPU) they are reported and logged, not enforced: the answer is the
   * evaluation's own. Past it, they are counted here and fail closed (bound `time`, also
   * counted in `evaluationLimitsExceeded`).
   */
  latencyBudgetOverruns: number;
  trustDebtThresholdCrossings: number;
  /** Audit writes that failed or timed out (each logged). */
  auditFailures: number;
  /** Audit writes awaited at `complete` that took over `auditTimeoutMs`. */
  auditTimeouts: number;
}

const LATENCY_WINDOW = 4_096;
/** Overruns within their bound are logged at most this often. */
const OVERRUN_WARNING_INTERVAL_MS = 60_000;

/**
 * The counters one steward keeps, written by the evaluation steps and read by `metrics()`.
 * Latencies are elapsed times (`performance.now()`), not wall time: the injected clock is for
 * instants.
 */
export class StewardCounters {
  total = 0;
  readonly interventions: Record<InterventionType, number> = {
    OK: 0,
    NUDGE: 0,
    FLAG: 0,
    ESCALATE: 0,
    BLOCK: 0,
    HALT: 0,
  };
  flagged = 0;
  timeouts = 0;
  tripwireViolations = 0;
  tripwireErrors = 0;
  limitsExceeded = 0;
  overruns = 0;
  crossings = 0;
  auditFailures = 0;
  auditTimeouts = 0;
  readonly #latencies = new Float64Array(LATENCY_WINDOW);
  #latencyCount = 0;
  #latencySum = 0;
  #lastOverrunWarning = Number.NEGATIVE_INFINITY;
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Count a finished evaluation and the milliseconds it took. */
  recordEvaluation(intervention: InterventionType, flagged: boolean, elapsedMs: number): void {
    this.total++;
    this.interventions[intervention]++;
    if (flagged) this.flagged++;
    this.#latencies[this.#latencyCount % LATENCY_WINDOW] = elapsedMs;
    this.#latencyCount++;
    this.#latencySum += elapsedMs;
  }

  /**
   * Report an evaluation that took longer than its latency budget by the clock: counted; one
   * that finished within its step limit and its gross-overrun bound keeps its answer and is
   * logged at most once a minute (a gross overrun failed closed, and is logged as a bound).
   */
  overran(
    where: Record<string, string>,
    budgetMs: number,
    elapsedMs: number,
    failedClosed: boolean,
  ): void {
    this.overruns++;
    if (failedClosed) return;
    // Elapsed time between warnings, not wall time.
    const now = performance.now();
    if (now - this.#lastOverrunWarning < OVERRUN_WARNING_INTERVAL_MS) return;
    this.#lastOverrunWarning = now;
    this.#logger.warn(
      "steward: a tier-0 evaluation took longer than its latency budget by the clock (within its step limit: the process stalled); its answer stands",
      { ...where, budgetMs, elapsedMs: Math.round(elapsedMs * 10) / 10 },
    );
  }

  /** The counters as `metrics()` reports them. */
  snapshot(): StewardMetrics {
    const count = Math.min(this.#latencyCount, LATENCY_WINDOW);
    const window = Array.from(this.#latencies.subarray(0, count)).sort((a, b) => a - b);
    const p99 = count === 0 ? 0 : (window[Math.min(count - 1, Math.ceil(count * 0.99) - 1)] ?? 0);
    return {
      totalEvaluations: this.total,
      interventions: { ...this.interventions },
      flagged: this.flagged,
      averageLatencyMs: this.total === 0 ? 0 : this.#latencySum / this.#latencyCount,
      p99LatencyMs: p99,
      timeouts: this.timeouts,
      tripwireViolations: this.tripwireViolations,
      tripwireErrors: this.tripwireErrors,
      evaluationLimitsExceeded: this.limitsExceeded,
      latencyBudgetOverruns: this.overruns,
      trustDebtThresholdCrossings: this.crossings,
      auditFailures: this.auditFailures,
      auditTimeouts: this.auditTimeouts,
    };
  }
}
