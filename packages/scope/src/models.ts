import {
  checkId,
  checkText,
  findBlankCharacter,
  hasControlCharacters,
  InvalidArgumentError,
  parseOptions,
  typeOf,
} from "@gov/core";
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

/** What to do about a name holding an invisible or blank character. */
const BLANK_FIX =
  "Remove it: names may hold the ASCII space, but no other space (no-break, ideographic, Braille blank…) and no invisible character (soft hyphens, zero-width spaces and joiners, word joiners, variation selectors). Take the name from its source of record — the agent's configuration, the tool's definition — not from copied text.";

const FIXES = {
  policy: "Pass { agentId, allowedTools, allowedApis, hiddenTools, allowedModels }.",
  agentId: "Pass agentId as a non-empty string of at most 256 characters.",
  allowedTools: `Pass allowedTools as an array or Set of exact tool names (at most ${SCOPE_LIMITS.allowedTools}, each 1–${SCOPE_LIMITS.toolName} characters).`,
  allowedApis: `Pass allowedApis as an array or Set of "METHOD URL" entries (at most ${SCOPE_LIMITS.allowedApis}, each at most ${SCOPE_LIMITS.apiEntry} characters).`,
  hiddenTools: `Pass hiddenTools as an array or Set of exact tool names (at most ${SCOPE_LIMITS.hiddenTools}, each 1–${SCOPE_LIMITS.toolName} characters).`,
  allowedModels: `Pass allowedModels as an array or Set of model names (at most ${SCOPE_LIMITS.allowedModels}, each 1–${SCOPE_LIMITS.modelName} characters).`,
} as const;

/** A refusal as a zod issue that core's `parseOptions` reads: problem, fix and limit. */
function fail(context: z.RefinementCtx, problem: string, fix: string, limit?: number): never {
  context.addIssue({
    code: "custom",
    message: problem,
    params: { fix, ...(limit === undefined ? {} : { limit }) },
  });
  return z.NEVER;
}

/** Core's refusal of a value (`checkId`, `checkText`), as a zod issue. */
function refuse(context: z.RefinementCtx, error: unknown): never {
  if (!InvalidArgumentError.isInstance(error)) throw error;
  const problem = error.issues[0]?.problem ?? error.message.replace(/^Invalid [^:]+: /, "");
  return fail(context, problem, error.recoveryHint, error.limit);
}

/**
 * A name compared exactly (an agent id, a tool or model name): 1 to `limit` characters, no
 * leading or trailing whitespace, no control characters, and — unless
 * `allowBlank` — no invisible or blank character but the ASCII space
 * ({@link findBlankCharacter}), so that two names that look the same are the same name, and
 * core's id rule (`checkId`).
 */
function name(limit: number, what: string, fix: string, options: { allowBlank?: boolean } = {}) {
  return z.unknown().transform((value, context): string => {
    if (typeof value !== "string")
      return fail(context, `must be a ${what} string, got ${typeOf(value)}.`, fix);
    if (value.length === 0) return fail(context, "must not be empty.", fix);
    if (value.length > limit)
      return fail(
        context,
        `is ${value.length} characters long; the limit is ${limit}.`,
        fix,
        limit,
      );
    if (value.trim() !== value) return fail(context, "must not start or end with whitespace.", fix);
    try {
      // Controls and bidirectional overrides first, in core's words (checkText refuses them).
      if (hasControlCharacters(value)) checkText(value, "value", { max: limit });
      if (options.allowBlank) return value;
      const blank = findBlankCharacter(value, { allowSpace: true });
      if (blank)
        return fail(
          context,
          `contains an invisible or blank character (${blank.codePoint} at index ${blank.index}), which would make two different names look the same.`,
          BLANK_FIX,
        );
      return checkId(value, "value", { max: limit });
    } catch (error) {
      return refuse(context, error);
    }
  });
}

