/**
 * CEL as the steward runs it: every `matches()` on the linear-time RE2 engine (re2js) instead
 * of JavaScript's backtracking `RegExp`, and every evaluation bounded by a step limit.
 *
 * cel-js (`@marcbachmann/cel-js`) neither lets a function be overridden (`string.matches` is
 * built in, and a second overload "overlaps") nor offers a step or cost limit. So:
 *
 * - **matches()**: each parsed expression is rewritten before it is type-checked: a call
 *   `x.matches(p)` becomes `x.matchesRe2(p)`, a function of ours on re2js. A pattern written
 *   as a literal is compiled when the expression is loaded (RE2 syntax; backreferences and
 *   lookaround are refused with a {@link PatternProblem}); a pattern that comes from a
 *   variable is compiled at run time, through a small cache, within a size bound.
 * - **Steps**: cel-js evaluates every node through its evaluator's `run` method (comprehension
 *   steps included). The evaluator of each environment is reached once, through a probe
 *   function (handlers are called with it as `this`), and its `run` counts: one step per node,
 *   one per 64 characters of a string result and per 16 elements of a list result, 100 per
 *   evaluation error, and for `matches()` one per 4 characters of text per 64 units of
 *   pattern program size. Past the limit every further step throws, the evaluation unwinds in
 *   a few steps, and {@link evaluateBounded} throws {@link EvaluationLimitExceeded}. If a
 *   cel-js release changes these internals, the self-test at start-up fails and every bounded
 *   evaluation is refused (fail closed) rather than run unbounded.
 *
 * A synchronous evaluation cannot be interrupted by a timer: the step limit is what bounds it
 * while it runs. The steward also measures its time and reports one that overran its latency
 * budget (a stalled process), without failing it: the step limit is deterministic, a clock is
 * not.
 */
import { Environment } from "@marcbachmann/cel-js";
import { RE2JS } from "re2js";
import { EvaluationLimitExceeded } from "./errors";
import { STEWARD_LIMITS } from "./models";

/** The name `matches()` calls are rewritten to (a function on re2js). */
const RE2_MATCHES = "matchesRe2";
const PROBE = "__gov_probe";

/** Thrown inside cel-js to unwind an evaluation that ran out of steps; never escapes. */
class StepSignal extends Error {}
const STEP_SIGNAL = new StepSignal("the evaluation step limit was reached");

const meter = { steps: 0, limit: Number.POSITIVE_INFINITY };

interface Evaluator {
  run(ast: AstNode, context: unknown): unknown;
  createError(...args: unknown[]): unknown;
}

/** The parts of a cel-js AST node this module reads (`op`, `args`, `meta`). */
interface AstNode {
  op: string;
  args: unknown;
  start?: number;
  meta?: { alternate?: unknown; macro?: unknown };
}

function isNode(value: unknown): value is AstNode {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { op?: unknown }).op === "string" &&
    "args" in value
  );
}

// Patterns: compiled once, kept in a small least-recently-used cache.
const PATTERN_CACHE_SIZE = 256;
const patternCache = new Map<string, { regex: RE2JS; cost: number } | { problem: string }>();

