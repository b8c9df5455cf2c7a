import {
  canonicalJson,
  findBlankCharacter,
  hasControlCharacters,
  InvalidArgumentError,
} from "@gov/core";
import { z } from "zod";
import { InvalidPresenceInputError } from "./errors";

/** The limits every input of `@gov/presence` is held to. */
export const PRESENCE_LIMITS = {
  /** Characters of an agent id, an operator id, `haltedBy` and `resumedBy`. */
  id: 256,
  /** Characters of a halt or resume reason. */
  reason: 1_000,
  /** Characters of an enforcement path, e.g. `scope.check`. */
  path: 128,
  /** Bytes of a heartbeat's metadata, as JSON (the reference's 64 KB). */
  metadataBytes: 64 * 1024,
  /** Largest `timeoutSeconds` of `checkStale()` (30 days). */
  timeoutSeconds: 30 * 86_400,
} as const;

/** An agent's status, as the reference names them. */
export type AgentStatus = "Live" | "Idle" | "Unresponsive";

/** The status values, for comparisons without string literals. */
export const AGENT_STATUS = {
  Live: "Live",
  Idle: "Idle",
  Unresponsive: "Unresponsive",
} as const satisfies Record<AgentStatus, AgentStatus>;

/** Metadata of a heartbeat: a JSON object. */
export type PresenceMetadata = Record<string, unknown>;

interface IssueParams {
  fix: string;
  limit?: number;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

/**
 * A required string of 1 to `max` characters, well-formed, without control characters; with
 * `id`, also without invisible or blank characters other than the ASCII space
 * ({@link findBlankCharacter}), so that two ids that look the same are the same id.
 */
function boundedText(options: { max: number; fix: string; multiline?: boolean; id?: boolean }) {
  return z.unknown().transform((value, context): string => {
    const issue = (message: string, params: IssueParams) => {
      context.addIssue({ code: "custom", message, params });
      return z.NEVER;
    };
    if (typeof value !== "string")
      return issue(`must be a string, got ${kindOf(value)}.`, { fix: options.fix });
    if (value.trim().length === 0) return issue("must not be empty.", { fix: options.fix });
    if (value.length > options.max)
      return issue(`is ${value.length} characters long; the limit is ${options.max}.`, {
        fix: `Shorten it to at most ${options.max} characters.`,
        limit: options.max,
      });
    if (!(value as string & { isWellFormed(): boolean }).isWellFormed())
      return issue("is not well-formed Unicode (it holds half of a surrogate pair).", {
        fix: options.fix,
      });
    if (hasControlCharacters(value, { multiline: options.multiline }))
      return issue(
        options.multiline
          ? "contains control or bidirectional-override characters (only tab and line breaks are allowed)."
          : "contains control or bidirectional-override characters.",
        { fix: "Remove the control characters." },
      );
    if (options.id) {
      const blank = findBlankCharacter(value, { allowSpace: true });
      if (blank)
        return issue(
          `contains an invisible or blank character (${blank.codePoint} at index ${blank.index}), which would make two different ids look the same.`,
          {
            fix: "Remove it: ids may hold the ASCII space, but no other space (no-break, ideographic, Braille blank…) and no invisible character (soft hyphens, zero-width spaces and joiners, word joiners, variation selectors). Take the id from its source of record — the agent's configuration, the operator's authenticated session — not from copied text.",
          },
        );
    }
    return value;
  });
}

const AGENT_ID_FIX = 'Pass the agent\'s id as a non-empty string, e.g. "billing-agent".';
const agentIdSchema = boundedText({ max: PRESENCE_LIMITS.id, id: true, fix: AGENT_ID_FIX });
/** An agent id as rows written before ids were checked may hold it: blank characters allowed. */
const storedAgentIdSchema = boundedText({ max: PRESENCE_LIMITS.id, fix: AGENT_ID_FIX });
const operatorSchema = boundedText({
  max: PRESENCE_LIMITS.id,
  id: true,
  fix: 'Pass who acts as a non-empty string, e.g. "alice@company.com".',
});
const reasonSchema = boundedText({
  max: PRESENCE_LIMITS.reason,
  fix: "Say why in a sentence or two (at most 1000 characters).",
  multiline: true,
});
const pathSchema = boundedText({
  max: PRESENCE_LIMITS.path,
  fix: 'Name the enforcement path, e.g. { path: "scope.check" }.',
});

/** Heartbeat metadata: a plain JSON object of at most 64 KiB as JSON, returned normalized. */
const metadataSchema = z.unknown().transform((value, context): PresenceMetadata => {
  const fix = 'Pass metadata as a plain JSON object, e.g. { version: "1.2.0" }.';
  if (
    typeof value !== "object" ||
    value === null ||
    Array.isArray(value) ||
    (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null)
  ) {
    context.addIssue({
      code: "custom",
      message: `must be a plain object, got ${kindOf(value)}.`,
      params: { fix },
    });
    return z.NEVER;
  }
  let text: string;
  try {
    text = canonicalJson(value, "metadata");
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    context.addIssue({
      code: "custom",
      message: `${error.message.replace(/^Invalid [^:]+: /, "")} (at ${error.field})`,
      params: { fix },
    });
    return z.NEVER;
  }
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > PRESENCE_LIMITS.metadataBytes) {
    context.addIssue({
      code: "custom",
      message: `is ${bytes} bytes as JSON; the limit is ${PRESENCE_LIMITS.metadataBytes}.`,
      params: {
        fix: "Keep heartbeat metadata small (a version, a host name); store large content elsewhere and reference it.",
        limit: PRESENCE_LIMITS.metadataBytes,
      },
    });
    return z.NEVER;
  }
  return JSON.parse(text) as PresenceMetadata;
});

