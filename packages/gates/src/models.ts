import {
  canonicalJson,
  checkId,
  checkText,
  InvalidArgumentError,
  isUuid,
  parseOptions,
  typeOf,
} from "@gov/core";
import { z } from "zod";
import { InvalidGatesInputError } from "./errors";

/** The limits every input of `@gov/gates` is held to. */
export const GATES_LIMITS = {
  /** Characters of an agent id, a reviewer id and a request's key. */
  id: 256,
  /** Characters of a request kind, e.g. `deploy.production`. */
  kind: 128,
  /** Characters of a denial (or grant) reason. */
  reason: 1_000,
  /** Bytes of a payload in its canonical JSON form. */
  payloadBytes: 64 * 1024,
  /** Shortest `expiresInMs`, in milliseconds (one second). */
  minExpiresInMs: 1_000,
  /** Longest `expiresInMs`, in milliseconds (30 days). */
  maxExpiresInMs: 30 * 86_400_000,
  /** Longest `waitFor` `timeoutMs`, in milliseconds (30 days). */
  maxTimeoutMs: 30 * 86_400_000,
  /** Characters of a token (a v2 token is about 200). */
  tokenLength: 512,
  /** Most rows `expirePending` handles per call. */
  maxBatchSize: 10_000,
  /** Most requests `listPending` returns per call (each may carry a 64 KiB payload). */
  maxListed: 500,
  /** Shortest and longest `auditTimeoutMs`, in milliseconds. */
  minAuditTimeoutMs: 10,
  maxAuditTimeoutMs: 600_000,
  /** Shortest and longest `staleClaimMs`, in milliseconds. */
  minStaleClaimMs: 1_000,
  maxStaleClaimMs: 86_400_000,
} as const;

/** One hour: how long a request stays open unless `expiresInMs` says otherwise. */
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

function fail(context: z.RefinementCtx, message: string, params: IssueParams): never {
  context.addIssue({ code: "custom", message, params });
  return z.NEVER;
}

/** Core's refusal of a value, as a zod issue that keeps its problem, limit and fix. */
function refuse(context: z.RefinementCtx, error: unknown): never {
  if (!InvalidArgumentError.isInstance(error)) throw error;
  const problem = error.issues[0]?.problem ?? error.message.replace(/^Invalid [^:]+: /, "");
  return fail(context, problem, {
    fix: error.recoveryHint,
    ...(error.limit === undefined ? {} : { limit: error.limit }),
  });
}

/**
 * A required string of 1 to `max` characters. With `id`: core's id rule (`checkId`: no
 * control, invisible or formatting characters, no blank character but the ASCII space — no
 * no-break, ideographic or Braille blank — no leading combining mark, no white space at either
 * end), the one rule every module applies to ids. Otherwise core's text rule (`checkText`),
 * not blank.
 */
function boundedText(options: { max: number; fix: string; multiline?: boolean; id?: boolean }) {
  return z.unknown().transform((value, context): string => {
    if (typeof value !== "string")
      return fail(context, `must be a string, got ${typeOf(value)}.`, { fix: options.fix });
    if (value.trim().length === 0) return fail(context, "must not be empty.", { fix: options.fix });
    if (value.length > options.max)
      return fail(context, `is ${value.length} characters long; the limit is ${options.max}.`, {
        fix: `Shorten it to at most ${options.max} characters.`,
        limit: options.max,
      });
    try {
      return options.id
        ? checkId(value, "value", { max: options.max })
        : checkText(value, "value", { max: options.max, multiline: options.multiline ?? false });
    } catch (error) {
      return refuse(context, error);
    }
  });
}

function integerIn(min: number, max: number, fix: string) {
  return z.unknown().transform((value, context): number => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      return fail(
        context,
        `must be an integer from ${min} to ${max}, got ${typeof value === "number" ? String(value) : typeOf(value)}.`,
        { fix, limit: typeof value === "number" && value > max ? max : undefined },
      );
    }
    return value;
  });
}

