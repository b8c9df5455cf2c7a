/**
 * CEL as the steward runs it: every `matches()` on the linear-time RE2 engine (re2js) instead
 * of JavaScript's backtracking `RegExp`, and every evaluation bounded by a step limit.
 *
 * cel-js (`@marcbachmann/cel-js`) neither lets a function be overridden (`string.matches` is
 * built in, and a second overload "overlaps") nor offers a step or cost limit. So:
 *
 * - **matches()**: each parsed expression is rewritten before it is type-checked: a call
 *   `x.matches(p)` becomes a function of ours on re2js. A pattern written as a literal is
 *   compiled when the expression is loaded and kept (RE2 syntax; backreferences and
 *   lookaround are refused with a {@link PatternProblem}); a pattern that comes from a
 *   variable is compiled at run time, through a small cache, within tighter bounds (length,
 *   an estimate of its program made before compiling it, distinct patterns per evaluation)
 *   and charged before it is compiled.
 * - **Steps**: cel-js evaluates every node through its evaluator's `run` method (comprehension
 *   steps included). The evaluator of each environment is reached once, through a probe
 *   function (handlers are called with it as `this`), and its `run` counts: one step per node,
 *   one per 64 characters of a string result and per 16 elements of a list result (not of the
 *   list `map()` and `filter()` build, which costs one step per push), 100 per evaluation
 *   error; operations whose work grows with their operands are charged by them before they
 *   run (`==`, `!=`, `in`, `size()` of an object map, time-zone conversions, and `matches()`
 *   by its text and program: see {@link matchCost}). Past the limit every further step
 *   throws, the evaluation unwinds in a few steps, and {@link evaluateBounded} throws
 *   {@link EvaluationLimitExceeded}. If a cel-js release changes these internals, the
 *   self-test at start-up fails and every bounded evaluation is refused (fail closed) rather
 *   than run unbounded.
 * - **Input**: {@link prepareInput} bounds what reaches CEL and hands plain objects to it as
 *   `Map`s (cel-js enumerates an object's keys to type it, at every operation).
 *
 * A synchronous evaluation cannot be interrupted by a timer: the step limit is what bounds it
 * while it runs. The steward also measures its time and reports one that overran its latency
 * budget (a stalled process), without failing it — unless it overran it grossly
 * (`STEWARD_LIMITS.grossOverrunFactor` times), which fails closed.
 */
import { Environment } from "@marcbachmann/cel-js";
import { RE2JS } from "re2js";
import { EvaluationLimitExceeded } from "./errors";
import { STEWARD_LIMITS } from "./models";

/** The names `matches()` calls are rewritten to (functions on re2js): a pattern from a variable, a literal. */
const RE2_MATCHES = "matchesRe2";
const RE2_MATCHES_LITERAL = "matchesRe2Literal";
const PROBE = "__gov_probe";

/** Thrown inside cel-js to unwind an evaluation that ran out of steps; never escapes. */
class StepSignal extends Error {}
const STEP_SIGNAL = new StepSignal("the evaluation step limit was reached");

/**
 * The running evaluation's count: its steps and limit, the distinct patterns from variables it
 * has paid for, and why it stopped when the reason is not the step count.
 */
const meter = {
  steps: 0,
  limit: Number.POSITIVE_INFINITY,
  patterns: new Set<string>(),
  reason: null as string | null,
};

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

// Patterns. A pattern written as a literal is compiled when its expression is loaded and kept
// (never evicted by patterns from variables); one that comes from a variable is compiled at
// evaluation, through a small least-recently-used cache, and charged before it is compiled.
interface CompiledPattern {
  regex: RE2JS;
  /** Steps per 4 characters of text matched (see {@link matchCost}). */
  cost: number;
}
type PatternEntry = CompiledPattern | { problem: string };

/** Literal patterns kept after load (bounded: past it, a literal is compiled per use). */
const LITERAL_PATTERNS_KEPT = 10_000;
const literalPatterns = new Map<string, PatternEntry>();
const VARIABLE_PATTERN_CACHE_SIZE = 256;
const variablePatterns = new Map<string, PatternEntry>();

