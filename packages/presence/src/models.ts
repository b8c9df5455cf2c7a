import {
  canonicalJson,
  checkId,
  checkText,
  findBlankCharacter,
  hasControlCharacters,
  InvalidArgumentError,
  parseOptions,
  typeOf,
} from "@gov/core";
import { z } from "zod";
import { InvalidPresenceInputError } from "./errors";
import type { HaltState } from "./halt-state";

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

/** What is wrong with a value, as an issue: the end of a sentence after the field, the fix, the limit. */
interface Problem extends IssueParams {
  problem: string;
}

/** A rule for the strings presence takes: ids, operators, reasons, paths. */
interface StringRule {
  max: number;
  fix: string;
  /** Core's id rule (`checkId`) and no blank character but the ASCII space. */
  id?: boolean;
  /**
   * An id that may name a row written before ids were checked: no control characters and
   * no half characters, but invisible and blank characters allowed.
   */
  stored?: boolean;
  multiline?: boolean;
}

function isWellFormed(value: string): boolean {
  return (value as string & { isWellFormed(): boolean }).isWellFormed();
}

function blankProblem(blank: { codePoint: string; index: number }): Problem {
  return {
    problem: `contains an invisible or blank character (${blank.codePoint} at index ${blank.index}), which would make two different ids look the same.`,
    fix: "Remove it: ids may hold the ASCII space, but no other space (no-break, ideographic, Braille blank…) and no invisible character (soft hyphens, zero-width spaces and joiners, word joiners, variation selectors). Take the id from its source of record — the agent's configuration, the operator's authenticated session — not from copied text.",
  };
}

/**
 * What is wrong with `value` under `rule`; null when nothing is. A string of 1 to `max`
 * characters, not blank. With `id`: no blank character but the ASCII space
 * ({@link findBlankCharacter}: no-break, ideographic, Braille blank…), so that two ids never
 * look the same, and core's id rule (`checkId`: no control, invisible or formatting
 * characters, no white space at either end). With `stored`: no control or half characters
 * only. Otherwise core's text rule (`checkText`). No zod: agent ids are checked on the enforcement hot path.
 */
function stringProblem(value: unknown, rule: StringRule): Problem | null {
  if (typeof value !== "string")
    return { problem: `must be a string, got ${typeOf(value)}.`, fix: rule.fix };
  if (value.trim().length === 0) return { problem: "must not be empty.", fix: rule.fix };
  if (value.length > rule.max)
    return {
      problem: `is ${value.length} characters long; the limit is ${rule.max}.`,
      fix: `Shorten it to at most ${rule.max} characters.`,
      limit: rule.max,
    };
  try {
    if (!rule.id && !rule.stored) {
      checkText(value, "value", { max: rule.max, multiline: rule.multiline ?? false });
      return null;
    }
    // Controls, bidirectional overrides and half characters first, in core's words (checkText
    // refuses them); then, for an id, blank characters, with a fix that says which; then the
    // rest of core's id rule.
    if (hasControlCharacters(value) || !isWellFormed(value)) {
      checkText(value, "value", { max: rule.max });
    }
    if (rule.id) {
      const blank = findBlankCharacter(value, { allowSpace: true });
      if (blank) return blankProblem(blank);
      checkId(value, "value", { max: rule.max });
    }
    return null;
  } catch (error) {
    if (!InvalidArgumentError.isInstance(error)) throw error;
    return {
      problem: error.issues[0]?.problem ?? error.message.replace(/^Invalid [^:]+: /, ""),
      fix: error.recoveryHint,
      ...(error.limit === undefined ? {} : { limit: error.limit }),
    };
  }
}

/** `value`, checked by `rule` without zod. @throws {InvalidPresenceInputError} naming `field`. */
function checkString(value: unknown, rule: StringRule, field: string): string {
  const found = stringProblem(value, rule);
  if (found !== null)
    throw new InvalidPresenceInputError(field, found.problem, found.fix, found.limit);
  return value as string;
}

/** The zod form of {@link checkString}, for options objects. */
function boundedText(rule: StringRule) {
  return z.unknown().transform((value, context): string => {
    const found = stringProblem(value, rule);
    if (found === null) return value as string;
    const { problem, ...params } = found;
    context.addIssue({ code: "custom", message: problem, params });
    return z.NEVER;
  });
}