/** Why a pattern is refused, in words (the re2js message without its prefix). */
function patternProblem(pattern: string): string | { regex: RE2JS; cost: number } {
  if (pattern.length > STEWARD_LIMITS.patternLength) {
    return `is ${pattern.length} characters long; the limit is ${STEWARD_LIMITS.patternLength}`;
  }
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(pattern);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const reason = message.replace(/^error parsing regexp: /, "");
    const hint = /\\[1-9]|\(\?[=!<]|\(\?<[=!]/.test(pattern)
      ? " (backreferences and lookaround are not supported: matching is linear-time RE2)"
      : "";
    return `is not RE2 syntax: ${reason}${hint}`;
  }
  const size = regex.programSize();
  if (size > STEWARD_LIMITS.patternProgramSize) {
    return `compiles to a program of ${size} instructions; the limit is ${STEWARD_LIMITS.patternProgramSize}`;
  }
  return { regex, cost: Math.ceil(size / 64) };
}

function compiledPattern(pattern: string): { regex: RE2JS; cost: number } {
  let entry = patternCache.get(pattern);
  if (entry) {
    patternCache.delete(pattern);
  } else {
    const compiled = patternProblem(pattern);
    entry = typeof compiled === "string" ? { problem: compiled } : compiled;
    if (patternCache.size >= PATTERN_CACHE_SIZE) {
      const oldest = patternCache.keys().next().value;
      if (oldest !== undefined) patternCache.delete(oldest);
    }
  }
  patternCache.set(pattern, entry);
  if ("problem" in entry) {
    throw new Error(`matches(): the pattern ${preview(pattern)} ${entry.problem}.`);
  }
  return entry;
}

function preview(pattern: string): string {
  return JSON.stringify(pattern.length > 80 ? `${pattern.slice(0, 80)}…` : pattern);
}

/** `text.matches(pattern)` on re2js: an unanchored search, as CEL specifies. */
function re2Matches(text: string, pattern: string): boolean {
  const { regex, cost } = compiledPattern(pattern);
  meter.steps += Math.ceil(text.length / 4) * cost;
  if (meter.steps > meter.limit) throw STEP_SIGNAL;
  return regex.test(text);
}

/** The evaluators whose `run` counts steps (one per environment). */
let installed = true;

function instrument(environment: Environment): Environment {
  let evaluator: Evaluator | null = null;
  environment
    // A handler object per overload: cel-js caches a call wrapper on the handler, and the
    // receiver and global forms wrap it differently.
    .registerFunction(`string.${RE2_MATCHES}(string): bool`, (text: string, pattern: string) =>
      re2Matches(text, pattern),
    )
    .registerFunction(`${RE2_MATCHES}(string, string): bool`, (text: string, pattern: string) =>
      re2Matches(text, pattern),
    )
    .registerFunction(`${PROBE}(): bool`, function (this: Evaluator) {
      evaluator = this;
      return true;
    });
  try {
    environment.parse(`${PROBE}()`)({});
  } catch {
    evaluator = null;
  }
  const found = evaluator as Evaluator | null;
  if (!found || typeof found.run !== "function" || typeof found.createError !== "function") {
    installed = false;
    return environment;
  }
  const createError = found.createError;
  found.run = function run(this: Evaluator, ast: AstNode, context: unknown): unknown {
    if (++meter.steps > meter.limit) throw STEP_SIGNAL;
    const value = (
      ast as unknown as { evaluate(ev: Evaluator, node: AstNode, ctx: unknown): unknown }
    ).evaluate(this, ast, context);
    if (typeof value === "string") {
      if (value.length >= 64) meter.steps += value.length >>> 6;
    } else if (Array.isArray(value) && value.length >= 16) meter.steps += value.length >>> 4;
    return value;
  };
  found.createError = function (this: unknown, ...args: unknown[]) {
    meter.steps += 100;
    return createError.apply(this, args);
  };
  return environment;
}

/**
 * A cel-js environment whose evaluations count steps and whose `matches()` runs on re2js
 * (see the module notes). Register variables and operators on it as usual; parse with
 * {@link parseBounded}.
 */
export function createBoundedEnvironment(
  options?: ConstructorParameters<typeof Environment>[0],
): Environment {
  const environment = instrument(new Environment(options));
  return environment;
}

/** A `matches()` pattern written as a literal that RE2 refuses, found at load. */
export interface PatternProblem {
  pattern: string;
  problem: string;
}

/**
 * Rename every `matches` call in a parsed expression (macro bodies included) to the re2js
 * function, and report the literal patterns that RE2 refuses.
 */
function rewriteMatches(root: unknown): PatternProblem[] {
  const problems: PatternProblem[] = [];
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item !== "object" || item === null || seen.has(item)) continue;
    seen.add(item);
    if (Array.isArray(item)) {
      for (const child of item) stack.push(child);
      continue;
    }
    if (!isNode(item)) continue;
    const args = item.args;
    if ((item.op === "rcall" || item.op === "call") && Array.isArray(args)) {
      if (args[0] === "matches") args[0] = RE2_MATCHES;
      if (args[0] === RE2_MATCHES) {
        const patternNode = (item.op === "rcall" ? args[2] : args[1])?.[
          item.op === "rcall" ? 0 : 1
        ];
        if (isNode(patternNode) && patternNode.op === "value") {
          const pattern = patternNode.args;
          if (typeof pattern === "string") {
            const compiled = patternProblem(pattern);
            if (typeof compiled === "string") problems.push({ pattern, problem: compiled });
          }
        }
      }
    }
    stack.push(args);
    const meta = item.meta;
    if (meta) stack.push(meta.alternate, meta.macro);
  }
  return problems;
}

