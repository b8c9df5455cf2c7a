import { MAX_ID_LENGTH } from "@gov/core";
import { z } from "zod";

/** The six interventions, as in the reference. */
export const InterventionType = {
  OK: "OK",
  NUDGE: "NUDGE",
  FLAG: "FLAG",
  ESCALATE: "ESCALATE",
  BLOCK: "BLOCK",
  HALT: "HALT",
} as const;
/** One of {@link InterventionType}. */
export type InterventionType = (typeof InterventionType)[keyof typeof InterventionType];

/** Risk levels of a {@link GovernanceStatus}. */
export const RiskLevel = {
  LOW_RISK: "low_risk",
  ELEVATED_RISK: "elevated_risk",
  CRITICAL_RISK: "critical_risk",
} as const;
/** One of {@link RiskLevel}. */
export type RiskLevel = (typeof RiskLevel)[keyof typeof RiskLevel];

/** Tripwire severities: advisory only, they never change a decision. */
export const TripwireSeverity = {
  STANDARD: "standard",
  CRITICAL: "critical",
  SEVERE: "severe",
} as const;
/** One of {@link TripwireSeverity}. */
export type TripwireSeverity = (typeof TripwireSeverity)[keyof typeof TripwireSeverity];

/** Conformance levels (see the README). */
export type ConformanceLevel = "minimal" | "standard" | "complete";

/** Hooks a tripwire can run at; a trace says which one it is (`pre_action` by default). */
export const HOOKS = ["pre_action", "post_action", "on_reasoning"] as const;
/** One of {@link HOOKS}. */
export type Hook = (typeof HOOKS)[number];

/** Audit event kinds written by the steward. */
export const STEWARD_AUDIT_KINDS = {
  /** One evaluation and its intervention (every one at `complete`; non-OK ones otherwise). */
  intervention: "steward.intervention",
  /** An agent's trust debt crossed a threshold upwards. */
  trustDebtThreshold: "steward.trust_debt_threshold_crossed",
  /**
   * A blueprint in the Postgres registry was refused: unsigned, signed by an unknown key, or
   * not matching its signature or hash (agent id `gov.steward`; metadata blueprintId, reason,
   * keyId, problem).
   */
  blueprintRejected: "steward.blueprint_rejected",
} as const;

/** Limits of a blueprint and of a trace. */
export const STEWARD_LIMITS = {
  /** Ids (agents, tiers, blueprints, tripwires, trace ids): core's `MAX_ID_LENGTH`. */
  idLength: MAX_ID_LENGTH,
  conditionLength: 4_096,
  tripwires: 1_000,
  checks: 200,
  messageLength: 1_024,
  actionLength: 256,
  reasoningLength: 65_536,
  inheritanceDepth: 16,
  /** The latency budget of a tier-0 evaluation without `latencyBudgetMs`, in ms. */
  tier0LatencyBudgetMs: 50,
  /** Evaluation steps allowed per millisecond of latency budget (100,000 at the default). */
  evaluationStepsPerMs: 2_000,
  /**
   * How many times its latency budget a tier-0 evaluation may take by the clock before it
   * fails closed (bound `time`, at least BLOCK): 500 ms at the default budget. A smaller
   * overrun (a stalled process) keeps its answer and is only reported; no stall this large is
   * benign enough to trust its answer, and it caps whatever the step model misses.
   */
  grossOverrunFactor: 10,
  /** Values (strings, numbers, elements, entries, all levels) of `args` and `context`. */
  evaluationInputValues: 100_000,
  /** Nesting levels of `args` and `context`. */
  evaluationInputDepth: 64,
  /** Characters of a `matches()` pattern. */
  patternLength: 1_024,
  /** Instructions of a compiled `matches()` pattern (re2js `programSize()`). */
  patternProgramSize: 5_000,
  /**
   * Characters of a `matches()` pattern that comes from a variable (compiled at evaluation,
   * each distinct one charged before it is compiled).
   */
  variablePatternLength: 256,
  /** Distinct patterns from variables one evaluation may use; past it, it fails closed. */
  variablePatternsPerEvaluation: 32,
} as const;

const idSchema = z
  .string()
  .min(1)
  .max(STEWARD_LIMITS.idLength)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/, "use letters, digits and _ . : / - only");

const blueprintIdSchema = z
  .string()
  .max(STEWARD_LIMITS.idLength)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_./-]*@[A-Za-z0-9][A-Za-z0-9_.+-]*$/,
    'must be "name@version", e.g. "finance/trading@1.0"',
  );

const decisionSchema = z.enum(["OK", "NUDGE", "FLAG", "ESCALATE", "BLOCK", "HALT"]);

const stringList = z.array(z.string().min(1).max(STEWARD_LIMITS.idLength)).max(1_000);

