import { GovernanceError, type InvalidArgumentError, ModuleInputError } from "@gov/core";

/** The stable error codes of `@gov/loop`. A code never changes meaning once released. */
export const LOOP_ERROR_CODES = {
  /** An agent repeated itself beyond its {@link LoopPolicy}; the call was refused. */
  LOOP_DETECTED: "LOOP_DETECTED",
  /** A loop policy or the module's options failed validation; nothing was registered. */
  LOOP_POLICY_INVALID: "LOOP_POLICY_INVALID",
} as const;

/** One of {@link LOOP_ERROR_CODES}. */
export type LoopErrorCode = (typeof LOOP_ERROR_CODES)[keyof typeof LOOP_ERROR_CODES];

/**
 * Which kind of repetition tripped the detector.
 *
 * - `repeat`: the same tool (case-insensitive) more than `maxCalls` times in the window
 *   (the reference's rule);
 * - `identical`: the same tool with the same arguments more than `identicalCalls.maxCalls`
 *   times in its window (opt-in);
 * - `oscillation`: a short cycle of tools (A→B→A→B…) repeated `oscillation.minRepetitions`
 *   times in the window (opt-in).
 */
export type LoopPattern = "repeat" | "identical" | "oscillation";

/** What a detector saw when it tripped: the fields of the `loop.detected` audit event. */
export interface LoopDetection {
  agentId: string;
  sessionId: string;
  /** The tool of the call that tripped the detector, lower-cased. */
  tool: string;
  pattern: LoopPattern;
  /**
   * Calls the tripped rule counted in its window: same-tool calls (`repeat`), identical calls
   * (`identical`), or the calls of the repeating tail (`oscillation`: period × repetitions).
   * At most 4096 for one rule; `countCapped` says when it is that limit rather than the count.
   */
  count: number;
  /** True when more calls were made than the module tracks per rule (4096); `count` is a floor. */
  countCapped: boolean;
  /** The window of the tripped rule, in seconds. */
  windowSeconds: number;
  /**
   * The most calls the tripped rule allows in its window (`maxCalls`, or
   * `identicalCalls.maxCalls`); for `oscillation`, the policy's `maxCalls`, for context.
   */
  maxCalls: number;
  /** What the policy does on detection. */
  action: "raise" | "log";
  /** `identical` only: SHA-256 (hex) of the arguments' canonical JSON. */
  argsHash: string | null;
  /** `oscillation` only: the repeating cycle of tools, oldest first, e.g. `["search", "read"]`. */
  cycle: readonly string[] | null;
  /** `oscillation` only: how many times the cycle repeated in a row. */
  repetitions: number | null;
}

function describeRule(detection: LoopDetection): string {
  const where = `agent "${detection.agentId}" in session "${detection.sessionId}"`;
  const window = `${detection.windowSeconds} s`;
  switch (detection.pattern) {
    case "identical":
      return `${where} called tool "${detection.tool}" with the same arguments ${detection.count} times in ${window} (limit ${detection.maxCalls})`;
    case "oscillation":
      return `${where} alternated between tools ${(detection.cycle ?? []).map((tool) => `"${tool}"`).join(" → ")} ${detection.repetitions ?? 0} times in a row within ${window}`;
    default:
      return `${where} called tool "${detection.tool}" ${detection.count}${detection.countCapped ? "+" : ""} times in ${window} (limit ${detection.maxCalls})`;
  }
}

/**
 * An agent repeated itself beyond its loop policy (with `action: "raise"`): the call was
 * counted and refused. The `loop.detected` audit event has been handed to the audit sink.
 *
 * Identify it with {@link LoopDetected.isInstance} (or `error.code === "LOOP_DETECTED"`) rather
 * than `instanceof`, which fails across package copies.
 *
 * @example
 * ```ts
 * try {
 *   sdk.loop.recordCall("my-agent", sessionId, "search_web");
 * } catch (error) {
 *   if (LoopDetected.isInstance(error)) return escalateToHuman(error.detection);
 *   throw error;
 * }
 * ```
 */
export class LoopDetected extends GovernanceError {
  static override readonly errorIdentity = "@gov/loop.LoopDetected";

  readonly agentId: string;
  readonly sessionId: string;
  /** The tool of the call that tripped the detector, lower-cased. */
  readonly tool: string;
  readonly pattern: LoopPattern;
  /** Calls the tripped rule counted in its window (see {@link LoopDetection.count}). */
  readonly count: number;
  readonly windowSeconds: number;
  readonly maxCalls: number;
  /** Everything the detector saw, as written to the audit event. */
  readonly detection: Readonly<LoopDetection>;

  constructor(detection: LoopDetection) {
    super({
      code: LOOP_ERROR_CODES.LOOP_DETECTED,
      message: `Loop detected (${detection.pattern}): ${describeRule(detection)}.`,
      recoveryHint:
        detection.pattern === "oscillation"
          ? `Break the cycle: change the plan instead of alternating between these tools again (or escalate to a human). The cycle ends when the session calls something else; if this alternation is legitimate, raise oscillation.minRepetitions in the LoopPolicy of "${detection.agentId}", or set action "log" to only record it.`
          : `Break the loop: stop calling "${detection.tool}" in this session and change the plan (or escalate to a human). Calls leave the window ${detection.windowSeconds} s after they were made; if this rate is legitimate, raise ${detection.pattern === "identical" ? "identicalCalls.maxCalls" : "maxCalls"} or lower windowSeconds in the LoopPolicy of "${detection.agentId}", or set action "log" to only record it.`,
    });
    this.name = "LoopDetected";
    this.agentId = detection.agentId;
    this.sessionId = detection.sessionId;
    this.tool = detection.tool;
    this.pattern = detection.pattern;
    this.count = detection.count;
    this.windowSeconds = detection.windowSeconds;
    this.maxCalls = detection.maxCalls;
    this.detection = Object.freeze({ ...detection });
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ...this.detection };
  }
}

/**
 * A loop policy (or the module's options) was refused; nothing was registered or changed.
 * The message names the field, the value's problem and the limit; `recoveryHint` says how
 * to fix it. It is a core `InvalidArgumentError` (`InvalidArgumentError.isInstance(error)`
 * is true, as for every module's bad input) with the code of `@gov/loop`,
 * `LOOP_POLICY_INVALID`; every problem found is in `issues`.
 */
export class InvalidLoopPolicyError extends ModuleInputError {
  static override readonly errorIdentity = "@gov/loop.InvalidLoopPolicyError";

  /** Always `LOOP_POLICY_INVALID`. */
  override readonly code: string = LOOP_ERROR_CODES.LOOP_POLICY_INVALID;

  constructor(
    field: string,
    problem: string,
    fix: string,
    limit?: number,
    details: { issues?: InvalidArgumentError["issues"]; cause?: unknown } = {},
  ) {
    super(field, problem, fix, limit, details);
    // A policy's own refusal says what was refused; options (from core) keep core's message.
    if (details.issues === undefined) this.message = `Invalid loop policy: ${field} ${problem}`;
  }
}
