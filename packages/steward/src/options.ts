/**
 * What a steward is given — its options, its context (the ports it uses), the host's options
 * of one evaluation, scorers — and how the options and the context are read (once, at
 * construction: unknown keys are refused with a "did you mean").
 */
import {
  type AuditSink,
  type Clock,
  type HaltGuard,
  InvalidArgumentError,
  type Keyring,
  type Logger,
  parseOptions,
  requireKeyring,
  requirePort,
  suggestKey,
} from "@gov/core";
import { z } from "zod";
import type { CompiledBlueprint } from "./blueprint";
import { PolicyError } from "./errors";
import type { CognitiveTrace, ConformanceLevel, Hook } from "./models";
import type { StateStorage, TrustDebtStorage } from "./state";
import { isPlainObject } from "./trace";

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
   * it (logged, counted in `metrics().auditTimeouts`, `metadata.auditError: "timeout"`): an
   * integer of milliseconds, 1 to 2,147,483,647.
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

/**
 * The ports a steward uses; each optional. A whole `ModuleContext` may be passed: the
 * steward uses these four.
 */
export interface StewardContext {
  /** @default the system clock */
  clock?: Clock;
  /** @default a console logger */
  logger?: Logger;
  /** Where interventions are recorded. @default a no-op sink */
  audit?: AuditSink;
  /** Checked before each evaluation when given (an operator's halt refuses it). */
  halt?: HaltGuard;
}

/** The longest `setTimeout` delay. */
const MAX_TIMEOUT_MS = 2_147_483_647;

function hasMethods(value: unknown, methods: readonly string[]): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    methods.every((method) => typeof (value as Record<string, unknown>)[method] === "function")
  );
}

/** A blueprint source: YAML text, or an object (checked when it is compiled). */
const blueprintSourceSchema = z.custom<BlueprintSource>(
  (value) =>
    (typeof value === "string" && value.length > 0) ||
    (typeof value === "object" && value !== null && !Array.isArray(value)),
  { error: "must be YAML text, a blueprint object or a compiled blueprint." },
);

/** The options both the steward and the steward module take (the module's `blueprints` are optional). */
export const stewardOptionsShape = {
  stateStorage: z
    .custom<StateStorage>((value) => hasMethods(value, ["reserve", "release", "read"]), {
      error: "must be a StateStorage (with reserve, release and read methods).",
    })
    .optional(),
  trustDebtStorage: z
    .custom<TrustDebtStorage>((value) => hasMethods(value, ["add", "read"]), {
      error: "must be a TrustDebtStorage (with add and read methods).",
    })
    .optional(),
  conformanceLevel: z.enum(["minimal", "standard", "complete"]).optional(),
  enableWarnings: z.boolean().optional(),
  production: z.boolean().optional(),
  scorers: z
    .custom<Readonly<Record<string, Scorer>>>(
      (value) =>
        isPlainObject(value) && Object.values(value).every((item) => typeof item === "function"),
      { error: "must be an object of scorer functions by name." },
    )
    .optional(),
  // Kept as given (not copied): the host's map is read at each evaluation.
  agentTiers: z
    .custom<StewardOptions["agentTiers"]>(
      (value) => typeof value === "function" || isPlainObject(value),
      { error: "must be a map from agent id to tier, or a function of the agent id." },
    )
    .optional(),
  auditTimeoutMs: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
};

const stewardOptionsSchema = z.strictObject({
  ...stewardOptionsShape,
  blueprints: z.array(blueprintSourceSchema).min(1),
});

/** How to fix each of the steward's options. */
export const STEWARD_OPTION_FIXES: Readonly<Record<string, string>> = {
  "": "Pass { blueprints: [...] }.",
  blueprints:
    "Pass at least one blueprint (an object, YAML text, or a compiled blueprint); or use GovernanceSteward.fromFiles / fromRegistry.",
  stateStorage:
    "Pass a StateStorage (InMemoryStateStorage, PostgresStateStorage), or leave it out.",
  trustDebtStorage:
    "Pass a TrustDebtStorage (InMemoryTrustDebtStorage, PostgresTrustDebtStorage), or leave it out.",
  conformanceLevel: 'Use "minimal", "standard" or "complete".',
  enableWarnings: "Use true or false.",
  production: "Use true or false.",
  scorers: 'Pass e.g. scorers: { "judge": async (trace) => 0.9 }.',
  agentTiers: 'Pass e.g. agentTiers: { "billing-agent": "tier-1" }.',
  auditTimeoutMs: "Use a positive integer of milliseconds, e.g. 5000.",
};

