import { describeValue, parseOptions, suggestKey } from "@gov/core";
import { z } from "zod";
import { InvalidLoopPolicyError } from "./errors";

/** The limits of a loop policy and of the module's options (the reference's where it has them). */
export const LOOP_LIMITS = {
  /** Characters of an agent id, session id or tool name (the audit chain's limit). */
  nameLength: 256,
  windowSeconds: { min: 1, max: 3_600 },
  maxCalls: { min: 2, max: 1_000 },
  identicalMaxCalls: { min: 1, max: 1_000 },
  minRepetitions: { min: 2, max: 10 },
  maxPeriod: { min: 2, max: 5 },
  /** Calls remembered per (session, rule) at most; counts beyond it are reported as a floor. */
  trackedCallsPerRule: 4_096,
  sessionIdleMs: { min: 60_000, max: 7 * 86_400_000 },
  sweepIntervalMs: { min: 1_000, max: 86_400_000 },
  /** @deprecated use `sessionIdleMs` */
  sessionIdleSeconds: { min: 60, max: 7 * 86_400 },
  /** @deprecated use `sweepIntervalMs` */
  sweepIntervalSeconds: { min: 1, max: 86_400 },
  maxSessions: { min: 1, max: 10_000_000 },
} as const;

/** The policy's defaults, as in the reference. */
export const LOOP_DEFAULTS = {
  windowSeconds: 60,
  maxCalls: 5,
  action: "raise",
  identicalMaxCalls: 2,
  minRepetitions: 3,
  maxPeriod: 2,
  sessionIdleMs: 86_400_000,
  sweepIntervalMs: 60_000,
  /** @deprecated use `sessionIdleMs` */
  sessionIdleSeconds: 86_400,
  /** @deprecated use `sweepIntervalMs` */
  sweepIntervalSeconds: 60,
  maxSessions: 100_000,
} as const;

const wholeNumber = (limits: { min: number; max: number }) =>
  z.number().int().min(limits.min).max(limits.max);

const name = z
  .string()
  .min(1)
  .max(LOOP_LIMITS.nameLength)
  .refine((value) => value.trim().length > 0, { message: "must not be blank." });

/** The schema of {@link LoopPolicyInput}. Prefer `new LoopPolicy(input)`, which explains errors. */
export const loopPolicySchema = z.strictObject({
  agentId: name,
  windowSeconds: wholeNumber(LOOP_LIMITS.windowSeconds).default(LOOP_DEFAULTS.windowSeconds),
  maxCalls: wholeNumber(LOOP_LIMITS.maxCalls).default(LOOP_DEFAULTS.maxCalls),
  action: z.enum(["raise", "log"]).default(LOOP_DEFAULTS.action),
  identicalCalls: z
    .strictObject({
      maxCalls: wholeNumber(LOOP_LIMITS.identicalMaxCalls).default(LOOP_DEFAULTS.identicalMaxCalls),
      windowSeconds: wholeNumber(LOOP_LIMITS.windowSeconds).optional(),
    })
    .nullable()
    .default(null),
  oscillation: z
    .strictObject({
      minRepetitions: wholeNumber(LOOP_LIMITS.minRepetitions).default(LOOP_DEFAULTS.minRepetitions),
      maxPeriod: wholeNumber(LOOP_LIMITS.maxPeriod).default(LOOP_DEFAULTS.maxPeriod),
    })
    .nullable()
    .default(null),
});

/** Options of the opt-in identical-call rule. */
export interface IdenticalCallsInput {
  /**
   * The most calls of one tool with the same arguments allowed in the window; one more is a
   * loop. 1–1000. @default 2
   */
  maxCalls?: number;
  /** The rule's own window, 1–3600 seconds. @default the policy's `windowSeconds` */
  windowSeconds?: number;
}

