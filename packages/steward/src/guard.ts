import { randomUUID } from "node:crypto";
import { AgentHaltedError, containsLookAlike } from "@gov/core";
import {
  boundedExpression,
  type CompiledExpression,
  mixedArithmetic,
  refusePatterns,
} from "./blueprint";
import { createBoundedEnvironment, evaluateWithinBudget, parseBounded, prepareInput } from "./cel";
import { PolicyError as BasePolicyError, TripwireViolation } from "./errors";

class PolicyError extends BasePolicyError {
  constructor(path: string, problem: string, fix: string) {
    super(path, problem, fix, null, "guard options");
  }
}

import { stricter } from "./evaluation";
import { type InterventionResult, type InterventionType, STEWARD_LIMITS } from "./models";
import { piiFinding, scanValues } from "./pii";
import { GUARD_LIMITS, sameSnapshot, snapshotArguments } from "./snapshot";
import type { GovernanceSteward } from "./steward";
import { keywordForms } from "./text";

/** A custom rule of `guard()`: fires when `condition` (CEL over the named arguments) is true. */
export interface GuardRule {
  id?: string;
  /** Fires when true, like a blueprint tripwire. */
  condition: string;
  /** @default "BLOCK" */
  decision?: Exclude<InterventionType, "OK" | "HALT">;
  reason?: string;
}

/** What `onDeny` and `onReview` are given. */
export interface GuardDecision<Args extends unknown[], Result> {
  /** The intervention (BLOCK, or ESCALATE for a review). */
  intervention: InterventionType;
  message: string;
  /** Ids of the rules and tripwires that fired. */
  fired: string[];
  /** The named arguments the guard evaluated. */
  args: Record<string, unknown>;
  /** The steward's result, when a steward was given. */
  stewardResult: InterventionResult | null;
  /**
   * Call the guarded function anyway (e.g. after a human approved it in `onReview`), with
   * the arguments that were checked: call it without arguments, or with equal ones (other
   * arguments are refused with `TripwireViolation`, tripwire `arguments-changed`). After a
   * steward's ESCALATE, it first commits the action (`steward.commit`), so that stateful
   * limits count it, and refuses if the approval can no longer be counted.
   */
  proceed: (...args: Args | []) => Promise<Result>;
}

/** Options of {@link guard}. */
export interface GuardOptions<Args extends unknown[] = unknown[], Result = unknown> {
  /**
   * The **allowed** conditions, as CEL over the function's named arguments (`"spend < 50"`;
   * `$` is ignored). `"no_pii"` refuses e-mails, phone numbers, card numbers (Luhn) and
   * national id numbers in the reasoning and every argument, named or not; a value too large
   * or deep to scan completely is refused. A condition that does not hold,
   * or cannot be evaluated (a missing argument), denies the call (BLOCK).
   */
  tripwires?: readonly string[];
  /** Custom rules that fire when true, each with its decision. */
  rules?: readonly GuardRule[];
  /**
   * Deny unless every spend-like named argument present — `spend`, `amount`, `cost`, `price`,
   * `total` ({@link SPEND_FIELDS}; own or inherited, enumerable or not, a class's getters
   * included) — is a finite number ≥ 0 and the largest is at most this; also deny when none
   * is given.
   */
  maxSpend?: number;
  /**
   * Deny when the reasoning (every value in it; a list of strings is also read joined), or a
   * string in an argument the guard cannot name (positional, without or beyond `params`),
   * contains one of these — compared case-insensitively through look-alikes: full-width
   * letters, Unicode's confusables (Cyrillic, Greek, Cherokee), small capitals and other
   * letter symbols (`ᴘ`, `🅿`, `⒫`), combining marks, invisible and control characters.
   */
  blockedKeywords?: readonly string[];
  /**
   * Deny calls whose arguments hold a class instance or a function. Plain data (plain objects,
   * arrays, `Map`, `Set`, `Date`, typed arrays, primitives) is copied when it is checked and
   * the function runs with the copy; a class instance or a function is passed as the
   * original (its methods may be needed), so a getter or method that returns something else
   * when the function reads it is outside what the guard can see. Set this to refuse them.
   * @default false
   */
  refuseClassInstances?: boolean;
  /**
   * The most characters of text (strings, keys, bytes of byte arrays) one call's arguments may
   * hold, all together; past it the call is denied (`arguments-unreadable`): scanning text for
   * keywords and personal data costs about a second per megabyte.
   * @default GUARD_LIMITS.textCharacters (262,144)
   */
  maxTextCharacters?: number;
  /** The action name in results and traces. @default the function's name, or "guarded_action" */
  actionName?: string;
  /**
   * The names of the function's positional parameters (`["amount", "reason"]`). Without it,
   * the function must take one object argument whose properties are the named arguments.
   */
  params?: readonly string[];
  /** The agent the call is made for (trust debt and audit, with `steward`). @default "anonymous" */
  agentId?: string;
  /**
   * The agent's tier, as the host knows it (selects the steward's blueprint). @default the
   * steward's `agentTiers`, else ""
   */
  agentTier?: string;
  /** Also evaluate the call with this steward (its blueprints); the strictest decision wins. */
  steward?: GovernanceSteward;
  /** Called instead of the function on a denial; its value is returned. Without it: TripwireViolation. */
  onDeny?: (decision: GuardDecision<Args, Result>) => Result | Promise<Result>;
  /** Called instead of the function on ESCALATE; without it, ESCALATE is a denial. */
  onReview?: (decision: GuardDecision<Args, Result>) => Result | Promise<Result>;
}

