import { redactConnectionStrings } from "./database-url";
import { CORE_ERROR_CODES, GovernanceError } from "./errors";

/** The classes of database failure that callers act on differently. */
export type StoreErrorKind =
  | "connection"
  | "unique"
  | "serialization"
  | "deadlock"
  | "timeout"
  | "closed"
  | "locked"
  | "access"
  | "query";

const CODE_BY_KIND: Record<StoreErrorKind, string> = {
  connection: CORE_ERROR_CODES.STORE_CONNECTION,
  unique: CORE_ERROR_CODES.STORE_UNIQUE_VIOLATION,
  serialization: CORE_ERROR_CODES.STORE_SERIALIZATION_FAILURE,
  deadlock: CORE_ERROR_CODES.STORE_DEADLOCK,
  timeout: CORE_ERROR_CODES.STORE_TIMEOUT,
  closed: CORE_ERROR_CODES.STORE_CLOSED,
  locked: CORE_ERROR_CODES.STORE_LOCKED,
  access: CORE_ERROR_CODES.STORE_ACCESS_DENIED,
  query: CORE_ERROR_CODES.STORE_QUERY_FAILED,
};

const HINT_BY_KIND: Record<StoreErrorKind, string> = {
  connection:
    "Check that the database is running and reachable (GOVERNANCE_DATABASE_URL); the operation can be retried once it is.",
  unique: "The row already exists; read it instead of inserting it again.",
  serialization: "Retry the whole transaction; another transaction changed the same rows.",
  deadlock: "Retry the whole transaction; take locks in a consistent order to avoid the cycle.",
  timeout:
    "The statement or lock wait timed out; retry, or look for a long-running transaction holding the lock.",
  closed: "The store was closed; open a new one with createStore().",
  locked:
    "Another process has the embedded database open. Close it, or use a real Postgres (GOVERNANCE_DATABASE_URL=postgres://…) for several processes.",
  access:
    "Check the user, password and database name in GOVERNANCE_DATABASE_URL, and that the user may connect; retrying will not help.",
  query: "Inspect error.sqlState and error.cause; this is usually a bug or a schema mismatch.",
};

/** Details kept from the database's error report. */
export interface StoreErrorDetails {
  kind: StoreErrorKind;
  message: string;
  sqlState?: string | undefined;
  constraint?: string | undefined;
  table?: string | undefined;
  schema?: string | undefined;
  cause?: unknown;
}

/**
 * A database operation failed. Postgres and PGlite errors are classified once, here, by
 * SQLSTATE (`08xxx` connection, `23505` unique, `40001` serialization, `40P01` deadlock,
 * `57014`/`55P03` timeout) and by the driver's network errors.
 *
 * The message never contains a connection string.
 *
 * @example
 * ```ts
 * try {
 *   await store.transaction(work);
 * } catch (error) {
 *   if (StoreError.isInstance(error) && error.isRetryable) return retry();
 *   throw error;
 * }
 * ```
 */
export class StoreError extends GovernanceError {
  static override readonly errorIdentity: string = "@gov/core.StoreError";

  /** The class of failure. */
  readonly kind: StoreErrorKind;
  /** The five-character SQLSTATE, when the database reported one. */
  readonly sqlState: string | undefined;
  /** The violated constraint, for `unique`. */
  readonly constraint: string | undefined;
  readonly table: string | undefined;
  readonly schema: string | undefined;

  constructor(details: StoreErrorDetails) {
    super({
      code: CODE_BY_KIND[details.kind],
      message: redactConnectionStrings(details.message),
      recoveryHint: HINT_BY_KIND[details.kind],
      cause: details.cause,
    });
    this.name = "StoreError";
    this.kind = details.kind;
    this.sqlState = details.sqlState;
    this.constraint = details.constraint;
    this.table = details.table;
    this.schema = details.schema;
  }

  /**
   * True when retrying the same operation can succeed: a lost or refused connection, a
   * serialization failure, a deadlock, or a timeout.
   */
  get isRetryable(): boolean {
    return (
      this.kind === "connection" ||
      this.kind === "serialization" ||
      this.kind === "deadlock" ||
      this.kind === "timeout"
    );
  }
}

const NETWORK_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ECONNABORTED",
]);

const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /not queryable/i,
  /connection (?:is )?closed/i,
  /server closed the connection/i,
  /the database system is (?:starting up|shutting down)/i,
];

const CLOSED_MESSAGES = [/after calling end on the pool/i, /pool is (?:closed|ending)/i];

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  constraint?: unknown;
  table?: unknown;
  schema?: unknown;
  cause?: unknown;
}

