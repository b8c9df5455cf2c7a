/**
 * How values and errors read in messages and logs: short, on one line, and never a secret.
 */
import { redactConnectionStrings } from "./database-url";
import { sanitizeName } from "./text";

/**
 * What kind of value `value` is, for an error message ("must be a string, got …"): `null`,
 * `undefined`, `an array`, `a Date`, or its `typeof` (`string`, `number`, `object`, …). It
 * never shows the value itself, which may be a secret.
 *
 * @example
 * ```ts
 * throw new InvalidArgumentError("agentId", `must be a string, got ${typeOf(agentId)}.`, fix);
 * typeOf([]); // "an array"
 * typeOf(null); // "null"
 * ```
 */
export function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a Date";
  return typeof value;
}

/**
 * A value as an error message may show it: numbers, booleans, `null` and `undefined` as
 * they are (`0`, `-1.5`, `true`); a string only by its length (`a string of 12 characters`:
 * strings may be secrets, or may hold line breaks and controls); anything else by
 * {@link typeOf}.
 *
 * @example
 * ```ts
 * `must be an integer from 1 to 100, got ${describeValue(options.maxSessions)}.`
 * ```
 */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value);
  if (typeof value === "string")
    return value.length === 0 ? "an empty string" : `a string of ${value.length} characters`;
  return typeOf(value);
}

/** Options of {@link describeError}. */
export interface DescribeErrorOptions {
  /** Longest description, in characters; longer ones end in `…`. @default 2000 */
  maxLength?: number;
}

const LINE_BREAKS = /\s*[\r\n\u2028\u2029]+\s*/g;

/** drizzle's wrapper of a failed statement names the statement and lists its parameters. */
function isStatementWrapper(error: Error): boolean {
  return error.message.startsWith("Failed query:");
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * A one-line description of an error for a log line or a warning: `Name: message`, with
 * connection strings' credentials redacted, line breaks folded to spaces, control and
 * bidirectional-override characters replaced by U+FFFD, and at most `maxLength` characters.
 * A failed statement wrapped by drizzle (whose message lists the statement's parameters,
 * which may be secrets) is described by the driver's error it wraps, never by its own
 * message. The stack and the cause chain are left out.
 *
 * Never throws, whatever it is given (a getter that throws, a `Symbol`, an object without
 * a prototype).
 *
 * @example
 * ```ts
 * logger.warn(`The audit write failed; spooled instead: ${describeError(error)}`);
 * // "The audit write failed; spooled instead: StoreError: Could not reach the database (ECONNREFUSED)."
 * ```
 */
export function describeError(error: unknown, options: DescribeErrorOptions = {}): string {
  const maxLength = options.maxLength ?? 2_000;
  let text: string;
  try {
    if (error instanceof Error) {
      if (isStatementWrapper(error)) {
        text =
          error.cause !== undefined && error.cause !== error
            ? describeError(error.cause, { maxLength: Number.MAX_SAFE_INTEGER })
            : `${safeString(error.name)}: a statement failed (its text and parameters are not shown)`;
      } else {
        text = `${safeString(error.name)}: ${safeString(error.message)}`;
      }
    } else {
      text = safeString(error);
    }
  } catch {
    text = "an error that cannot be described";
  }
  const line = sanitizeName(redactConnectionStrings(text).replace(LINE_BREAKS, " "));
  return line.length <= maxLength ? line : `${line.slice(0, Math.max(0, maxLength - 1))}…`;
}