// The same mixed int/double arithmetic as blueprints: `spend * 2 < 100` with `spend: 10`;
// `matches()` on RE2 and every evaluation bounded, as in blueprints.
const GUARD_ENVIRONMENT = mixedArithmetic(
  createBoundedEnvironment({ unlistedVariablesAreDyn: true }),
);

/**
 * Whether a rule fires: `true` (with its own reason), or a reason of this call — `exceeded`
 * when the condition could not be evaluated within its bounds (the decision is then at least
 * BLOCK).
 */
type Firing = boolean | { reason: string; exceeded: boolean };

/** One call, as the rules see it. */
interface GuardCall {
  /** CEL variables: the named arguments, `reasoning` (a string) and `args`. */
  scope: Record<string, unknown>;
  /** The named arguments. */
  variables: Record<string, unknown>;
  /** Arguments without a name (positional without `params`, or beyond them). */
  unnamed: readonly unknown[];
  /** Every argument, as passed (class instances, Maps and all). */
  args: readonly unknown[];
  /** The reasoning as given, of any type (`reasoning`, and `reason`). */
  reasoning: readonly unknown[];
  /** The static input bound the arguments break, if any (computed once). */
  inputProblem: () => string | null;
}

interface CompiledGuardRule {
  id: string;
  decision: InterventionType;
  reason: string;
  fires: (call: GuardCall) => Firing;
}

function compileGuardExpression(expression: string, field: string): CompiledExpression {
  let parsed: ReturnType<typeof parseBounded>;
  try {
    parsed = parseBounded(GUARD_ENVIRONMENT, expression);
  } catch (error) {
    const message = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
    throw new PolicyError(
      field,
      `"${expression}" is not valid CEL: ${message}`,
      'Write a condition over the function\'s named arguments, e.g. "spend < 50".',
    );
  }
  refusePatterns(parsed.patternProblems, field, null, "guard options");
  return boundedExpression(parsed.parsed);
}

/**
 * A CEL rule evaluated within the tier-0 bounds: fires when `firesOn(value)` holds, when the
 * condition errors (fail closed), or — at least BLOCK — when it ran past its bounds.
 */
function celFiring(
  id: string,
  condition: CompiledExpression,
  call: GuardCall,
  firesOn: (value: unknown) => boolean,
): Firing {
  const outcome = evaluateWithinBudget(
    condition,
    call.scope,
    STEWARD_LIMITS.tier0LatencyBudgetMs,
    call.inputProblem(),
  );
  if (outcome.kind === "exceeded") {
    return {
      reason: `"${id}" could not be evaluated within its bounds (${outcome.reason}); fail closed.`,
      exceeded: true,
    };
  }
  return outcome.kind === "error" || firesOn(outcome.value);
}