/**
 * The charge of compiling a pattern from a variable, in steps, before it is compiled:
 * {@link COMPILE_STEPS_PER_CHARACTER} per character (case-folded Unicode classes such as
 * `(?i)\pL` took up to ~120 µs per character to compile and prepare for matching, measured on
 * a loaded 2-core VM) plus {@link COMPILE_STEPS_PER_INSTRUCTION} per instruction of its
 * estimated program (a counted repetition such as `a{1000}` expands to about 1,000
 * instructions, ~4 µs each).
 */
const COMPILE_STEPS_PER_CHARACTER = 250;
const COMPILE_STEPS_PER_INSTRUCTION = 16;

/**
 * Steps per 4 characters of text a pattern of `size` instructions costs to match: one per 8
 * instructions, and for a program over 256 instructions, that times `size / 256`. re2js runs
 * a DFA that it builds while it reads the text, and falls back to an NFA; the worst work per
 * character grows with the program, and per instruction grows again with it for large
 * programs (measured on a loaded 2-core VM, worst texts: 28 ns per character per instruction
 * at 501 instructions, 52 at 1,002, 98 at 2,001 and 3,003; an ordinary pattern whose DFA holds,
 * 1–5 ns). One step is budgeted at 0.5 µs (2,000 per ms).
 */
function matchCost(size: number): number {
  return Math.ceil((size / 8) * Math.max(1, size / 256));
}
/** Steps for an evaluation error (an Error and its stack trace). */
const ERROR_STEPS = 100;
/** Steps for a time-zone conversion (`getHours("Europe/Paris")`: an ICU formatter, ~0.2 ms). */
const TIME_ZONE_STEPS = 500;

/** Why a pattern is refused, in words (the re2js message without its prefix), or it compiled. */
function compilePattern(pattern: string): PatternEntry {
  if (pattern.length > STEWARD_LIMITS.patternLength) {
    return {
      problem: `is ${pattern.length} characters long; the limit is ${STEWARD_LIMITS.patternLength}`,
    };
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
    return { problem: `is not RE2 syntax: ${reason}${hint}` };
  }
  const size = regex.programSize();
  if (size > STEWARD_LIMITS.patternProgramSize) {
    return {
      problem: `compiles to a program of ${size} instructions; the limit is ${STEWARD_LIMITS.patternProgramSize}`,
    };
  }
  // Prepare the matcher now (re2js builds its DFA's character classes on the first match:
  // tens of milliseconds for case-folded Unicode classes), not during an evaluation.
  regex.test("");
  return { regex, cost: matchCost(size) };
}

/** A pattern written as a literal: compiled at load and kept. */
function literalPattern(pattern: string): PatternEntry {
  let entry = literalPatterns.get(pattern);
  if (entry === undefined) {
    entry = compilePattern(pattern);
    if (literalPatterns.size < LITERAL_PATTERNS_KEPT) literalPatterns.set(pattern, entry);
  }
  return entry;
}

/**
 * A pattern from a variable: refused past its length limit or when its program would be too
 * large (estimated before compiling, so that a pattern such as `a{1000}` repeated cannot make
 * the compiler run for long), charged once per distinct pattern per evaluation — whether or
 * not it is cached, so that the same input always costs the same — then compiled through the
 * cache.
 */
function variablePattern(pattern: string): PatternEntry {
  if (pattern.length > STEWARD_LIMITS.variablePatternLength) {
    return {
      problem: `comes from a variable and is ${pattern.length} characters long; the limit for a pattern from a variable is ${STEWARD_LIMITS.variablePatternLength}`,
    };
  }
  const estimate = estimateProgramSize(pattern);
  if (estimate > STEWARD_LIMITS.patternProgramSize) {
    return {
      problem: `would compile to a program of about ${estimate} instructions; the limit is ${STEWARD_LIMITS.patternProgramSize}`,
    };
  }
  if (!meter.patterns.has(pattern)) {
    if (meter.patterns.size >= STEWARD_LIMITS.variablePatternsPerEvaluation) {
      meter.reason = `it used more than ${STEWARD_LIMITS.variablePatternsPerEvaluation} distinct matches() patterns from variables`;
      throw STEP_SIGNAL;
    }
    meter.patterns.add(pattern);
    meter.steps +=
      pattern.length * COMPILE_STEPS_PER_CHARACTER + estimate * COMPILE_STEPS_PER_INSTRUCTION;
    if (meter.steps > meter.limit) throw STEP_SIGNAL;
  }
  const literal = literalPatterns.get(pattern);
  if (literal !== undefined) return literal;
  let entry = variablePatterns.get(pattern);
  if (entry) {
    variablePatterns.delete(pattern);
  } else {
    entry = compilePattern(pattern);
    if (variablePatterns.size >= VARIABLE_PATTERN_CACHE_SIZE) {
      const oldest = variablePatterns.keys().next().value;
      if (oldest !== undefined) variablePatterns.delete(oldest);
    }
  }
  variablePatterns.set(pattern, entry);
  return entry;
}

