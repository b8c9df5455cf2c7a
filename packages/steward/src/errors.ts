import {
  AgentHaltedError,
  GovernanceError,
  type InputIssue,
  type InvalidArgumentError,
} from "@gov/core";

/** The stable error codes of `@gov/steward`. A code never changes meaning once released. */
export const STEWARD_ERROR_CODES = {
  /** A blueprint (or the steward's options) was refused: bad field, bad CEL, bad inheritance. */
  POLICY_INVALID: "POLICY_INVALID",
  /** A guarded call was denied (BLOCK or ESCALATE without `onReview`) and no `onDeny` was given. */
  TRIPWIRE_VIOLATION: "TRIPWIRE_VIOLATION",
  /** A tier-1 scorer blew its latency budget and its fallback is `raise`. */
  LATENCY_BUDGET_EXCEEDED: "LATENCY_BUDGET_EXCEEDED",
  /** A blueprint id was not found in a registry. */
  BLUEPRINT_NOT_FOUND: "BLUEPRINT_NOT_FOUND",
  /**
   * A CEL evaluation (a tripwire's condition, a check's rule, a guard condition) ran past its
   * step limit and was refused unfinished. `evaluate` and `guard` never throw it: they count
   * the tripwire as fired (at least BLOCK).
   */
  EVALUATION_LIMIT_EXCEEDED: "EVALUATION_LIMIT_EXCEEDED",
  /**
   * A blueprint in the Postgres registry failed its signature check (edited in the table,
   * written before signatures, or signed under a key this process does not hold).
   */
  BLUEPRINT_SIGNATURE_INVALID: "BLUEPRINT_SIGNATURE_INVALID",
  /** The steward module was used before `start()` (or after a `start()` that failed). */
  STEWARD_NOT_STARTED: "STEWARD_NOT_STARTED",
} as const;

/** One of {@link STEWARD_ERROR_CODES}. */
export type StewardErrorCode = (typeof STEWARD_ERROR_CODES)[keyof typeof STEWARD_ERROR_CODES];

/**
 * The family of every error `@gov/steward` raises on purpose (except a HALT, which is core's
 * {@link AgentHaltedError}, deliberately outside the family).
 */
export class StewardError extends GovernanceError {
  /** `StewardError.isInstance(error)` is true for any steward error, from any copy of `@gov/steward`. */
  static override readonly errorIdentity: string = "@gov/steward.StewardError";
}

/**
 * A blueprint was refused: `path` names the field (`tripwires[3].condition`), `problem` says
 * what is wrong, `issues` lists every problem found (the one named by `path` first). Nothing
 * was loaded.
 *
 * @example
 * ```ts
 * try { loadBlueprint(yamlText); } catch (error) {
 *   if (PolicyError.isInstance(error)) console.error(error.path, error.problem);
 * }
 * ```
 */
export class PolicyError extends StewardError {
  static override readonly errorIdentity = "@gov/steward.PolicyError";

  /** The field at fault, e.g. `tripwires[3].condition`; empty for the document itself. */
  readonly path: string;
  /** What is wrong with it. */
  readonly problem: string;
  /** The blueprint, when known. */
  readonly blueprintId: string | null;
  /**
   * Every problem found, the one named by `path` first; each `field` is a path like `path`
   * (`auditTimeoutMs`, not `options.auditTimeoutMs`).
   */
  readonly issues: readonly InputIssue[];

  constructor(
    path: string,
    problem: string,
    fix: string,
    blueprintId: string | null = null,
    subject = "blueprint",
    cause?: unknown,
    issues?: readonly InputIssue[],
  ) {
    const where = blueprintId ? `${subject} "${blueprintId}"` : subject;
    const others = (issues ?? []).slice(1);
    super({
      code: STEWARD_ERROR_CODES.POLICY_INVALID,
      message: `Invalid ${where}${path ? ` at ${path}` : ""}: ${problem}${others
        .map((issue) => `\n  - also ${issue.field || "the document"}: ${issue.problem}`)
        .join("")}`,
      recoveryHint: fix,
      ...(cause === undefined ? {} : { cause }),
    });
    this.name = "PolicyError";
    this.path = path;
    this.problem = problem;
    this.blueprintId = blueprintId;
    this.issues = issues ?? [{ field: path, problem, fix }];
  }

  /**
   * Core's refusal of an options object (`parseOptions`), as a policy error of `subject`
   * (`steward options`): the same problem, fix and issues — every one of them — their fields
   * relative to the options (`options.auditTimeoutMs` becomes `auditTimeoutMs`), core's error as
   * the `cause`.
   */
  static fromInputError(error: InvalidArgumentError, subject: string): PolicyError {
    const relative = (field: string) => field.replace(/^options\.?/, "");
    const issues = error.issues.map((issue) => ({ ...issue, field: relative(issue.field) }));
    const first = issues[0];
    return new PolicyError(
      relative(error.field),
      first?.problem ?? error.message,
      error.recoveryHint,
      null,
      subject,
      error,
      issues,
    );
  }
}

/** A blueprint id is not in the registry. */
export class BlueprintNotFound extends StewardError {
  static override readonly errorIdentity = "@gov/steward.BlueprintNotFound";

  readonly blueprintId: string;

  constructor(blueprintId: string, where: string) {
    super({
      code: STEWARD_ERROR_CODES.BLUEPRINT_NOT_FOUND,
      message: `Blueprint "${blueprintId}" was not found in ${where}.`,
      recoveryHint:
        "Check the id (name@version), or publish the blueprint to the registry before using it.",
    });
    this.name = "BlueprintNotFound";
    this.blueprintId = blueprintId;
  }
}