/** A parsed expression, as cel-js returns it (callable with the variables). */
export type ParsedExpression = ReturnType<Environment["parse"]>;

/**
 * Parse an expression in a bounded environment: `matches()` rewritten to re2js, and the
 * literal patterns RE2 refuses reported (the caller turns them into a load error).
 *
 * @throws whatever cel-js throws for a syntax error.
 */
export function parseBounded(
  environment: Environment,
  expression: string,
): { parsed: ParsedExpression; patternProblems: PatternProblem[] } {
  const parsed = environment.parse(expression);
  const patternProblems = rewriteMatches((parsed as unknown as { ast: unknown }).ast);
  return { parsed, patternProblems };
}

/**
 * Evaluate a parsed expression within `maxSteps` steps (see the module notes for what a step
 * is).
 *
 * @throws {EvaluationLimitExceeded} when the limit was reached (whatever the expression
 *   yielded on the way: an exhausted evaluation has no answer), or when the bound could not
 *   be installed in this cel-js.
 * @throws whatever the expression throws otherwise (an evaluation error).
 */
export function evaluateBounded(
  parsed: (context: Record<string, unknown>) => unknown,
  context: Record<string, unknown>,
  maxSteps: number,
): unknown {
  if (!installed) {
    throw new EvaluationLimitExceeded(
      0,
      "the step limit could not be installed in this version of cel-js, and nothing is evaluated unbounded",
    );
  }
  const saved = { steps: meter.steps, limit: meter.limit };
  meter.steps = 0;
  meter.limit = maxSteps;
  let value: unknown;
  let failure: unknown = null;
  let failed = false;
  let used = 0;
  try {
    value = parsed(context);
  } catch (error) {
    failed = true;
    failure = error;
  } finally {
    used = meter.steps;
    meter.steps = saved.steps;
    meter.limit = saved.limit;
  }
  // An exhausted evaluation has no answer, whatever it yielded on the way (an `||` may have
  // swallowed the signal).
  if (used > maxSteps || failure === STEP_SIGNAL) throw exhausted(maxSteps);
  if (failed) throw failure;
  return value;
}

function exhausted(limit: number): EvaluationLimitExceeded {
  return new EvaluationLimitExceeded(
    limit,
    `it took more than ${limit} steps (${limit / STEWARD_LIMITS.evaluationStepsPerMs} ms of latency budget at ${STEWARD_LIMITS.evaluationStepsPerMs} steps per ms)`,
  );
}

/**
 * The bounds of a tier-0 evaluation that fail it closed: its step limit or its input. (Its
 * measured time is reported, never a bound: see {@link evaluateWithinBudget}.)
 */
export type EvaluationBound = "steps" | "input";

/**
 * Evaluate a tier-0 expression within its bounds: the input within the static limits
 * (`inputProblem`, computed once per evaluation) and the steps of its budget — both
 * deterministic, so that the same input always gets the same answer. The time it took,
 * measured from `startedAt` (default: now), is returned as `overranMs` when it exceeded the
 * budget: a synchronous evaluation cannot be interrupted, and a wall-clock overrun within the
 * step limit is a stalled process (garbage collection, a starved CPU), not the input's doing —
 * failing it closed would block legitimate actions at random under load. Callers report it.
 */