function booleanValue(fix: string) {
  return z.unknown().transform((value, context): boolean => {
    if (typeof value !== "boolean")
      return fail(context, `must be true or false, got ${typeOf(value)}.`, { fix });
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

/**
 * A request's key, chosen by the caller (the AI SDK's tool call id, a job id): 1–256
 * characters, no control, invisible or blank characters (the ASCII space aside).
 */
export const requestKeySchema = boundedText({
  max: GATES_LIMITS.id,
  id: true,
  fix: 'Pass a key that names what the request is for, e.g. the tool call id "call_8f2b", or leave it out.',
});

const reasonSchema = boundedText({
  max: GATES_LIMITS.reason,
  fix: "Say why in a sentence or two (at most 1000 characters).",
  multiline: true,
});

/** A request id: the UUID that `request()` returned (lower-case). */
export const requestIdSchema = z.unknown().transform((value, context): string => {
  const fix = "Pass the requestId that request() returned (a lower-case UUID).";
  if (typeof value !== "string")
    return fail(context, `must be a string, got ${typeOf(value)}.`, { fix });
  if (!isUuid(value)) return fail(context, "is not a lower-case UUID.", { fix });
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
    if (!InvalidArgumentError.isInstance(error)) throw error;
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
  "Pass expiresInMs in milliseconds, from 1000 (one second) to 2592000000 (30 days), e.g. 3600000 for an hour.",
);

const defaultExpiresInSchema = integerIn(
  GATES_LIMITS.minExpiresInMs,
  GATES_LIMITS.maxExpiresInMs,
  "Pass defaultExpiresInMs in milliseconds, from 1000 (one second) to 2592000000 (30 days), e.g. 3600000 for an hour.",
);

const timeoutSchema = integerIn(
  0,
  GATES_LIMITS.maxTimeoutMs,
  "Pass timeoutMs in milliseconds, e.g. 600000 for ten minutes (0 checks once).",
);

/**
 * Fold a deprecated option name into its current one (`expiresIn` → `expiresInMs`): the old
 * name still works, alone; both at once are refused, even when they agree, so that a
 * half-finished rename is noticed.
 */
function renamed<Old extends string, New extends string>(oldName: Old, newName: New) {
  return <T extends Partial<Record<Old | New, unknown>>>(
    value: T,
    context: z.RefinementCtx,
  ): Omit<T, Old> => {
    const { [oldName]: old, ...rest } = value;
    if (old === undefined) return rest;
    if (rest[newName as unknown as keyof typeof rest] !== undefined) {
      context.addIssue({
        code: "custom",
        path: [oldName],
        message: `is the deprecated name of ${newName}, which is also given.`,
        params: { fix: `Pass ${newName} only.` } satisfies IssueParams,
      });
      return z.NEVER;
    }
    return { ...rest, [newName]: old } as Omit<T, Old>;
  };
}

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
    return fail(context, `must be a Date or an ISO-8601 string, got ${typeOf(value)}.`, { fix });
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
export const requestOptionsSchema = z
  .strictObject({
    payload: payloadSchema.optional(),
    expiresInMs: optional(expiresInSchema),
    expiresIn: optional(expiresInSchema),
    key: optional(requestKeySchema),
  })
  .transform(renamed("expiresIn", "expiresInMs"));

/** What `findRequest()` looks a request up by. */
export const findRequestSchema = z.strictObject({
  agentId: agentIdSchema,
  kind: kindSchema,
  key: requestKeySchema,
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
    return fail(context, `must be an AbortSignal, got ${typeOf(value)}.`, {
      fix: "Pass an AbortController's signal, or leave it out.",
    });
  return value;
});

/** Options of `waitFor()`. */
export const waitForOptionsSchema = z
  .strictObject({
    timeoutMs: optional(timeoutSchema),
    timeout: optional(timeoutSchema),
    signal: optional(signalSchema),
  })
  .transform(renamed("timeout", "timeoutMs"));

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
    integerIn(1, GATES_LIMITS.maxBatchSize, "Pass limit as a whole number from 1 to 10000."),
  ).transform((value) => value ?? 1_000),
});

const functionSchema = (fix: string) =>
  z.unknown().transform((value, context): ((...args: never[]) => unknown) => {
    if (typeof value !== "function")
      return fail(context, `must be a function, got ${typeOf(value)}.`, { fix });
    return value as (...args: never[]) => unknown;
  });

/** Options of `requireApproval()`. */
export const requireApprovalOptionsSchema = z
  .strictObject({
    kind: kindSchema,
    agentId: agentIdSchema,
    timeoutMs: optional(timeoutSchema),
    timeout: optional(timeoutSchema),
    expiresInMs: optional(expiresInSchema),
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
  })
  .transform(renamed("timeout", "timeoutMs"))
  .transform(renamed("expiresIn", "expiresInMs"));

/** Options of the gates module. */
export const gatesOptionsSchema = z
  .strictObject({
    enableV2Tokens: optional(
      booleanValue("Pass enableV2Tokens: true (the default) to mint v2 tokens."),
    ).transform((value) => value ?? true),
    acceptV1Until: cutoffSchema
      .optional()
      .transform((value) => (value === undefined ? DEFAULT_ACCEPT_V1_UNTIL : value)),
    defaultExpiresInMs: optional(defaultExpiresInSchema),
    defaultExpiresIn: optional(defaultExpiresInSchema),
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
  })
  .transform(renamed("defaultExpiresIn", "defaultExpiresInMs"))
  .transform(({ defaultExpiresInMs, ...rest }) => ({
    ...rest,
    defaultExpiresInMs: defaultExpiresInMs ?? DEFAULT_EXPIRES_IN_MS,
  }));

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
  /**
   * How long a request stays open when `request()` is given no `expiresInMs`, in ms
   * (1000 – 2592000000). @default 3600000 (one hour)
   */
  defaultExpiresInMs?: number;
  /**
   * @deprecated use `defaultExpiresInMs` (the same value, in ms); giving both is refused.
   */
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
 * Read an options object with core's `parseOptions` (a non-object refused, unknown options
 * refused with a "did you mean", every issue listed), reported as an
 * {@link InvalidGatesInputError}. With `required`, the call cannot do without the object:
 * `undefined` is refused too, and the fix shows `required` — an example of that call's own
 * options.
 * @throws {InvalidGatesInputError} naming the option, the limit and the fix.
 */
export function validateOptions<T extends z.ZodType>(
  schema: T,
  value: unknown,
  options: { field?: string; required?: string } = {},
): z.output<T> {
  return parseOptions(schema, value, {
    field: options.field ?? "options",
    errorClass: InvalidGatesInputError,
    ...(options.required === undefined
      ? {}
      : { required: true, fixes: { "": `Pass an options object, e.g. ${options.required}.` } }),
  });
}

/**
 * Validate a value (not an options object) against `schema`.
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
      `must be an object, got ${typeOf(value)}.`,
      'Pass an options object, e.g. { reviewerId: "alice@company.com" }.',
    );
  }
  throw new InvalidGatesInputError(
    where,
    issue?.message ?? "is invalid.",
    "Check the argument against the documentation.",
  );
}