/** The steward's options, checked. */
export type ParsedStewardOptions = z.output<typeof stewardOptionsSchema>;

/**
 * Read a steward's options: a plain object with known keys (a misspelt one is refused with a
 * "did you mean"), each value checked.
 *
 * @throws {PolicyError} `POLICY_INVALID` naming the option, every problem in its `issues` and
 *   its message (core's error as its `cause`).
 */
export function parseStewardOptions(value: unknown): ParsedStewardOptions {
  try {
    return parseOptions(stewardOptionsSchema, value, { fixes: STEWARD_OPTION_FIXES });
  } catch (error) {
    if (!InvalidArgumentError.isInstance(error)) throw error;
    throw PolicyError.fromInputError(error, "steward options");
  }
}

/** Whether `value` is a Keyring core accepts (it finds keys and has a current key that signs). */
function isKeyring(value: unknown): boolean {
  try {
    requireKeyring(value, "options.keyring", "blueprints are signed and verified with it");
    return true;
  } catch {
    return false;
  }
}

/** The options of `PostgresBlueprintRegistry` (`PostgresBlueprintRegistryOptions`). */
const registryOptionsSchema = z.strictObject({
  keyring: z
    .custom<Keyring>(isKeyring, {
      error: "must be a Keyring with a current key (blueprints are signed and verified with it).",
    })
    .optional(),
  audit: z
    .custom<AuditSink>((value) => hasMethods(value, ["log"]), {
      error: "must be an AuditSink (with a log method).",
    })
    .optional(),
  logger: z
    .custom<Logger>((value) => hasMethods(value, ["warn", "error"]), {
      error: "must be a Logger (with warn and error methods).",
    })
    .optional(),
});

const REGISTRY_OPTION_FIXES: Readonly<Record<string, string>> = {
  "": "Pass { keyring, audit, logger } (each optional), or nothing.",
  keyring:
    "Pass the deployment's Keyring (resolveKeyring, or new Keyring(new ChainKey(secret))); @gov/sdk wires it for you.",
  audit: "Pass an AuditSink (e.g. the audit module), or leave it out.",
  logger: "Pass a Logger (createConsoleLogger(), silentLogger), or leave it out.",
};

/**
 * Read a `PostgresBlueprintRegistry`'s options: a plain object (or nothing) with known keys (a
 * misspelt one is refused with a "did you mean"), each value checked.
 *
 * @throws {InvalidArgumentError} naming the option (`options.keyring`).
 */
export function parseRegistryOptions(value: unknown): z.output<typeof registryOptionsSchema> {
  return parseOptions(registryOptionsSchema, value, { fixes: REGISTRY_OPTION_FIXES });
}

/** The keys of a steward's context: its ports, and the rest of a `ModuleContext`. */
const CONTEXT_KEYS = [
  "clock",
  "logger",
  "audit",
  "halt",
  "store",
  "keyring",
  "signingKey",
  "operators",
] as const;

/**
 * Read a steward's context: an object (or nothing) whose ports have the methods the steward
 * calls. A key that is no port — an option passed where the context belongs — is refused.
 *
 * @throws {InvalidArgumentError} naming `context.<port>`.
 */
export function readStewardContext(value: unknown): StewardContext {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(
      "context",
      `must be an object of ports, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}.`,
      "Pass { clock, logger, audit, halt } (each optional), or {}; the options come second.",
    );
  }
  for (const key of Object.keys(value)) {
    if ((CONTEXT_KEYS as readonly string[]).includes(key)) continue;
    const suggestion = suggestKey(key, CONTEXT_KEYS);
    throw new InvalidArgumentError(
      `context.${key}`,
      suggestion === undefined
        ? "is not a port of the steward's context."
        : `is not a port of the steward's context; did you mean \`${suggestion}\`?`,
      "The context comes first and holds ports ({ clock, logger, audit, halt }); the options come second: new GovernanceSteward(context, { blueprints, … }).",
    );
  }
  const context = value as StewardContext;
  requirePort(context.clock, "clock", ["now", "nowMs"], "a Clock", { optional: true });
  requirePort(context.logger, "logger", ["debug", "info", "warn", "error"], "a Logger", {
    optional: true,
  });
  requirePort(context.audit, "audit", ["log"], "an AuditSink", { optional: true });
  requirePort(context.halt, "halt", ["assertAlive"], "a HaltGuard", { optional: true });
  return context;
}