function integerIn(min: number, max: number, fix: string) {
  return z.unknown().transform((value, context): number => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      context.addIssue({
        code: "custom",
        message: `must be an integer from ${min} to ${max}, got ${typeof value === "number" ? String(value) : kindOf(value)}.`,
        params: {
          fix,
          limit: value !== null && typeof value === "number" && value > max ? max : undefined,
        },
      });
      return z.NEVER;
    }
    return value;
  });
}

function optional<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((value) => value ?? undefined);
}

/** Options of `heartbeat()`. */
export const heartbeatOptionsSchema = z.strictObject({
  metadata: optional(metadataSchema),
  operatorId: optional(operatorSchema),
});

/** Options of `halt()`. */
export const haltOptionsSchema = z.strictObject({
  haltedBy: operatorSchema,
  reason: reasonSchema,
});

/** Options of `resume()`. */
export const resumeOptionsSchema = z.strictObject({
  resumedBy: operatorSchema,
  reason: reasonSchema,
});

/** Options of `assertNotHalted()`. */
export const checkOptionsSchema = z.strictObject({ path: pathSchema });

/** Options of the presence module. */
export const presenceOptionsSchema = z
  .strictObject({
    haltCacheTtlMs: optional(
      integerIn(100, 3_600_000, "Pass haltCacheTtlMs in milliseconds, e.g. 5000."),
    ).transform((value) => value ?? 5_000),
    liveWithinSeconds: optional(
      integerIn(1, 86_400, "Pass liveWithinSeconds, e.g. 60 (two missed 30-second heartbeats)."),
    ).transform((value) => value ?? 60),
    unresponsiveAfterSeconds: optional(
      integerIn(1, PRESENCE_LIMITS.timeoutSeconds, "Pass unresponsiveAfterSeconds, e.g. 300."),
    ).transform((value) => value ?? 300),
  })
  .superRefine((options, context) => {
    if (options.unresponsiveAfterSeconds <= options.liveWithinSeconds) {
      context.addIssue({
        code: "custom",
        path: ["unresponsiveAfterSeconds"],
        message: `must be greater than liveWithinSeconds (${options.liveWithinSeconds}), got ${options.unresponsiveAfterSeconds}.`,
        params: { fix: "Raise unresponsiveAfterSeconds or lower liveWithinSeconds." },
      });
    }
  });

/** The presence module's options, as given. */
export interface PresenceOptions {
  /**
   * How often the halted-agent cache is reloaded from the database, whatever NOTIFY says:
   * the fallback when a notification is lost. @default 5000
   */
  haltCacheTtlMs?: number;
  /** A heartbeat at most this old makes an agent Live (unless marked idle). @default 60 */
  liveWithinSeconds?: number;
  /**
   * An agent whose last heartbeat is older than this is listed as Unresponsive (as
   * `checkStale()`'s default timeout). Between the two, it is Idle. @default 300
   */
  unresponsiveAfterSeconds?: number;
}

/** The options after validation, with their defaults. */
export type ResolvedPresenceOptions = z.output<typeof presenceOptionsSchema>;

const timeoutSchema = integerIn(
  1,
  PRESENCE_LIMITS.timeoutSeconds,
  "Pass timeoutSeconds as a whole number of seconds, e.g. 300.",
);

/**
 * Validate `value` against `schema`.
 * @throws {InvalidPresenceInputError} naming the field (`field` plus the path inside it),
 *   the limit and the fix.
 */
export function validate<T extends z.ZodType>(
  schema: T,
  value: unknown,
  field: string,
): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // A misspelled option explains the missing one it stands for: report it first.
  const issue =
    result.error.issues.find((candidate) => candidate.code === "unrecognized_keys") ??
    result.error.issues[0];
  const where = [field, ...(issue?.path ?? []).map(String)].join(".");
  if (issue?.code === "custom") {
    const params = (issue.params ?? {}) as Partial<IssueParams>;
    throw new InvalidPresenceInputError(
      where,
      issue.message,
      params.fix ?? "Check the argument against the documentation.",
      params.limit,
    );
  }
  if (issue?.code === "unrecognized_keys") {
    throw new InvalidPresenceInputError(
      field,
      `has unknown option(s) ${issue.keys.map((key) => `"${key}"`).join(", ")}.`,
      "Remove them; check the spelling against the documentation.",
    );
  }
  if (issue?.code === "invalid_type" && issue.path.length === 0) {
    throw new InvalidPresenceInputError(
      field,
      `must be an object, got ${kindOf(value)}.`,
      "Pass an options object, e.g. { … }.",
    );
  }
  throw new InvalidPresenceInputError(
    where,
    issue?.message ?? "is invalid.",
    "Check the argument against the documentation.",
  );
}

/**
 * An agent id as new input: 1–256 characters, well-formed, no control characters, and no
 * invisible or blank character but the ASCII space.
 * @throws {InvalidPresenceInputError}
 */
export function validateAgentId(value: unknown): string {
  return validate(agentIdSchema, value, "agentId");
}

/**
 * An agent id that names state which may have been written before ids were checked for
 * invisible and blank characters (`resume`, `closeAgent`): such characters are allowed, so
 * that such a halt can still be lifted and such a row removed; everything else is checked.
 * @throws {InvalidPresenceInputError}
 */
export function validateStoredAgentId(value: unknown): string {
  return validate(storedAgentIdSchema, value, "agentId");
}

/** @throws {InvalidPresenceInputError} */
export function validateTimeout(value: unknown): number {
  return validate(timeoutSchema, value, "timeoutSeconds");
}
