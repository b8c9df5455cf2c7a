import {
  canonicalJson,
  findBlankCharacter,
  hasControlCharacters,
  InvalidArgumentError,
} from "@gov/core";
import { z } from "zod";
import { InvalidGatesInputError } from "./errors";

/** The limits every input of `@gov/gates` is held to. */
export const GATES_LIMITS = {
  /** Characters of an agent id and a reviewer id. */
  id: 256,
  /** Characters of a request kind, e.g. `deploy.production`. */
  kind: 128,
  /** Characters of a denial (or grant) reason. */
  reason: 1_000,
  /** Bytes of a payload in its canonical JSON form. */
  payloadBytes: 64 * 1024,
  /** Shortest `expiresIn`, in milliseconds (one second). */
  minExpiresInMs: 1_000,
  /** Longest `expiresIn`, in milliseconds (30 days). */
  maxExpiresInMs: 30 * 86_400_000,
  /** Longest `waitFor` timeout, in milliseconds (30 days). */
  maxTimeoutMs: 30 * 86_400_000,
  /** Characters of a token (a v2 token is about 200). */
  tokenLength: 512,
  /** Most rows `expirePending` handles per call. */
  maxBatch: 10_000,
  /** Most requests `listPending` returns per call (each may carry a 64 KiB payload). */
  maxListed: 500,
  /** Shortest and longest `auditTimeoutMs`, in milliseconds. */
  minAuditTimeoutMs: 10,
  maxAuditTimeoutMs: 600_000,
  /** Shortest and longest `staleClaimMs`, in milliseconds. */
  minStaleClaimMs: 1_000,
  maxStaleClaimMs: 86_400_000,
} as const;

/** One hour: how long a request stays open unless `expiresIn` says otherwise. */
export const DEFAULT_EXPIRES_IN_MS = 3_600_000;

/**
 * Until when legacy v1 tokens are accepted unless `acceptV1Until` says otherwise: the
 * reference's cut-off (90 days after the release that introduced v2).
 */
export const DEFAULT_ACCEPT_V1_UNTIL = new Date("2026-07-17T00:00:00.000Z");

/** The base interval of the polling fallback of `waitFor` (±20 % jitter is applied). */
export const DEFAULT_POLL_INTERVAL_MS = 500;

/** How long a decision waits for its audit event to be durable before giving up (5 s). */
export const DEFAULT_AUDIT_TIMEOUT_MS = 5_000;

/** How old a claim (`resolving`) must be, by the module's clock, to be presumed abandoned (60 s). */
export const DEFAULT_STALE_CLAIM_MS = 60_000;

/** The JSON a request's payload may be: anything with one canonical JSON form. */
export type ApprovalPayload = unknown;

interface IssueParams {
  fix: string;
  limit?: number;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a Date";
  return typeof value;
}

function fail(context: z.RefinementCtx, message: string, params: IssueParams): never {
  context.addIssue({ code: "custom", message, params });
  return z.NEVER;
}

/**
 * A required string of 1 to `max` characters, well-formed, without control characters; with
 * `id`, also without invisible or blank characters other than the ASCII space
 * ({@link findBlankCharacter}).
 */