/**
 * An upper bound of the instructions a pattern compiles to, read from its text without
 * compiling it: one per character, class or escape; a group or an alternation adds one; a
 * quantifier adds one; a counted repetition `{n,m}` multiplies its operand by `m + 1` (by
 * `n + 1` for `{n}` and `{n,}`). Over-estimates (RE2 merges classes and literals), never
 * under-estimates what RE2 expands.
 */
export function estimateProgramSize(pattern: string): number {
  let index = 0;
  const length = pattern.length;
  // A sequence of terms, up to `)` or the end; alternatives add up.
  const alternation = (): number => {
    let total = 0;
    let branch = 0;
    while (index < length) {
      const char = pattern[index];
      if (char === ")") break;
      if (char === "|") {
        index++;
        total += branch + 1;
        branch = 0;
        continue;
      }
      let atom = term();
      atom = quantified(atom);
      branch += atom;
    }
    return total + branch;
  };
  const term = (): number => {
    const char = pattern[index++];
    if (char === "\\") {
      const next = pattern[index++];
      if (next === "Q") {
        const end = pattern.indexOf("\\E", index);
        const stop = end < 0 ? length : end;
        const count = stop - index;
        index = end < 0 ? length : end + 2;
        return Math.max(count, 1);
      }
      if ((next === "p" || next === "P" || next === "x") && pattern[index] === "{") {
        const end = pattern.indexOf("}", index);
        index = end < 0 ? length : end + 1;
      } else if (next === "p" || next === "P") {
        index++;
      }
      return 1;
    }
    if (char === "[") {
      // A class is one instruction: skip to its closing bracket (a leading `]` or `^]` is
      // literal; `[:alpha:]` and escapes are inside it).
      if (pattern[index] === "^") index++;
      if (pattern[index] === "]") index++;
      while (index < length && pattern[index] !== "]") {
        if (pattern[index] === "\\") index += 2;
        else if (pattern[index] === "[" && pattern[index + 1] === ":") {
          const end = pattern.indexOf(":]", index + 2);
          index = end < 0 ? index + 1 : end + 2;
        } else index++;
      }
      index++;
      return 1;
    }
    if (char === "(") {
      if (pattern[index] === "?") {
        // Flags `(?i)` (no operand) or a group `(?i:…)`, `(?P<name>…)`, `(?<name>…)`.
        let cursor = index + 1;
        while (cursor < length && pattern[cursor] !== ")" && pattern[cursor] !== ":") {
          if (pattern[cursor] === ">") break;
          cursor++;
        }
        if (pattern[cursor] === ")") {
          index = cursor + 1;
          return 0;
        }
        index = cursor + 1;
      }
      const inner = alternation();
      index++; // the closing parenthesis
      return inner + 2;
    }
    return 1;
  };
  const quantified = (operand: number): number => {
    let size = operand;
    for (;;) {
      const char = pattern[index];
      if (char === "*" || char === "+" || char === "?") {
        index++;
        size = 2 * size + 1;
      } else if (char === "{") {
        const match = /^\{(\d+)(?:(,)(\d*))?\}/.exec(pattern.slice(index, index + 16));
        if (!match) return size;
        index += match[0].length;
        const low = Number(match[1]);
        const high = match[3] ? Number(match[3]) : low;
        size = (Math.max(low, high) + 1) * (size + 1);
      } else return size;
      if (pattern[index] === "?") index++; // non-greedy
    }
  };
  let total = 0;
  while (index < length) {
    total += alternation();
    if (index < length) index++; // an unbalanced `)`: RE2 refuses it; keep counting
  }
  return total + 2;
}