export function evaluateWithinBudget(
  expression: (context: Record<string, unknown>, maxSteps: number) => unknown,
  celContext: Record<string, unknown>,
  budgetMs: number,
  inputProblem: string | null,
  startedAt: number = performance.now(),
): BudgetedOutcome {
  if (inputProblem !== null) {
    return {
      kind: "exceeded",
      bound: "input",
      reason: `not evaluated: ${inputProblem}`,
      endedAt: startedAt,
    };
  }
  let outcome: BudgetedOutcome;
  try {
    outcome = { kind: "value", value: expression(celContext, stepsFor(budgetMs)), endedAt: 0 };
  } catch (cause) {
    outcome =
      cause instanceof EvaluationLimitExceeded
        ? { kind: "exceeded", bound: "steps", reason: cause.message, endedAt: 0 }
        : { kind: "error", error: firstLineOf(cause), endedAt: 0 };
  }
  outcome.endedAt = performance.now();
  const elapsed = outcome.endedAt - startedAt;
  if (outcome.kind !== "exceeded" && elapsed > budgetMs) outcome.overranMs = elapsed;
  return outcome;
}

/**
 * What {@link evaluateWithinBudget} found; `endedAt` is `performance.now()` when it returned
 * (the start of the next evaluation, so that a loop reads the clock once per evaluation), and
 * `overranMs` the measured time when it was over the latency budget (reported, not enforced).
 */
export type BudgetedOutcome =
  | { kind: "value"; value: unknown; endedAt: number; overranMs?: number }
  | { kind: "error"; error: string; endedAt: number; overranMs?: number }
  | { kind: "exceeded"; bound: EvaluationBound; reason: string; endedAt: number };

function firstLineOf(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.split("\n")[0] ?? text;
}

/** Steps allowed for a latency budget: {@link STEWARD_LIMITS}.evaluationStepsPerMs per ms. */
export function stepsFor(latencyBudgetMs: number): number {
  return Math.max(1, Math.floor(latencyBudgetMs * STEWARD_LIMITS.evaluationStepsPerMs));
}

/**
 * Whether a value is within the static bounds of what reaches CEL: at most
 * `STEWARD_LIMITS.evaluationInputValues` values (strings, numbers, list elements, map
 * entries, counted through every level) and `evaluationInputDepth` levels of nesting. Returns
 * the bound it breaks, or null.
 */
export function inputBoundProblem(roots: readonly unknown[]): string | null {
  const maxValues = STEWARD_LIMITS.evaluationInputValues;
  const maxDepth = STEWARD_LIMITS.evaluationInputDepth;
  let count = 0;
  const seen = new Set<object>();
  const stack: [unknown, number][] = roots.map((root) => [root, 0]);
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (++count > maxValues) {
      return `the input holds more than ${maxValues} values`;
    }
    if (typeof value !== "object" || value === null) continue;
    if (depth >= maxDepth) return `the input is nested deeper than ${maxDepth} levels`;
    if (seen.has(value)) continue;
    seen.add(value);
    if (ArrayBuffer.isView(value)) {
      count += Math.floor(value.byteLength / 64);
    } else if (Array.isArray(value) || value instanceof Set) {
      for (const item of value) stack.push([item, depth + 1]);
    } else if (value instanceof Map) {
      for (const [key, item] of value) stack.push([key, depth + 1], [item, depth + 1]);
    } else {
      for (const item of Object.values(value)) stack.push([item, depth + 1]);
    }
  }
  return null;
}

// The self-test: a bounded environment must count steps inside a macro and run matches() on
// re2js (`(?i)` is RE2 syntax; JavaScript's RegExp refuses it). Otherwise nothing runs.
{
  const probe = createBoundedEnvironment();
  try {
    const { parsed } = parseBounded(probe, '["A"].exists(x, x.matches("(?i)a"))');
    if (evaluateBounded(parsed, {}, 1_000) !== true) installed = false;
    const { parsed: long } = parseBounded(probe, "[1, 2, 3, 4, 5, 6, 7, 8].all(x, x > 0)");
    try {
      evaluateBounded(long, {}, 5);
      installed = false;
    } catch (error) {
      if (!(error instanceof EvaluationLimitExceeded)) installed = false;
    }
  } catch {
    installed = false;
  }
}