/**
 * A blueprint in the Postgres registry was refused: its row has no signature (written before
 * signatures), is signed by a key this process does not hold, or does not match its signature
 * or its content hash (edited in the table). Nothing was loaded from it; the refusal is also
 * logged and written to the audit chain (`steward.blueprint_rejected`).
 */
export class BlueprintSignatureInvalid extends StewardError {
  static override readonly errorIdentity = "@gov/steward.BlueprintSignatureInvalid";

  readonly blueprintId: string;
  /** `unsigned`, `unknown_key`, `bad_signature`, `hash_mismatch` or `invalid_blueprint`. */
  readonly reason: string;

  constructor(blueprintId: string, reason: string, problem: string, fix: string) {
    super({
      code: STEWARD_ERROR_CODES.BLUEPRINT_SIGNATURE_INVALID,
      message: `Blueprint "${blueprintId}" in the registry was refused (${reason}): ${problem}.`,
      recoveryHint: fix,
    });
    this.name = "BlueprintSignatureInvalid";
    this.blueprintId = blueprintId;
    this.reason = reason;
  }
}

/**
 * A guarded call was denied by the steward and the guard had no `onDeny`: the function was
 * not called. `result` is the full intervention.
 */
export class TripwireViolation extends StewardError {
  static override readonly errorIdentity = "@gov/steward.TripwireViolation";

  /** The intervention that denied the call (BLOCK, or ESCALATE without `onReview`). */
  readonly intervention: string;
  /** Ids of the tripwires that fired. */
  readonly tripwires: readonly string[];
  /** The evaluation's trace id. */
  readonly traceId: string;

  constructor(details: {
    intervention: string;
    message: string;
    tripwires: readonly string[];
    traceId: string;
    action: string;
  }) {
    super({
      code: STEWARD_ERROR_CODES.TRIPWIRE_VIOLATION,
      message: `Action "${details.action}" was denied (${details.intervention}): ${details.message}`,
      recoveryHint:
        details.intervention === "ESCALATE"
          ? "A human must review this action: pass onReview to guard() to route it, or change the arguments."
          : "Change the arguments so that every tripwire's allowed condition holds, or pass onDeny to guard() to handle denials.",
    });
    this.name = "TripwireViolation";
    this.intervention = details.intervention;
    this.tripwires = Object.freeze([...details.tripwires]);
    this.traceId = details.traceId;
  }
}

/**
 * A tier-1 scorer took longer than its `latencyBudgetMs` and its check's `fallback` is
 * `raise`. (With the default `deny` fallback the evaluation returns BLOCK instead.)
 */
export class BudgetExceeded extends StewardError {
  static override readonly errorIdentity = "@gov/steward.BudgetExceeded";

  /** The check whose scorer was too slow. */
  readonly checkId: string;
  /** Its budget, in milliseconds. */
  readonly latencyBudgetMs: number;

  constructor(checkId: string, latencyBudgetMs: number) {
    super({
      code: STEWARD_ERROR_CODES.LATENCY_BUDGET_EXCEEDED,
      message: `Check "${checkId}" did not answer within its latency budget of ${latencyBudgetMs} ms.`,
      recoveryHint:
        "Make the scorer faster, raise latencyBudgetMs on the check, or set its fallback to deny or allow.",
    });
    this.name = "BudgetExceeded";
    this.checkId = checkId;
    this.latencyBudgetMs = latencyBudgetMs;
  }
}

/**
 * A CEL evaluation ran past its step limit (or could not be bounded) and was refused
 * unfinished: an exhausted evaluation has no answer. Thrown by the functions that
 * `compileExpression` returns; the steward and `guard()` turn it into a fired tripwire.
 *
 * @example
 * ```ts
 * try { condition(variables); } catch (error) {
 *   if (EvaluationLimitExceeded.isInstance(error)) deny(error.message);
 * }
 * ```
 */
export class EvaluationLimitExceeded extends StewardError {
  static override readonly errorIdentity = "@gov/steward.EvaluationLimitExceeded";

  /** The step limit that was reached (0 when no bound could be installed). */
  readonly limit: number;

  constructor(limit: number, problem: string) {
    super({
      code: STEWARD_ERROR_CODES.EVALUATION_LIMIT_EXCEEDED,
      message: `A CEL evaluation was refused unfinished: ${problem}.`,
      recoveryHint:
        "Simplify the condition (fewer nested exists/all/map over large lists, fewer matches() over long text), or raise latencyBudgetMs on the tripwire (2,000 steps per millisecond).",
    });
    this.name = "EvaluationLimitExceeded";
    this.limit = limit;
  }
}

/**
 * A {@link StewardModule} was used before its `start()` finished (or after a `start()` that
 * failed): construct it with `stewardModule.create(context, options)` or
 * `StewardModule.create(context, options)`, or await `module.start()` first.
 */
export class StewardNotStartedError extends StewardError {
  static override readonly errorIdentity = "@gov/steward.StewardNotStartedError";

  constructor(what: string) {
    super({
      code: STEWARD_ERROR_CODES.STEWARD_NOT_STARTED,
      message: `The steward module is not started: ${what} needs its blueprints.`,
      recoveryHint:
        "Await module.start() before using it, or build it with StewardModule.create(context, options), which starts it.",
    });
    this.name = "StewardNotStartedError";
  }
}

/**
 * A HALT: core's `AgentHaltedError`, re-exported under the reference's name. Deliberately
 * not a `GovernanceError`, so that a broad `catch` of governance errors never swallows it.
 */
export const AgentHalted = AgentHaltedError;
/** A HALT raised by `guard()` (see {@link AgentHalted}). */
export type AgentHalted = AgentHaltedError;