function preview(pattern: string): string {
  return JSON.stringify(pattern.length > 80 ? `${pattern.slice(0, 80)}…` : pattern);
}

/**
 * `text.matches(pattern)` on re2js: an unanchored search, as CEL specifies. Charged per 4
 * characters of text (at least one) by the size of the program (see {@link matchCost}).
 */
function re2Matches(text: string, entry: PatternEntry, pattern: string): boolean {
  if ("problem" in entry) {
    // Charged like an evaluation error (its stack trace is the cost).
    meter.steps += ERROR_STEPS;
    if (meter.steps > meter.limit) throw STEP_SIGNAL;
    throw new Error(`matches(): the pattern ${preview(pattern)} ${entry.problem}.`);
  }
  meter.steps += Math.ceil(Math.max(text.length, 1) / 4) * entry.cost;
  if (meter.steps > meter.limit) throw STEP_SIGNAL;
  return entry.regex.test(text);
}

// Operand-size charges. The step of a node is charged before it runs; operations whose work
// grows with their operands are charged by them, before they run, through their node's handler.

/** Containers whose weight (values under them, all levels) is known: inputs, once prepared. */
const weights = new WeakMap<object, number>();

/** The values under a container, all levels (0 for a primitive): what a deep comparison walks. */
function weightOf(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  const known = weights.get(value);
  if (known !== undefined) return known;
  let total = 0;
  if (Array.isArray(value) || value instanceof Set) {
    for (const item of value) total += 1 + weightOf(item);
  } else if (value instanceof Map) {
    for (const [key, item] of value) total += 1 + weightOf(key) + weightOf(item);
  } else if (ArrayBuffer.isView(value)) {
    total = value.byteLength;
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      total += 1 + weightOf((value as Record<string, unknown>)[key]);
    }
  } else total = 1;
  if (total >= 64) weights.set(value, total);
  return total;
}

/** Charge `work` units of a built-in's work (one step per 16), before it runs. */
function charge(work: number): void {
  if (work >= 16) {
    meter.steps += work >>> 4;
    if (meter.steps > meter.limit) throw STEP_SIGNAL;
  }
}

type BinaryHandle = (left: unknown, right: unknown, ast: unknown, evaluator: unknown) => unknown;
type CallHandle = (values: unknown[], second: unknown, third: unknown) => unknown;
const CHARGED = Symbol("gov.steward.charged");
const chargedBinary = new WeakMap<BinaryHandle, BinaryHandle>();
const chargedSize = new WeakMap<CallHandle, CallHandle>();

/**
 * `==`, `!=` and `in`: a comparison of containers walks both (cel-js compares deeply); `x in
 * list` with a container `x` compares it with every element; `in` on an object map (a map
 * literal) enumerates its keys to find its type. Membership of a primitive in a list is
 * charged by the list's own result (one step per 16 elements); in a `Map`, it is one lookup.
 */
function binaryHandle(original: BinaryHandle): BinaryHandle {
  let wrapped = chargedBinary.get(original);
  if (!wrapped) {
    wrapped = Object.assign(
      (left: unknown, right: unknown, ast: unknown, evaluator: unknown) => {
        if ((ast as AstNode).op === "in") {
          if (Array.isArray(right) || right instanceof Set) {
            if (typeof left === "object" && left !== null) charge(weightOf(right));
          } else if (typeof right === "object" && right !== null && !(right instanceof Map)) {
            charge(weightOf(right));
          }
        } else if (
          left !== right && // the same container is equal to itself at once
          ((typeof left === "object" && left !== null) ||
            (typeof right === "object" && right !== null))
        ) {
          charge(weightOf(left) + weightOf(right));
        }
        return original(left, right, ast, evaluator);
      },
      { [CHARGED]: true },
    );
    chargedBinary.set(original, wrapped);
  }
  return wrapped;
}

