/**
 * Validation of the cost module's arguments: each refuses with an `InvalidArgumentError`
 * naming the field, the limit and the fix, before anything is checked or written.
 */
import { checkId, InvalidArgumentError, isUuid, parseOptions, typeOf } from "@gov/core";
import { z } from "zod";
import { BUDGET_LIMITS } from "./budget-policy";
import { COST_LIMITS, modelIdProblem, type TokenCounts } from "./models";
import { decimalToUnits, FEMTO_DIGITS, isDecimalProblem } from "./money";
import type { PriceBreakdown } from "./price-table";
import type { NormalizedUsageInput } from "./usage";

/** Check an agent and a session id (core's one id rule); a session id may not name an agent's chain. */
export function checkIds(agentId: unknown, sessionId: unknown): void {
  checkId(agentId, "agentId", { max: BUDGET_LIMITS.agentId });
  if (checkId(sessionId, "sessionId", { max: BUDGET_LIMITS.sessionId }).startsWith("agent:")) {
    throw new InvalidArgumentError(
      "sessionId",
      'must not start with "agent:", which names the audit chain of an agent\'s events outside sessions.',
      "Use a session id of your own, e.g. a UUID.",
    );
  }
}

export function checkTokens(field: string, value: unknown, zeroAllowed: boolean): number {
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    value < (zeroAllowed ? 0 : 1) ||
    value > COST_LIMITS.tokens
  ) {
    throw new InvalidArgumentError(
      field,
      typeof value === "number" && value < 0
        ? `must not be negative, got ${value}${field === "tokens" ? "; counters only grow" : ""}.`
        : `must be a whole number from ${zeroAllowed ? 0 : 1} to ${COST_LIMITS.tokens}, got ${typeof value === "number" ? value : typeOf(value)}.`,
      `Pass ${field} as a whole number of tokens.`,
    );
  }
  return value;
}

export function checkUsd(field: string, value: unknown): bigint {
  if (typeof value !== "number" && typeof value !== "string") {
    throw new InvalidArgumentError(
      field,
      `must be a number or a decimal string of USD, got ${typeOf(value)}.`,
      `Pass ${field} as USD, e.g. 0.003 or "0.003".`,
    );
  }
  const units = decimalToUnits(value, FEMTO_DIGITS);
  if (isDecimalProblem(units)) {
    throw new InvalidArgumentError(
      field,
      `${units.problem}${String(value).trim().startsWith("-") ? " Counters only grow." : ""}`,
      `Pass ${field} as a non-negative amount of USD with at most 15 decimal places.`,
    );
  }
  if (units > BigInt(BUDGET_LIMITS.usd) * 10n ** BigInt(FEMTO_DIGITS)) {
    throw new InvalidArgumentError(
      field,
      `is ${value} USD; the limit is ${BUDGET_LIMITS.usd}.`,
      `Pass a smaller ${field}.`,
    );
  }
  return units;
}

export function checkModel(field: string, value: unknown): string {
  const problem = modelIdProblem(value);
  if (problem)
    throw new InvalidArgumentError(
      field,
      problem,
      'Pass the model id as the provider names it, e.g. "gpt-4o".',
    );
  return value as string;
}

export function checkReservationId(value: unknown, required: boolean): string | null {
  if (value === undefined || value === null) {
    if (!required) return null;
    throw new InvalidArgumentError(
      "reservationId",
      "is required.",
      "Pass the reservationId that checkOrRaise returned.",
    );
  }
  if (typeof value !== "string" || !isUuid(value.toLowerCase())) {
    throw new InvalidArgumentError(
      "reservationId",
      `must be a reservation id (a UUID), got ${typeof value === "string" ? JSON.stringify(value.slice(0, 64)) : typeOf(value)}.`,
      "Pass the reservationId that checkOrRaise returned.",
    );
  }
  return value.toLowerCase();
}

/** How core's `parseOptions` reads one method's per-call options: its keys and its fixes. */
export interface CallOptions {
  readonly schema: z.ZodType<Record<string, unknown>>;
  readonly fixes: Readonly<Record<string, string>>;
}

/**
 * The per-call options of a method, for {@link readCallOptions}: the keys it knows (each
 * value is checked by the method itself, naming the key: `tokens`, `usd`) and how to fix a
 * non-object (`example`, a call). Built once per method.
 */
export function callOptions(keys: readonly string[], example: string): CallOptions {
  return {
    schema: z.strictObject(Object.fromEntries(keys.map((key) => [key, z.unknown().optional()]))),
    fixes: { "": `Pass an object literal, e.g. ${example}.` },
  };
}

/**
 * Read a call's options with core's `parseOptions`: refused when not a plain object (a `Map`,
 * a class instance or an object whose fields come from its prototype is not read as it looks)
 * or missing, an unknown key refused with a "did you mean" (`options.reservation_id`, escaped
 * and cut), a getter or proxy that throws reported ("could not be read"). Returns a plain copy
 * of the options — each read once here — for the method to check and use.
 *
 * @throws {InvalidArgumentError} `INVALID_ARGUMENT`
 */
export function readCallOptions<T extends object>(reader: CallOptions, options: T): T {
  return parseOptions(reader.schema, options, { required: true, fixes: reader.fixes }) as T;
}

const COUNT_FIELDS = [
  "inputTokens",
  "outputTokens",
  "cachedInputTokens",
  "cacheWriteTokens",
  "reasoningTokens",
] as const;

/** Each token count given must be a whole number of tokens: `null` is not 0. */
export function checkCounts(counts: TokenCounts): void {
  for (const field of COUNT_FIELDS) {
    if (counts[field] !== undefined) checkTokens(field, counts[field], true);
  }
}

export function hasCounts(counts: TokenCounts): boolean {
  return (
    counts.inputTokens !== undefined ||
    counts.outputTokens !== undefined ||
    counts.cachedInputTokens !== undefined ||
    counts.cacheWriteTokens !== undefined ||
    counts.reasoningTokens !== undefined
  );
}

export function countsOf(counts: TokenCounts): NormalizedUsageInput {
  return {
    format: "tokens",
    inputTokens: counts.inputTokens ?? 0,
    outputTokens: counts.outputTokens ?? 0,
    cachedInputTokens: counts.cachedInputTokens ?? 0,
    cacheWriteTokens: counts.cacheWriteTokens ?? 0,
    reasoningTokens: counts.reasoningTokens ?? 0,
  };
}

export function exactFemto(breakdown: PriceBreakdown): bigint {
  return decimalToUnits(breakdown.exactUsd.total, FEMTO_DIGITS) as bigint;
}