function boundedText(options: { max: number; fix: string; multiline?: boolean; id?: boolean }) {
  return z.unknown().transform((value, context): string => {
    if (typeof value !== "string")
      return fail(context, `must be a string, got ${kindOf(value)}.`, { fix: options.fix });
    if (value.trim().length === 0) return fail(context, "must not be empty.", { fix: options.fix });
    if (value.length > options.max)
      return fail(context, `is ${value.length} characters long; the limit is ${options.max}.`, {
        fix: `Shorten it to at most ${options.max} characters.`,
        limit: options.max,
      });
    if (!(value as string & { isWellFormed(): boolean }).isWellFormed())
      return fail(context, "is not well-formed Unicode (it holds half of a surrogate pair).", {
        fix: options.fix,
      });
    if (hasControlCharacters(value, { multiline: options.multiline }))
      return fail(
        context,
        options.multiline
          ? "contains control or bidirectional-override characters (only tab and line breaks are allowed)."
          : "contains control or bidirectional-override characters.",
        { fix: "Remove the control characters." },
      );
    if (options.id) {
      const blank = findBlankCharacter(value, { allowSpace: true });
      if (blank)
        return fail(
          context,
          `contains an invisible or blank character (${blank.codePoint} at index ${blank.index}), which would make two different ids look the same.`,
          {
            fix: "Remove it: ids may hold the ASCII space, but no other space (no-break, ideographic, Braille blank…) and no invisible character (soft hyphens, zero-width spaces and joiners, word joiners, variation selectors). Take the id from its source of record — the reviewer's authenticated session, the agent's configuration — not from copied text.",
          },
        );
    }
    return value;
  });
}

function integerIn(min: number, max: number, fix: string) {
  return z.unknown().transform((value, context): number => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      return fail(
        context,
        `must be an integer from ${min} to ${max}, got ${typeof value === "number" ? String(value) : kindOf(value)}.`,
        { fix, limit: typeof value === "number" && value > max ? max : undefined },
      );
    }
    return value;
  });
}

function booleanValue(fix: string) {
  return z.unknown().transform((value, context): boolean => {
    if (typeof value !== "boolean")
      return fail(context, `must be true or false, got ${kindOf(value)}.`, { fix });
    return value;
  });
}

function optional<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((value) => value ?? undefined);
}

/** An agent id: 1–256 characters, no control, invisible or blank characters (the ASCII space aside). */
export const agentIdSchema = boundedText({
  max: GATES_LIMITS.id,
  id: true,
  fix: 'Pass the agent\'s id as a non-empty string, e.g. "deploy-agent".',
});

/** A reviewer id: 1–256 characters, no control, invisible or blank characters (the ASCII space aside). */
export const reviewerIdSchema = boundedText({
  max: GATES_LIMITS.id,
  id: true,
  fix: 'Pass who decides as a non-empty string, e.g. { reviewerId: "alice@company.com" }.',
});

/** A request kind: 1–128 characters, no control, invisible or blank characters (the ASCII space aside). */
export const kindSchema = boundedText({
  max: GATES_LIMITS.kind,
  id: true,
  fix: 'Name what is being approved, e.g. "deploy.production".',
});