/** `size()`: a `Map`, list or string knows its size; an object map counts its keys. */
function sizeHandle(original: CallHandle): CallHandle {
  let wrapped = chargedSize.get(original);
  if (!wrapped) {
    wrapped = Object.assign(
      (values: unknown[], second: unknown, third: unknown) => {
        const [operand] = values;
        if (typeof operand === "object" && operand !== null && isPlainObject(operand)) {
          charge(weightOf(operand));
        }
        return original(values, second, third);
      },
      { [CHARGED]: true },
    );
    chargedSize.set(original, wrapped);
  }
  return wrapped;
}

/** The timestamp methods that convert to a time zone when given one (an ICU call each). */
const TIME_ZONE_METHODS = new Set([
  "getDate",
  "getDayOfMonth",
  "getDayOfWeek",
  "getDayOfYear",
  "getFullYear",
  "getHours",
  "getMilliseconds",
  "getMinutes",
  "getMonth",
  "getSeconds",
]);

/** Charge a node's operations by their operands (see {@link binaryHandle}). */
function chargeOperations(ast: AstNode & { handle?: unknown }): void {
  const op = ast.op;
  if (op === "==" || op === "!=" || op === "in") {
    const handle = ast.handle as (BinaryHandle & { [CHARGED]?: true }) | undefined;
    if (typeof handle === "function" && handle[CHARGED] !== true) {
      ast.handle = binaryHandle(handle);
    }
    return;
  }
  const args = ast.args as unknown[];
  const name = args[0];
  if (name === "size") {
    const handle = ast.handle as (CallHandle & { [CHARGED]?: true }) | undefined;
    if (typeof handle === "function" && handle[CHARGED] !== true) ast.handle = sizeHandle(handle);
  } else if (
    op === "rcall" &&
    typeof name === "string" &&
    TIME_ZONE_METHODS.has(name) &&
    (args[2] as unknown[] | undefined)?.length === 1
  ) {
    meter.steps += TIME_ZONE_STEPS;
  }
}

/** The evaluators whose `run` counts steps (one per environment). */
let installed = true;