/**
 * The arguments `maxSpend` reads (top-level named arguments): every one present is checked,
 * and the largest must be within the limit.
 */
export const SPEND_FIELDS = ["spend", "amount", "cost", "price", "total"] as const;

/** Why `maxSpend` denies these named arguments, or null when it allows them. */
function spendProblem(variables: Record<string, unknown>, limit: number): string | null {
  let largest: { field: string; value: number } | null = null;
  for (const field of SPEND_FIELDS) {
    if (!Object.hasOwn(variables, field) || variables[field] === undefined) continue;
    const raw = variables[field];
    const value = typeof raw === "bigint" ? Number(raw) : raw;
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return `maxSpend: "${field}" is not a number (${describeValue(raw)}); a spend must be a finite number.`;
    }
    if (value < 0) return `maxSpend: "${field}" is negative (${value}); a spend cannot be.`;
    if (!largest || value > largest.value) largest = { field, value };
  }
  if (!largest) {
    return `maxSpend: none of ${SPEND_FIELDS.join(", ")} is given; the spend cannot be checked.`;
  }
  return largest.value > limit
    ? `Spend exceeds the limit of ${limit}: "${largest.field}" is ${largest.value}.`
    : null;
}

function describeValue(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  return value === null ? "null" : typeof value;
}

function compileRules<Args extends unknown[], Result>(
  options: GuardOptions<Args, Result>,
): CompiledGuardRule[] {
  const rules: CompiledGuardRule[] = [];
  for (const [index, raw] of (options.tripwires ?? []).entries()) {
    if (typeof raw !== "string" || raw.trim() === "") {
      throw new PolicyError(
        `tripwires[${index}]`,
        "must be a non-empty string.",
        'Write the allowed condition, e.g. "spend < 50", or "no_pii".',
      );
    }
    const text = raw.trim();
    if (text === "no_pii") {
      const reason =
        "Personal data (e-mail, phone, card or national id number) in the reasoning or arguments.";
      rules.push({
        id: "no_pii",
        decision: "BLOCK",
        reason,
        // Every argument as passed, named or not; a value too large, deep or unreadable to
        // scan completely denies.
        fires: (call) => {
          const finding = piiFinding(call.args);
          if (finding === null) return false;
          return finding.kind === "match"
            ? true
            : {
                reason: `The arguments could not be scanned for personal data completely (${finding.reason}); denied.`,
                exceeded: false,
              };
        },
      });
      continue;
    }
    // "$" is a currency sign before a number ("spend < $50"); elsewhere (in a string) it stays.
    const allowed = compileGuardExpression(text.replace(/\$(?=\s*\d)/g, ""), `tripwires[${index}]`);
    rules.push({
      id: text,
      decision: "BLOCK",
      reason: `The allowed condition "${text}" does not hold.`,
      fires: (call) => celFiring(text, allowed, call, (value) => value !== true),
    });
  }
  for (const [index, rule] of (options.rules ?? []).entries()) {
    if (typeof rule !== "object" || rule === null || typeof rule.condition !== "string") {
      throw new PolicyError(
        `rules[${index}].condition`,
        "must be a CEL string.",
        'Pass { condition: "amount > 500", decision: "ESCALATE" }.',
      );
    }
    const decision = rule.decision ?? "BLOCK";
    if (!["NUDGE", "FLAG", "ESCALATE", "BLOCK"].includes(decision)) {
      throw new PolicyError(
        `rules[${index}].decision`,
        `is "${String(decision)}".`,
        "Use NUDGE, FLAG, ESCALATE or BLOCK (only a blueprint tripwire may HALT).",
      );
    }
    const condition = compileGuardExpression(rule.condition, `rules[${index}].condition`);
    const id = rule.id ?? `rules[${index}]`;
    rules.push({
      id,
      decision,
      reason: rule.reason ?? `Rule "${rule.condition}" fired.`,
      fires: (call) => celFiring(id, condition, call, (value) => value !== false),
    });
  }
  if (options.maxSpend !== undefined) {
    const limit = options.maxSpend;
    if (typeof limit !== "number" || !Number.isFinite(limit) || limit < 0) {
      throw new PolicyError("maxSpend", `is ${String(limit)}.`, "Use a finite number ≥ 0.");
    }
    rules.push({
      id: "max_spend",
      decision: "BLOCK",
      reason: `Spend exceeds the limit of ${limit}.`,
      fires: (call) => {
        const problem = spendProblem(call.variables, limit);
        return problem === null ? false : { reason: problem, exceeded: false };
      },
    });
  }
  const keywords = (options.blockedKeywords ?? []).map((keyword, index) => {
    if (typeof keyword !== "string" || (keywordForms(keyword)[0] ?? "").trim() === "") {
      throw new PolicyError(
        `blockedKeywords[${index}]`,
        "must be a string with visible characters.",
        "List the words to refuse in the reasoning.",
      );
    }
    return keywordForms(keyword);
  });
  if (keywords.length > 0) {
    rules.push({
      id: "blocked_keywords",
      decision: "BLOCK",
      reason: "The reasoning contains a blocked keyword.",
      fires: (call) => {
        // The reasoning, whatever its type (a list of strings is still reasoning, and is read
        // joined too: a list of letters spells a word), and arguments without a name, which
        // may be the reasoning too — every value in them, compared form by form (look-alikes
        // of either case, full-width letters, small capitals, invisible and control
        // characters).
        const finding = scanValues(
          [...call.reasoning, ...call.unnamed],
          (text) => {
            const forms = keywordForms(text);
            return keywords.some((keyword) => containsLookAlike(forms, keyword));
          },
          KEYWORD_LIST_SEPARATORS,
        );
        if (finding === null) return false;
        return finding.kind === "match"
          ? true
          : {
              reason: `The reasoning could not be searched for blocked keywords completely (${finding.reason}); denied.`,
              exceeded: false,
            };
      },
    });
  }
  return rules;
}