/** A tripwire as written in a blueprint. */
export const tripwireSchema = z.strictObject({
  id: idSchema,
  description: z.string().max(STEWARD_LIMITS.messageLength).optional(),
  when: z
    .strictObject({
      hook: z.enum(HOOKS).default("pre_action"),
      tool: z.union([z.string().min(1), stringList]).optional(),
    })
    .default({ hook: "pre_action" }),
  condition: z.string().min(1).max(STEWARD_LIMITS.conditionLength),
  evalTier: z.union([z.literal(0), z.literal(1)]).default(0),
  latencyBudgetMs: z.int().min(1).max(600_000).optional(),
  severity: z.enum(["standard", "critical", "severe"]).default("standard"),
  requiresState: z.boolean().default(false),
  onFail: z.strictObject({
    decision: decisionSchema.exclude(["OK"]),
    reason: z.string().min(1).max(STEWARD_LIMITS.messageLength).optional(),
  }),
});
/** A tripwire after validation (defaults applied). */
export type BlueprintTripwire = z.infer<typeof tripwireSchema>;

const METRICS = ["reasoning_length", "confidence", "evidence", "tool_safety"] as const;

/** A check as written in a blueprint: exactly one of `passes`, `metric` or `scorer`. */
export const checkSchema = z
  .strictObject({
    id: idSchema,
    description: z.string().max(STEWARD_LIMITS.messageLength).optional(),
    weight: z.number().min(0).max(1_000).default(1),
    /** A CEL rule: score 1 when true, 0 when false or on error. */
    passes: z.string().min(1).max(STEWARD_LIMITS.conditionLength).optional(),
    metric: z.enum(METRICS).optional(),
    /** Minimum reasoning length (reasoning_length) or citations (evidence). */
    min: z.number().min(0).max(1_000_000).optional(),
    safeTools: stringList.optional(),
    unsafeTools: stringList.optional(),
    /** The name of an async scorer given to the steward (`scorers`): tier 1. */
    scorer: idSchema.optional(),
    latencyBudgetMs: z.int().min(1).max(600_000).default(2_000),
    fallback: z
      .union([z.enum(["deny", "allow", "raise"]), z.number().min(0).max(1)])
      .default("deny"),
  })
  .superRefine((check, context) => {
    const kinds = [check.passes, check.metric, check.scorer].filter((kind) => kind !== undefined);
    if (kinds.length !== 1) {
      context.addIssue({
        code: "custom",
        message: "give exactly one of passes (a CEL rule), metric or scorer",
        path: [],
      });
    }
  });
/** A check after validation. */
export type BlueprintCheck = z.infer<typeof checkSchema>;

const scoringSchema = z
  .strictObject({
    ok: z.number().min(0).max(1).default(0.25),
    nudge: z.number().min(0).max(1).default(0.4),
    escalate: z.number().min(0).max(1).default(0.55),
  })
  .refine((value) => value.ok <= value.nudge && value.nudge <= value.escalate, {
    message: "thresholds must satisfy ok ≤ nudge ≤ escalate",
  });

const accumulationSchema = z.strictObject({
  ok: z.number().min(0).max(1_000).default(0),
  flag: z.number().min(0).max(1_000).default(0.1),
  nudge: z.number().min(0).max(1_000).default(0.5),
  escalate: z.number().min(0).max(1_000).default(1),
  block: z.number().min(0).max(1_000).default(2),
  halt: z.number().min(0).max(1_000).default(5),
});

const trustDebtSchema = z.strictObject({
  enabled: z.boolean().default(true),
  accumulation: accumulationSchema.default(accumulationSchema.parse({})),
  decay: z
    .strictObject({
      rate: z.number().min(0).max(1).default(0.1),
      periodHours: z
        .number()
        .min(0.001)
        .max(24 * 366)
        .default(24),
    })
    .default({ rate: 0.1, periodHours: 24 }),
  thresholds: z
    .strictObject({
      elevatedMonitoring: z.number().min(0).default(5),
      restrictedMode: z.number().min(0).default(10),
      retieringReview: z.number().min(0).default(20),
    })
    // Thresholds that are on (> 0) must be in order; 0 turns one off.
    .refine(
      (value) => {
        const on = [value.elevatedMonitoring, value.restrictedMode, value.retieringReview].filter(
          (limit) => limit > 0,
        );
        return on.every((limit, index) => index === 0 || (on[index - 1] as number) <= limit);
      },
      {
        message:
          "thresholds must satisfy elevatedMonitoring ≤ restrictedMode ≤ retieringReview (a threshold of 0 is off)",
      },
    )
    .default({ elevatedMonitoring: 5, restrictedMode: 10, retieringReview: 20 }),
});

const evidenceSchema = z.strictObject({
  requireReasoning: z.boolean().default(false),
  minReasoningLength: z.int().min(0).max(STEWARD_LIMITS.reasoningLength).default(0),
  minCitations: z.int().min(0).max(1_000).default(0),
  requireConfidence: z.boolean().default(false),
  onMissing: z.enum(["NUDGE", "ESCALATE", "BLOCK"]).default("ESCALATE"),
});

