import { randomUUID } from "node:crypto";
import { AgentHaltedError } from "@gov/core";
import { Environment } from "@marcbachmann/cel-js";
import { mixedArithmetic } from "./blueprint";
import { PolicyError as BasePolicyError, TripwireViolation } from "./errors";

class PolicyError extends BasePolicyError {
  constructor(path: string, problem: string, fix: string) {
    super(path, problem, fix, null, "guard options");
  }
}

import type { InterventionResult, InterventionType } from "./models";
import { containsPii } from "./pii";
import { type GovernanceSteward, stricter } from "./steward";

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
  /** Deny when the argument `spend` (else `amount`, else `cost`) exceeds this. */
  maxSpend?: number;
  /**
   * Deny when the reasoning, or a string in an argument the guard cannot name (positional,
   * without or beyond `params`), contains one of these (case-insensitive).
   */
  blockedKeywords?: readonly string[];
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

// The same mixed int/double arithmetic as blueprints: `spend * 2 < 100` with `spend: 10`.
const GUARD_ENVIRONMENT = mixedArithmetic(new Environment({ unlistedVariablesAreDyn: true }));

interface CompiledGuardRule {
  id: string;
  decision: InterventionType;
  reason: string;
  /**
   * True when the rule fires. `unnamed` holds the arguments the guard could not name
   * (positional arguments without `params`, or beyond them).
   */
  fires: (variables: Record<string, unknown>, unnamed: readonly unknown[]) => boolean;
}

