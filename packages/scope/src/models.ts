import { findBlankCharacter } from "@gov/core";
import { z } from "zod";
import { type ApiRule, isProblem, parseApiRule } from "./api-rule";
import { InvalidScopePolicyError } from "./errors";

/** Limits of a {@link ScopePolicy}; an input beyond them is refused with the limit named. */
export const SCOPE_LIMITS = {
  /** Characters of an agent id (as in the audit chain). */
  agentId: 256,
  /** Characters of a tool name. */
  toolName: 256,
  /** Characters of an API entry (`"METHOD URL"`). */
  apiEntry: 2_048,
  /** Characters of a model name (as in the audit chain). */
  modelName: 128,
  /** Entries in `allowedTools`. */
  allowedTools: 1_000,
  /** Entries in `allowedApis`. */
  allowedApis: 1_000,
  /** Entries in `hiddenTools`. */
  hiddenTools: 1_000,
  /** Entries in `allowedModels`. */
  allowedModels: 256,
} as const;

/** Control characters and bidi overrides: never part of a name. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** What to do about a name holding an invisible or blank character. */
const BLANK_FIX =
  "Remove it: names may hold the ASCII space, but no other space (no-break, ideographic, Braille blank…) and no invisible character (soft hyphens, zero-width spaces and joiners, word joiners, variation selectors). Take the name from its source of record — the agent's configuration, the tool's definition — not from copied text.";

/**
 * A name compared exactly (an agent id, a tool or model name): 1 to `limit` characters, no
 * leading or trailing whitespace, no control characters, and — unless `blank` is allowed —
 * no invisible or blank character but the ASCII space ({@link findBlankCharacter}), so that
 * two names that look the same are the same name.
 */
function name(limit: number, what: string, options: { allowBlank?: boolean } = {}) {
  const checked = z
    .string({ error: (issue) => `must be a ${what} string, got ${typeOf(issue.input)}.` })
    .min(1, { error: `must not be empty.` })
    .max(limit, {
      error: (issue) =>
        `is ${(issue.input as string).length} characters long; the limit is ${limit}.`,
    })
    .refine((value) => value.trim() === value, {
      error: "must not start or end with whitespace.",
    })
    .refine((value) => !CONTROL.test(value), {
      error: "must not contain control or bidirectional-override characters.",
    });
  if (options.allowBlank) return checked;
  return checked.superRefine((value, context) => {
    const blank = findBlankCharacter(value, { allowSpace: true });
    if (blank)
      context.addIssue({
        code: "custom",
        message: `contains an invisible or blank character (${blank.codePoint} at index ${blank.index}), which would make two different names look the same.`,
        params: { fix: BLANK_FIX },
      });
  });
}

function list(item: z.ZodType<string>, limit: number) {
  return z
    .array(item, { error: (issue) => `must be an array or a Set, got ${typeOf(issue.input)}.` })
    .max(limit, {
      error: (issue) => `has ${(issue.input as unknown[]).length} entries; the limit is ${limit}.`,
    });
}

/**
 * The zod schema of a {@link ScopePolicy}'s input (sets given as arrays). Unknown keys are
 * refused, so that a typo (`allowed_tools`) is not silently ignored.
 */
export const scopePolicySchema = z.strictObject({
  agentId: name(SCOPE_LIMITS.agentId, "non-empty"),
  allowedTools: list(name(SCOPE_LIMITS.toolName, "tool name"), SCOPE_LIMITS.allowedTools).default(
    [],
  ),
  // API entries are parsed and normalized as URLs (an invisible character in a host is
  // dropped, in a path it is refused as not canonical): they are not compared as written.
  allowedApis: list(
    name(SCOPE_LIMITS.apiEntry, '"METHOD URL"', { allowBlank: true }),
    SCOPE_LIMITS.allowedApis,
  ).default([]),
  hiddenTools: list(name(SCOPE_LIMITS.toolName, "tool name"), SCOPE_LIMITS.hiddenTools).default([]),
  allowedModels: list(
    name(SCOPE_LIMITS.modelName, "model name"),
    SCOPE_LIMITS.allowedModels,
  ).default([]),
});

/** A policy as zod reads it (arrays). */
export type ScopePolicyData = z.output<typeof scopePolicySchema>;

