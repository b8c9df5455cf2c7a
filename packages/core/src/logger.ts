import { z } from "zod";

/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured fields attached to a log line. Never put secrets here. */
export type LogFields = Record<string, unknown>;

/**
 * The logging port. Every package logs through it, so a host can route governance logs
 * into pino, winston or OpenTelemetry with a four-method adapter.
 *
 * @example
 * ```ts
 * import pino from "pino";
 * const log = pino();
 * const logger: Logger = {
 *   debug: (message, fields) => log.debug(fields, message),
 *   info: (message, fields) => log.info(fields, message),
 *   warn: (message, fields) => log.warn(fields, message),
 *   error: (message, fields) => log.error(fields, message),
 * };
 * ```
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function formatFields(fields: LogFields | undefined): string {
  if (!fields || Object.keys(fields).length === 0) return "";
  try {
    return ` ${JSON.stringify(fields, (_key, value) =>
      value instanceof Error
        ? { name: value.name, message: value.message }
        : typeof value === "bigint"
          ? String(value)
          : value,
    )}`;
  } catch {
    return " [unserializable fields]";
  }
}

/**
 * A logger that writes one line per message to stderr, prefixed with `[@gov]`.
 *
 * @param level The lowest level written. @default "info"
 */
export function createConsoleLogger(level: LogLevel = "info"): Logger {
  const threshold = LEVEL_ORDER[level];
  const write = (lineLevel: LogLevel) => (message: string, fields?: LogFields) => {
    if (LEVEL_ORDER[lineLevel] < threshold) return;
    const tag = lineLevel === "info" ? "" : ` ${lineLevel}`;
    process.stderr.write(`[@gov]${tag} ${message}${formatFields(fields)}\n`);
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** A logger that discards everything; for tests and hosts that want silence. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

const LOGGER_METHODS = ["debug", "info", "warn", "error"] as const;

/**
 * The zod form of a {@link Logger} option: an object with `debug`, `info`, `warn` and
 * `error` methods (read with `parseOptions`, the fix is kept).
 *
 * @example
 * ```ts
 * const optionsSchema = z.object({ logger: loggerSchema.optional() });
 * ```
 */
export const loggerSchema = z.custom<Logger>(
  (value) =>
    typeof value === "object" &&
    value !== null &&
    LOGGER_METHODS.every(
      (method) => typeof (value as Record<string, unknown>)[method] === "function",
    ),
  {
    error: "must be a Logger: an object with debug, info, warn and error methods.",
    params: {
      fix: "Pass a Logger (createConsoleLogger(), silentLogger, or a four-method adapter), or leave it out.",
    },
  },
);
