/**
 * Reading what `evaluate` is given — the trace, the host's context and options — once, into
 * plain data, and checking it: what is checked is what is evaluated, audited and counted.
 */
import { agentIdSchema, checkId, InvalidArgumentError, parseOptions } from "@gov/core";
import { z } from "zod";
import { firstLineOf } from "./cel";
import { type CognitiveTrace, HOOKS, type Hook, STEWARD_LIMITS } from "./models";

/** Whether `value` is a plain object (an object literal, or one without a prototype). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
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
export function unreadable(field: string, error: unknown): InvalidArgumentError {
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
export function readTrace(trace: unknown): CognitiveTrace {
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
  if (value.agentId !== undefined) {
    checkId(value.agentId, "trace.agentId");
  }
  for (const field of ["agentTier", "traceId"] as const) {
    const item = value[field];
    if (item !== undefined && (typeof item !== "string" || item.length > STEWARD_LIMITS.idLength)) {
      throw new InvalidArgumentError(
        `trace.${field}`,
        `must be a string of at most ${STEWARD_LIMITS.idLength} characters.`,
        `Pass ${field} as a short string, or leave it out.`,
      );
    }
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

/**
 * Refuse a context that is not a plain object (or cannot be read).
 *
 * @throws {InvalidArgumentError} field `context`.
 */
export function checkContext(context: unknown): asserts context is Record<string, unknown> {
  let plain: boolean;
  try {
    plain = isPlainObject(context);
  } catch (error) {
    throw unreadable("context", error);
  }
  if (!plain) {
    throw new InvalidArgumentError(
      "context",
      "must be a plain object.",
      "Pass an object, or nothing.",
    );
  }
}

/** `evaluate`'s options (`EvaluateOptions`): the host's view of the evaluation. */
const evaluateOptionsSchema = z.strictObject({
  hook: z.enum(HOOKS).optional(),
  agentTier: z.string().max(STEWARD_LIMITS.idLength).optional(),
  agentId: agentIdSchema.optional(),
});

/** How to fix each of `evaluate`'s options (`agentId`'s fix is core's id rule's). */
const EVALUATE_OPTION_FIXES: Readonly<Record<string, string>> = {
  "": "Pass { hook, agentTier, agentId } (each optional), or nothing.",
  hook: 'Pass one of the hooks exactly, e.g. { hook: "pre_action" }.',
  agentTier:
    "Pass the agent's tier as a short string (evaluate's option, or the steward's agentTiers).",
};

const NO_OPTIONS: z.output<typeof evaluateOptionsSchema> = Object.freeze({});

/** Who and where an evaluation is for, as the host says (never the agent). */
export interface HostView {
  hook: Hook;
  agentId: string;
  agentTier: string;
}

/**
 * The host's view of an evaluation: the hook, the agent and its tier, from `evaluate`'s
 * options (each read once) and the steward's `agentTiers`, checked against the trace's own
 * assertions (a trace's `hook` and `agentId` must agree with the host's).
 *
 * @throws {InvalidArgumentError} for options that are not a plain object or cannot be read,
 *   an unknown option (with a "did you mean": a misspelt option is never dropped), a bad value
 *   (`options.hook`, `options.agentId`, …), or a trace that disagrees with the host.
 */
export function readHostView(
  givenOptions: unknown,
  trace: CognitiveTrace,
  tierOf: (agentId: string) => string | undefined,
): HostView {
  // No options (the common call) costs nothing; given ones are read by core's parseOptions.
  const options: z.output<typeof evaluateOptionsSchema> =
    givenOptions === undefined
      ? NO_OPTIONS
      : parseOptions(evaluateOptionsSchema, givenOptions, { fixes: EVALUATE_OPTION_FIXES });
  const hook: Hook = options.hook ?? "pre_action";
  if (trace.hook !== undefined && trace.hook !== hook) {
    throw new InvalidArgumentError(
      "trace.hook",
      `is "${trace.hook}" but the host evaluates at "${hook}".`,
      "The host sets the hook (evaluate's option { hook }); leave trace.hook out.",
    );
  }
  const hostAgentId = options.agentId;
  if (hostAgentId !== undefined && trace.agentId !== undefined && trace.agentId !== hostAgentId) {
    throw new InvalidArgumentError(
      "trace.agentId",
      `is ${JSON.stringify(trace.agentId).slice(0, 80)} but the host evaluates for "${hostAgentId}".`,
      "The host sets the agent (evaluate's option { agentId }); leave trace.agentId out.",
    );
  }
  const agentId = hostAgentId ?? trace.agentId ?? "anonymous";
  // The option is checked by its schema; a tier from the steward's agentTiers is checked here.
  const agentTier = options.agentTier ?? tierOf(agentId) ?? "";
  if (typeof agentTier !== "string" || agentTier.length > STEWARD_LIMITS.idLength) {
    throw new InvalidArgumentError(
      "agentTier",
      `must be a string of at most ${STEWARD_LIMITS.idLength} characters.`,
      "Pass the agent's tier as a short string (evaluate's option, or the steward's agentTiers).",
    );
  }
  return { hook, agentId, agentTier };
}