/** A list of at most `limit` items (Sets and other iterables are read as arrays before). */
function list(item: z.ZodType<string>, limit: number, fix: string) {
  return z
    .unknown()
    .transform((value, context): unknown[] => {
      if (!Array.isArray(value))
        return fail(context, `must be an array or a Set, got ${typeOf(value)}.`, fix);
      if (value.length > limit)
        return fail(context, `has ${value.length} entries; the limit is ${limit}.`, fix, limit);
      return value;
    })
    .pipe(z.array(item));
}

/**
 * The zod schema of a {@link ScopePolicy}'s input (sets given as arrays). Unknown keys are
 * refused with a "did you mean" (core's `parseOptions`), so that a typo (`allowed_tools`) is
 * not silently ignored.
 */
export const scopePolicySchema = z.strictObject({
  agentId: name(SCOPE_LIMITS.agentId, "non-empty", FIXES.agentId),
  allowedTools: list(
    name(SCOPE_LIMITS.toolName, "tool name", FIXES.allowedTools),
    SCOPE_LIMITS.allowedTools,
    FIXES.allowedTools,
  ).default([]),
  // API entries are parsed and normalized as URLs (an invisible character in a host is
  // dropped, in a path it is refused as not canonical): they are not compared as written.
  allowedApis: list(
    name(SCOPE_LIMITS.apiEntry, '"METHOD URL"', FIXES.allowedApis, { allowBlank: true }),
    SCOPE_LIMITS.allowedApis,
    FIXES.allowedApis,
  ).default([]),
  hiddenTools: list(
    name(SCOPE_LIMITS.toolName, "tool name", FIXES.hiddenTools),
    SCOPE_LIMITS.hiddenTools,
    FIXES.hiddenTools,
  ).default([]),
  allowedModels: list(
    name(SCOPE_LIMITS.modelName, "model name", FIXES.allowedModels),
    SCOPE_LIMITS.allowedModels,
    FIXES.allowedModels,
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
  /**
   * Models the agent may call (`check(agentId, { model })`, and the wrappers of model
   * clients): exact, case-sensitive names. Empty — the default — places no limit on models.
   * @default []
   */
  allowedModels?: Iterable<string>;
}

/** Iterables (Sets, arrays, generators) become arrays; strings and other values are left for zod to refuse. */
function arrayOf(value: unknown): unknown {
  if (value === undefined || Array.isArray(value) || typeof value === "string") return value;
  if (value !== null && typeof value === "object" && Symbol.iterator in value) {
    return Array.from(value as Iterable<unknown>);
  }
  return value;
}

/** A field as {@link InvalidScopePolicyError} names it: inside the policy (`allowedTools[3]`). */
function policyField(field: string): string {
  return field === "policy" ? field : field.replace(/^policy\.?/, "");
}

/**
 * Read and validate a policy's input with core's `parseOptions` (unknown keys refused with a
 * "did you mean", every problem listed in `issues`).
 * @throws {InvalidScopePolicyError} naming the first problem's field, limit and fix.
 */
export function parseScopePolicy(input: unknown): ScopePolicyData {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new InvalidScopePolicyError(
      "policy",
      `must be an object, got ${typeOf(input)}.`,
      FIXES.policy,
    );
  }
  const record = input as Record<string, unknown>;
  const candidate: Record<string, unknown> = {};
  for (const key of Object.keys(record)) candidate[key] = arrayOf(record[key]);
  try {
    return parseOptions(scopePolicySchema, candidate, { field: "policy" });
  } catch (error) {
    if (!InvalidArgumentError.isInstance(error)) throw error;
    const issues = error.issues.map((issue) => ({ ...issue, field: policyField(issue.field) }));
    const first = issues[0];
    throw new InvalidScopePolicyError(
      policyField(error.field),
      first?.problem ?? "is invalid.",
      error.recoveryHint,
      error.limit,
      { issues, cause: error },
    );
  }
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
  /** Models the agent may call (exact, case-sensitive); empty: any model. */
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