/** What {@link ScopePolicy} is built from: the sets may be arrays, Sets or any iterable. */
export interface ScopePolicyInput {
  /**
   * The agent the policy governs (≤ 256 characters, case-sensitive; no invisible or blank
   * character but the ASCII space, nor may tool and model names hold one).
   */
  agentId: string;
  /** Tools the agent may call: exact, case-sensitive names (no globs). @default [] */
  allowedTools?: Iterable<string>;
  /**
   * API calls the agent may make: `"METHOD URL"`, exact, or a prefix with a trailing `*`
   * (`"GET https://api.stripe.com/v1/*"`) that never matches another host. @default []
   */
  allowedApis?: Iterable<string>;
  /** Tools removed from the agent's tool list by `filterTools` and refused by `check`. @default [] */
  hiddenTools?: Iterable<string>;
  /** Models the agent may use, for the wrappers that enforce it. @default [] */
  allowedModels?: Iterable<string>;
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

const FIXES: Record<string, string> = {
  agentId: "Pass agentId as a non-empty string of at most 256 characters.",
  allowedTools: `Pass allowedTools as an array or Set of exact tool names (at most ${SCOPE_LIMITS.allowedTools}, each 1–${SCOPE_LIMITS.toolName} characters).`,
  allowedApis: `Pass allowedApis as an array or Set of "METHOD URL" entries (at most ${SCOPE_LIMITS.allowedApis}, each at most ${SCOPE_LIMITS.apiEntry} characters).`,
  hiddenTools: `Pass hiddenTools as an array or Set of exact tool names (at most ${SCOPE_LIMITS.hiddenTools}, each 1–${SCOPE_LIMITS.toolName} characters).`,
  allowedModels: `Pass allowedModels as an array or Set of model names (at most ${SCOPE_LIMITS.allowedModels}, each 1–${SCOPE_LIMITS.modelName} characters).`,
};

function fieldName(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path)
    out += typeof part === "number" ? `[${part}]` : `${out ? "." : ""}${String(part)}`;
  return out || "policy";
}

/** Iterables (Sets, arrays, generators) become arrays; strings and other values are left for zod to refuse. */
function arrayOf(value: unknown): unknown {
  if (value === undefined || Array.isArray(value) || typeof value === "string") return value;
  if (value !== null && typeof value === "object" && Symbol.iterator in value) {
    return Array.from(value as Iterable<unknown>);
  }
  return value;
}

/** Read and validate a policy's input; throws {@link InvalidScopePolicyError} on the first problem. */
export function parseScopePolicy(input: unknown): ScopePolicyData {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new InvalidScopePolicyError(
      "policy",
      `must be an object, got ${typeOf(input)}.`,
      "Pass { agentId, allowedTools, allowedApis, hiddenTools, allowedModels }.",
    );
  }
  const record = input as Record<string, unknown>;
  const candidate: Record<string, unknown> = {};
  for (const key of Object.keys(record)) candidate[key] = arrayOf(record[key]);
  const result = scopePolicySchema.safeParse(candidate);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new InvalidScopePolicyError("policy", "is invalid.", "Check the policy.");
  if (issue.code === "unrecognized_keys") {
    const keys = issue.keys.join(", ");
    throw new InvalidScopePolicyError(
      keys,
      "is not a ScopePolicy field.",
      "Use only agentId, allowedTools, allowedApis, hiddenTools and allowedModels (camelCase).",
    );
  }
  const field = fieldName(issue.path);
  const top = String(issue.path[0] ?? "policy");
  const limit = issue.code === "too_big" ? Number(issue.maximum) : undefined;
  const fix =
    issue.code === "custom" && typeof issue.params?.fix === "string"
      ? issue.params.fix
      : (FIXES[top] ?? "Check the policy.");
  throw new InvalidScopePolicyError(field, issue.message, fix, limit);
}

/**
 * A read-only set of names: what {@link ScopePolicy} exposes. It is not a `Set` (its values
 * live in a private field), so `Set.prototype.add.call(view, x)` throws a TypeError instead
 * of changing what is enforced or persisted.
 */
export class ReadonlyNameSet implements ReadonlySet<string> {
  readonly #values: Set<string>;

  constructor(values: readonly string[]) {
    this.#values = new Set(values);
    Object.freeze(this);
  }

  get size(): number {
    return this.#values.size;
  }

  has(value: string): boolean {
    return this.#values.has(value);
  }