function asErrorLike(value: unknown): ErrorLike | undefined {
  return typeof value === "object" && value !== null ? (value as ErrorLike) : undefined;
}

function isSqlState(code: unknown): code is string {
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code);
}

function kindForSqlState(sqlState: string): StoreErrorKind {
  if (sqlState.startsWith("08")) return "connection";
  if (sqlState === "57P01" || sqlState === "57P02" || sqlState === "57P03" || sqlState === "53300")
    return "connection";
  if (sqlState.startsWith("28") || sqlState === "3D000") return "access";
  if (sqlState === "23505") return "unique";
  if (sqlState === "40001") return "serialization";
  if (sqlState === "40P01") return "deadlock";
  if (sqlState === "57014" || sqlState === "55P03") return "timeout";
  return "query";
}

/**
 * Classify any error thrown by a database driver (pg, PGlite, drizzle's wrapper around
 * either) into a {@link StoreError}. A `StoreError` is returned unchanged; anything that is
 * not a database error (a bug in the caller's callback, a `GovernanceError` thrown on
 * purpose) is returned unchanged too, so that `throw toStoreError(error)` is always safe.
 *
 * @param error What was thrown.
 * @param target A description of the database for connection errors, e.g.
 *   `Postgres at db.internal:5432` (never the connection string).
 */
export function toStoreError(error: unknown, target = "the database"): unknown {
  if (GovernanceError.isInstance(error)) return error;
  // The chain of causes, outermost first. drizzle wraps the driver's error in one whose
  // message holds the query and its parameters: data, never to be copied into a message or
  // matched against patterns. Only the errors under it are read.
  const chain: ErrorLike[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth++) {
    if (StoreError.isInstance(current)) return current;
    const candidate = asErrorLike(current);
    if (!candidate) break;
    chain.push(candidate);
    current = candidate.cause;
  }
  const drivers = chain.filter((candidate) => !isQueryWrapper(candidate));
  // The cause kept on the error: the driver's own error, never drizzle's wrapper, whose
  // message and fields list the statement's parameters (MACs, payloads, personal data) for
  // any logger that prints causes.
  const wrapped = chain.some(isQueryWrapper);
  const cause = wrapped ? drivers[0] : error;
  const reported = drivers.find((candidate) => isSqlState(candidate.code));
  if (reported && isSqlState(reported.code)) {
    const kind = kindForSqlState(reported.code);
    const message =
      typeof reported.message === "string" ? reported.message : "the database reported an error";
    return new StoreError({
      kind,
      message:
        kind === "connection"
          ? `Lost or refused connection to ${target}: ${message} (SQLSTATE ${reported.code}).`
          : kind === "access"
            ? `${target} refused access: ${message} (SQLSTATE ${reported.code}).`
            : `${message} (SQLSTATE ${reported.code}).`,
      sqlState: reported.code,
      constraint: typeof reported.constraint === "string" ? reported.constraint : undefined,
      table: typeof reported.table === "string" ? reported.table : undefined,
      schema: typeof reported.schema === "string" ? reported.schema : undefined,
      cause,
    });
  }
  const network = drivers.find(
    (candidate) => typeof candidate.code === "string" && NETWORK_ERROR_CODES.has(candidate.code),
  );
  if (network) {
    return new StoreError({
      kind: "connection",
      message: `Could not reach ${target} (${String(network.code)}).`,
      cause,
    });
  }
  for (const candidate of drivers) {
    const message = typeof candidate.message === "string" ? candidate.message : "";
    if (CLOSED_MESSAGES.some((pattern) => pattern.test(message))) {
      return new StoreError({
        kind: "closed",
        message: `The store is closed: ${message}`,
        cause,
      });
    }
    if (CONNECTION_MESSAGES.some((pattern) => pattern.test(message))) {
      return new StoreError({
        kind: "connection",
        message: `Lost or refused connection to ${target}: ${message}`,
        cause,
      });
    }
  }
  if (wrapped) {
    // Unclassified, but still without the wrapper: the driver's error, or a plain one.
    return drivers[0] instanceof Error
      ? drivers[0]
      : new StoreError({ kind: "query", message: "A query failed (no driver error was given)." });
  }
  return error;
}

/** drizzle's `DrizzleQueryError`: carries the query and its parameters. */
function isQueryWrapper(candidate: ErrorLike): boolean {
  const record = candidate as ErrorLike & { query?: unknown; params?: unknown; name?: unknown };
  return (
    record.name === "DrizzleQueryError" ||
    ("query" in record && "params" in record) ||
    (typeof record.message === "string" && record.message.startsWith("Failed query:"))
  );
}