/** Options of the opt-in oscillation rule. */
export interface OscillationInput {
  /**
   * How many times in a row a cycle of tools must repeat, within the window, to be a loop:
   * with 3, `A B A B A B` trips on the sixth call. 2–10. @default 3
   */
  minRepetitions?: number;
  /** The longest cycle looked for: 2 finds A→B→A→B, 3 also A→B→C→A→B→C. 2–5. @default 2 */
  maxPeriod?: number;
}

/** What {@link LoopPolicy} is built from. */
export interface LoopPolicyInput {
  /** The agent the policy applies to (1–256 characters). */
  agentId: string;
  /** The sliding window, 1–3600 seconds. @default 60 */
  windowSeconds?: number;
  /** The most calls of one tool (case-insensitive) allowed in the window per session; one more is a loop. 2–1000. @default 5 */
  maxCalls?: number;
  /** `"raise"` refuses the call with `LoopDetected`; `"log"` only records `loop.detected`. @default "raise" */
  action?: "raise" | "log";
  /**
   * Also count identical calls (same tool, same arguments by the SHA-256 of their canonical
   * JSON), for calls recorded with `args`. `true` for the defaults. Off by default.
   * @default null
   */
  identicalCalls?: IdenticalCallsInput | boolean | null;
  /**
   * Also detect a cycle of tools repeated in a row (A→B→A→B), which per-tool counts miss
   * until each tool alone passes `maxCalls`. `true` for the defaults. Off by default.
   * @default null
   */
  oscillation?: OscillationInput | boolean | null;
}

/** The identical-call rule of a built policy. */
export interface IdenticalCallsRule {
  readonly maxCalls: number;
  readonly windowSeconds: number;
}

/** The oscillation rule of a built policy. */
export interface OscillationRule {
  readonly minRepetitions: number;
  readonly maxPeriod: number;
}

const FIXES: Record<string, string> = {
  agentId: `Pass the agent's id as a non-empty string of at most ${LOOP_LIMITS.nameLength} characters.`,
  windowSeconds: "Use a whole number of seconds from 1 to 3600 (default 60).",
  maxCalls:
    "Use a whole number from 2 to 1000 (default 5): the most calls of one tool allowed in the window.",
  action: 'Use "raise" (refuse the call with LoopDetected) or "log" (only record loop.detected).',
  identicalCalls:
    "Pass { maxCalls, windowSeconds } (or true for the defaults), or leave it out to keep the rule off.",
  "identicalCalls.maxCalls":
    "Use a whole number from 1 to 1000 (default 2): the most identical calls allowed in the window.",
  "identicalCalls.windowSeconds":
    "Use a whole number of seconds from 1 to 3600, or leave it out to use the policy's windowSeconds.",
  oscillation:
    "Pass { minRepetitions, maxPeriod } (or true for the defaults), or leave it out to keep the rule off.",
  "oscillation.minRepetitions": "Use a whole number from 2 to 10 (default 3).",
  "oscillation.maxPeriod":
    "Use a whole number from 2 to 5 (default 2): the longest cycle of tools looked for.",
  sessionIdleMs:
    "Use a whole number of milliseconds from 60000 to 604800000 (default 86400000, one day) after which an idle session is forgotten.",
  sweepIntervalMs:
    "Use a whole number of milliseconds from 1000 to 86400000 (default 60000) between sweeps of idle sessions.",
  sessionIdleSeconds:
    "Use a whole number of seconds from 60 to 604800 (default 86400, one day) after which an idle session is forgotten.",
  sweepIntervalSeconds:
    "Use a whole number of seconds from 1 to 86400 (default 60) between sweeps of idle sessions.",
  maxSessions:
    "Use a whole number from 1 to 10000000 (default 100000): the most sessions tracked at once; beyond it the least recently used is forgotten.",
};

/**
 * A value as a policy error shows it: a short string quoted (policies hold no secrets, and
 * `"60"` for a number says what is wrong), anything else as core's `describeValue`.
 */
