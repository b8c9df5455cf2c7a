import { describeError, GovernanceError, ModuleInputError } from "@gov/core";

/**
 * The stable error codes of `@gov/presence`. A halted agent is refused with core's
 * `AgentHaltedError` (code `AGENT_HALTED`), which is deliberately not a `GovernanceError`.
 */
export const PRESENCE_ERROR_CODES = {
  /** An argument or option failed validation; nothing was changed. */
  PRESENCE_INPUT_INVALID: "PRESENCE_INPUT_INVALID",
  /** `closeAgent()` was refused because the agent is halted. */
  PRESENCE_CLOSE_REFUSED: "PRESENCE_CLOSE_REFUSED",
  /**
   * A halt or resume could not be written to the database (the halt state is unchanged), or
   * was written but the stored row does not hold it (`HaltNotPersistedError.failure`).
   */
  HALT_NOT_PERSISTED: "HALT_NOT_PERSISTED",
  /** The halt state was never loaded and cannot be read now: enforcement fails closed. */
  HALT_STATE_UNAVAILABLE: "HALT_STATE_UNAVAILABLE",
} as const;

/** One of {@link PRESENCE_ERROR_CODES}. */
export type PresenceErrorCode = (typeof PRESENCE_ERROR_CODES)[keyof typeof PRESENCE_ERROR_CODES];

/**
 * An argument or option was refused before anything was read or written: the field at
 * fault, the limit where one was exceeded, and the fix. It is a core `InvalidArgumentError`
 * (`InvalidArgumentError.isInstance(error)` is true, as for every module's bad input) with
 * the code of `@gov/presence`, `PRESENCE_INPUT_INVALID`; every problem found is in `issues`.
 *
 * @example
 * ```ts
 * try {
 *   await presence.halt("", { haltedBy: "alice", reason: "runaway" });
 * } catch (error) {
 *   if (InvalidPresenceInputError.isInstance(error)) console.error(error.field, error.recoveryHint);
 * }
 * ```
 */
export class InvalidPresenceInputError extends ModuleInputError {
  static override readonly errorIdentity = "@gov/presence.InvalidPresenceInputError";

  /** Always `PRESENCE_INPUT_INVALID`. */
  override readonly code: string = PRESENCE_ERROR_CODES.PRESENCE_INPUT_INVALID;
}

/**
 * `closeAgent()` refused to remove a halted agent: removing its row would remove the halt,
 * and a restarted agent would run again. Resume it first.
 */
export class CloseHaltedAgentError extends GovernanceError {
  static override readonly errorIdentity = "@gov/presence.CloseHaltedAgentError";

  readonly agentId: string;

  constructor(agentId: string) {
    super({
      code: PRESENCE_ERROR_CODES.PRESENCE_CLOSE_REFUSED,
      message: `Agent "${agentId}" is halted and was not closed: closing it would lift the halt.`,
      recoveryHint: `Resume it first with presence.resume("${agentId}", { resumedBy, reason }), or leave it halted.`,
    });
    this.name = "CloseHaltedAgentError";
    this.agentId = agentId;
  }
}

/**
 * Why a halt or resume did not take (see {@link HaltNotPersistedError.failure}):
 *
 * - `write_failed` — the write failed (the database refused it or could not be reached).
 *   Nothing changed: the agent is in the state it was in before the call.
 * - `not_stored` — the write committed, but reading the row back did not find the signed
 *   state it wrote (a trigger, a rule or another writer on `gov_presence.agents` changed or
 *   discarded it), or the row could not be read back to check. A halt is then enforced in
 *   this process (fail closed) but possibly in no other; a resume is not applied here either.
 */
export type HaltNotPersistedFailure = "write_failed" | "not_stored";

/**
 * A halt (or resume) did not take: it could not be written to the database
 * (`failure: "write_failed"`, nothing changed), or it was written but the stored row does not
 * hold it (`failure: "not_stored"`: a halt is enforced in this process only, a resume is not
 * applied). Loud on purpose — an operator must know that a halt did not take.
 *
 * @example
 * ```ts
 * try {
 *   await presence.halt("billing-agent", { haltedBy: "alice", reason: "refund loop" });
 * } catch (error) {
 *   if (error instanceof HaltNotPersistedError) pageOnCall(error.message, error.recoveryHint);
 *   throw error;
 * }
 * ```
 */
export class HaltNotPersistedError extends GovernanceError {
  static override readonly errorIdentity = "@gov/presence.HaltNotPersistedError";

  readonly agentId: string;
  /** `halt` or `resume`. */
  readonly operation: "halt" | "resume";
  /** Whether the write failed, or committed without the stored row holding it. */
  readonly failure: HaltNotPersistedFailure;

  /**
   * @param cause the write's error (`write_failed`), or an `Error` saying what the stored row
   *   holds instead, or why it could not be read back (`not_stored`).
   * @param failure @default "write_failed"
   */
  constructor(
    agentId: string,
    operation: "halt" | "resume",
    cause: unknown,
    failure: HaltNotPersistedFailure = "write_failed",
  ) {
    const written = failure === "not_stored";
    super({
      code: PRESENCE_ERROR_CODES.HALT_NOT_PERSISTED,
      message: written
        ? `The ${operation} of agent "${agentId}" was written, but ${describeCause(cause)}. ${
            operation === "halt"
              ? "This process enforces the halt; other processes may not."
              : "The agent stays halted in this process."
          }`
        : `The ${operation} of agent "${agentId}" could not be written to the database (${describeError(cause)}); the agent's halt state is unchanged.`,
      recoveryHint: written
        ? operation === "halt"
          ? "Stop the agent by other means now. Then find out who can change gov_presence.agents — look for triggers and rules on it (\\d+ gov_presence.agents in psql) — remove them, and call halt() again."
          : "Find out who can change gov_presence.agents — look for triggers and rules on it (\\d+ gov_presence.agents in psql) — remove them, and call resume() again."
        : operation === "halt"
          ? "The agent is NOT halted. Restore the database connection and call halt() again, or stop the agent by other means."
          : "The agent is still halted. Restore the database connection and call resume() again.",
      cause,
    });
    this.name = "HaltNotPersistedError";
    this.agentId = agentId;
    this.operation = operation;
    this.failure = failure;
  }
}

/**
 * The halt state was never loaded from the database and cannot be read now, so an
 * enforcement check refused the call rather than let a possibly halted agent through.
 */
export class HaltStateUnavailableError extends GovernanceError {
  static override readonly errorIdentity = "@gov/presence.HaltStateUnavailableError";

  readonly agentId: string;
  /** The enforcement path that refused the call. */
  readonly path: string;

  constructor(agentId: string, path: string, cause: unknown) {
    super({
      code: PRESENCE_ERROR_CODES.HALT_STATE_UNAVAILABLE,
      message: `Whether agent "${agentId}" is halted is unknown: the halt state was never loaded and the database cannot be reached (${describeError(cause)}). The call was refused in ${path}.`,
      recoveryHint:
        "Restore the database connection; enforcement resumes as soon as the halt state has been read once.",
      cause,
    });
    this.name = "HaltStateUnavailableError";
    this.agentId = agentId;
    this.path = path;
  }
}

/** What a `not_stored` cause says: its message alone (it is written by this package). */
function describeCause(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
