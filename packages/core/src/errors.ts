const GOVERNANCE_ERROR_MARKER = Symbol.for("@gov/core.GovernanceError");
const AGENT_HALTED_ERROR_MARKER = Symbol.for("@gov/core.AgentHaltedError");

/**
 * The stable error codes of `@gov/core`. Modules add their own tables; a code never
 * changes meaning once released.
 */
export const CORE_ERROR_CODES = {
  /** An option or environment variable has a bad value. */
  CONFIG_INVALID: "CONFIG_INVALID",
  /** The audit secret (or a historical key) is too short or too weak. */
  SECRET_INVALID: "SECRET_INVALID",
  /** A real Postgres was configured without an audit secret. */
  SECRET_REQUIRED: "SECRET_REQUIRED",
  /** The key file beside the embedded database could not be read or written. */
  SECRET_FILE: "SECRET_FILE",
  /** A key was looked up by a fingerprint that is not in the keyring. */
  KEY_NOT_FOUND: "KEY_NOT_FOUND",
  /** The database could not be reached, or the connection was lost. */
  STORE_CONNECTION: "STORE_CONNECTION",
  /** A unique constraint was violated (SQLSTATE 23505). */
  STORE_UNIQUE_VIOLATION: "STORE_UNIQUE_VIOLATION",
  /** A serializable transaction could not be serialized (SQLSTATE 40001). */
  STORE_SERIALIZATION_FAILURE: "STORE_SERIALIZATION_FAILURE",
  /** A deadlock was detected and this transaction was chosen to abort (SQLSTATE 40P01). */
  STORE_DEADLOCK: "STORE_DEADLOCK",
  /** A statement or lock wait took longer than allowed (SQLSTATE 57014, 55P03). */
  STORE_TIMEOUT: "STORE_TIMEOUT",
  /** Any other error reported by the database. */
  STORE_QUERY_FAILED: "STORE_QUERY_FAILED",
  /** The store was used after `close()`. */
  STORE_CLOSED: "STORE_CLOSED",
  /** Another process holds the embedded database directory. */
  STORE_LOCKED: "STORE_LOCKED",
  /** The database refused the credentials, or the database does not exist (SQLSTATE 28xxx, 3D000). */
  STORE_ACCESS_DENIED: "STORE_ACCESS_DENIED",
  /** The database holds a migration this version of the code does not know. */
  MIGRATION_UNKNOWN: "MIGRATION_UNKNOWN",
  /** An applied migration differs from the file shipped with the code. */
  MIGRATION_CHECKSUM_MISMATCH: "MIGRATION_CHECKSUM_MISMATCH",
  /** The database's migration history has a gap or is out of order. */
  MIGRATION_HISTORY_INVALID: "MIGRATION_HISTORY_INVALID",
  /** A migrations folder is missing or malformed. */
  MIGRATION_SOURCE_INVALID: "MIGRATION_SOURCE_INVALID",
  /** A migration statement failed; the module's migrations were rolled back. */
  MIGRATION_FAILED: "MIGRATION_FAILED",
  /** A module of the SDK was accessed although its enable flag is off. */
  MODULE_DISABLED: "MODULE_DISABLED",
  /** An argument passed to a core API is invalid. */
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  /** A spool file given for an explicit import does not prove, or is not accepted as it is. */
  SPOOL_FILE_REFUSED: "SPOOL_FILE_REFUSED",
} as const;

/** One of {@link CORE_ERROR_CODES}, or a module's own code. */
export type CoreErrorCode = (typeof CORE_ERROR_CODES)[keyof typeof CORE_ERROR_CODES];

/** Options shared by every {@link GovernanceError}. */
export interface GovernanceErrorOptions {
  /** Stable UPPER_SNAKE code, e.g. `BUDGET_EXCEEDED`. */
  code: string;
  /** What happened, with the value and the limit where there is one. */
  message: string;
  /** What to do next: which option, variable or call fixes it. */
  recoveryHint: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The base of every error the governance packages raise on purpose.
 *
 * Identify it with {@link GovernanceError.isInstance} rather than `instanceof`: two
 * copies of `@gov/core` in one install (a common result of mismatched versions) each have
 * their own class, but share the `Symbol.for` marker.
 *
 * {@link AgentHaltedError} is deliberately *not* a `GovernanceError`, so that a broad
 * `catch` for governance errors never swallows an operator's halt.
 *
 * @example
 * ```ts
 * try {
 *   await sdk.scope.check("billing-agent", { tool: "delete_user" });
 * } catch (error) {
 *   if (GovernanceError.isInstance(error)) console.error(error.code, error.recoveryHint);
 *   throw error;
 * }
 * ```
 */
export class GovernanceError extends Error {
  /** Stable UPPER_SNAKE code; switch on this, never on the message. */
  readonly code: string;
  /** What to do next. */
  readonly recoveryHint: string;

  constructor(options: GovernanceErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, GOVERNANCE_ERROR_MARKER, { value: true });
    this.name = "GovernanceError";
    this.code = options.code;
    this.recoveryHint = options.recoveryHint;
  }

  /** True for any `GovernanceError`, from any copy of `@gov/core`. */
  static isInstance(error: unknown): error is GovernanceError {
    return (
      typeof error === "object" &&
      error !== null &&
      (error as Record<symbol, unknown>)[GOVERNANCE_ERROR_MARKER] === true
    );
  }

