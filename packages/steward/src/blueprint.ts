import { readFile } from "node:fs/promises";
import { canonicalJsonHash } from "@gov/core";
import type { Environment } from "@marcbachmann/cel-js";
import { CORE_SCHEMA, load as loadYaml, YAMLException } from "js-yaml";
import type { z } from "zod";
import { createBoundedEnvironment, evaluateBounded, parseBounded, stepsFor } from "./cel";
import { PolicyError } from "./errors";
import {
  type BlueprintCheck,
  type BlueprintDocument,
  type BlueprintScope,
  type BlueprintTripwire,
  blueprintSchema,
  DEFAULT_SCORING,
  DEFAULT_TRUST_DEBT,
  type EvidenceRequirements,
  type Hook,
  type ScoringThresholds,
  STEWARD_LIMITS,
  type TrustDebtConfig,
} from "./models";

/**
 * A compiled CEL expression: returns whatever the expression yields, or throws. It runs
 * within `maxSteps` evaluation steps (default: those of the tier-0 latency budget, 100,000)
 * and throws `EvaluationLimitExceeded` past them; its `matches()` runs on RE2.
 */
export type CompiledExpression = (context: Record<string, unknown>, maxSteps?: number) => unknown;

/** A tripwire with its condition compiled. */
export interface CompiledTripwire extends BlueprintTripwire {
  readonly evaluateCondition: CompiledExpression;
  /**
   * Its latency budget: `latencyBudgetMs`, else `STEWARD_LIMITS.tier0LatencyBudgetMs` (50).
   * The evaluation gets 2,000 steps per millisecond of it; a measured time over it is
   * reported, not enforced.
   */
  readonly budgetMs: number;
  readonly hook: Hook;
  /** The tools it is limited to, or null for every tool. */
  readonly tools: ReadonlySet<string> | null;
}

/** A check with its rule compiled (when it has one). */
export interface CompiledCheck extends BlueprintCheck {
  readonly evaluateRule: CompiledExpression | null;
}

/**
 * A blueprint ready to evaluate: inheritance resolved, defaults applied, every CEL
 * expression compiled and type-checked, and its content hash computed.
 */
export interface CompiledBlueprint {
  readonly id: string;
  readonly version: string;
  readonly description: string | undefined;
  /** The chain of blueprints it inherits from, nearest first. */
  readonly lineage: readonly string[];
  readonly scope: BlueprintScope | undefined;
  readonly tripwires: readonly CompiledTripwire[];
  readonly checks: readonly CompiledCheck[];
  readonly evidence: EvidenceRequirements | undefined;
  readonly scoring: ScoringThresholds;
  readonly trustDebt: TrustDebtConfig;
  /** Whether any tripwire reads `state`. */
  readonly requiresState: boolean;
  /** SHA-256 (hex) of the resolved document's canonical JSON. */
  readonly hash: string;
  /** The resolved document (inheritance merged). */
  readonly document: BlueprintDocument;
}

function pathOf(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

function idOf(input: unknown): string | null {
  if (typeof input === "object" && input !== null && "id" in input) {
    const id = (input as { id: unknown }).id;
    if (typeof id === "string" && id.length <= STEWARD_LIMITS.idLength) return id;
  }
  return null;
}

function fixFor(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "unrecognized_keys":
      return `Remove ${issue.keys.map((key) => `"${key}"`).join(", ")}, or check the spelling against BLUEPRINTS.md.`;
    case "invalid_type":
      return `Give a value of type ${issue.expected}.`;
    case "invalid_value":
      return `Use one of: ${issue.values.map((value) => JSON.stringify(value)).join(", ")}.`;
    case "too_big":
      return `Use at most ${String(issue.maximum)}.`;
    case "too_small":
      return `Use at least ${String(issue.minimum)}.`;
    default:
      return "Correct the field as described in BLUEPRINTS.md.";
  }
}

/**
 * Validate a blueprint document (a plain object) without resolving inheritance or compiling.
 *
 * @throws {PolicyError} naming the first bad field's path and the problem.
 */
export function validateBlueprint(input: unknown): BlueprintDocument {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new PolicyError(
      "",
      `must be a mapping (an object), got ${input === null ? "null" : Array.isArray(input) ? "a list" : typeof input}.`,
      "Write the blueprint as a YAML mapping with id, version and tripwires.",
    );
  }
  const parsed = blueprintSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (!issue) throw new PolicyError("", "is invalid.", "See BLUEPRINTS.md.", idOf(input));
    throw new PolicyError(pathOf(issue.path), issue.message, fixFor(issue), idOf(input));
  }
  const document = parsed.data;
  const version = document.id.slice(document.id.lastIndexOf("@") + 1);
  if (version !== document.version) {
    throw new PolicyError(
      "version",
      `is "${document.version}" but the id "${document.id}" says "${version}".`,
      "Make the part of the id after @ equal to version.",
      document.id,
    );
  }
  for (const [field, list] of [
    ["tripwires", document.tripwires],
    ["checks", document.checks],
  ] as const) {
    const seen = new Set<string>();
    for (const [index, item] of list.entries()) {
      if (seen.has(item.id)) {
        throw new PolicyError(
          `${field}[${index}].id`,
          `"${item.id}" is used twice.`,
          `Give each of the ${field} its own id.`,
          document.id,
        );
      }
      seen.add(item.id);
    }
  }
  return document;
}

