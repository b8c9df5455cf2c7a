import { typeOf } from "./describe";

/**
 * Error identities: each error class names itself once, in a static `errorIdentity` field
 * (`"@gov/<package>.<ClassName>"`); every instance carries a `Symbol.for(identity)` marker for
 * its class and for each ancestor that declares one. `X.isInstance(value)` looks for X's own
 * marker, so it works across two installed copies of a package (the registry of `Symbol.for`
 * is global) and tells apart same-named classes of different packages (`@gov/cost.BudgetExceeded`
 * is not `@gov/steward.BudgetExceeded`).
 */
const IDENTITY_FIELD = "errorIdentity";

/** What an error identity looks like: `@scope/package.ClassName`. */
export const ERROR_IDENTITY_PATTERN =
  /^@[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*\.[A-Z][A-Za-z0-9]*$/;

// biome-ignore lint/complexity/noBannedTypes: any class, abstract or not, is a key here
const ownMarkers = new WeakMap<Function, symbol | null>();
// biome-ignore lint/complexity/noBannedTypes: any class, abstract or not, is a key here
const chainMarkers = new WeakMap<Function, readonly symbol[]>();

/**
 * The identity a class declares itself (its own static `errorIdentity`), never one it
 * inherits; undefined when it declares none.
 */
// biome-ignore lint/complexity/noBannedTypes: any class
export function ownErrorIdentity(errorClass: Function): string | undefined {
  if (!Object.hasOwn(errorClass, IDENTITY_FIELD)) return undefined;
  const identity = (errorClass as unknown as Record<string, unknown>)[IDENTITY_FIELD];
  return typeof identity === "string" ? identity : undefined;
}

// biome-ignore lint/complexity/noBannedTypes: any class
function ownMarker(errorClass: Function): symbol | null {
  let marker = ownMarkers.get(errorClass);
  if (marker === undefined) {
    const identity = ownErrorIdentity(errorClass);
    marker = identity === undefined ? null : Symbol.for(identity);
    ownMarkers.set(errorClass, marker);
  }
  return marker;
}

/** The markers of `errorClass` and of every ancestor that declares an identity. */
// biome-ignore lint/complexity/noBannedTypes: any class
function markersOf(errorClass: Function): readonly symbol[] {
  let markers = chainMarkers.get(errorClass);
  if (markers === undefined) {
    const found: symbol[] = [];
    // biome-ignore lint/complexity/noBannedTypes: walking a chain of classes
    for (let current: Function | null = errorClass; current && current !== Function.prototype; ) {
      const marker = ownMarker(current);
      if (marker) found.push(marker);
      // biome-ignore lint/complexity/noBannedTypes: walking a chain of classes
      current = Object.getPrototypeOf(current) as Function | null;
    }
    markers = Object.freeze(found);
    chainMarkers.set(errorClass, markers);
  }
  return markers;
}

/**
 * Give `instance` the markers of its class chain: non-enumerable (never logged or serialized),
 * read-only and non-configurable, so that code handed an error cannot `delete` or overwrite
 * its identity (a halt must never stop looking like one to a later `catch`).
 */
// biome-ignore lint/complexity/noBannedTypes: any class
function markInstance(instance: object, errorClass: Function): void {
  for (const marker of markersOf(errorClass)) {
    Object.defineProperty(instance, marker, { value: true, configurable: false });
  }
}

/**
 * Whether `value` carries the marker of `identity`, e.g. `"@gov/core.StoreError"`: true for an
 * instance of that class or of a subclass, from any installed copy of its package.
 *
 * @example
 * ```ts
 * hasErrorIdentity(error, "@gov/cost.BudgetExceeded"); // what BudgetExceeded.isInstance(error) checks
 * ```
 */
export function hasErrorIdentity(value: unknown, identity: string): boolean {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    (value as Record<symbol, unknown>)[Symbol.for(identity)] === true
  );
}

/**
 * `X.isInstance(value)` for any error class `X`: by X's own identity marker, or — for a class
 * that declares no identity of its own (a private subclass, or a forgotten declaration, which
 * `assertErrorClasses` of `@gov/core/testing` reports) — by `instanceof`, so that it never
 * answers with its parent's identity.
 */
// biome-ignore lint/complexity/noBannedTypes: any class
function isInstanceOf(errorClass: Function, value: unknown): boolean {
  const marker = ownMarker(errorClass);
  if (marker === null) return value instanceof errorClass;
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    (value as Record<symbol, unknown>)[marker] === true
  );
}