const reasonSchema = boundedText({
  max: GATES_LIMITS.reason,
  fix: "Say why in a sentence or two (at most 1000 characters).",
  multiline: true,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A request id: the UUID that `request()` returned (lower-case). */
export const requestIdSchema = z.unknown().transform((value, context): string => {
  const fix = "Pass the requestId that request() returned (a lower-case UUID).";
  if (typeof value !== "string")
    return fail(context, `must be a string, got ${kindOf(value)}.`, { fix });
  if (!UUID.test(value)) return fail(context, "is not a lower-case UUID.", { fix });
  return value;
});

/** A payload and its canonical JSON form (at most 64 KiB). */
export interface CanonicalPayload {
  /** The payload as stored and hashed: its canonical JSON form, parsed back. */
  value: unknown;
  /** RFC 8785 form. */
  canonical: string;
}

/**
 * The first string (value or key) in `value` that Postgres `jsonb` cannot store: one with
 * U+0000, or one that is not well-formed UTF-16 (half of a surrogate pair). Paths are named
 * as in core's canonical JSON errors (`payload.steps[0].memo`; a bad key names its object).
 */
function unstorableString(
  value: unknown,
  path: string,
): { path: string; problem: string } | undefined {
  const check = (text: string, where: string) => {
    if (text.includes("\u0000")) return { path: where, problem: "contains U+0000 (NUL)" };
    if (!(text as string & { isWellFormed(): boolean }).isWellFormed())
      return {
        path: where,
        problem: "is not well-formed Unicode (it holds half of a surrogate pair)",
      };
    return undefined;
  };
  if (typeof value === "string") return check(value, path);
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = unstorableString(item, `${path}[${index}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof value === "object" && value !== null && !(value instanceof Date)) {
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue;
      const badKey = check(key, path);
      if (badKey) return { path, problem: `has a key that ${badKey.problem}` };
      const found = unstorableString(item, `${path}.${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

/** Any JSON value, canonicalized (RFC 8785) and held to {@link GATES_LIMITS.payloadBytes}. */
export const payloadSchema = z.unknown().transform((value, context): CanonicalPayload => {
  const fix =
    'Pass the action as JSON: plain objects, arrays, strings, finite numbers, booleans and null, e.g. { pr: 142, environment: "production" }.';
  if (value === undefined)
    return fail(context, "is undefined, which JSON cannot represent.", { fix });
  let canonical: string;
  try {
    canonical = canonicalJson(value, "payload");
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    return fail(context, `${error.message.replace(/^Invalid [^:]+: /, "")} (at ${error.field})`, {
      fix,
    });
  }
  const unstorable = unstorableString(value, "payload");
  if (unstorable)
    return fail(context, `${unstorable.problem} (at ${unstorable.path})`, {
      fix: "Remove U+0000 characters and half surrogate pairs from the payload's strings and keys (encode binary data, e.g. as base64).",
    });
  const bytes = Buffer.byteLength(canonical, "utf8");
  if (bytes > GATES_LIMITS.payloadBytes)
    return fail(context, `is ${bytes} bytes as JSON; the limit is ${GATES_LIMITS.payloadBytes}.`, {
      fix: "Approve a compact description of the action (ids, amounts, a digest of large content), not the content itself.",
      limit: GATES_LIMITS.payloadBytes,
    });
  return { value: JSON.parse(canonical) as unknown, canonical };
});

const expiresInSchema = integerIn(
  GATES_LIMITS.minExpiresInMs,
  GATES_LIMITS.maxExpiresInMs,
  "Pass expiresIn in milliseconds, from 1000 (one second) to 2592000000 (30 days), e.g. 3600000 for an hour.",
);

const timeoutSchema = integerIn(
  0,
  GATES_LIMITS.maxTimeoutMs,
  "Pass timeout in milliseconds, e.g. 600000 for ten minutes (0 checks once).",
);

/**
 * An ISO-8601 date (`YYYY-MM-DD`, read as UTC midnight), or a date and time with its zone
 * (`Z` or an offset): a time without a zone would be read in the host's local time, so the
 * same setting would name different instants on different hosts.
 */
const ISO_8601 =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/;

/** An instant as a Date or an ISO-8601 string, or null (never). */
const cutoffSchema = z.unknown().transform((value, context): Date | null => {
  const fix =
    'Pass a Date or an ISO-8601 string with its zone, e.g. "2026-07-17T00:00:00Z" (a bare date such as "2026-07-17" means UTC midnight), or null to refuse v1 tokens always.';
  if (value === null) return null;
  const date =
    value instanceof Date
      ? new Date(value.getTime())
      : typeof value === "string"
        ? new Date(value)
        : null;
  if (date === null)
    return fail(context, `must be a Date or an ISO-8601 string, got ${kindOf(value)}.`, { fix });
  if (typeof value === "string" && !ISO_8601.test(value))
    return fail(
      context,
      "is not an ISO-8601 date (YYYY-MM-DD) or date and time with a zone (Z or an offset such as +02:00).",
      { fix },
    );
  if (Number.isNaN(date.getTime())) return fail(context, "is not a valid date.", { fix });
  return date;
});

/** Options of `request()`. */
export const requestOptionsSchema = z.strictObject({
  payload: payloadSchema.optional(),
  expiresIn: optional(expiresInSchema),
});

/** Options of `grant()`. */
export const grantOptionsSchema = z.strictObject({
  reviewerId: reviewerIdSchema,
  reason: optional(reasonSchema),
  payload: payloadSchema.optional(),
});

/** Options of `deny()`. */
export const denyOptionsSchema = z.strictObject({
  reviewerId: reviewerIdSchema,
  reason: reasonSchema,
  payload: payloadSchema.optional(),
});

const signalSchema = z.unknown().transform((value, context): AbortSignal => {
  if (!(value instanceof AbortSignal))
    return fail(context, `must be an AbortSignal, got ${kindOf(value)}.`, {
      fix: "Pass an AbortController's signal, or leave it out.",
    });
  return value;
});

/** Options of `waitFor()`. */
export const waitForOptionsSchema = z.strictObject({
  timeout: optional(timeoutSchema),
  signal: optional(signalSchema),
});

/** Options of `listPending()`. */
export const listPendingOptionsSchema = z.strictObject({
  agentId: optional(agentIdSchema),
  kind: optional(kindSchema),
  limit: optional(
    integerIn(1, GATES_LIMITS.maxListed, "Pass limit as a whole number from 1 to 500."),
  ).transform((value) => value ?? 100),
});

/** Options of `verifyAction()`. */
export const verifyActionOptionsSchema = z.strictObject({
  kind: optional(kindSchema),
  agentId: optional(agentIdSchema),
  consume: optional(
    booleanValue(
      "Pass consume: true (the default: mark the approval executed) or false (only check it).",
    ),
  ).transform((value) => value ?? true),
});

/** Options of `expirePending()`. */
export const expirePendingOptionsSchema = z.strictObject({
  limit: optional(
    integerIn(1, GATES_LIMITS.maxBatch, "Pass limit as a whole number from 1 to 10000."),
  ).transform((value) => value ?? 1_000),
});

const functionSchema = (fix: string) =>
  z.unknown().transform((value, context): ((...args: never[]) => unknown) => {
    if (typeof value !== "function")
      return fail(context, `must be a function, got ${kindOf(value)}.`, { fix });
    return value as (...args: never[]) => unknown;
  });

/** Options of `requireApproval()`. */
export const requireApprovalOptionsSchema = z.strictObject({
  kind: kindSchema,
  agentId: agentIdSchema,
  timeout: optional(timeoutSchema),
  expiresIn: optional(expiresInSchema),
  blocking: optional(
    booleanValue("Pass blocking: true (wait for the decision) or false (throw ApprovalPending)."),
  ).transform((value) => value ?? true),
  payload: optional(
    functionSchema(
      "Pass payload as a function of the call's arguments that returns the JSON to approve.",
    ),
  ),
  onRequest: optional(
    functionSchema(
      "Pass onRequest as a function that delivers the request (and its token) to a reviewer.",
    ),
  ),
});

/** Options of the gates module. */
export const gatesOptionsSchema = z.strictObject({
  enableV2Tokens: optional(
    booleanValue("Pass enableV2Tokens: true (the default) to mint v2 tokens."),
  ).transform((value) => value ?? true),
  acceptV1Until: cutoffSchema
    .optional()
    .transform((value) => (value === undefined ? DEFAULT_ACCEPT_V1_UNTIL : value)),
  defaultExpiresIn: optional(expiresInSchema).transform((value) => value ?? DEFAULT_EXPIRES_IN_MS),
  pollIntervalMs: optional(
    integerIn(50, 60_000, "Pass pollIntervalMs in milliseconds, from 50 to 60000 (default 500)."),
  ).transform((value) => value ?? DEFAULT_POLL_INTERVAL_MS),
  listen: optional(
    booleanValue("Pass listen: true (wake on NOTIFY) or false (poll only)."),
  ).transform((value) => value ?? true),
  auditTimeoutMs: optional(
    integerIn(
      GATES_LIMITS.minAuditTimeoutMs,
      GATES_LIMITS.maxAuditTimeoutMs,
      "Pass auditTimeoutMs in milliseconds, from 10 to 600000 (default 5000).",
    ),
  ).transform((value) => value ?? DEFAULT_AUDIT_TIMEOUT_MS),
  staleClaimMs: optional(
    integerIn(
      GATES_LIMITS.minStaleClaimMs,
      GATES_LIMITS.maxStaleClaimMs,
      "Pass staleClaimMs in milliseconds, from 1000 to 86400000 (default 60000), well above auditTimeoutMs.",
    ),
  ).transform((value) => value ?? DEFAULT_STALE_CLAIM_MS),
});

/** The gates module's options, as given. */
export interface GatesOptions {
  /**
   * Mint v2 tokens (`v2:<key id>:…`), bound to the key current at issue so that they
   * survive a key rotation. `false` mints legacy v1 tokens.
   * @deprecated `false` only exists for rolling deploys with reviewers that still expect v1
   *   tokens; v1 tokens stop verifying at `acceptV1Until`.
   * @default true
   */
  enableV2Tokens?: boolean;
  /**
   * Until when legacy v1 tokens are accepted by `grant()` and `deny()`; after it they are
   * refused with `TokenVersionTooOldError`. A Date or an ISO-8601 string; `null` refuses v1
   * tokens always. `@gov/sdk` reads `GOVERNANCE_GATES_ACCEPT_V1_UNTIL`.
   * @default 2026-07-17T00:00:00Z (the reference's cut-off)
   */
  acceptV1Until?: Date | string | null;
  /** How long a request stays open when `request()` is given no `expiresIn`, in ms. @default 3600000 */
  defaultExpiresIn?: number;
  /**
   * The polling fallback of `waitFor()`: how often the request is read when no notification
   * comes, in ms, with ±20 % jitter (50–60000). @default 500
   */
  pollIntervalMs?: number;
  /** Wake `waitFor()` on Postgres NOTIFY (`gov_gates_resolved`); false polls only. @default true */
  listen?: boolean;
  /**
   * How long `grant()` / `deny()` wait for their audit event to be durable, in ms (10–600000).
   * Past it the claim is released, as when the audit write fails (`ApprovalNotRecordedError`),
   * and `approval.released` is recorded. Also bounds every other audit write of the module,
   * and (plus 5 s) how long `close()` waits for decisions in flight. @default 5000
   */
  auditTimeoutMs?: number;
  /**
   * How old a claim (a decision whose audit event is being written) must be, by the module's
   * clock, to be presumed abandoned — its process died, or lost its connection — in ms
   * (1000–86400000, and more than `auditTimeoutMs`). `grant()`, `deny()`, `waitFor()` and
   * `expirePending()` release such a claim: back to pending, or expired when past its expiry,
   * recorded as `approval.released`. @default 60000
   */
  staleClaimMs?: number;
}

/** The options after validation, with their defaults. */
export type ResolvedGatesOptions = z.output<typeof gatesOptionsSchema>;

/**
 * Validate `value` against `schema`.
 * @throws {InvalidGatesInputError} naming the field (`field` plus the path inside it), the
 *   limit and the fix.
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
  const where = [field, ...(issue?.path ?? []).map(String)].filter(Boolean).join(".");
  if (issue?.code === "custom") {
    const params = (issue.params ?? {}) as Partial<IssueParams>;
    throw new InvalidGatesInputError(
      where,
      issue.message,
      params.fix ?? "Check the argument against the documentation.",
      params.limit,
    );
  }
  if (issue?.code === "unrecognized_keys") {
    throw new InvalidGatesInputError(
      [where, issue.keys[0]].join("."),
      `has unknown option${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}.`,
      "Check the spelling against the documentation; unknown options are refused so that a typo never drops a setting.",
    );
  }
  if (issue?.code === "invalid_type" && issue.path.length === 0) {
    throw new InvalidGatesInputError(
      where,
      `must be an object, got ${kindOf(value)}.`,
      'Pass an options object, e.g. { reviewerId: "alice@company.com" }.',
    );
  }
  throw new InvalidGatesInputError(
    where,
    issue?.message ?? "is invalid.",
    "Check the argument against the documentation.",
  );
}