/**
 * Parse a blueprint from YAML text and validate it.
 *
 * @throws {PolicyError} for malformed YAML (with line and column) or a bad field.
 */
export function parseBlueprintYaml(text: string, source = "YAML"): BlueprintDocument {
  let value: unknown;
  try {
    // The YAML 1.2 core schema: strings, numbers, booleans and null — no timestamps or tags.
    value = loadYaml(text, { schema: CORE_SCHEMA, filename: source });
  } catch (error) {
    const mark = error instanceof YAMLException ? error.mark : undefined;
    const where = mark ? ` at line ${mark.line + 1}, column ${mark.column + 1}` : "";
    const reason =
      error instanceof YAMLException
        ? error.reason
        : error instanceof Error
          ? error.message
          : String(error);
    throw new PolicyError(
      "",
      `${source} is not valid YAML${where}: ${reason}`,
      "Fix the YAML syntax (indentation, quotes around CEL expressions with ':' or '#').",
    );
  }
  // Aliases are shared, not copied, by the parser: a document that repeats them (a "billion
  // laughs") would only blow up when walked. Walk it once, bounded, before anything else does.
  if (nodeCount(value, MAX_YAML_NODES) > MAX_YAML_NODES) {
    throw new PolicyError(
      "",
      `${source} has more than ${MAX_YAML_NODES} values once its aliases are expanded.`,
      "Write the blueprint out without repeated aliases; a blueprint of a few hundred tripwires is far below the limit.",
    );
  }
  return validateBlueprint(value);
}

/** Values a blueprint document may hold, aliases expanded. */
const MAX_YAML_NODES = 200_000;

/** The values in a parsed document, counting each visit of a shared one; stops past `limit`. */
function nodeCount(root: unknown, limit: number): number {
  let count = 0;
  const stack: unknown[] = [root];
  while (stack.length > 0 && count <= limit) {
    const value = stack.pop();
    count++;
    if (Array.isArray(value)) {
      for (const item of value) stack.push(item);
    } else if (typeof value === "object" && value !== null) {
      for (const item of Object.values(value)) stack.push(item);
    }
  }
  return count;
}

/** Read a blueprint YAML file and validate it. @throws {PolicyError} */
export async function readBlueprintFile(path: string): Promise<BlueprintDocument> {
  if (typeof path !== "string" || path.length === 0) {
    throw new PolicyError(
      "path",
      `must be a file path, got ${path === null ? "null" : typeof path}.`,
      "Pass the path of a blueprint YAML file.",
    );
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new PolicyError(
      "",
      `the file ${path} could not be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`,
      "Pass the path of a readable blueprint YAML file.",
    );
  }
  return parseBlueprintYaml(text, path);
}

/** Mixed int/double arithmetic: trace numbers are doubles, literals like `500` are ints. */
export function mixedArithmetic(environment: Environment): Environment {
  const apply = (operator: string, a: number, b: number): number => {
    switch (operator) {
      case "+":
        return a + b;
      case "-":
        return a - b;
      case "*":
        return a * b;
      default:
        return a / b;
    }
  };
  for (const operator of ["+", "-", "*", "/"]) {
    environment.registerOperator(`double ${operator} int`, (a: number, b: bigint) =>
      apply(operator, a, Number(b)),
    );
    environment.registerOperator(`int ${operator} double`, (a: bigint, b: number) =>
      apply(operator, Number(a), b),
    );
  }
  return environment;
}

function baseEnvironment(): Environment {
  return mixedArithmetic(
    createBoundedEnvironment()
      .registerVariable("action", "string")
      .registerVariable("args", "map")
      .registerVariable("parameters", "map")
      .registerVariable("reasoning", "string")
      .registerVariable("confidence", "dyn")
      .registerVariable("agent", "map")
      .registerVariable("context", "map"),
  );
}

const STATELESS = baseEnvironment();
const STATEFUL = baseEnvironment().registerVariable("state", "map");