function shownValue(value: unknown): string {
  return typeof value === "string" && value.length <= 40
    ? JSON.stringify(value)
    : describeValue(value);
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** The first zod issue as an {@link InvalidLoopPolicyError} naming the field, the limit and the fix. */
export function policyError(
  error: z.ZodError,
  input: unknown,
  context = "loop policy",
  known: readonly string[] = [],
): InvalidLoopPolicyError {
  const issue = error.issues[0];
  if (!issue) return new InvalidLoopPolicyError(context, "is invalid.", "Check the policy.");
  const field = issue.path.map(String).join(".") || context;
  const value = valueAt(input, issue.path);
  const fix = FIXES[field] ?? `Check ${field}.`;
  switch (issue.code) {
    case "too_small":
      return issue.origin === "string"
        ? new InvalidLoopPolicyError(field, "must not be empty.", fix, Number(issue.minimum))
        : new InvalidLoopPolicyError(
            field,
            `is ${shownValue(value)}; the minimum is ${issue.minimum}.`,
            fix,
            Number(issue.minimum),
          );
    case "too_big":
      return issue.origin === "string"
        ? new InvalidLoopPolicyError(
            field,
            `is ${String(value).length} characters long; the limit is ${issue.maximum}.`,
            fix,
            Number(issue.maximum),
          )
        : new InvalidLoopPolicyError(
            field,
            `is ${shownValue(value)}; the maximum is ${issue.maximum}.`,
            fix,
            Number(issue.maximum),
          );
    case "invalid_type":
      return new InvalidLoopPolicyError(
        field,
        value === undefined
          ? "is required."
          : `must be ${issue.expected === "int" ? "a whole number" : `a ${issue.expected}`}, got ${shownValue(value)}.`,
        fix,
      );
    case "invalid_value":
      return new InvalidLoopPolicyError(
        field,
        `must be one of ${issue.values.map((option) => JSON.stringify(option)).join(", ")}, got ${shownValue(value)}.`,
        fix,
      );
    case "unrecognized_keys": {
      const where = issue.path.length > 0 ? field : context;
      return new InvalidLoopPolicyError(
        where,
        `has unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys
          .map((key) => {
            const suggestion = issue.path.length === 0 ? suggestKey(key, known) : undefined;
            return suggestion === undefined
              ? JSON.stringify(key)
              : `${JSON.stringify(key)} (did you mean \`${suggestion}\`?)`;
          })
          .join(", ")}.`,
        `Remove ${issue.keys.length > 1 ? "them" : "it"} (check the spelling against the documented fields).`,
      );
    }
    case "custom":
      return new InvalidLoopPolicyError(field, issue.message, fix);
    default:
      return new InvalidLoopPolicyError(field, `is invalid (${issue.message}).`, fix);
  }
}

/** `true` means "on, with the defaults"; `false`, `null` and absence mean off. */
function toggle(value: unknown): unknown {
  if (value === true) return {};
  if (value === false || value === undefined) return null;
  return value;
}

/**
 * How much repetition one agent is allowed before it is in a loop. Validated when built,
 * immutable afterwards.
 *
 * The reference's rule: more than `maxCalls` calls of the same tool (case-insensitive) in
 * the same session within `windowSeconds` is a loop; `action` says whether the call is
 * refused (`"raise"`, with `LoopDetected`) or only recorded (`"log"`). Two rules beyond the
 * reference are off unless asked for: `identicalCalls` (same tool *and* same arguments) and
 * `oscillation` (A→B→A→B).
 *
 * @example
 * ```ts
 * sdk.loop.register(new LoopPolicy({ agentId: "my-agent", windowSeconds: 60, maxCalls: 5, action: "raise" }));
 * ```
 * @throws {InvalidLoopPolicyError} naming the field, the limit and the fix; nothing is built.
 */
export class LoopPolicy {
  /** The agent the policy applies to. */
  readonly agentId: string;
  /** The sliding window in seconds. @default 60 */
  readonly windowSeconds: number;
  /** The most calls of one tool allowed in the window per session. @default 5 */
  readonly maxCalls: number;
  /** What happens on detection. @default "raise" */
  readonly action: "raise" | "log";
  /** The identical-call rule, or null when it is off. @default null */
  readonly identicalCalls: IdenticalCallsRule | null;
  /** The oscillation rule, or null when it is off. @default null */
  readonly oscillation: OscillationRule | null;

  constructor(input: LoopPolicyInput) {
    if (input === null || typeof input !== "object" || Array.isArray(input)) {
      throw new InvalidLoopPolicyError(
        "loop policy",
        `must be an object, got ${shownValue(input)}.`,
        'Pass { agentId: "my-agent", windowSeconds: 60, maxCalls: 5, action: "raise" }.',
      );
    }
    const candidate = {
      ...input,
      identicalCalls: toggle(input.identicalCalls),
      oscillation: toggle(input.oscillation),
    };
    const parsed = loopPolicySchema.safeParse(candidate);
    if (!parsed.success)
      throw policyError(
        parsed.error,
        candidate,
        "loop policy",
        Object.keys(loopPolicySchema.shape),
      );
    const policy = parsed.data;
    this.agentId = policy.agentId;
    this.windowSeconds = policy.windowSeconds;
    this.maxCalls = policy.maxCalls;
    this.action = policy.action;
    this.identicalCalls = policy.identicalCalls
      ? Object.freeze({
          maxCalls: policy.identicalCalls.maxCalls,
          windowSeconds: policy.identicalCalls.windowSeconds ?? policy.windowSeconds,
        })
      : null;
    this.oscillation = policy.oscillation ? Object.freeze({ ...policy.oscillation }) : null;
    Object.freeze(this);
  }

  /** A plain copy of the policy, e.g. for logs or the console. */
  toJSON(): {
    agentId: string;
    windowSeconds: number;
    maxCalls: number;
    action: "raise" | "log";
    identicalCalls: IdenticalCallsRule | null;
    oscillation: OscillationRule | null;
  } {
    return {
      agentId: this.agentId,
      windowSeconds: this.windowSeconds,
      maxCalls: this.maxCalls,
      action: this.action,
      identicalCalls: this.identicalCalls ? { ...this.identicalCalls } : null,
      oscillation: this.oscillation ? { ...this.oscillation } : null,
    };
  }
}

/** The schema of {@link LoopOptions}. */
export const loopOptionsSchema = z
  .strictObject({
    sessionIdleMs: wholeNumber(LOOP_LIMITS.sessionIdleMs).optional(),
    sweepIntervalMs: wholeNumber(LOOP_LIMITS.sweepIntervalMs).optional(),
    sessionIdleSeconds: wholeNumber(LOOP_LIMITS.sessionIdleSeconds).optional(),
    sweepIntervalSeconds: wholeNumber(LOOP_LIMITS.sweepIntervalSeconds).optional(),
    maxSessions: wholeNumber(LOOP_LIMITS.maxSessions).default(LOOP_DEFAULTS.maxSessions),
  })
  .superRefine((options, context) => {
    for (const [current, old] of [
      ["sessionIdleMs", "sessionIdleSeconds"],
      ["sweepIntervalMs", "sweepIntervalSeconds"],
    ] as const) {
      if (options[current] !== undefined && options[old] !== undefined) {
        context.addIssue({
          code: "custom",
          path: [old],
          message: `cannot be given with ${current} (it is its deprecated form, in seconds).`,
        });
      }
    }
  })
  .transform(({ sessionIdleSeconds, sweepIntervalSeconds, ...options }) => ({
    sessionIdleMs:
      options.sessionIdleMs ??
      (sessionIdleSeconds === undefined ? LOOP_DEFAULTS.sessionIdleMs : sessionIdleSeconds * 1_000),
    sweepIntervalMs:
      options.sweepIntervalMs ??
      (sweepIntervalSeconds === undefined
        ? LOOP_DEFAULTS.sweepIntervalMs
        : sweepIntervalSeconds * 1_000),
    maxSessions: options.maxSessions,
  }));

/** Options of the loop module. */
export interface LoopOptions {
  /**
   * A session with no recorded call for this long is forgotten (its counters are dropped),
   * 60000–604800000 ms. @default 86400000 (one day, as in the reference)
   */
  sessionIdleMs?: number;
  /**
   * How often idle sessions (and calls that left their window) are swept, 1000–86400000 ms.
   * Sweeps run on `recordCall` once this much time has passed on the module's clock, and on
   * an unref'd timer from `start()`. @default 60000
   */
  sweepIntervalMs?: number;
  /**
   * @deprecated use `sessionIdleMs` (milliseconds): `sessionIdleSeconds: 600` is
   * `sessionIdleMs: 600_000`. 60–604800 seconds.
   */
  sessionIdleSeconds?: number;
  /**
   * @deprecated use `sweepIntervalMs` (milliseconds): `sweepIntervalSeconds: 60` is
   * `sweepIntervalMs: 60_000`. 1–86400 seconds.
   */
  sweepIntervalSeconds?: number;
  /**
   * The most sessions tracked at once (all agents together), 1–10000000. A new session
   * beyond it evicts the least recently used one (its counters are forgotten, so a loop in
   * it is seen afresh); the first eviction is logged as a warning, and `metrics()` counts
   * them. It bounds memory when session ids are many and short-lived (e.g. one per
   * request). @default 100000
   */
  maxSessions?: number;
}

/** Validated {@link LoopOptions}. */
export type ResolvedLoopOptions = z.output<typeof loopOptionsSchema>;

/** The fixes of the module's options, by option. */
const OPTION_FIXES: Record<string, string> = Object.fromEntries(
  (
    [
      "sessionIdleMs",
      "sweepIntervalMs",
      "sessionIdleSeconds",
      "sweepIntervalSeconds",
      "maxSessions",
    ] as const
  ).map((option) => [option, FIXES[option] as string]),
);

/**
 * Validate the module's options with core's `parseOptions` (a non-object refused, unknown
 * options refused with a "did you mean", every issue listed), reported as an
 * {@link InvalidLoopPolicyError} (core's error is its cause).
 * @throws {InvalidLoopPolicyError} naming the option (`options.maxSessions`), the limit and the fix.
 */
export function parseLoopOptions(options: LoopOptions | undefined): ResolvedLoopOptions {
  return parseOptions(loopOptionsSchema, options ?? undefined, {
    errorClass: InvalidLoopPolicyError,
    fixes: {
      "": "Pass { sessionIdleMs, sweepIntervalMs, maxSessions } or nothing.",
      ...OPTION_FIXES,
    },
  });
}

/** The schema of `recordCall`'s options (`RecordCallOptions`), read on its failure path. */
const recordCallOptionsSchema = z.strictObject({ args: z.unknown().optional() });

const RECORD_CALL_FIXES: Readonly<Record<string, string>> = {
  "": "Pass { args } or leave it out.",
  args: 'Pass the call\'s arguments as JSON values, e.g. { args: { query: "weather" } }.',
};

/**
 * The `args` of `recordCall`'s options — the hot path: a plain object whose only own key is
 * `args` (or none) is read directly; anything else (an unknown key, an array, a class
 * instance, a getter or proxy that throws) goes to core's `parseOptions`, which refuses it
 * with its error (a "did you mean" for a misspelt key).
 *
 * @throws {InvalidArgumentError} naming the option (`options.argz`).
 */
export function readCallArgs(options: unknown): unknown {
  try {
    if (typeof options === "object" && options !== null) {
      const prototype = Object.getPrototypeOf(options);
      if (prototype === Object.prototype || prototype === null) {
        const keys = Object.keys(options);
        if (keys.length === 0 || (keys.length === 1 && keys[0] === "args")) {
          return (options as { args?: unknown }).args;
        }
      }
    }
  } catch {
    // A getter or proxy trap that throws: parseOptions reports it ("could not be read").
  }
  return parseOptions(recordCallOptionsSchema, options, { fixes: RECORD_CALL_FIXES }).args;
}