  forEach(
    callback: (value: string, key: string, set: ReadonlySet<string>) => void,
    thisArg?: unknown,
  ): void {
    for (const value of this.#values) callback.call(thisArg, value, value, this);
  }

  entries(): SetIterator<[string, string]> {
    return this.#values.entries();
  }

  keys(): SetIterator<string> {
    return this.#values.keys();
  }

  values(): SetIterator<string> {
    return this.#values.values();
  }

  [Symbol.iterator](): SetIterator<string> {
    return this.#values.values();
  }

  get [Symbol.toStringTag](): string {
    return "ReadonlyNameSet";
  }
}

/** A policy as plain, frozen arrays: what {@link ScopePolicy.toJSON} returns and what is persisted. */
export interface ScopePolicySnapshot {
  readonly agentId: string;
  readonly allowedTools: readonly string[];
  readonly allowedApis: readonly string[];
  readonly hiddenTools: readonly string[];
  readonly allowedModels: readonly string[];
}

const POLICY_MARKER = Symbol.for("@gov/scope.ScopePolicy");

/**
 * What one agent may call: exact tool names, API entries, hidden tools and models.
 * Immutable once built: its JSON is snapshotted (frozen) at construction, and its sets are
 * read-only views that no `Set.prototype` method can change; validated on construction.
 *
 * @example
 * ```ts
 * const policy = new ScopePolicy({
 *   agentId: "billing-agent",
 *   allowedTools: ["read_invoice", "send_email"],
 *   allowedApis: ["GET https://api.stripe.com/v1/*"],
 *   hiddenTools: ["delete_all", "admin_reset"],
 * });
 * sdk.scope.register(policy);
 * ```
 * @throws {InvalidScopePolicyError} naming the field, the limit and the fix.
 */
export class ScopePolicy {
  /** The agent the policy governs. */
  readonly agentId: string;
  /** Tools the agent may call (exact, case-sensitive). */
  readonly allowedTools: ReadonlySet<string>;
  /** API entries (`"METHOD URL"`, exact or trailing-`*` prefix). */
  readonly allowedApis: ReadonlySet<string>;
  /** Tools never shown to the agent and never callable. */
  readonly hiddenTools: ReadonlySet<string>;
  /** Models the agent may use. */
  readonly allowedModels: ReadonlySet<string>;
  /** @internal The parsed API entries. */
  readonly apiRules: readonly ApiRule[];
  /** The policy as validated at construction: what is enforced, persisted and shown. */
  readonly #snapshot: ScopePolicySnapshot;

  constructor(input: ScopePolicyInput) {
    const data = parseScopePolicy(input);
    const rules: ApiRule[] = [];
    data.allowedApis.forEach((entry, index) => {
      const rule = parseApiRule(entry);
      if (isProblem(rule)) {
        throw new InvalidScopePolicyError(`allowedApis[${index}]`, rule.problem, rule.fix);
      }
      rules.push(rule);
    });
    const allowed = new Set(data.allowedTools);
    for (const [index, tool] of data.hiddenTools.entries()) {
      if (allowed.has(tool)) {
        throw new InvalidScopePolicyError(
          `hiddenTools[${index}]`,
          `(${JSON.stringify(tool)}) is also in allowedTools; a hidden tool is never callable.`,
          `Remove ${JSON.stringify(tool)} from allowedTools or from hiddenTools.`,
        );
      }
    }
    this.#snapshot = Object.freeze({
      agentId: data.agentId,
      allowedTools: Object.freeze([...data.allowedTools]),
      allowedApis: Object.freeze([...data.allowedApis]),
      hiddenTools: Object.freeze([...data.hiddenTools]),
      allowedModels: Object.freeze([...data.allowedModels]),
    });
    this.agentId = data.agentId;
    this.allowedTools = new ReadonlyNameSet(data.allowedTools);
    this.allowedApis = new ReadonlyNameSet(data.allowedApis);
    this.hiddenTools = new ReadonlyNameSet(data.hiddenTools);
    this.allowedModels = new ReadonlyNameSet(data.allowedModels);
    this.apiRules = Object.freeze(rules.map((rule) => Object.freeze(rule)));
    Object.defineProperty(this, POLICY_MARKER, { value: true });
    Object.freeze(this);
  }

  /** True for a `ScopePolicy` from any copy of `@gov/scope`. */
  static isInstance(value: unknown): value is ScopePolicy {
    return (
      typeof value === "object" &&
      value !== null &&
      (value as Record<symbol, unknown>)[POLICY_MARKER] === true
    );
  }

  /**
   * The policy as plain arrays (what is persisted, and what the console shows): the frozen
   * snapshot taken at construction, so it is always what was validated.
   */
  toJSON(): ScopePolicySnapshot {
    return this.#snapshot;
  }
}