/**
 * Compile a CEL expression once: parse, then type-check against the steward's variables.
 * `matches()` runs on RE2 (linear time): a literal pattern RE2 refuses (a backreference,
 * lookaround, over 1,024 characters) is refused here.
 *
 * @throws {PolicyError} naming `path` for a syntax error, an unknown variable, a type error or
 *   a `matches()` pattern RE2 refuses.
 */
export function compileExpression(
  expression: string,
  path: string,
  options: { stateful: boolean; blueprintId?: string | null },
): CompiledExpression {
  const environment = options.stateful ? STATEFUL : STATELESS;
  let compiled: ReturnType<Environment["parse"]>;
  let patternProblems: ReturnType<typeof parseBounded>["patternProblems"];
  try {
    ({ parsed: compiled, patternProblems } = parseBounded(environment, expression));
  } catch (error) {
    throw new PolicyError(
      path,
      `is not valid CEL: ${firstLine(error)}`,
      "Fix the expression (CEL syntax: &&, ||, !, ==, in, has(), size()).",
      options.blueprintId ?? null,
    );
  }
  refusePatterns(patternProblems, path, options.blueprintId ?? null);
  const checked = compiled.check();
  if (!checked.valid) {
    const message = firstLine(checked.error);
    const usesState = !options.stateful && /\bstate\b/.test(expression);
    throw new PolicyError(
      path,
      `does not type-check: ${message}`,
      usesState
        ? "Set requiresState: true on this tripwire to read state."
        : "Use only the variables action, args, parameters, reasoning, confidence, agent, context (and state with requiresState), and compatible types.",
      options.blueprintId ?? null,
    );
  }
  if (checked.type !== "bool" && checked.type !== "dyn") {
    throw new PolicyError(
      path,
      `yields ${checked.type}, not bool.`,
      "Write a condition that is true or false.",
      options.blueprintId ?? null,
    );
  }
  return boundedExpression(compiled);
}

const DEFAULT_STEPS = stepsFor(STEWARD_LIMITS.tier0LatencyBudgetMs);

/** The bounded form of a parsed expression (see {@link CompiledExpression}). */
export function boundedExpression(
  parsed: (context: Record<string, unknown>) => unknown,
): CompiledExpression {
  return (context, maxSteps = DEFAULT_STEPS) => evaluateBounded(parsed, context, maxSteps);
}

/** @throws {PolicyError} for the first literal `matches()` pattern that RE2 refuses. */
export function refusePatterns(
  problems: readonly { pattern: string; problem: string }[],
  path: string,
  blueprintId: string | null,
  subject?: string,
): void {
  const [first] = problems;
  if (!first) return;
  const shown = first.pattern.length > 80 ? `${first.pattern.slice(0, 80)}…` : first.pattern;
  throw new PolicyError(
    path,
    `has a matches() pattern ${JSON.stringify(shown)} that ${first.problem}.`,
    "matches() uses RE2 syntax, matched in linear time: rewrite the pattern without backreferences (\\1) or lookaround ((?=…), (?!…), (?<=…), (?<!…)), within 1,024 characters; see BLUEPRINTS.md.",
    blueprintId,
    subject,
  );
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0] ?? message;
}

/** Looks up a parent blueprint by id while resolving `inherits`. */
export type BlueprintLookup = (id: string) => BlueprintDocument | undefined;

function mergeById<T extends { id: string }>(parent: readonly T[], child: readonly T[]): T[] {
  const merged = new Map<string, T>();
  for (const item of parent) merged.set(item.id, item);
  for (const item of child) merged.set(item.id, item);
  return [...merged.values()];
}

/**
 * Resolve `inherits`: the parent's tripwires and checks, overridden by id by the child's;
 * `scope`, `evidence`, `scoring` and `trustDebt`, when the child has them, replace the
 * parent's section as a whole; `description` is the child's.
 *
 * @throws {PolicyError} for a missing parent, a cycle, or a chain deeper than 16.
 */