function compileGuardExpression(
  expression: string,
  field: string,
): (variables: Record<string, unknown>) => unknown {
  let compiled: ReturnType<Environment["parse"]>;
  try {
    compiled = GUARD_ENVIRONMENT.parse(expression);
  } catch (error) {
    const message = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
    throw new PolicyError(
      field,
      `"${expression}" is not valid CEL: ${message}`,
      'Write a condition over the function\'s named arguments, e.g. "spend < 50".',
    );
  }
  return compiled as unknown as (variables: Record<string, unknown>) => unknown;
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
      rules.push({
        id: "no_pii",
        decision: "BLOCK",
        reason:
          "Personal data (e-mail, phone, card or national id number) in the reasoning or arguments.",
        // Every argument, named or not; a value too large or deep to scan denies.
        fires: (variables, unnamed) => containsPii(variables) || containsPii(unnamed),
      });
      continue;
    }
    // "$" is a currency sign before a number ("spend < $50"); elsewhere (in a string) it stays.
    const allowed = compileGuardExpression(text.replace(/\$(?=\s*\d)/g, ""), `tripwires[${index}]`);
    rules.push({
      id: text,
      decision: "BLOCK",
      reason: `The allowed condition "${text}" does not hold.`,
      fires: (variables) => {
        try {
          return allowed(variables) !== true;
        } catch {
          return true;
        }
      },
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
    rules.push({
      id: rule.id ?? `rules[${index}]`,
      decision,
      reason: rule.reason ?? `Rule "${rule.condition}" fired.`,
      fires: (variables) => {
        try {
          return condition(variables) !== false;
        } catch {
          return true;
        }
      },
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
      fires: (variables) => {
        const spend = variables.spend ?? variables.amount ?? variables.cost;
        return typeof spend !== "number" || !(spend <= limit);
      },
    });
  }
  const keywords = (options.blockedKeywords ?? []).map((keyword, index) => {
    if (typeof keyword !== "string" || keyword === "") {
      throw new PolicyError(
        `blockedKeywords[${index}]`,
        "must be a non-empty string.",
        "List the words to refuse in the reasoning.",
      );
    }
    return keyword.toLowerCase();
  });
  if (keywords.length > 0) {
    rules.push({
      id: "blocked_keywords",
      decision: "BLOCK",
      reason: "The reasoning contains a blocked keyword.",
      fires: (variables, unnamed) => {
        const texts: string[] = [];
        // The reasoning, whatever its type (a list of strings is still reasoning), and
        // arguments without a name, which may be the reasoning too.
        const given = (variables.args ?? variables) as Record<string, unknown>;
        collectStrings([given.reasoning, given.reason], texts, 0);
        collectStrings(unnamed, texts, 0);
        return texts.some((text) => {
          const lower = text.toLowerCase();
          return keywords.some((keyword) => lower.includes(keyword));
        });
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
  const named = (args: Args): { variables: Record<string, unknown>; unnamed: unknown[] } => {
    if (params) {
      const out: Record<string, unknown> = {};
      for (const [index, name] of params.entries()) out[name] = args[index];
      return { variables: out, unnamed: args.slice(params.length) };
    }
    const [first] = args;
    return typeof first === "object" && first !== null && !Array.isArray(first)
      ? { variables: { ...(first as Record<string, unknown>) }, unnamed: args.slice(1) }
      : { variables: {}, unnamed: [...args] };
  };
  const call = async (...args: Args): Promise<Result> => fn(...args);
  return async (...args: Args): Promise<Result> => {
    const { variables, unnamed } = named(args);
    const evaluated = fingerprint(variables, unnamed);
    const reasoningValue = variables.reasoning ?? variables.reason;
    const reasoning = typeof reasoningValue === "string" ? reasoningValue : "";
    const scope = { ...variables, reasoning, args: variables };
    let decision: InterventionType = "OK";
    const fired: string[] = [];
    let message = "";
    for (const rule of rules) {
      if (!rule.fires(scope, unnamed)) continue;
      fired.push(rule.id);
      if (RANKED.indexOf(rule.decision) > RANKED.indexOf(decision)) message = rule.reason;
      decision = rule.decision === "FLAG" ? decision : stricter(decision, rule.decision);
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
        options.agentTier === undefined ? {} : { agentTier: options.agentTier },
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
      // What runs is what was checked: arguments changed while the check was awaited refuse.
      if (fingerprint(named(args).variables, named(args).unnamed) !== evaluated) {
        throw changedArguments(actionName, stewardResult?.traceId);
      }
      return call(...args);
    }
    const details: GuardDecision<Args, Result> = {
      intervention: decision,
      message,
      fired,
      args: variables,
      stewardResult,
      // An approved ESCALATE is counted by the steward's stateful limits before it runs, and
      // runs with the arguments that were evaluated — nothing else.
      proceed: async (...proceedArgs: Args | []) => {
        const runWith = (proceedArgs.length === 0 ? args : proceedArgs) as Args;
        if (fingerprint(named(runWith).variables, named(runWith).unnamed) !== evaluated) {
          throw changedArguments(actionName, stewardResult?.traceId);
        }
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
        return call(...runWith);
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
  };
}

/**
 * A stable text of the arguments as they were checked, to tell whether what is about to run
 * is still what was checked (objects are compared by content, not identity).
 */
function fingerprint(variables: Record<string, unknown>, unnamed: readonly unknown[]): string {
  const seen = new WeakSet<object>();
  return JSON.stringify([variables, unnamed], (_key, value: unknown) => {
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "function") return "[function]";
    if (typeof value === "object" && value !== null) {
      if (seen.has(value)) return "[cycle]";
      seen.add(value);
      if (value instanceof Map) return ["Map", [...value.entries()]];
      if (value instanceof Set) return ["Set", [...value.values()]];
    }
    return value;
  });
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

function collectStrings(value: unknown, out: string[], depth: number): void {
  if (depth > 32 || out.length > 10_000) return;
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const item of value) collectStrings(item, out, depth + 1);
  else if (value instanceof Map)
    for (const item of value.values()) collectStrings(item, out, depth + 1);
  else if (typeof value === "object" && value !== null)
    for (const item of Object.values(value)) collectStrings(item, out, depth + 1);
}

const RANKED: readonly InterventionType[] = ["OK", "FLAG", "NUDGE", "ESCALATE", "BLOCK", "HALT"];
