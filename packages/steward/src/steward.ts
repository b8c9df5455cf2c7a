import { randomUUID } from "node:crypto";
import {
  type AuditEventInput,
  type AuditSink,
  type Clock,
  canonicalJsonHash,
  createConsoleLogger,
  type HaltGuard,
  InvalidArgumentError,
  type Logger,
  noopAuditSink,
  noopHaltGuard,
  requirePort,
  systemClock,
} from "@gov/core";
import { requireId, requireIdList, requireText } from "./arguments";
import {
  type CompiledBlueprint,
  type CompiledCheck,
  loadBlueprints,
  parseBlueprintYaml,
  readBlueprintFile,
  scopeSpecificity,
} from "./blueprint";
import { type EvaluationBound, evaluateWithinBudget, firstLineOf, prepareInput } from "./cel";
import { BudgetExceeded, PolicyError } from "./errors";
import {
  type BlueprintDocument,
  type CognitiveTrace,
  type ConformanceLevel,
  type GovernanceStatus,
  HOOKS,
  type Hook,
  type InterventionResult,
  type InterventionType,
  type RiskLevel,
  STEWARD_AUDIT_KINDS,
  STEWARD_LIMITS,
} from "./models";
import { type BlueprintRegistry, fetchWithParents } from "./persistence";
import {
  type DebtDecay,
  InMemoryStateStorage,
  InMemoryTrustDebtStorage,
  type StateStorage,
  type TrustDebtStorage,
} from "./state";

/** What a tier-1 scorer is given. */
export interface ScorerContext {
  /** Aborted when the check's latency budget runs out. */
  signal: AbortSignal;
  blueprintId: string;
  checkId: string;
  context: Readonly<Record<string, unknown>>;
}

/**
 * A tier-1 scorer (an LLM judge, a classifier): returns a quality score in [0, 1]. Bounded
 * by its check's `latencyBudgetMs`; over budget, or on an error or an out-of-range score,
 * the check's `fallback` applies.
 */
export type Scorer = (
  trace: Readonly<CognitiveTrace>,
  context: ScorerContext,
) => number | Promise<number>;

/** A blueprint a steward can be given: a plain object, YAML text, or one already compiled. */
export type BlueprintSource = Record<string, unknown> | string | CompiledBlueprint;

/** Options of {@link GovernanceSteward}. */
export interface StewardOptions {
  /**
   * The blueprints the steward selects from (most specific scope wins): plain objects, YAML
   * text, or compiled blueprints. Parents named by `inherits` must be in the list.
   */
  blueprints: readonly BlueprintSource[];
  /** Where stateful tripwires' counters live. @default a new InMemoryStateStorage */
  stateStorage?: StateStorage;
  /** Where trust debt lives. @default a new InMemoryTrustDebtStorage */
  trustDebtStorage?: TrustDebtStorage;
  /** `minimal`, `standard` or `complete` (see the README). @default "standard" */
  conformanceLevel?: ConformanceLevel;
  /** Warn (once, through the logger) when `minimal` is used with `production: true`. @default true */
  enableWarnings?: boolean;
  /** Whether this is a production deployment (the SDK maps `NODE_ENV`). @default false */
  production?: boolean;
  /** Tier-1 scorers by name, referred to by checks' `scorer`. @default {} */
  scorers?: Readonly<Record<string, Scorer>>;
  /**
   * The agents' tiers, as the **host** knows them: a map from agent id to tier, or a function
   * of the agent id. The tier selects the blueprint (`scope.agentTiers`) and is `agent.tier`
   * in CEL. A trace's own `agentTier` is never used: an agent must not choose its blueprint.
   * An `evaluate` option `{ agentTier }` overrides this. @default every agent has tier ""
   */
  agentTiers?: Readonly<Record<string, string>> | ((agentId: string) => string | undefined);
  /**
   * At `complete`, how long an evaluation waits for an audit write before it goes on without
   * it (logged, counted in `getMetrics().auditTimeouts`, `metadata.auditError: "timeout"`).
   * @default 5000
   */
  auditTimeoutMs?: number;
}

/**
 * What the **host** (never the agent) tells `evaluate` about a trace. Agent-built trace data
 * must not decide which tripwires run or which blueprint applies.
 */
export interface EvaluateOptions {
  /**
   * The hook the host evaluates at (one of {@link HOOKS}). A trace's own `hook`, when
   * present, must equal it, or the evaluation is refused. @default "pre_action"
   */
  hook?: Hook;
  /**
   * The agent's tier, as the host knows it (overrides the steward's `agentTiers`). The
   * trace's `agentTier` is ignored. @default the steward's `agentTiers`, else ""
   */
  agentTier?: string;
  /**
   * The agent the host evaluates for (selects the blueprint, keys trust debt and state, and is
   * `agent.id` in CEL). When given, a trace's own `agentId` must equal it, or the evaluation is
   * refused: the agent must not choose who it is. @default the trace's `agentId`, else
   * "anonymous"
   */
  agentId?: string;
}

/** The ports a steward uses; each optional. */
export interface StewardContext {
  clock?: Clock;
  logger?: Logger;
  audit?: AuditSink;
  /** Checked before each evaluation when given (an operator's halt refuses it). */
  halt?: HaltGuard;
}

/** What `getMetrics()` returns. */
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

const LATENCY_WINDOW = 4_096;
const MAX_PENDING_ESCALATIONS = 10_000;
const HOUR_MS = 3_600_000;
const EMPTY_ARGS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
const EMPTY_CONTEXT: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