/** @internal For `assertErrorClasses`: mark an object as an instance of `errorClass` would be. */
// biome-ignore lint/complexity/noBannedTypes: any class
export function markAsInstanceOf(instance: object, errorClass: Function): void {
  markInstance(instance, errorClass);
}

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
 * Identify an error with `X.isInstance(error)` rather than `instanceof`: two copies of a
 * package in one install (a common result of mismatched versions) each have their own class,
 * but share the `Symbol.for` marker of the class's {@link GovernanceError.errorIdentity}.
 * `X.isInstance` is implemented once, here: it is true for an X or a subclass of X, and false
 * for any other class — `ChainIntegrityError.isInstance(new ConfigError(…))` is false.
 *
 * A subclass declares its identity in one line, `@gov/<package>.<ClassName>`, and does not
 * override `isInstance`:
 *
 * ```ts
 * export class ScopeViolation extends GovernanceError {
 *   static override readonly errorIdentity = "@gov/scope.ScopeViolation";
 *   …
 * }
 * ```
 *
 * A class that other classes extend annotates the type, `errorIdentity: string = "…"`, so
 * that its subclasses can declare theirs (TypeScript would otherwise fix it to the literal).
 *
 * A subclass that declares none is recognized as its parent (it is one), and its own
 * `isInstance` falls back to `instanceof` (this copy of the package only) rather than
 * answering with its parent's identity; `assertErrorClasses` from `@gov/core/testing`
 * reports every exported class that forgot.
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
  /**
   * The class's identity, `@gov/<package>.<ClassName>`: declared by every error class itself
   * (`static override readonly errorIdentity = "…"`), never inherited. Instances carry the
   * `Symbol.for` marker of each identity in their class chain.
   */
  static readonly errorIdentity: string = "@gov/core.GovernanceError";

  /** Stable UPPER_SNAKE code; switch on this, never on the message. */
  readonly code: string;
  /** What to do next. */
  readonly recoveryHint: string;

  constructor(options: GovernanceErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    markInstance(this, new.target);
    this.name = "GovernanceError";
    this.code = options.code;
    this.recoveryHint = options.recoveryHint;
  }

  /**
   * True for an instance of this class or of a subclass, from any installed copy of its
   * package; false for every other value, including errors of sibling classes.
   *
   * @example
   * ```ts
   * GovernanceError.isInstance(error); // any governance error
   * StoreError.isInstance(error);      // a StoreError only (error is typed as one)
   * ```
   */
  static isInstance<T>(this: abstract new (...args: never[]) => T, value: unknown): value is T {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class it is called on, a subclass too
    return isInstanceOf(this, value);
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
  static override readonly errorIdentity: string = "@gov/core.ConfigError";

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

/** One problem with an input: the field at fault, what is wrong, the limit if any, the fix. */
export interface InputIssue {
  /** The argument or field, e.g. `options.maxBatchSize` or `agentId`. */
  field: string;
  /** What is wrong, as the end of a sentence that starts with the field: `is 300 characters long; the limit is 256.` */
  problem: string;
  /** How to fix it. */
  fix: string;
  /** The limit that was exceeded (or not reached), when the problem is a limit. */
  limit?: number;
}

/** More about an {@link InvalidArgumentError}. */
export interface InvalidArgumentDetails {
  /** The limit that was exceeded (or not reached), when the problem is a limit. */
  limit?: number;
  /**
   * Every problem found, the first being the one the error names; each after the first is
   * also listed in the message.
   */
  issues?: readonly InputIssue[];
  /** The underlying error, if any (e.g. what a getter threw). */
  cause?: unknown;
}

/**
 * An argument passed to a governance API is invalid; nothing was changed.
 *
 * @example
 * ```ts
 * throw new InvalidArgumentError(
 *   "options.maxBatchSize",
 *   "is 0; the minimum is 1.",
 *   "Use an integer from 1 to 10000 (default 500).",
 *   { limit: 1 },
 * );
 * ```
 */
export class InvalidArgumentError extends GovernanceError {
  static override readonly errorIdentity: string = "@gov/core.InvalidArgumentError";

  /** The argument or field at fault, e.g. `channel` or `metadata.note`. */
  readonly field: string;
  /** The limit that was exceeded (or not reached), when the problem is a limit. */
  readonly limit: number | undefined;
  /** Every problem found: the one named by `field` first. */
  readonly issues: readonly InputIssue[];

  constructor(field: string, problem: string, fix: string, details: InvalidArgumentDetails = {}) {
    const others = (details.issues ?? []).slice(1);
    super({
      code: CORE_ERROR_CODES.INVALID_ARGUMENT,
      message:
        others.length === 0
          ? `Invalid ${field}: ${problem}`
          : `Invalid ${field}: ${problem}\n${others.map((issue) => `  - also ${issue.field}: ${issue.problem}`).join("\n")}`,
      recoveryHint: fix,
      cause: details.cause,
    });
    this.name = "InvalidArgumentError";
    this.field = field;
    this.limit = details.limit;
    this.issues = details.issues ?? [
      { field, problem, fix, ...(details.limit === undefined ? {} : { limit: details.limit }) },
    ];
  }
}

/**
 * The base of a module's own bad-input class (`InvalidGatesInputError`,
 * `InvalidLoopPolicyError`, …): an {@link InvalidArgumentError} constructed the way every
 * module's is — field, problem, fix, then the limit and the details — named after its
 * identity, with {@link ModuleInputError.from} to re-report core's refusals. A subclass
 * declares its identity and its code, and nothing else it does not need:
 *
 * @example
 * ```ts
 * export class InvalidGatesInputError extends ModuleInputError {
 *   static override readonly errorIdentity = "@gov/gates.InvalidGatesInputError";
 *   override readonly code: string = GATES_ERROR_CODES.GATES_INPUT_INVALID;
 * }
 * ```
 */
export abstract class ModuleInputError extends InvalidArgumentError {
  static override readonly errorIdentity: string = "@gov/core.ModuleInputError";

  constructor(
    field: string,
    problem: string,
    fix: string,
    limit?: number,
    details: { issues?: readonly InputIssue[]; cause?: unknown } = {},
  ) {
    super(field, problem, fix, { ...(limit === undefined ? {} : { limit }), ...details });
    const identity = (new.target as unknown as { errorIdentity: string }).errorIdentity;
    this.name = identity.slice(identity.lastIndexOf(".") + 1);
  }

  /**
   * Core's refusal as this class reports it: the same field, problem, fix, limit and issues,
   * core's error as its cause ({@link reportInvalidAs}).
   */
  static from<E extends InvalidArgumentError>(
    this: InvalidArgumentErrorClass<E>,
    error: InvalidArgumentError,
  ): E {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the subclass it is called on
    return reportInvalidAs(this, error);
  }
}

/**
 * A module's own class for bad input: a subclass of {@link InvalidArgumentError} with the
 * module's code (`GATES_INPUT_INVALID`, `LOOP_POLICY_INVALID`, …), constructed the way every
 * module's is — field, problem, fix, then the limit and the details.
 */
export interface InvalidArgumentErrorClass<E extends InvalidArgumentError = InvalidArgumentError> {
  new (
    field: string,
    problem: string,
    fix: string,
    limit?: number,
    details?: { issues?: readonly InputIssue[]; cause?: unknown },
  ): E;
  isInstance(value: unknown): boolean;
}

/**
 * Core's refusal of an input, as a module reports it: the same field, problem, fix, limit and
 * issues in the module's own error class, with core's error as its `cause`. An error that is
 * already of that class is returned as it is.
 *
 * @example
 * ```ts
 * try {
 *   checkId(agentId, "agentId");
 * } catch (error) {
 *   if (InvalidArgumentError.isInstance(error)) throw reportInvalidAs(InvalidGatesInputError, error);
 *   throw error;
 * }
 * ```
 */
export function reportInvalidAs<E extends InvalidArgumentError>(
  errorClass: InvalidArgumentErrorClass<E>,
  error: InvalidArgumentError,
): E {
  if (errorClass.isInstance(error)) return error as E;
  // Read defensively: anything can carry the marker, and the module's error must come out.
  const issues = Array.isArray(error.issues) ? error.issues : undefined;
  const first = issues?.[0];
  const message = typeof error.message === "string" ? error.message : "";
  return new errorClass(
    typeof error.field === "string" ? error.field : "options",
    first?.problem ?? (message.replace(/^Invalid [^:]+: /, "") || "is invalid."),
    typeof error.recoveryHint === "string" ? error.recoveryHint : "Correct the input.",
    typeof error.limit === "number" ? error.limit : undefined,
    { ...(issues === undefined ? {} : { issues }), cause: error },
  );
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
    throw new InvalidArgumentError(field, `must be a plain object, got ${typeOf(value)}.`, fix);
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
  /** This class's identity (see {@link GovernanceError.errorIdentity}). */
  static readonly errorIdentity: string = "@gov/core.AgentHaltedError";

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
    markInstance(this, new.target);
    this.name = "AgentHaltedError";
    this.agentId = details.agentId;
    this.haltedBy = details.haltedBy ?? null;
    this.haltedAt = details.haltedAt ?? null;
    this.reason = details.reason ?? null;
    this.path = details.path ?? null;
    this.recoveryHint =
      "Stop this agent's work. An operator resumes it with presence.resume(agentId, { resumedBy, reason }) once the cause is dealt with.";
  }

  /**
   * True for any `AgentHaltedError`, from any copy of `@gov/core` (the same identity
   * mechanism as {@link GovernanceError.isInstance}).
   */
  static isInstance<T>(this: abstract new (...args: never[]) => T, value: unknown): value is T {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class it is called on, a subclass too
    return isInstanceOf(this, value);
  }
}