/**
 * Wrap a function so that every call is governed first: the zero-config wrapper of the
 * reference. The function's arguments are named either by `params` (positional functions)
 * or by the properties of its single object argument. The reasoning is the argument
 * `reasoning` (else `reason`).
 *
 * OK, NUDGE and FLAG call the function. ESCALATE goes to `onReview` (else it is a denial).
 * A denial calls `onDeny`, or throws {@link TripwireViolation}. A HALT (from `steward`)
 * throws `AgentHaltedError`.
 *
 * @example
 * ```ts
 * const refund = guard(
 *   { tripwires: ["amount < $50", "no_pii"], blockedKeywords: ["password"], params: ["amount", "reason"] },
 *   async (amount: number, reason: string) => payments.refund(amount, reason),
 * );
 * await refund(20, "damaged on arrival"); // runs
 * await refund(80, "damaged on arrival"); // throws TripwireViolation
 * ```
 * @throws {PolicyError} at wrap time, for a bad tripwire, rule or option.
 */
export function guard<Args extends unknown[], Result>(
  options: GuardOptions<Args, Result>,
  fn: (...args: Args) => Result | Promise<Result>,
): (...args: Args) => Promise<Result> {
  if (typeof fn !== "function") {
    throw new PolicyError("fn", "must be a function.", "Pass the function to govern.");
  }
  const rules = compileRules(options);
  const actionName = options.actionName ?? (fn.name || "guarded_action");
  const params = options.params;
  const refuseInstances = options.refuseClassInstances === true;
  const maxText = options.maxTextCharacters ?? GUARD_LIMITS.textCharacters;
  if (typeof maxText !== "number" || !Number.isSafeInteger(maxText) || maxText < 0) {
    throw new PolicyError(
      "maxTextCharacters",
      `is ${String(maxText)}.`,
      `Use a whole number of characters ≥ 0 (default ${GUARD_LIMITS.textCharacters}).`,
    );
  }
  // The named arguments and the others, from the checked snapshot: with `params`, by
  // position; otherwise the properties (own, enumerable or not, and inherited ones a class
  // instance's view holds) of the one object argument.
  const named = (
    checked: readonly unknown[],
  ): { variables: Record<string, unknown>; unnamed: unknown[] } => {
    if (params) {
      const out: Record<string, unknown> = {};
      for (const [index, name] of params.entries()) out[name] = checked[index];
      return { variables: out, unnamed: checked.slice(params.length) };
    }
    const [first] = checked;
    if (
      typeof first === "object" &&
      first !== null &&
      !Array.isArray(first) &&
      !(first instanceof Map) &&
      !(first instanceof Set)
    ) {
      const out: Record<string, unknown> = {};
      for (const key of Reflect.ownKeys(first)) {
        if (typeof key === "string") out[key] = (first as Record<string, unknown>)[key];
      }
      return { variables: out, unnamed: checked.slice(1) };
    }
    return { variables: {}, unnamed: [...checked] };
  };
  return async (...args: Args): Promise<Result> => {
    // What the rules check and what the function runs with, read once (see snapshotArguments).
    const snapshot = snapshotArguments(args, maxText);
    const unreadable =
      snapshot.problem ??
      (refuseInstances && snapshot.instances
        ? "an argument holds a class instance or a function, which refuseClassInstances denies (its getters and methods could show the function something other than what was checked)"
        : null);
    if (unreadable !== null) {
      const reason = `The arguments of "${actionName}" cannot be checked: ${unreadable}; denied.`;
      return deny("BLOCK", reason, ["arguments-unreadable"], {}, null, args);
    }
    const { variables, unnamed } = named(snapshot.checked);
    const reasoningValue = variables.reasoning ?? variables.reason;
    const reasoning = typeof reasoningValue === "string" ? reasoningValue : "";
    const scope: Record<string, unknown> = { ...variables, reasoning, args: variables };
    let inputProblem: string | null | undefined;
    const thisCall: GuardCall = {
      scope,
      variables,
      unnamed,
      args: snapshot.checked,
      reasoning: [variables.reasoning, variables.reason],
      inputProblem: () => {
        if (inputProblem === undefined) {
          // Within the bounds, CEL reads the prepared values (plain objects as Maps).
          const prepared = prepareInput([variables, unnamed]);
          inputProblem = prepared.problem;
          const [preparedVariables] = prepared.values;
          if (inputProblem === null && preparedVariables instanceof Map) {
            for (const [key, value] of preparedVariables) scope[key as string] = value;
            scope.reasoning = reasoning;
            scope.args = preparedVariables;
          }
        }
        return inputProblem;
      },
    };
    let decision: InterventionType = "OK";
    const fired: string[] = [];
    let message = "";
    for (const rule of rules) {
      const firing = rule.fires(thisCall);
      if (firing === false) continue;
      fired.push(rule.id);
      // A condition that ran past its bounds has no answer: it denies (at least BLOCK).
      const ruleDecision =
        firing !== true && firing.exceeded ? stricter(rule.decision, "BLOCK") : rule.decision;
      const reason = firing === true ? rule.reason : firing.reason;
      if (RANKED.indexOf(ruleDecision) > RANKED.indexOf(decision)) message = reason;
      decision = ruleDecision === "FLAG" ? decision : stricter(decision, ruleDecision);
    }
    let stewardResult: InterventionResult | null = null;
    if (options.steward) {
      stewardResult = await options.steward.evaluate(
        {
          action: actionName,
          parameters: variables,
          reasoning,
          agentId: options.agentId ?? "anonymous",
          traceId: randomUUID(),
        },
        {},
        {
          agentId: options.agentId ?? "anonymous",
          ...(options.agentTier === undefined ? {} : { agentTier: options.agentTier }),
        },
      );
      fired.push(...stewardResult.governanceStatus.firedTripwires);
      const stewardDecision = stewardResult.intervention;
      if (stewardDecision === "HALT") {
        throw new AgentHaltedError({
          agentId: options.agentId ?? "anonymous",
          haltedBy: "steward",
          reason: stewardResult.message,
          path: "steward.guard",
        });
      }
      if (stricter(decision, stewardDecision) !== decision) message = stewardResult.message;
      decision = stricter(decision, stewardDecision);
    }
    if (decision === "OK" || decision === "NUDGE" || decision === "FLAG") {
      // What runs is what was checked. Without an await in between, the snapshot runs as it
      // is; after the steward's evaluation, the arguments are read again and refused if they
      // changed meanwhile (a class instance runs as the original).
      if (!options.steward) return fn(...(snapshot.runnable as Args));
      return fn(...(runnableIfUnchanged(args, snapshot.checked, stewardResult?.traceId) as Args));
    }
    return deny(decision, message, fired, variables, stewardResult, args, snapshot.checked);
  };

  /** A denial: `onReview` (ESCALATE), `onDeny`, or TripwireViolation. */
  async function deny(
    decision: InterventionType,
    message: string,
    fired: string[],
    variables: Record<string, unknown>,
    stewardResult: InterventionResult | null,
    args: Args,
    checked?: readonly unknown[],
  ): Promise<Result> {
    const details: GuardDecision<Args, Result> = {
      intervention: decision,
      message,
      fired,
      // A copy: what the handlers do to it does not change what was checked.
      args: (snapshotArguments([variables]).checked[0] ?? {}) as Record<string, unknown>,
      stewardResult,
      // An approved ESCALATE is counted by the steward's stateful limits before it runs, and
      // runs with the arguments that were evaluated — nothing else.
      proceed: async (...proceedArgs: Args | []) => {
        if (checked === undefined) throw changedArguments(actionName, stewardResult?.traceId);
        const runWith = (proceedArgs.length === 0 ? args : proceedArgs) as Args;
        const runnable = runnableIfUnchanged(runWith, checked, stewardResult?.traceId);
        if (
          options.steward &&
          stewardResult?.metadata?.commitOnApproval === true &&
          !(await options.steward.commit(stewardResult))
        ) {
          // The approval can no longer be counted against the limits: refuse rather than run.
          throw new TripwireViolation({
            intervention: "BLOCK",
            message: `The approval of "${actionName}" can no longer be counted against its limits (unknown, already used, or forgotten); evaluate it again.`,
            tripwires: fired,
            traceId: stewardResult.traceId,
            action: actionName,
          });
        }
        return fn(...(runnable as Args));
      },
    };
    if (decision === "ESCALATE" && options.onReview) return options.onReview(details);
    if (options.onDeny) return options.onDeny(details);
    throw new TripwireViolation({
      intervention: decision,
      message,
      tripwires: fired,
      traceId: stewardResult?.traceId ?? randomUUID(),
      action: actionName,
    });
  }

  /**
   * The snapshot to run `args` with, when they still hold what was checked (read again, whole:
   * own and inherited properties, getters, toJSON, items); else refused (`arguments-changed`).
   */
  function runnableIfUnchanged(
    args: readonly unknown[],
    checked: readonly unknown[],
    traceId: string | undefined,
  ): unknown[] {
    const again = snapshotArguments(args, maxText);
    if (again.problem !== null || !sameSnapshot(again.checked, checked)) {
      throw changedArguments(actionName, traceId);
    }
    return again.runnable;
  }
}

function changedArguments(actionName: string, traceId: string | undefined): TripwireViolation {
  return new TripwireViolation({
    intervention: "BLOCK",
    message: `The arguments of "${actionName}" changed after they were checked; what would run is not what was checked.`,
    tripwires: ["arguments-changed"],
    traceId: traceId ?? randomUUID(),
    action: actionName,
  });
}

/** A list in the reasoning is also read joined without and with spaces (letters, words). */
const KEYWORD_LIST_SEPARATORS = { listSeparators: ["", " "] } as const;

const RANKED: readonly InterventionType[] = ["OK", "FLAG", "NUDGE", "ESCALATE", "BLOCK", "HALT"];
