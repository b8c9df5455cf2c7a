import { randomUUID } from "node:crypto";
import {
  type Clock,
  checkId,
  createConsoleLogger,
  type HaltGuard,
  InvalidArgumentError,
  type Logger,
  noopAuditSink,
  noopHaltGuard,
  systemClock,
} from "@gov/core";
import { requireIdList, requireText } from "./arguments";
import { AuditWriter } from "./audit-writer";
import { type CompiledBlueprint, readBlueprintFile } from "./blueprint";
import { PolicyError } from "./errors";
import {
  decayOf,
  type Evaluation,
  runSteps,
  type StepPorts,
  type StepsOutcome,
  startEvaluation,
} from "./evaluation";
import { StewardCounters, type StewardMetrics } from "./metrics";
import {
  type CognitiveTrace,
  type ConformanceLevel,
  type InterventionResult,
  STEWARD_LIMITS,
} from "./models";
import {
  type EvaluateOptions,
  parseStewardOptions,
  readStewardContext,
  type Scorer,
  type StewardContext,
  type StewardOptions,
} from "./options";
import { type BlueprintRegistry, fetchWithParents } from "./persistence";
import { messageFor, type ResultSubject, resultOf } from "./result";
import { compileSources, selectBlueprint } from "./selection";
import {
  InMemoryStateStorage,
  InMemoryTrustDebtStorage,
  type StateStorage,
  type TrustDebtStorage,
} from "./state";
import { checkContext, readHostView, readTrace, unreadable } from "./trace";

const MAX_PENDING_ESCALATIONS = 10_000;
const DEFAULT_AUDIT_TIMEOUT_MS = 5_000;
const EMPTY_ARGS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
const EMPTY_CONTEXT: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/** Whether the arguments are in the deprecated order `(options, context?)`. */
function isOptionsFirst(first: unknown): boolean {
  return typeof first === "object" && first !== null && Object.hasOwn(first, "blueprints");
}

/**
 * Evaluates an agent's reasoning and planned action (a {@link CognitiveTrace}) against
 * blueprints and returns an {@link InterventionResult}.
 *
 * Order: tripwires → deterministic checks → quality score → thresholds → flag → trust debt
 * → audit. Only a tripwire can HALT, and a HALT stops evaluation. The strictest decision
 * wins (HALT > BLOCK > ESCALATE > NUDGE > OK); FLAG accompanies any decision.
 *
 * Constructed like every module, context first and options second; nothing to start (the
 * blueprints are compiled in the constructor, without I/O); `close()` waits for the audit
 * writes in flight.
 *
 * @example
 * ```ts
 * const steward = new GovernanceSteward({}, { blueprints: [yamlText] });
 * const result = await steward.evaluate({
 *   agentId: "trader-1", action: "transfer_funds", parameters: { amount: 900 },
 *   reasoning: "Client asked for it", confidence: 0.8,
 * });
 * if (result.intervention === "BLOCK") refuse(result.message);
 * ```
 */
export class GovernanceSteward {
  readonly #blueprints: readonly CompiledBlueprint[];
  readonly #state: StateStorage;
  readonly #debt: TrustDebtStorage;
  readonly #conformance: ConformanceLevel;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #halt: HaltGuard | null;
  readonly #tiers: (agentId: string) => string | undefined;
  readonly #counters: StewardCounters;
  readonly #audit: AuditWriter;
  readonly #ports: StepPorts;
  /** ESCALATEd stateful actions awaiting `commit`, by commit id (oldest dropped first). */
  readonly #escalated = new Map<string, { agentId: string; counted: { amount: number } }>();