export function resolveInheritance(
  document: BlueprintDocument,
  lookup: BlueprintLookup,
): { document: BlueprintDocument; lineage: string[] } {
  const chain: BlueprintDocument[] = [document];
  const seen = new Set([document.id]);
  let current = document;
  while (current.inherits !== undefined) {
    const parentId: string = current.inherits;
    if (seen.has(parentId)) {
      throw new PolicyError(
        "inherits",
        `forms a cycle: ${[...chain.map((item) => item.id), parentId].join(" → ")}.`,
        "Remove one of the inherits links so that the chain ends.",
        document.id,
      );
    }
    const parent = lookup(parentId);
    if (!parent) {
      throw new PolicyError(
        "inherits",
        `names "${parentId}", which is not loaded${current === document ? "" : ` (inherited by "${current.id}")`}.`,
        "Load the parent blueprint too (same list, directory or registry), or fix the id.",
        document.id,
      );
    }
    if (chain.length >= STEWARD_LIMITS.inheritanceDepth) {
      throw new PolicyError(
        "inherits",
        `chain is deeper than ${STEWARD_LIMITS.inheritanceDepth}.`,
        "Flatten the inheritance chain.",
        document.id,
      );
    }
    seen.add(parentId);
    chain.push(parent);
    current = parent;
  }
  let merged: BlueprintDocument | undefined;
  for (const item of chain.reverse()) {
    if (!merged) {
      merged = { ...item };
      continue;
    }
    merged = {
      ...item,
      scope: item.scope ?? merged.scope,
      tripwires: mergeById(merged.tripwires, item.tripwires),
      checks: mergeById(merged.checks, item.checks),
      evidence: item.evidence ?? merged.evidence,
      scoring: item.scoring ?? merged.scoring,
      trustDebt: item.trustDebt ?? merged.trustDebt,
    };
  }
  const lineage = chain
    .reverse()
    .slice(1)
    .map((item) => item.id);
  return { document: { ...(merged as BlueprintDocument), id: document.id }, lineage };
}

/**
 * Compile a resolved document: every condition and rule parsed and type-checked once.
 *
 * @throws {PolicyError} naming the path of the first bad expression.
 */
export function compileBlueprint(
  document: BlueprintDocument,
  lineage: readonly string[] = [],
): CompiledBlueprint {
  const tripwires = document.tripwires.map((tripwire, index): CompiledTripwire => {
    const tool = tripwire.when.tool;
    return {
      ...tripwire,
      budgetMs: tripwire.latencyBudgetMs ?? STEWARD_LIMITS.tier0LatencyBudgetMs,
      hook: tripwire.when.hook,
      tools: tool === undefined ? null : new Set(typeof tool === "string" ? [tool] : tool),
      evaluateCondition: compileExpression(tripwire.condition, `tripwires[${index}].condition`, {
        stateful: tripwire.requiresState,
        blueprintId: document.id,
      }),
    };
  });
  const checks = document.checks.map(
    (check, index): CompiledCheck => ({
      ...check,
      evaluateRule:
        check.passes === undefined
          ? null
          : compileExpression(check.passes, `checks[${index}].passes`, {
              stateful: false,
              blueprintId: document.id,
            }),
    }),
  );
  return Object.freeze({
    id: document.id,
    version: document.version,
    description: document.description,
    lineage: Object.freeze([...lineage]),
    scope: document.scope,
    tripwires: Object.freeze(tripwires),
    checks: Object.freeze(checks),
    evidence: document.evidence,
    scoring: document.scoring ?? DEFAULT_SCORING,
    trustDebt: document.trustDebt ?? DEFAULT_TRUST_DEBT,
    requiresState: tripwires.some((tripwire) => tripwire.requiresState),
    hash: canonicalJsonHash(document, "blueprint"),
    document,
  });
}

/**
 * Validate, resolve and compile a set of blueprint documents (parents may be in the set).
 *
 * @example
 * ```ts
 * const [trading] = loadBlueprints([baseDoc, tradingDoc]).filter((b) => b.id === "trading@1.0");
 * ```
 * @throws {PolicyError}
 */
export function loadBlueprints(
  inputs: readonly unknown[],
  extraParents: BlueprintLookup = () => undefined,
): CompiledBlueprint[] {
  const documents = inputs.map((input) => validateBlueprint(input));
  const byId = new Map<string, BlueprintDocument>();
  for (const document of documents) {
    if (byId.has(document.id)) {
      throw new PolicyError(
        "id",
        `"${document.id}" is loaded twice.`,
        "Give each blueprint version its own id.",
        document.id,
      );
    }
    byId.set(document.id, document);
  }
  const lookup: BlueprintLookup = (id) => byId.get(id) ?? extraParents(id);
  return documents.map((document) => {
    const { document: resolved, lineage } = resolveInheritance(document, lookup);
    return compileBlueprint(resolved, lineage);
  });
}

/**
 * How specific a blueprint's scope is for a trace: -1 when it does not apply, otherwise a
 * score where a matching agent id (4) outranks a matching tier (2), which outranks a
 * matching tool (1). A scope field that is absent applies to everything and scores 0.
 */
export function scopeSpecificity(
  scope: BlueprintScope | undefined,
  agentId: string,
  agentTier: string,
  action: string,
): number {
  if (!scope) return 0;
  let score = 0;
  if (scope.agentIds) {
    if (!scope.agentIds.includes(agentId)) return -1;
    score += 4;
  }
  if (scope.agentTiers) {
    if (!scope.agentTiers.includes(agentTier)) return -1;
    score += 2;
  }
  if (scope.tools) {
    if (!scope.tools.includes(action)) return -1;
    score += 1;
  }
  return score;
}