const AGENT_ID_FIX = 'Pass the agent\'s id as a non-empty string, e.g. "billing-agent".';
const agentIdRule: StringRule = { max: PRESENCE_LIMITS.id, id: true, fix: AGENT_ID_FIX };
/** An agent id as rows written before ids were checked may hold it: blank characters allowed. */
const storedAgentIdRule: StringRule = { max: PRESENCE_LIMITS.id, stored: true, fix: AGENT_ID_FIX };
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
      message: `must be a plain object, got ${typeOf(value)}.`,
      params: { fix },
    });
    return z.NEVER;
  }
  let text: string;
  try {
    text = canonicalJson(value, "metadata");
  } catch (error) {
    if (!InvalidArgumentError.isInstance(error)) throw error;
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
        message: `must be an integer from ${min} to ${max}, got ${typeof value === "number" ? String(value) : typeOf(value)}.`,
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

/** The longest `unresponsiveAfterMs`: 30 days. */
const MAX_UNRESPONSIVE_MS = PRESENCE_LIMITS.timeoutSeconds * 1_000;

/** Options of the presence module. */
export const presenceOptionsSchema = z
  .strictObject({
    haltCacheTtlMs: optional(
      integerIn(100, 3_600_000, "Pass haltCacheTtlMs in milliseconds, e.g. 5000."),
    ).transform((value) => value ?? 5_000),
    liveWithinMs: optional(
      integerIn(
        1_000,
        86_400_000,
        "Pass liveWithinMs in milliseconds, e.g. 60000 (two missed 30-second heartbeats).",
      ),
    ),
    unresponsiveAfterMs: optional(
      integerIn(
        1_000,
        MAX_UNRESPONSIVE_MS,
        "Pass unresponsiveAfterMs in milliseconds, e.g. 300000.",
      ),
    ),
    liveWithinSeconds: optional(
      integerIn(
        1,
        86_400,
        "Pass liveWithinMs in milliseconds instead (liveWithinSeconds is deprecated), e.g. 60000.",
      ),
    ),
    unresponsiveAfterSeconds: optional(
      integerIn(
        1,
        PRESENCE_LIMITS.timeoutSeconds,
        "Pass unresponsiveAfterMs in milliseconds instead (unresponsiveAfterSeconds is deprecated), e.g. 300000.",
      ),
    ),
  })
  .superRefine((options, context) => {
    for (const [current, old] of [
      ["liveWithinMs", "liveWithinSeconds"],
      ["unresponsiveAfterMs", "unresponsiveAfterSeconds"],
    ] as const) {
      if (options[current] !== undefined && options[old] !== undefined) {
        context.addIssue({
          code: "custom",
          path: [old],
          message: `cannot be given with ${current} (it is its deprecated form, in seconds).`,
          params: { fix: `Pass ${current} only.` },
        });
      }
    }
  })
  .transform(({ haltCacheTtlMs, ...given }, context) => {
    const liveWithinMs =
      given.liveWithinMs ??
      (given.liveWithinSeconds === undefined ? 60_000 : given.liveWithinSeconds * 1_000);
    const unresponsiveAfterMs =
      given.unresponsiveAfterMs ??
      (given.unresponsiveAfterSeconds === undefined
        ? 300_000
        : given.unresponsiveAfterSeconds * 1_000);
    if (unresponsiveAfterMs <= liveWithinMs) {
      const seconds = given.unresponsiveAfterSeconds !== undefined;
      const field = seconds ? "unresponsiveAfterSeconds" : "unresponsiveAfterMs";
      const live = given.liveWithinSeconds !== undefined ? "liveWithinSeconds" : "liveWithinMs";
      const liveValue = live === "liveWithinSeconds" ? given.liveWithinSeconds : liveWithinMs;
      const value = seconds ? given.unresponsiveAfterSeconds : unresponsiveAfterMs;
      context.addIssue({
        code: "custom",
        path: [field],
        message: `must be greater than ${live} (${liveValue}), got ${value}.`,
        params: { fix: `Raise ${field} or lower ${live}.` },
      });
      return z.NEVER;
    }
    return { haltCacheTtlMs, liveWithinMs, unresponsiveAfterMs };
  });

/** The presence module's options, as given. */
export interface PresenceOptions {
  /**
   * How often the halted-agent cache is reloaded from the database, whatever NOTIFY says:
   * the fallback when a notification is lost. 100 ms to 1 h. @default 5000
   */
  haltCacheTtlMs?: number;
  /**
   * A heartbeat at most this old (in milliseconds) makes an agent Live (unless marked idle).
   * 1 s to 1 day. @default 60000
   */
  liveWithinMs?: number;
  /**
   * An agent whose last heartbeat is older than this (in milliseconds) is listed as
   * Unresponsive. Between the two, it is Idle. Must exceed `liveWithinMs`; 1 s to 30 days.
   * @default 300000
   */
  unresponsiveAfterMs?: number;
  /** @deprecated use `liveWithinMs` (milliseconds): `liveWithinSeconds: 60` is `liveWithinMs: 60_000`. */
  liveWithinSeconds?: number;
  /**
   * @deprecated use `unresponsiveAfterMs` (milliseconds): `unresponsiveAfterSeconds: 300` is
   * `unresponsiveAfterMs: 300_000`.
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
 * Read an options object with core's `parseOptions` (a non-object refused, unknown options
 * refused with a "did you mean", every issue listed), reported as an
 * {@link InvalidPresenceInputError} (core's error is its cause). With `required`, a missing
 * object is refused instead of read as `{}`.
 * @throws {InvalidPresenceInputError} naming the option, the limit and the fix.
 */
export function validateOptions<T extends z.ZodType>(
  schema: T,
  value: unknown,
  options: { field?: string; required?: boolean } = {},
): z.output<T> {
  return parseOptions(schema, value, {
    field: options.field ?? "options",
    errorClass: InvalidPresenceInputError,
    required: options.required ?? false,
  });
}

/**
 * An agent id as new input: 1–256 characters, not blank, core's id rule (`checkId`), and no
 * invisible or blank character but the ASCII space.
 * @throws {InvalidPresenceInputError}
 */
export function validateAgentId(value: unknown): string {
  return checkString(value, agentIdRule, "agentId");
}

/**
 * An agent id that names state which may have been written before ids were checked for
 * invisible and blank characters (`resume`, `closeAgent`): such characters are allowed, so
 * that such a halt can still be lifted and such a row removed; control characters,
 * bidirectional overrides and half characters are still refused.
 * @throws {InvalidPresenceInputError}
 */
export function validateStoredAgentId(value: unknown): string {
  return checkString(value, storedAgentIdRule, "agentId");
}

/** @throws {InvalidPresenceInputError} */
export function validateTimeout(value: unknown): number {
  const result = timeoutSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const params = (issue?.code === "custom" ? (issue.params ?? {}) : {}) as Partial<IssueParams>;
  throw new InvalidPresenceInputError(
    "timeoutSeconds",
    issue?.message ?? "is invalid.",
    params.fix ?? "Pass timeoutSeconds as a whole number of seconds, e.g. 300.",
    params.limit,
  );
}

/** An agent as {@link PresenceModule.listAgents} reports it. */
export interface AgentPresence {
  agentId: string;
  /** Live, Idle or Unresponsive (see {@link PresenceOptions}). */
  status: AgentStatus;
  /** The last heartbeat (or markIdle); null for an agent halted before it was ever seen. */
  lastSeen: Date | null;
  /** When the agent was first seen (or first halted). */
  firstSeen: Date;
  /** The human operator the agent is bound to, if a heartbeat named one. */
  operatorId: string | null;
  /** The metadata of the last heartbeat that carried some. */
  metadata: PresenceMetadata | null;
  /** True while an operator's halt is in force. */
  halted: boolean;
  /** The halt in force, or null. */
  halt: HaltState | null;
}

/** Options of {@link PresenceModule.heartbeat}. */
export interface HeartbeatOptions {
  /** Arbitrary JSON about the agent (≤ 64 KiB as JSON); kept until a heartbeat sends new metadata. */
  metadata?: PresenceMetadata | null;
  /** The human operator the agent is bound to (≤ 256 characters); kept until a heartbeat names another. */
  operatorId?: string | null;
}

/** Options of {@link PresenceModule.halt}. */
export interface HaltOptions {
  /** The operator who halts the agent (≤ 256 characters). */
  haltedBy: string;
  /** Why (≤ 1000 characters). */
  reason: string;
}

/** Options of {@link PresenceModule.resume}. */
export interface ResumeOptions {
  /** The operator who lifts the halt (≤ 256 characters). */
  resumedBy: string;
  /** Why (≤ 1000 characters). */
  reason: string;
}

/** What {@link PresenceModule.halt} did. */
export interface HaltResult {
  /** False when the agent was already halted: the earlier halt stays, unchanged. */
  changed: boolean;
  /** The halt in force. */
  halt: HaltState;
}

/** What {@link PresenceModule.resume} did. */
export interface ResumeResult {
  /** False when the agent was not halted: nothing was written. */
  changed: boolean;
  /** The halt that was lifted, or null. */
  liftedHalt: HaltState | null;
}