interface Fired {
  id: string;
  decision: InterventionType;
  severity: string;
  reason: string;
  error?: string;
  /** Set when the evaluation ran past a bound (it then fired, at least BLOCK). */
  exceeded?: EvaluationBound;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** The fields of a trace that `evaluate` reads. */
const TRACE_FIELDS = [
  "action",
  "parameters",
  "reasoning",
  "confidence",
  "evidence",
  "traceId",
  "agentId",
  "agentTier",
  "hook",
] as const;

/** The error for input that threw when it was read (a getter, a revoked Proxy, a trap). */
function unreadable(field: string, error: unknown): InvalidArgumentError {
  return new InvalidArgumentError(
    field,
    `could not be read (${firstLineOf(error).slice(0, 200)}).`,
    "Pass plain data: objects whose properties are values, not getters or Proxies that throw.",
  );
}

/**
 * The trace as `evaluate` reads it: each field read once (a getter runs once) into a plain
 * object, `parameters` copied one level (its own enumerable properties) and `evidence` as a
 * list — so that what is checked is what is evaluated, audited and counted — then checked.
 *
 * @throws {InvalidArgumentError} for a trace that is not an object, a field that cannot be
 *   read (`trace.action`, …), or a malformed one.
 */
function readTrace(trace: unknown): CognitiveTrace {
  if (typeof trace !== "object" || trace === null) {
    throw new InvalidArgumentError(
      "trace",
      `must be an object, got ${trace === null ? "null" : typeof trace}.`,
      "Pass a CognitiveTrace: { action, parameters, reasoning, confidence, agentId }.",
    );
  }
  const copy: Record<string, unknown> = {};
  for (const field of TRACE_FIELDS) {
    let value: unknown;
    try {
      value = (trace as Record<string, unknown>)[field];
      if (field === "parameters" && value !== undefined) {
        if (!isPlainObject(value)) {
          throw new InvalidArgumentError(
            "trace.parameters",
            "must be a plain object.",
            "Pass the action's arguments as an object, e.g. { amount: 120 }.",
          );
        }
        value = { ...value };
      } else if (field === "evidence" && Array.isArray(value)) {
        value = [...value];
      }
    } catch (error) {
      if (InvalidArgumentError.isInstance(error)) throw error;
      throw unreadable(`trace.${field}`, error);
    }
    if (value !== undefined) copy[field] = value;
  }
  checkTrace(copy);
  return copy as unknown as CognitiveTrace;
}

/**
 * The host's options, each read once.
 *
 * @throws {InvalidArgumentError} for options that are not an object or cannot be read.
 */
function readOptions(options: unknown): EvaluateOptions {
  if (typeof options !== "object" || options === null) {
    throw new InvalidArgumentError("options", "must be an object.", "Pass { hook }, or nothing.");
  }
  try {
    const { hook, agentTier, agentId } = options as EvaluateOptions;
    return { hook, agentTier, agentId };
  } catch (error) {
    throw unreadable("options", error);
  }
}

/** Check a trace read by {@link readTrace} (plain, its fields read once). */
function checkTrace(value: Record<string, unknown>): void {
  const action = value.action;
  if (
    typeof action !== "string" ||
    action.length === 0 ||
    action.length > STEWARD_LIMITS.actionLength
  ) {
    throw new InvalidArgumentError(
      "trace.action",
      typeof action === "string"
        ? `is ${action.length} characters long; it must be 1 to ${STEWARD_LIMITS.actionLength}.`
        : `must be a string, got ${typeof action}.`,
      "Pass the tool or action name the agent plans to call.",
    );
  }
  if (value.parameters !== undefined && !isPlainObject(value.parameters)) {
    throw new InvalidArgumentError(
      "trace.parameters",
      "must be a plain object.",
      "Pass the action's arguments as an object, e.g. { amount: 120 }.",
    );
  }
  const reasoning = value.reasoning;
  if (reasoning !== undefined && reasoning !== null) {
    if (typeof reasoning !== "string" || reasoning.length > STEWARD_LIMITS.reasoningLength) {
      throw new InvalidArgumentError(
        "trace.reasoning",
        typeof reasoning === "string"
          ? `is ${reasoning.length} characters long; the limit is ${STEWARD_LIMITS.reasoningLength}.`
          : `must be a string, got ${typeof reasoning}.`,
        "Pass the agent's reasoning as text (truncate it to the limit).",
      );
    }
  }
  const confidence = value.confidence;
  if (
    confidence !== undefined &&
    confidence !== null &&
    (typeof confidence !== "number" || !(confidence >= 0 && confidence <= 1))
  ) {
    throw new InvalidArgumentError(
      "trace.confidence",
      `must be a number from 0 to 1, got ${String(confidence)}.`,
      "Pass the agent's confidence in [0, 1], or leave it out.",
    );
  }
  for (const field of ["agentId", "agentTier", "traceId"] as const) {
    const item = value[field];
    if (item !== undefined && (typeof item !== "string" || item.length > STEWARD_LIMITS.idLength)) {
      throw new InvalidArgumentError(
        `trace.${field}`,
        `must be a string of at most ${STEWARD_LIMITS.idLength} characters.`,
        `Pass ${field} as a short string, or leave it out.`,
      );
    }
  }
  if (value.agentId === "") {
    throw new InvalidArgumentError(
      "trace.agentId",
      "must not be empty.",
      "Pass the agent's id, or leave it out (anonymous).",
    );
  }
  if (value.hook !== undefined && !(HOOKS as readonly unknown[]).includes(value.hook)) {
    throw new InvalidArgumentError(
      "trace.hook",
      `is ${JSON.stringify(String(value.hook)).slice(0, 80)}, not one of ${HOOKS.join(", ")}.`,
      "Leave trace.hook out and pass the hook as evaluate's option { hook } (set by the host).",
    );
  }
  if (value.evidence !== undefined && !Array.isArray(value.evidence)) {
    throw new InvalidArgumentError(
      "trace.evidence",
      "must be a list of strings.",
      "Pass the citations as an array of strings.",
    );
  }
}

function toBlueprints(sources: readonly BlueprintSource[]): CompiledBlueprint[] {
  const slots: (CompiledBlueprint | number)[] = [];
  const documents: unknown[] = [];
  for (const [index, source] of sources.entries()) {
    if (typeof source === "string") {
      slots.push(documents.length);
      documents.push(parseBlueprintYaml(source, `blueprints[${index}]`));
    } else if ("hash" in source && "tripwires" in source && "document" in source) {
      slots.push(source as CompiledBlueprint);
    } else {
      slots.push(documents.length);
      documents.push(source);
    }
  }
  const known = new Map<string, BlueprintDocument>();
  for (const slot of slots) if (typeof slot !== "number") known.set(slot.id, slot.document);
  const loaded = loadBlueprints(documents, (id) => known.get(id));
  const blueprints = slots.map((slot) =>
    typeof slot === "number" ? (loaded[slot] as CompiledBlueprint) : slot,
  );
  refuseAmbiguous(blueprints);
  return blueprints;
}

function descends(child: CompiledBlueprint, parent: CompiledBlueprint): boolean {
  return child.lineage.includes(parent.id);
}

/**
 * Two blueprints can tie for one trace when their scopes name the same dimensions and every
 * named dimension's lists overlap. A tie is settled by descent (the descendant wins); two
 * unrelated blueprints that can tie are refused: which one governs would be arbitrary.
 */
function refuseAmbiguous(blueprints: readonly CompiledBlueprint[]): void {
  const overlaps = (a?: readonly string[], b?: readonly string[]) =>
    a === undefined || b === undefined ? a === b : a.some((item) => b.includes(item));
  for (const [i, a] of blueprints.entries()) {
    for (const b of blueprints.slice(i + 1)) {
      if (descends(a, b) || descends(b, a)) continue;
      const sa = a.scope ?? {};
      const sb = b.scope ?? {};
      if (
        overlaps(sa.agentIds, sb.agentIds) &&
        overlaps(sa.agentTiers, sb.agentTiers) &&
        overlaps(sa.tools, sb.tools)
      ) {
        throw new PolicyError(
          "scope",
          `"${a.id}" and "${b.id}" are equally specific for some agents and actions, and neither inherits from the other: which one applies would be arbitrary.`,
          "Narrow one blueprint's scope (agentIds, agentTiers or tools), make one inherit from the other, or load only one of them.",
          b.id,
        );
      }
    }
  }
}

/**
 * Evaluates an agent's reasoning and planned action (a {@link CognitiveTrace}) against
 * blueprints and returns an {@link InterventionResult}.
 *
 * Order: tripwires → deterministic checks → quality score → thresholds → flag → trust debt
 * → audit. Only a tripwire can HALT, and a HALT stops evaluation. The strictest decision
 * wins (HALT > BLOCK > ESCALATE > NUDGE > OK); FLAG accompanies any decision.
 *
 * @example
 * ```ts
 * const steward = new GovernanceSteward({ blueprints: [yamlText] });
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
  readonly #scorers: Readonly<Record<string, Scorer>>;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #halt: HaltGuard | null;
  readonly #tiers: (agentId: string) => string | undefined;
  readonly #auditTimeoutMs: number;
  readonly #pending = new Set<Promise<unknown>>();
  /** ESCALATEd stateful actions awaiting `commit`, by trace id (oldest dropped first). */
  readonly #escalated = new Map<string, { agentId: string; counted: { amount: number } }>();
  readonly #latencies = new Float64Array(LATENCY_WINDOW);
  #latencyCount = 0;
  #latencySum = 0;
  #lastOverrunWarning = Number.NEGATIVE_INFINITY;
  readonly #metrics = {
    total: 0,
    interventions: { OK: 0, NUDGE: 0, FLAG: 0, ESCALATE: 0, BLOCK: 0, HALT: 0 } as Record<
      InterventionType,
      number
    >,
    flagged: 0,
    timeouts: 0,
    tripwireViolations: 0,
    tripwireErrors: 0,
    limitsExceeded: 0,
    overruns: 0,
    crossings: 0,
    auditFailures: 0,
    auditTimeouts: 0,
  };

  /**
   * @throws {PolicyError} for a bad blueprint (path and problem named), or bad options.
   * @throws {InvalidArgumentError} for a context port without the methods the steward calls.
   */
  constructor(options: StewardOptions, context: StewardContext = {}) {
    if (typeof options !== "object" || options === null) {
      throw new PolicyError(
        "",
        "steward options must be an object.",
        "Pass { blueprints: [...] }.",
      );
    }
    requirePort(context.clock, "clock", ["now", "nowMs"], "a Clock", { optional: true });
    requirePort(context.logger, "logger", ["debug", "info", "warn", "error"], "a Logger", {
      optional: true,
    });
    requirePort(context.audit, "audit", ["log"], "an AuditSink", { optional: true });
    requirePort(context.halt, "halt", ["assertAlive"], "a HaltGuard", { optional: true });
    if (!Array.isArray(options.blueprints) || options.blueprints.length === 0) {
      throw new PolicyError(
        "blueprints",
        "must be a non-empty list.",
        "Pass at least one blueprint (an object, YAML text, or a compiled blueprint); or use GovernanceSteward.fromFile / fromRegistry.",
      );
    }
    const conformance = options.conformanceLevel ?? "standard";
    if (!["minimal", "standard", "complete"].includes(conformance)) {
      throw new PolicyError(
        "conformanceLevel",
        `is "${String(conformance)}".`,
        'Use "minimal", "standard" or "complete".',
      );
    }
    this.#blueprints = toBlueprints(options.blueprints);
    this.#state = options.stateStorage ?? new InMemoryStateStorage();
    this.#debt = options.trustDebtStorage ?? new InMemoryTrustDebtStorage();
    this.#conformance = conformance;
    this.#scorers = options.scorers ?? {};
    const auditTimeoutMs = options.auditTimeoutMs ?? 5_000;
    if (
      typeof auditTimeoutMs !== "number" ||
      !Number.isFinite(auditTimeoutMs) ||
      auditTimeoutMs <= 0 ||
      auditTimeoutMs > 2_147_483_647
    ) {
      throw new PolicyError(
        "auditTimeoutMs",
        `is ${String(auditTimeoutMs)}.`,
        "Use a positive number of milliseconds, e.g. 5000.",
      );
    }
    this.#auditTimeoutMs = auditTimeoutMs;
    const tiers = options.agentTiers;
    if (tiers !== undefined && typeof tiers !== "function" && !isPlainObject(tiers)) {
      throw new PolicyError(
        "agentTiers",
        "must be a map from agent id to tier, or a function of the agent id.",
        'Pass e.g. agentTiers: { "billing-agent": "tier-1" }.',
      );
    }
    this.#tiers =
      tiers === undefined
        ? () => undefined
        : typeof tiers === "function"
          ? tiers
          : (agentId) => (Object.hasOwn(tiers, agentId) ? tiers[agentId] : undefined);
    this.#clock = context.clock ?? systemClock;
    this.#logger = context.logger ?? createConsoleLogger();
    this.#audit = context.audit ?? noopAuditSink;
    this.#halt = context.halt && context.halt !== noopHaltGuard ? context.halt : null;
    for (const blueprint of this.#blueprints) {
      for (const [index, check] of blueprint.checks.entries()) {
        if (check.scorer !== undefined && typeof this.#scorers[check.scorer] !== "function") {
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
   * @throws {PolicyError}
   */
  static async fromFiles(
    paths: readonly string[],
    options: Omit<StewardOptions, "blueprints"> = {},
    context: StewardContext = {},
  ): Promise<GovernanceSteward> {
    requireIdList(paths, "paths", "Pass a list of blueprint YAML file paths.");
    const documents = await Promise.all(paths.map((path) => readBlueprintFile(path)));
    return new GovernanceSteward({ ...options, blueprints: documents }, context);
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
    options: Omit<StewardOptions, "blueprints"> = {},
    context: StewardContext = {},
  ): Promise<GovernanceSteward> {
    const documents = await fetchWithParents(registry, ids);
    return new GovernanceSteward({ ...options, blueprints: documents }, context);
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
    return this.#select(agentId, agentTier, action);
  }

  /** With `action` undefined, scopes' `tools` are ignored (any action). */
  #select(agentId: string, agentTier: string, action: string | undefined) {
    let best: CompiledBlueprint | undefined;
    let bestScore = -1;
    for (const blueprint of this.#blueprints) {
      const scope =
        action === undefined && blueprint.scope
          ? { ...blueprint.scope, tools: undefined }
          : blueprint.scope;
      const score = scopeSpecificity(scope, agentId, agentTier, action ?? "");
      if (score > bestScore || (score === bestScore && best && descends(blueprint, best))) {
        best = blueprint;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * An agent's trust debt now, decayed with the decay of the blueprint that governs it: the
   * one selected for `action` when given, else the most specific by agent id and tier
   * whatever its tools (ties: the descendant, then the first given); the default decay when
   * none applies. The tier defaults to the steward's `agentTiers`.
   */
  async getTrustDebt(agentId: string, agentTier?: string, action?: string): Promise<number> {
    requireId(agentId, "agentId", "Pass the agent's id.");
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
    const blueprint = this.#select(agentId, tier, action);
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
    givenOptions: EvaluateOptions = {},
  ): Promise<InterventionResult> {
    const started = performance.now();
    // Read once: the trace's fields and the options (what is checked is what is used).
    const trace = readTrace(input);
    let plainContext: boolean;
    try {
      plainContext = isPlainObject(context);
    } catch (error) {
      throw unreadable("context", error);
    }
    if (!plainContext) {
      throw new InvalidArgumentError(
        "context",
        "must be a plain object.",
        "Pass an object, or nothing.",
      );
    }
    const options = readOptions(givenOptions);
    const hook: Hook = options.hook ?? "pre_action";
    if (!(HOOKS as readonly unknown[]).includes(hook)) {
      throw new InvalidArgumentError(
        "options.hook",
        `is ${JSON.stringify(String(hook)).slice(0, 80)}, not one of ${HOOKS.join(", ")}.`,
        'Pass one of the hooks exactly, e.g. { hook: "pre_action" }.',
      );
    }
    if (trace.hook !== undefined && trace.hook !== hook) {
      throw new InvalidArgumentError(
        "trace.hook",
        `is "${trace.hook}" but the host evaluates at "${hook}".`,
        "The host sets the hook (evaluate's option { hook }); leave trace.hook out.",
      );
    }
    const hostAgentId = options.agentId;
    if (hostAgentId !== undefined) {
      requireId(hostAgentId, "options.agentId", "Pass the id of the agent the host evaluates for.");
      if (trace.agentId !== undefined && trace.agentId !== hostAgentId) {
        throw new InvalidArgumentError(
          "trace.agentId",
          `is ${JSON.stringify(trace.agentId).slice(0, 80)} but the host evaluates for "${hostAgentId}".`,
          "The host sets the agent (evaluate's option { agentId }); leave trace.agentId out.",
        );
      }
    }
    const agentId = hostAgentId ?? trace.agentId ?? "anonymous";
    const agentTier = options.agentTier ?? this.#tiers(agentId) ?? "";
    if (typeof agentTier !== "string" || agentTier.length > STEWARD_LIMITS.idLength) {
      throw new InvalidArgumentError(
        "agentTier",
        `must be a string of at most ${STEWARD_LIMITS.idLength} characters.`,
        "Pass the agent's tier as a short string (evaluate's option, or the steward's agentTiers).",
      );
    }
    const traceId = trace.traceId ?? randomUUID();
    if (this.#halt) await this.#halt.assertAlive(agentId, { path: "steward.evaluate" });
    const nowMs = this.#clock.nowMs();
    const blueprint = this.selectBlueprint(agentId, agentTier, trace.action);
    if (!blueprint) {
      return this.#finish(
        started,
        trace,
        traceId,
        agentId,
        agentTier,
        {
          decision: "BLOCK",
          flagged: false,
          fired: [],
          quality: 0,
          risk: 1,
          message: `No blueprint applies to agent "${agentId}" (tier "${agentTier}") and action "${trace.action}"; denied.`,
          debt: { before: 0, after: 0, levels: [] },
          metadata: { reason: "no_blueprint" },
        },
        null,
      );
    }

    const args = trace.parameters ?? EMPTY_ARGS;
    const celContext: Record<string, unknown> = {
      action: trace.action,
      args,
      parameters: args,
      reasoning: trace.reasoning ?? "",
      confidence: trace.confidence ?? null,
      agent: { id: agentId, tier: agentTier },
      context,
    };
    const metadata: Record<string, unknown> = {};
    // The input's static bound, checked once when something is evaluated; within it, CEL reads
    // the prepared input (plain objects as Maps: see prepareInput).
    let inputProblem: string | null | undefined;
    const inputProblemOf = (): string | null => {
      if (inputProblem === undefined) {
        const prepared = prepareInput([args, context]);
        if (prepared.unreadable) {
          // Bad input, not a bound: refused (a reservation held is released on the way out).
          const field = prepared.unreadable.root === 0 ? "trace.parameters" : "context";
          throw unreadable(field, prepared.unreadable.reason);
        }
        inputProblem = prepared.problem;
        if (inputProblem === null) {
          const [preparedArgs, preparedContext] = prepared.values;
          celContext.args = preparedArgs;
          celContext.parameters = preparedArgs;
          celContext.context = preparedContext;
        }
      }
      return inputProblem;
    };

    // Set once a stateful reservation is held; a throw before it is settled releases it.
    let held: { agentId: string; counted: { amount: number }; nowMs: number } | null = null;
    const outcome = await (async () => {
      // 1. Tripwires.
      let decision: InterventionType = "OK";
      let flagged = false;
      const fired: Fired[] = [];
      let stateLoaded = false;
      let reserved = false;
      const counted = { amount: countedAmount(args.amount) };
      let stateError: string | null = null;
      // What reaches CEL is walked (checked and prepared) once, and only when something is
      // evaluated.
      let inputWalked = false;
      // The clock is read once per evaluation: each one starts when the previous one ended.
      let mark = performance.now();
      for (const tripwire of blueprint.tripwires) {
        if (tripwire.hook !== hook) continue;
        if (tripwire.tools !== null && !tripwire.tools.has(trace.action)) continue;
        let fires: boolean;
        let error: string | undefined;
        let exceeded: EvaluationBound | undefined;
        if (tripwire.requiresState && !stateLoaded) {
          stateLoaded = true;
          try {
            celContext.state = await this.#state.reserve(agentId, counted, nowMs);
            reserved = true;
            held = { agentId, counted, nowMs };
          } catch (cause) {
            stateError = firstLineOf(cause);
            this.#logger.warn(
              "steward: the state storage could not be read; stateful tripwires fire",
              {
                agentId,
                error: stateError,
              },
            );
          }
          // Time spent waiting for the storage is no tripwire's.
          mark = performance.now();
        }
        if (tripwire.requiresState && stateError !== null) {
          fires = true;
          error = `state unavailable: ${stateError}`;
        } else {
          if (!inputWalked) {
            inputWalked = true;
            inputProblemOf();
            mark = performance.now();
          }
          const outcome = evaluateWithinBudget(
            tripwire.evaluateCondition,
            celContext,
            tripwire.budgetMs,
            inputProblemOf(),
            mark,
          );
          mark = outcome.endedAt;
          if (outcome.overranMs !== undefined) {
            this.#overran(
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
          this.#metrics.limitsExceeded++;
          this.#logger.warn("steward: a tripwire ran past its evaluation bounds; it fires", {
            agentId,
            blueprintId: blueprint.id,
            tripwireId: tripwire.id,
            bound: exceeded,
            reason: error,
          });
        } else if (error !== undefined) this.#metrics.tripwireErrors++;
        if (onFail === "FLAG") flagged = true;
        else decision = stricter(decision, onFail);
        if (onFail === "HALT") break;
      }
      this.#metrics.tripwireViolations += fired.length;

      let quality = 1;
      if (decision !== "HALT") {
        // 2. Checks and the quality score.
        if (blueprint.checks.length > 0) {
          const scored = await this.#score(
            blueprint,
            trace,
            celContext,
            context,
            metadata,
            inputProblemOf,
          );
          quality = scored.quality;
          if (scored.decision) decision = stricter(decision, scored.decision);
        }
        // Evidence requirements: enforced at `complete`, reported otherwise.
        if (blueprint.evidence) {
          const missing = missingEvidence(blueprint.evidence, trace);
          if (missing.length > 0) {
            metadata.missingEvidence = missing;
            if (this.#conformance === "complete") {
              decision = stricter(decision, blueprint.evidence.onMissing);
            }
          }
        }
        // 3. Thresholds.
        const risk = roundRisk(1 - quality);
        const { ok, nudge, escalate } = blueprint.scoring;
        const byScore: InterventionType =
          risk <= ok ? "OK" : risk <= nudge ? "NUDGE" : risk <= escalate ? "ESCALATE" : "BLOCK";
        decision = stricter(decision, byScore);
      }
      const risk = decision === "HALT" ? 1 : roundRisk(1 - quality);

      // 4. Conformance: minimal knows only OK and BLOCK.
      if (this.#conformance === "minimal") {
        decision = RANK[decision] >= RANK.ESCALATE ? "BLOCK" : "OK";
        flagged = false;
      }

      // 5. Trust debt.
      let debt = { before: 0, after: 0, levels: [] as string[] };
      if (this.#conformance !== "minimal" && blueprint.trustDebt.enabled) {
        const accumulation = blueprint.trustDebt.accumulation;
        const amount = amountFor(accumulation, decision) + (flagged ? accumulation.flag : 0);
        try {
          const change = await this.#debt.add(agentId, amount, nowMs, decayOf(blueprint));
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
              this.#metrics.crossings++;
              await this.#audited({
                agentId,
                kind: STEWARD_AUDIT_KINDS.trustDebtThreshold,
                metadata: {
                  threshold: name,
                  limit,
                  trustDebtBefore: change.before,
                  trustDebtAfter: change.after,
                  traceId,
                  blueprintId: blueprint.id,
                },
              });
            }
          }
          // Crossings may escalate (never halt): elevated monitoring flags, restricted mode and
          // re-tiering review need a human.
          if (levels.includes("elevatedMonitoring")) flagged = true;
          if (levels.includes("restrictedMode") || levels.includes("retieringReview")) {
            decision = stricter(decision, "ESCALATE");
          }
          debt = { before: change.before, after: change.after, levels };
        } catch (cause) {
          // Fail closed: without the debt we cannot tell whether a threshold holds.
          this.#logger.warn("steward: trust debt could not be updated; the decision escalates", {
            agentId,
            error: firstLineOf(cause),
          });
          metadata.trustDebtError = firstLineOf(cause);
          decision = stricter(decision, "ESCALATE");
        }
      }

      // 6. State: an allowed action stays counted; a refused one is released.
      if (blueprint.requiresState) {
        const allowed = RANK[decision] <= RANK.NUDGE;
        try {
          if (reserved && !allowed) {
            held = null;
            await this.#state.release(agentId, counted, nowMs);
          } else if (!reserved && allowed && stateError === null)
            await this.#state.reserve(agentId, counted, nowMs);
          // An ESCALATE is not counted until the host approves it: `commit(traceId)`.
          if (decision === "ESCALATE" && stateError === null) {
            // Keyed by an id of the steward's own: a trace id comes from the caller, and
            // another trace with the same id must not replace (or be committed as) this one.
            const commitId = randomUUID();
            this.#rememberEscalation(commitId, agentId, counted);
            metadata.commitOnApproval = true;
            metadata.commitId = commitId;
          }
        } catch (cause) {
          this.#logger.warn("steward: the state storage could not be updated", {
            agentId,
            error: firstLineOf(cause),
          });
          metadata.stateUpdateError = firstLineOf(cause);
        }
      }
      held = null;
      return { decision, flagged, fired, quality, risk, debt };
    })().catch(async (cause: unknown) => {
      if (held !== null) {
        const { counted } = held;
        held = null;
        try {
          await this.#state.release(agentId, counted, nowMs);
        } catch (error) {
          this.#logger.warn("steward: a reservation could not be released after an error", {
            agentId,
            error: firstLineOf(error),
          });
        }
      }
      throw cause;
    });
    const { decision, flagged, fired, quality, risk, debt } = outcome;
    const message = messageFor(decision, flagged, fired, risk, blueprint, metadata);
    return this.#finish(
      started,
      trace,
      traceId,
      agentId,
      agentTier,
      { decision, flagged, fired, quality, risk, message, debt, metadata },
      blueprint,
    );
  }

  /**
   * Report an evaluation that took longer than its latency budget by the clock: counted; one
   * that finished within its step limit and its gross-overrun bound keeps its answer and is
   * logged at most once a minute (a gross overrun failed closed, and is logged as a bound).
   */
  #overran(
    where: Record<string, string>,
    budgetMs: number,
    elapsedMs: number,
    failedClosed: boolean,
  ): void {
    this.#metrics.overruns++;
    if (failedClosed) return;
    const now = performance.now();
    if (now - this.#lastOverrunWarning < 60_000) return;
    this.#lastOverrunWarning = now;
    this.#logger.warn(
      "steward: a tier-0 evaluation took longer than its latency budget by the clock (within its step limit: the process stalled); its answer stands",
      { ...where, budgetMs, elapsedMs: Math.round(elapsedMs * 10) / 10 },
    );
  }

  #rememberEscalation(traceId: string, agentId: string, counted: { amount: number }): void {
    this.#escalated.delete(traceId);
    this.#escalated.set(traceId, { agentId, counted });
    if (this.#escalated.size > MAX_PENDING_ESCALATIONS) {
      const oldest = this.#escalated.keys().next().value;
      if (oldest !== undefined) this.#escalated.delete(oldest);
    }
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

  async #score(
    blueprint: CompiledBlueprint,
    trace: CognitiveTrace,
    celContext: Record<string, unknown>,
    context: Record<string, unknown>,
    metadata: Record<string, unknown>,
    inputProblemOf: () => string | null,
  ): Promise<{ quality: number; decision: InterventionType | null }> {
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
          if (Object.keys(exceeded).length < 20) exceeded[check.id] = outcome.reason;
          decision = "BLOCK";
          this.#metrics.limitsExceeded++;
        }
        if (outcome.overranMs !== undefined) {
          this.#overran(
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
        const scorer = this.#scorers[check.scorer] as Scorer;
        pending.push(
          this.#runScorer(scorer, check, blueprint.id, trace, context).then((outcome) => {
            if (outcome.kind === "score") record(check, outcome.score);
            else {
              failures[check.id] = outcome.kind;
              if (outcome.kind === "timeout") this.#metrics.timeouts++;
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

  async #runScorer(
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
      this.#logger.warn("steward: a scorer failed; its fallback applies", {
        checkId: check.id,
        error: firstLineOf(cause),
      });
      return { kind: "error" };
    } finally {
      clearTimeout(timer);
    }
  }

  async #finish(
    started: number,
    trace: CognitiveTrace,
    traceId: string,
    agentId: string,
    agentTier: string,
    outcome: {
      decision: InterventionType;
      flagged: boolean;
      fired: Fired[];
      quality: number;
      risk: number;
      message: string;
      debt: { before: number; after: number; levels: string[] };
      metadata: Record<string, unknown>;
    },
    blueprint: CompiledBlueprint | null,
  ): Promise<InterventionResult> {
    const { decision, flagged, fired, quality, risk, debt } = outcome;
    const intervention: InterventionType = decision === "OK" && flagged ? "FLAG" : decision;
    const status: GovernanceStatus = {
      riskLevel: riskLevelOf(decision, risk, blueprint),
      riskScore: risk,
      qualityScore: quality,
      firedTripwires: fired.map((item) => item.id),
      flagged,
      trustDebtBefore: debt.before,
      trustDebtAfter: debt.after,
      trustDebtLevels: debt.levels,
      blueprintId: blueprint?.id ?? null,
      blueprintHash: blueprint?.hash ?? null,
    };
    const metadata: Record<string, unknown> = {
      ...outcome.metadata,
      conformanceLevel: this.#conformance,
      action: trace.action,
      agentId,
      agentTier,
    };
    if (trace.agentTier !== undefined && trace.agentTier !== agentTier)
      metadata.ignoredTraceAgentTier = trace.agentTier;
    if (fired.length > 0) metadata.tripwires = fired;
    const result: InterventionResult = {
      intervention,
      message: outcome.message,
      traceId,
      timestamp: this.#clock.now(),
      governanceStatus: status,
      metadata,
    };
    if (this.#conformance === "complete" || intervention !== "OK") {
      const event: AuditEventInput = {
        agentId,
        kind: STEWARD_AUDIT_KINDS.intervention,
        inputHash: inputHash(trace),
        metadata: {
          intervention,
          message: outcome.message,
          traceId,
          action: trace.action,
          agentTier,
          blueprintId: status.blueprintId,
          blueprintHash: status.blueprintHash,
          riskLevel: status.riskLevel,
          riskScore: risk,
          qualityScore: quality,
          flagged,
          firedTripwires: auditedTripwires(fired),
          ...(outcome.metadata.checkLimitsExceeded === undefined
            ? {}
            : { checkLimitsExceeded: outcome.metadata.checkLimitsExceeded }),
          trustDebtBefore: debt.before,
          trustDebtAfter: debt.after,
          conformanceLevel: this.#conformance,
        },
      };
      if (this.#conformance === "complete") {
        const written = await this.#writeAwaited(event);
        if (written !== "ok") metadata.auditError = written;
      } else this.#write(event);
    }
    const metrics = this.#metrics;
    metrics.total++;
    metrics.interventions[intervention]++;
    if (flagged) metrics.flagged++;
    const elapsed = performance.now() - started;
    this.#latencies[this.#latencyCount % LATENCY_WINDOW] = elapsed;
    this.#latencyCount++;
    this.#latencySum += elapsed;
    return result;
  }

  /** At `complete`, awaited (bounded by `auditTimeoutMs`); otherwise in the background. */
  async #audited(event: AuditEventInput): Promise<void> {
    if (this.#conformance === "complete") await this.#writeAwaited(event);
    else this.#write(event);
  }

  #write(event: AuditEventInput): void {
    const pending = this.#writeAwaited(event);
    this.#pending.add(pending);
    void pending.finally(() => this.#pending.delete(pending));
  }

  /** Write an audit event; never throws. `"timeout"` when the sink took over `auditTimeoutMs`. */
  async #writeAwaited(event: AuditEventInput): Promise<"ok" | "failed" | "timeout"> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.#auditTimeoutMs);
      });
      const outcome = await Promise.race([
        Promise.resolve().then(() => this.#audit.log(event)),
        timeout,
      ]);
      if (outcome === "timeout") {
        this.#metrics.auditFailures++;
        this.#metrics.auditTimeouts++;
        this.#logger.error("steward: an audit event timed out; the evaluation goes on without it", {
          kind: event.kind,
          agentId: event.agentId,
          timeoutMs: this.#auditTimeoutMs,
        });
        return "timeout";
      }
      return "ok";
    } catch (cause) {
      this.#metrics.auditFailures++;
      this.#logger.error("steward: an audit event could not be written", {
        kind: event.kind,
        agentId: event.agentId,
        error: firstLineOf(cause),
      });
      return "failed";
    } finally {
      clearTimeout(timer);
    }
  }

  /** Wait for the audit writes in flight (at `standard`, non-OK results are not awaited). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Counters since the steward started. */
  getMetrics(): StewardMetrics {
    const count = Math.min(this.#latencyCount, LATENCY_WINDOW);
    const window = Array.from(this.#latencies.subarray(0, count)).sort((a, b) => a - b);
    const p99 = count === 0 ? 0 : (window[Math.min(count - 1, Math.ceil(count * 0.99) - 1)] ?? 0);
    const m = this.#metrics;
    return {
      totalEvaluations: m.total,
      interventions: { ...m.interventions },
      flagged: m.flagged,
      averageLatencyMs: m.total === 0 ? 0 : this.#latencySum / this.#latencyCount,
      p99LatencyMs: p99,
      timeouts: m.timeouts,
      tripwireViolations: m.tripwireViolations,
      tripwireErrors: m.tripwireErrors,
      evaluationLimitsExceeded: m.limitsExceeded,
      latencyBudgetOverruns: m.overruns,
      trustDebtThresholdCrossings: m.crossings,
      auditFailures: m.auditFailures,
      auditTimeouts: m.auditTimeouts,
    };
  }
}

/** Most fired tripwires detailed in one audit event (the chain limits a value to 8 KiB). */
const AUDITED_TRIPWIRES = 20;
const AUDITED_TEXT = 256;

function auditedTripwires(fired: readonly Fired[]): {
  count: number;
  ids: string[];
  details: Fired[];
} {
  return {
    count: fired.length,
    ids: fired.slice(0, 100).map((item) => item.id),
    details: fired.slice(0, AUDITED_TRIPWIRES).map((item) => ({
      ...item,
      reason: item.reason.slice(0, AUDITED_TEXT),
      ...(item.error === undefined ? {} : { error: item.error.slice(0, AUDITED_TEXT) }),
    })),
  };
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

function decayOf(blueprint: CompiledBlueprint | undefined): DebtDecay {
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

function riskLevelOf(
  decision: InterventionType,
  risk: number,
  blueprint: CompiledBlueprint | null,
): RiskLevel {
  if (decision === "BLOCK" || decision === "HALT") return "critical_risk";
  if (decision === "ESCALATE") return "elevated_risk";
  const ok = blueprint?.scoring.ok ?? 0.25;
  return risk <= ok ? "low_risk" : "elevated_risk";
}

function missingEvidence(
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

function inputHash(trace: CognitiveTrace): string | null {
  try {
    return canonicalJsonHash(
      {
        action: trace.action,
        parameters: trace.parameters ?? {},
        reasoning: trace.reasoning ?? null,
        confidence: trace.confidence ?? null,
      },
      "trace",
    );
  } catch {
    return null;
  }
}

function messageFor(
  decision: InterventionType,
  flagged: boolean,
  fired: readonly Fired[],
  risk: number,
  blueprint: CompiledBlueprint,
  metadata: Record<string, unknown>,
): string {
  const decisive = fired.find((item) => item.decision === decision);
  const flag = flagged ? " (flagged for review)" : "";
  if (decisive?.exceeded)
    return `${decision}: tripwire "${decisive.id}" could not be evaluated within its bounds (${decisive.error ?? decisive.exceeded}); fail closed${flag}.`;
  if (decisive) return `${decision}: ${decisive.reason}${flag}`;
  if (metadata.checkLimitsExceeded && decision === "BLOCK")
    return `BLOCK: a check's rule could not be evaluated within its bounds; fail closed${flag}.`;
  if (metadata.scorerFailures && decision === "BLOCK")
    return `BLOCK: a tier-1 check failed or exceeded its latency budget (fallback deny)${flag}.`;
  if (metadata.trustDebtError && decision === "ESCALATE")
    return `ESCALATE: the trust debt could not be read (fail closed)${flag}.`;
  if (decision === "OK") {
    const flagReason = fired.find((item) => item.decision === "FLAG");
    return flagged
      ? `FLAG: ${flagReason?.reason ?? "trust debt at elevated monitoring"}`
      : `OK: risk ${risk.toFixed(2)} within blueprint ${blueprint.id}.`;
  }
  return `${decision}: risk ${risk.toFixed(2)} under blueprint ${blueprint.id}${metadata.missingEvidence ? ", evidence missing" : ""}${flag}.`;
}