function instrument(environment: Environment): Environment {
  let evaluator: Evaluator | null = null;
  environment
    // A handler object per overload: cel-js caches a call wrapper on the handler, and the
    // receiver and global forms wrap it differently.
    .registerFunction(`string.${RE2_MATCHES}(string): bool`, (text: string, pattern: string) =>
      re2Matches(text, variablePattern(pattern), pattern),
    )
    .registerFunction(`${RE2_MATCHES}(string, string): bool`, (text: string, pattern: string) =>
      re2Matches(text, variablePattern(pattern), pattern),
    )
    .registerFunction(
      `string.${RE2_MATCHES_LITERAL}(string): bool`,
      (text: string, pattern: string) => re2Matches(text, literalPattern(pattern), pattern),
    )
    .registerFunction(
      `${RE2_MATCHES_LITERAL}(string, string): bool`,
      (text: string, pattern: string) => re2Matches(text, literalPattern(pattern), pattern),
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
    switch (ast.op) {
      case "==":
      case "!=":
      case "in":
      case "call":
      case "rcall":
        chargeOperations(ast);
    }
    const value = (
      ast as unknown as { evaluate(ev: Evaluator, node: AstNode, ctx: unknown): unknown }
    ).evaluate(this, ast, context);
    if (typeof value === "string") {
      if (value.length >= 64) meter.steps += value.length >>> 6;
    } else if (
      Array.isArray(value) &&
      value.length >= 16 &&
      // The list map() and filter() build is pushed to once per element (one step each), not
      // charged by its length on every push (that was quadratic).
      value !== (context as { accuValue?: unknown } | null)?.accuValue
    ) {
      meter.steps += value.length >>> 4;
    }
    return value;
  };
  found.createError = function (this: unknown, ...args: unknown[]) {
    meter.steps += ERROR_STEPS;
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
            // A literal: compiled now and kept, so that evaluations never compile it again.
            args[0] = RE2_MATCHES_LITERAL;
            const compiled = literalPattern(pattern);
            if ("problem" in compiled) problems.push({ pattern, problem: compiled.problem });
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
  const saved = { ...meter };
  meter.steps = 0;
  meter.limit = maxSteps;
  meter.patterns = saved.patterns.size === 0 ? saved.patterns : new Set();
  meter.reason = null;
  let reason: string | null = null;
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
    reason = meter.reason;
    meter.patterns.clear();
    Object.assign(meter, saved);
  }
  // An exhausted evaluation has no answer, whatever it yielded on the way (an `||` may have
  // swallowed the signal).
  if (reason !== null) throw new EvaluationLimitExceeded(maxSteps, reason);
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
 * The bounds of a tier-0 evaluation that fail it closed: its step limit, its input, or a
 * gross overrun of its latency budget by the clock (`time`: more than
 * `STEWARD_LIMITS.grossOverrunFactor` times the budget; see {@link evaluateWithinBudget}).
 */
export type EvaluationBound = "steps" | "input" | "time";

/**
 * Evaluate a tier-0 expression within its bounds: the input within the static limits
 * (`inputProblem`, computed once per evaluation) and the steps of its budget — both
 * deterministic, so that the same input always gets the same answer. The time it took,
 * measured from `startedAt` (default: now), is returned as `overranMs` when it exceeded the
 * budget: a synchronous evaluation cannot be interrupted, and a small wall-clock overrun
 * within the step limit is a stalled process (garbage collection, a starved CPU), not the
 * input's doing — failing it closed would block legitimate actions at random under load.
 * Callers report it. A gross overrun — more than `STEWARD_LIMITS.grossOverrunFactor` (10)
 * times the budget — fails closed (`exceeded`, bound `time`): no stall that large is benign
 * enough to trust the answer, and it caps whatever the step model misses.
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
  if (outcome.kind === "exceeded" || elapsed <= budgetMs) return outcome;
  if (elapsed > budgetMs * STEWARD_LIMITS.grossOverrunFactor) {
    return {
      kind: "exceeded",
      bound: "time",
      reason: `it took ${Math.round(elapsed)} ms by the clock, more than ${STEWARD_LIMITS.grossOverrunFactor} times its latency budget of ${budgetMs} ms`,
      endedAt: outcome.endedAt,
      overranMs: elapsed,
    };
  }
  outcome.overranMs = elapsed;
  return outcome;
}

/**
 * What {@link evaluateWithinBudget} found; `endedAt` is `performance.now()` when it returned
 * (the start of the next evaluation, so that a loop reads the clock once per evaluation), and
 * `overranMs` the measured time when it was over the latency budget (reported; enforced only
 * past the gross-overrun factor, as bound `time`).
 */
export type BudgetedOutcome =
  | { kind: "value"; value: unknown; endedAt: number; overranMs?: number }
  | { kind: "error"; error: string; endedAt: number; overranMs?: number }
  | {
      kind: "exceeded";
      bound: EvaluationBound;
      reason: string;
      endedAt: number;
      /** The measured time, for a gross overrun (bound `time`). */
      overranMs?: number;
    };

/** The first line of what was thrown (`TypeError: …`), however it prints. */
export function firstLineOf(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  } catch {
    text = "an error that cannot be printed";
  }
  return text.split("\n")[0] ?? text;
}

/** Steps allowed for a latency budget: {@link STEWARD_LIMITS}.evaluationStepsPerMs per ms. */
export function stepsFor(latencyBudgetMs: number): number {
  return Math.max(1, Math.floor(latencyBudgetMs * STEWARD_LIMITS.evaluationStepsPerMs));
}

/** Whether a value is a plain object (a JSON object, or one without a prototype). */
function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** What {@link prepareInput} returns: the bound broken (or null) and the values CEL reads. */
export interface PreparedInput {
  /** The static bound the input breaks, or why it could not be read; null when neither. */
  problem: string | null;
  /** The roots as CEL reads them (see {@link prepareInput}); the originals when `problem` is set. */
  values: unknown[];
  /**
   * Set when reading the input threw (a getter, a revoked `Proxy`, a `Proxy` trap): which root
   * (its index in `roots`) and the error's first line. `problem` says so too, so that a caller
   * that only checks `problem` fails closed.
   */
  unreadable?: { root: number; reason: string };
}