  /** A plain object for structured logs; never contains the cause's secrets. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      recoveryHint: this.recoveryHint,
    };
  }
}

/** One problem found while reading the configuration. */
export interface ConfigIssue {
  /** Where the value came from. */
  source: "option" | "env";
  /** The option path (`pool.size`) or the environment variable (`GOVERNANCE_DB_POOL_SIZE`). */
  name: string;
  /** What is wrong with the value. Never contains a secret's value. */
  problem: string;
  /** How to fix it. */
  fix: string;
}

/**
 * The configuration could not be read: one or more options or environment variables have
 * bad values. Nothing was opened or changed.
 */
export class ConfigError extends GovernanceError {
  /** Every problem found, not only the first. */
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map((issue) => {
      const where =
        issue.source === "env" ? `environment variable ${issue.name}` : `option ${issue.name}`;
      return `${where}: ${issue.problem} Fix: ${issue.fix}`;
    });
    super({
      code: CORE_ERROR_CODES.CONFIG_INVALID,
      message:
        issues.length === 1
          ? `Invalid configuration: ${lines[0]}`
          : `Invalid configuration (${issues.length} problems):\n  - ${lines.join("\n  - ")}`,
      recoveryHint: issues[0]?.fix ?? "Correct the configuration.",
    });
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** An argument passed to a governance API is invalid; nothing was changed. */
export class InvalidArgumentError extends GovernanceError {
  /** The argument or field at fault, e.g. `channel` or `metadata.note`. */
  readonly field: string;

  constructor(field: string, problem: string, fix: string) {
    super({
      code: CORE_ERROR_CODES.INVALID_ARGUMENT,
      message: `Invalid ${field}: ${problem}`,
      recoveryHint: fix,
    });
    this.name = "InvalidArgumentError";
    this.field = field;
  }
}

/** What a value is, for an error message: `null`, `an array`, or its `typeof`. */
function kindOfValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

/**
 * Refuse an options argument that is not a plain object (or, with `optional`, undefined):
 * a number, a string, an array or a class instance passed where options belong would
 * otherwise be read as "no options" and the defaults used silently.
 *
 * @example
 * ```ts
 * requireOptionsObject(options, "options", "Pass { databaseUrl } or nothing.", { optional: true });
 * ```
 * @throws {InvalidArgumentError} naming `field`.
 */
export function requireOptionsObject(
  value: unknown,
  field: string,
  fix: string,
  options: { optional?: boolean } = {},
): asserts value is object {
  if (value === undefined && options.optional) return;
  const prototype =
    typeof value === "object" && value !== null ? Object.getPrototypeOf(value) : undefined;
  if (prototype !== Object.prototype && prototype !== null) {
    throw new InvalidArgumentError(
      field,
      `must be a plain object, got ${kindOfValue(value)}.`,
      fix,
    );
  }
}

/** Details an operator recorded when halting an agent. */
export interface AgentHaltedDetails {
  /** The halted agent. */
  agentId: string;
  /** The operator who halted it, if known. */
  haltedBy?: string | null;
  /** When it was halted. */
  haltedAt?: Date | null;
  /** Why it was halted. */
  reason?: string | null;
  /** The enforcement path that refused the call, e.g. `scope.check`. */
  path?: string;
}

/**
 * An operator has halted this agent; the call was refused.
 *
 * Deliberately **not** a {@link GovernanceError} (as in the reference, where it is a
 * `RuntimeError`): code that catches governance errors to recover from a denied tool or a
 * spent budget must not swallow a halt by accident. Identify it with
 * {@link AgentHaltedError.isInstance}.
 *
 * @example
 * ```ts
 * try {
 *   await sdk.presence.assertAlive("billing-agent");
 * } catch (error) {
 *   if (AgentHaltedError.isInstance(error)) {
 *     await flushPartialResults();
 *   }
 *   throw error;
 * }
 * ```
 */
export class AgentHaltedError extends Error {
  /** Always `AGENT_HALTED`. */
  readonly code = "AGENT_HALTED" as const;
  readonly agentId: string;
  readonly haltedBy: string | null;
  readonly haltedAt: Date | null;
  readonly reason: string | null;
  /** The enforcement path that refused the call, e.g. `scope.check`. */
  readonly path: string | null;
  /** What to do next. */
  readonly recoveryHint: string;

  constructor(details: AgentHaltedDetails) {
    const by = details.haltedBy ? ` by ${details.haltedBy}` : "";
    const at = details.haltedAt ? ` at ${details.haltedAt.toISOString()}` : "";
    const why = details.reason ? `: ${details.reason}` : "";
    const where = details.path ? ` (refused in ${details.path})` : "";
    super(`Agent "${details.agentId}" was halted${by}${at}${why}${where}.`);
    Object.defineProperty(this, AGENT_HALTED_ERROR_MARKER, { value: true });
    this.name = "AgentHaltedError";
    this.agentId = details.agentId;
    this.haltedBy = details.haltedBy ?? null;
    this.haltedAt = details.haltedAt ?? null;
    this.reason = details.reason ?? null;
    this.path = details.path ?? null;
    this.recoveryHint =
      "Stop this agent's work. An operator resumes it with presence.resume(agentId, { resumedBy, reason }) once the cause is dealt with.";
  }

  /** True for any `AgentHaltedError`, from any copy of `@gov/core`. */
  static isInstance(error: unknown): error is AgentHaltedError {
    return (
      typeof error === "object" &&
      error !== null &&
      (error as Record<symbol, unknown>)[AGENT_HALTED_ERROR_MARKER] === true
    );
  }
}