  /**
   * @param context the ports the steward uses, each optional: `{ clock, logger, audit, halt }`
   *   (a whole `ModuleContext` may be passed).
   * @param options the blueprints and the rest of {@link StewardOptions}.
   * @throws {PolicyError} for a bad blueprint (path and problem named), or bad options (an
   *   unknown option is refused with a "did you mean").
   * @throws {InvalidArgumentError} for a context port without the methods the steward calls.
   */
  constructor(context: StewardContext | undefined, options: StewardOptions);
  /**
   * @deprecated The options come second, as for every module:
   *   `new GovernanceSteward(context, options)` (`{}` for no context). This order still works.
   */
  constructor(options: StewardOptions, context?: StewardContext);
  constructor(
    first: StewardContext | StewardOptions | undefined,
    second?: StewardOptions | StewardContext,
  ) {
    const optionsFirst = isOptionsFirst(first);
    const context = readStewardContext(optionsFirst ? second : first);
    const options = parseStewardOptions(optionsFirst ? first : second);
    const conformance = options.conformanceLevel ?? "standard";
    this.#blueprints = compileSources(options.blueprints);
    this.#state = options.stateStorage ?? new InMemoryStateStorage();
    this.#debt = options.trustDebtStorage ?? new InMemoryTrustDebtStorage();
    this.#conformance = conformance;
    const scorers: Readonly<Record<string, Scorer>> = options.scorers ?? {};
    const tiers = options.agentTiers;
    this.#tiers =
      tiers === undefined
        ? () => undefined
        : typeof tiers === "function"
          ? tiers
          : (agentId) => (Object.hasOwn(tiers, agentId) ? tiers[agentId] : undefined);
    this.#clock = context.clock ?? systemClock;
    this.#logger = context.logger ?? createConsoleLogger();
    this.#halt = context.halt && context.halt !== noopHaltGuard ? context.halt : null;
    this.#counters = new StewardCounters(this.#logger);
    this.#audit = new AuditWriter(context.audit ?? noopAuditSink, {
      awaited: conformance === "complete",
      timeoutMs: options.auditTimeoutMs ?? DEFAULT_AUDIT_TIMEOUT_MS,
      logger: this.#logger,
      counters: this.#counters,
    });
    this.#ports = {
      conformance,
      state: this.#state,
      debt: this.#debt,
      scorers,
      logger: this.#logger,
      counters: this.#counters,
      audit: this.#audit,
      rememberEscalation: (agentId, counted) => this.#rememberEscalation(agentId, counted),
    };
    for (const blueprint of this.#blueprints) {
      for (const [index, check] of blueprint.checks.entries()) {
        if (check.scorer !== undefined && typeof scorers[check.scorer] !== "function") {
          throw new PolicyError(
            `checks[${index}].scorer`,
            `names "${check.scorer}", which was not given to the steward.`,
            `Pass scorers: { "${check.scorer}": async (trace) => score } in the steward's options.`,
            blueprint.id,
          );
        }
      }
    }
    if (conformance === "minimal" && options.production && options.enableWarnings !== false) {
      this.#logger.warn(
        "steward: conformance level 'minimal' in production: only OK and BLOCK are returned, no trust debt and no audit of every evaluation. Use conformanceLevel 'standard' or 'complete'.",
      );
    }
  }

  /**
   * A steward whose blueprints are read from YAML files (parents must be among them).
   *
   * @example
   * ```ts
   * const steward = await GovernanceSteward.fromFiles(["./blueprints/payments.yaml"], { logger });
   * ```
   * @throws {PolicyError}
   */
  static async fromFiles(
    paths: readonly string[],
    context: StewardContext = {},
    options: Omit<StewardOptions, "blueprints"> = {},
  ): Promise<GovernanceSteward> {
    requireIdList(paths, "paths", "Pass a list of blueprint YAML file paths.");
    readStewardContext(context);
    const documents = await Promise.all(paths.map((path) => readBlueprintFile(path)));
    return new GovernanceSteward(context, { ...options, blueprints: documents });
  }

  /**
   * A steward whose blueprints are fetched from a registry by id, with every parent they
   * inherit from.
   *
   * @example
   * ```ts
   * const steward = await GovernanceSteward.fromRegistry(new DirectoryBlueprintRegistry("./blueprints"), ["payments@2.1"]);
   * ```
   * @throws {BlueprintNotFound} for an id (or a parent) not in the registry.
   * @throws {PolicyError}
   */
  static async fromRegistry(
    registry: BlueprintRegistry,
    ids: readonly string[],
    context: StewardContext = {},
    options: Omit<StewardOptions, "blueprints"> = {},
  ): Promise<GovernanceSteward> {
    readStewardContext(context);
    const documents = await fetchWithParents(registry, ids);
    return new GovernanceSteward(context, { ...options, blueprints: documents });
  }

  /** The loaded blueprints, compiled. */
  get blueprints(): readonly CompiledBlueprint[] {
    return this.#blueprints;
  }

  /** The conformance level. */
  get conformanceLevel(): ConformanceLevel {
    return this.#conformance;
  }

  /**
   * The blueprint that applies to a trace: the most specific scope that matches its agent
   * id, tier and action; between equally specific blueprints, the descendant (the one that
   * inherits from the other). `undefined` when none applies.
   */
  selectBlueprint(
    agentId: string,
    agentTier: string,
    action: string,
  ): CompiledBlueprint | undefined {
    return selectBlueprint(this.#blueprints, agentId, agentTier, action);
  }

  /**
   * An agent's trust debt now, decayed with the decay of the blueprint that governs it: the
   * one selected for `action` when given, else the most specific by agent id and tier
   * whatever its tools (ties: the descendant, then the first given); the default decay when
   * none applies. The tier defaults to the steward's `agentTiers`.
   */
  async getTrustDebt(agentId: string, agentTier?: string, action?: string): Promise<number> {
    checkId(agentId, "agentId");
    requireText(
      agentTier,
      "agentTier",
      STEWARD_LIMITS.idLength,
      "Pass the agent's tier, or leave it out.",
    );
    requireText(
      action,
      "action",
      STEWARD_LIMITS.actionLength,
      "Pass the action's name, or leave it out.",
    );
    const tier = agentTier ?? this.#tiers(agentId) ?? "";
    const blueprint = selectBlueprint(this.#blueprints, agentId, tier, action);
    return this.#debt.read(agentId, this.#clock.nowMs(), decayOf(blueprint));
  }

  /**
   * Evaluate a trace and return the intervention. Never throws for a policy outcome: a HALT
   * is a result (`guard()` turns it into `AgentHaltedError`).
   *
   * @throws {InvalidArgumentError} for a malformed trace, or a trace, context or options that
   *   cannot be read (a throwing getter, a revoked Proxy; the field is named) — nothing
   *   evaluated or counted. The trace is read once: what is checked is what is evaluated.
   * @throws {BudgetExceeded} when a scorer with `fallback: raise` blew its budget.
   * @throws {AgentHaltedError} when the context's halt guard says the agent is halted.
   */
  async evaluate(
    input: CognitiveTrace,
    context: Record<string, unknown> = EMPTY_CONTEXT,
    givenOptions?: EvaluateOptions,
  ): Promise<InterventionResult> {
    // Elapsed time for the latency metrics, not wall time: the clock is for instants.
    const started = performance.now();
    // Read once: the trace's fields and the options (what is checked is what is used).
    const trace = readTrace(input);
    checkContext(context);
    const { hook, agentId, agentTier } = readHostView(givenOptions, trace, this.#tiers);
    const traceId = trace.traceId ?? randomUUID();
    if (this.#halt) await this.#halt.assertAlive(agentId, { path: "steward.evaluate" });
    const nowMs = this.#clock.nowMs();
    const blueprint = this.selectBlueprint(agentId, agentTier, trace.action);
    const conformance = this.#conformance;
    if (!blueprint) {
      return this.#finish(
        started,
        { trace, traceId, agentId, agentTier, blueprint: null, conformance },
        {
          decision: "BLOCK",
          flagged: false,
          fired: [],
          quality: 0,
          risk: 1,
          debt: { before: 0, after: 0, levels: [] },
        },
        `No blueprint applies to agent "${agentId}" (tier "${agentTier}") and action "${trace.action}"; denied.`,
        { reason: "no_blueprint" },
      );
    }
    const evaluation: Evaluation = startEvaluation({
      trace,
      traceId,
      agentId,
      agentTier,
      hook,
      nowMs,
      blueprint,
      args: trace.parameters ?? EMPTY_ARGS,
      context,
    });
    const outcome: StepsOutcome = await runSteps(this.#ports, evaluation);
    const { decision, flagged, fired, risk } = outcome;
    const metadata = evaluation.metadata;
    return this.#finish(
      started,
      { trace, traceId, agentId, agentTier, blueprint, conformance },
      outcome,
      messageFor(decision, flagged, fired, risk, blueprint, metadata),
      metadata,
    );
  }

  /** The result, its audit event written (awaited at `complete`), the evaluation counted. */
  async #finish(
    started: number,
    subject: ResultSubject,
    outcome: StepsOutcome,
    message: string,
    metadata: Record<string, unknown>,
  ): Promise<InterventionResult> {
    const { result, event } = resultOf(subject, outcome, message, metadata, this.#clock.now());
    if (event !== null) {
      if (this.#conformance === "complete") {
        const written = await this.#audit.writeAwaited(event);
        if (written !== "ok") result.metadata.auditError = written;
      } else this.#audit.writeInBackground(event);
    }
    this.#counters.recordEvaluation(
      result.intervention,
      outcome.flagged,
      performance.now() - started,
    );
    return result;
  }

  /** Remember a stateful ESCALATE under an id of the steward's own; returns the id. */
  #rememberEscalation(agentId: string, counted: { amount: number }): string {
    // Keyed by an id of the steward's own: a trace id comes from the caller, and another
    // trace with the same id must not replace (or be committed as) this one.
    const commitId = randomUUID();
    this.#escalated.set(commitId, { agentId, counted });
    if (this.#escalated.size > MAX_PENDING_ESCALATIONS) {
      const oldest = this.#escalated.keys().next().value;
      if (oldest !== undefined) this.#escalated.delete(oldest);
    }
    return commitId;
  }

  /**
   * Count an ESCALATEd action a human approved, so that stateful limits (`state.*`) see it.
   * An ESCALATE is released like a refusal; once approved, call this with its result (or its
   * `metadata.commitId`, an id the steward chose) before the action runs (`guard`'s `proceed`
   * does). Idempotent.
   *
   * @returns `true` when the action was counted; `false` when the id is unknown (not a
   *   stateful ESCALATE of this steward, already committed, or one of more than 10,000
   *   pending approvals, the oldest of which are forgotten).
   */
  async commit(result: InterventionResult | string): Promise<boolean> {
    if (typeof result !== "string" && (typeof result !== "object" || result === null)) {
      throw new InvalidArgumentError(
        "result",
        `must be an InterventionResult or its metadata.commitId, got ${result === null ? "null" : typeof result}.`,
        "Pass the result evaluate returned for the approved ESCALATE.",
      );
    }
    let commitId: string | null;
    try {
      commitId =
        typeof result === "string"
          ? result
          : typeof result?.metadata?.commitId === "string"
            ? result.metadata.commitId
            : null;
    } catch (error) {
      throw unreadable("result", error);
    }
    if (commitId === null) return false;
    const pending = this.#escalated.get(commitId);
    if (!pending) return false;
    this.#escalated.delete(commitId);
    await this.#state.reserve(pending.agentId, pending.counted, this.#clock.nowMs());
    return true;
  }

  /** Wait for the audit writes in flight (at `standard`, non-OK results are not awaited). */
  async flush(): Promise<void> {
    await this.#audit.flush();
  }

  /**
   * Wait for the audit writes in flight; the storages belong to whoever gave them.
   * Idempotent; `await using steward = …` calls it too.
   */
  async close(): Promise<void> {
    await this.#audit.flush();
  }

  /** {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Counters since the steward started. */
  metrics(): StewardMetrics {
    return this.#counters.snapshot();
  }

  /** @deprecated Use {@link metrics} (the same counters; one name across the modules). */
  getMetrics(): StewardMetrics {
    return this.metrics();
  }
}