/**
 * Check what reaches CEL against its static bounds, and prepare it for a bounded evaluation.
 *
 * The bounds: at most `STEWARD_LIMITS.evaluationInputValues` values (strings, numbers, list
 * elements, map entries, counted through every level) and `evaluationInputDepth` levels of
 * nesting.
 *
 * The preparation: every plain object (a JSON object) becomes a `Map` of its own enumerable
 * properties, and every `Set` a list, copied (the originals are not changed). cel-js finds the
 * type of an object map by enumerating its keys, so that `key in map`, `size(map)` and a
 * map's equality cost as much as the map is large — uncharged, at every step; on a `Map` a
 * membership test is one lookup and `size()` is read. CEL sees the same values: a map from
 * string keys, field access (`args.a.b`), `has()`, `in`, `size()`, iteration in the same key
 * order, equality with map literals. (A key named `constructor` no longer hides an object
 * map's type either.) The number of values under each container is recorded, so that a deep
 * comparison is charged by what it walks.
 */
export function prepareInput(roots: readonly unknown[]): PreparedInput {
  const maxValues = STEWARD_LIMITS.evaluationInputValues;
  const maxDepth = STEWARD_LIMITS.evaluationInputDepth;
  let count = 0;
  let problem: string | null = null;
  const converted = new Map<object, unknown>();
  // Containers being converted: a cycle back to one of them adds no weight (a comparison
  // that follows a cycle overflows the stack and errors, which fails the condition closed).
  const open = new Set<unknown>();
  const weightIn = (value: unknown): number => (open.has(value) ? 0 : weightOf(value));
  // Returns the value as CEL reads it, and records the weight of a container.
  const visit = (value: unknown, depth: number): unknown => {
    if (++count > maxValues) {
      problem ??= `the input holds more than ${maxValues} values`;
      return value;
    }
    if (typeof value !== "object" || value === null) return value;
    if (depth >= maxDepth) {
      problem ??= `the input is nested deeper than ${maxDepth} levels`;
      return value;
    }
    const done = converted.get(value);
    if (done !== undefined || converted.has(value)) return done;
    if (ArrayBuffer.isView(value)) {
      count += Math.floor(value.byteLength / 64);
      converted.set(value, value);
      return value;
    }
    let out: unknown;
    let weight = 0;
    if (Array.isArray(value) || value instanceof Set) {
      const list: unknown[] = [];
      converted.set(value, list);
      open.add(list);
      let changed = value instanceof Set;
      for (const item of value) {
        const next = visit(item, depth + 1);
        if (problem !== null) return value;
        if (next !== item) changed = true;
        weight += 1 + weightIn(next);
        list.push(next);
      }
      open.delete(list);
      out = changed ? list : value;
    } else if (value instanceof Map || isPlainObject(value)) {
      const map = new Map<unknown, unknown>();
      converted.set(value, map);
      open.add(map);
      const entries: Iterable<[unknown, unknown]> =
        value instanceof Map ? value : Object.entries(value);
      for (const [key, item] of entries) {
        const nextKey = value instanceof Map ? visit(key, depth + 1) : key;
        const next = visit(item, depth + 1);
        if (problem !== null) return value;
        weight += 1 + weightIn(nextKey) + weightIn(next);
        map.set(nextKey, next);
      }
      open.delete(map);
      out = map;
    } else {
      // A class instance (a Date, a Duration, …): counted, passed as it is (CEL reads it as its
      // registered type, or refuses it).
      converted.set(value, value);
      for (const item of Object.values(value)) {
        visit(item, depth + 1);
        if (problem !== null) return value;
      }
      return value;
    }
    converted.set(value, out);
    if (typeof out === "object" && out !== null) weights.set(out, weight);
    return out;
  };
  let root = 0;
  try {
    const values: unknown[] = [];
    for (; root < roots.length; root++) values.push(visit(roots[root], 0));
    return problem === null ? { problem, values } : { problem, values: [...roots] };
  } catch (error) {
    // A getter, a revoked Proxy or a Proxy trap threw while the input was read.
    const reason = firstLineOf(error).slice(0, 200);
    return {
      problem: `the input could not be read (${reason})`,
      values: [...roots],
      unreadable: { root, reason },
    };
  }
}

/**
 * Whether a value is within the static bounds of what reaches CEL (see {@link prepareInput}):
 * the bound it breaks, or null.
 */
export function inputBoundProblem(roots: readonly unknown[]): string | null {
  return prepareInput(roots).problem;
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