const scopeSchema = z.strictObject({
  agentIds: stringList.optional(),
  agentTiers: stringList.optional(),
  tools: stringList.optional(),
});

/** A blueprint document as written (before inheritance). */
export const blueprintSchema = z.strictObject({
  id: blueprintIdSchema,
  version: z.string().min(1).max(64),
  description: z.string().max(4_096).optional(),
  inherits: blueprintIdSchema.optional(),
  scope: scopeSchema.optional(),
  tripwires: z.array(tripwireSchema).max(STEWARD_LIMITS.tripwires).default([]),
  checks: z.array(checkSchema).max(STEWARD_LIMITS.checks).default([]),
  evidence: evidenceSchema.optional(),
  scoring: scoringSchema.optional(),
  trustDebt: trustDebtSchema.optional(),
});
/** A validated blueprint document (defaults applied, inheritance not yet resolved). */
export type BlueprintDocument = z.infer<typeof blueprintSchema>;
/** What a blueprint may be written as (YAML or a plain object). */
export type BlueprintInput = z.input<typeof blueprintSchema>;
/** Scoring thresholds with defaults applied. */
export type ScoringThresholds = z.infer<typeof scoringSchema>;
/** Trust-debt configuration with defaults applied. */
export type TrustDebtConfig = z.infer<typeof trustDebtSchema>;
/** Evidence requirements with defaults applied. */
export type EvidenceRequirements = z.infer<typeof evidenceSchema>;
/** A blueprint's scope. */
export type BlueprintScope = z.infer<typeof scopeSchema>;

/** Defaults of a blueprint without `scoring` / `trustDebt`. */
export const DEFAULT_SCORING: ScoringThresholds = Object.freeze(scoringSchema.parse({}));
/** Trust-debt defaults: amounts OK 0, FLAG 0.1, NUDGE 0.5, ESCALATE 1, BLOCK 2, HALT 5; 10 % per 24 h. */
export const DEFAULT_TRUST_DEBT: TrustDebtConfig = Object.freeze(trustDebtSchema.parse({}));

/**
 * An agent's reasoning and its planned action: what the steward evaluates.
 *
 * @example
 * ```ts
 * const trace: CognitiveTrace = {
 *   agentId: "trader-1", agentTier: "tier-2",
 *   reasoning: "The client asked for a refund of order 1234.",
 *   action: "refund", parameters: { amount: 120 }, confidence: 0.9,
 * };
 * ```
 */
export interface CognitiveTrace {
  /** The tool or action the agent plans (≤ 256 characters). */
  action: string;
  /** Its arguments (`args` / `parameters` in CEL). @default {} */
  parameters?: Record<string, unknown>;
  /** The agent's reasoning (`reasoning` in CEL; "" when absent). */
  reasoning?: string | null;
  /** The agent's confidence, 0 to 1 (`confidence` in CEL; null when absent). */
  confidence?: number | null;
  /** Citations or evidence the agent offers (used by the `evidence` metric and requirements). */
  evidence?: readonly string[];
  /** @default a random UUID */
  traceId?: string;
  /** Filled by the host, never by the agent. @default "anonymous" */
  agentId?: string;
  /**
   * Ignored for selection and `agent.tier`: the tier comes from the host (the steward's
   * `agentTiers`, or `evaluate`'s option `{ agentTier }`); a differing value is reported as
   * `metadata.ignoredTraceAgentTier`.
   */
  agentTier?: string;
  /**
   * Optional assertion of the hook; it must be one of {@link HOOKS} and equal the hook the
   * host passes to `evaluate` (`options.hook`, default "pre_action"), else the evaluation is
   * refused. The host, not the agent, decides the hook.
   */
  hook?: Hook;
}

/** Details of an evaluation. */
export interface GovernanceStatus {
  riskLevel: RiskLevel;
  /** 1 − qualityScore, in [0, 1] (1 for a HALT, whose checks are skipped). */
  riskScore: number;
  /** Weighted quality score of the checks, in [0, 1] (1 when the blueprint has none). */
  qualityScore: number;
  /** Ids of the tripwires that fired, in blueprint order. */
  firedTripwires: string[];
  /** Whether FLAG accompanies the intervention. */
  flagged: boolean;
  trustDebtBefore: number;
  trustDebtAfter: number;
  /** Trust-debt thresholds at or above which the debt now stands. */
  trustDebtLevels: string[];
  blueprintId: string | null;
  /** SHA-256 of the resolved blueprint's canonical JSON. */
  blueprintHash: string | null;
}

/** What `evaluate` returns. */
export interface InterventionResult {
  intervention: InterventionType;
  message: string;
  traceId: string;
  timestamp: Date;
  governanceStatus: GovernanceStatus;
  metadata: Record<string, unknown>;
}
