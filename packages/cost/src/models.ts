import { z } from "zod";
import { decimalToUnits, isDecimalProblem, RATE_DIGITS } from "./money";

/** Limits of the price and usage inputs; a value beyond them is refused with the limit named. */
export const COST_LIMITS = {
  /** Characters of a model id. */
  modelId: 256,
  /** USD per million tokens, for any rate (and for the fallback rate). */
  usdPerMillion: 100_000,
  /** Tokens in one count of one call. */
  tokens: 10_000_000_000,
  /** Aliases of one price entry. */
  aliases: 32,
  /** Entries in one imported price file (LiteLLM's has a few thousand). */
  importEntries: 100_000,
  /** Characters of a source, asOf or note text. */
  text: 1_000,
} as const;

/** Control characters, whitespace and bidi overrides: never part of a model id. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const NOT_IN_ID = /[\s\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** False when the string holds half of a character (a lone surrogate), which Postgres refuses. */
export function isWellFormed(value: string): boolean {
  return (value as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Why a model id is refused, or null when it is fine. */
export function modelIdProblem(value: unknown): string | null {
  if (typeof value !== "string") return `must be a string, got ${typeOf(value)}.`;
  if (value.length === 0) return "must not be empty.";
  if (value.length > COST_LIMITS.modelId) {
    return `is ${value.length} characters long; the limit is ${COST_LIMITS.modelId}.`;
  }
  if (NOT_IN_ID.test(value) || !isWellFormed(value)) {
    return "must not contain whitespace, control or bidirectional-override characters, or half of a character (a lone surrogate).";
  }
  return null;
}

/** A rate as given: USD per million tokens, a number or a decimal string (`2.5`, `"0.075"`). */
export type RateInput = number | string;

/**
 * A rate in USD per million tokens, read exactly into femto-dollars per token. Numbers are
 * read through their shortest round-trip form, so `0.075` is exactly 0.075.
 */
export const rateSchema = z
  .union([z.number(), z.string()], {
    error: (issue) =>
      `must be a number or a decimal string of USD per million tokens, got ${typeOf(issue.input)}.`,
  })
  .transform((value, context) => {
    const units = decimalToUnits(value, RATE_DIGITS);
    if (isDecimalProblem(units)) {
      context.issues.push({ code: "custom", message: units.problem, input: value });
      return z.NEVER;
    }
    if (units > BigInt(COST_LIMITS.usdPerMillion) * 10n ** BigInt(RATE_DIGITS)) {
      context.issues.push({
        code: "too_big",
        origin: "number",
        maximum: COST_LIMITS.usdPerMillion,
        message: `is ${value} USD per million tokens; the limit is ${COST_LIMITS.usdPerMillion}.`,
        input: value,
      });
      return z.NEVER;
    }
    return units;
  });

const optionalRate = rateSchema.nullable().default(null);

const text = z
  .string({ error: (issue) => `must be a string, got ${typeOf(issue.input)}.` })
  .max(COST_LIMITS.text, { error: `is longer than ${COST_LIMITS.text} characters.` });

/**
 * The zod schema of a price: rates in USD per million tokens. `null` (or leaving a rate
 * out) means the provider has no separate rate for that kind of token, which is then billed
 * at its base rate: cached input and cache writes at `inputUsdPerMillion`, reasoning at
 * `outputUsdPerMillion`. Unknown keys are refused, so that a typo is not silently ignored.
 */
export const priceInputSchema = z.strictObject({
  inputUsdPerMillion: rateSchema,
  outputUsdPerMillion: rateSchema,
  cachedInputUsdPerMillion: optionalRate,
  cacheWriteUsdPerMillion: optionalRate,
  reasoningUsdPerMillion: optionalRate,
  provider: text.nullable().default(null),
  source: text.nullable().default(null),
  asOf: text.nullable().default(null),
  note: text.nullable().default(null),
  aliases: z
    .array(z.string({ error: (issue) => `must be a string, got ${typeOf(issue.input)}.` }), {
      error: (issue) => `must be an array of model ids, got ${typeOf(issue.input)}.`,
    })
    .max(COST_LIMITS.aliases, { error: `has more than ${COST_LIMITS.aliases} entries.` })
    .default([]),
});

/** What {@link PriceTable.set} accepts. Rates are in USD per million tokens. */
export interface PriceInput {
  /** Input tokens that were neither read from nor written to a cache. */
  inputUsdPerMillion: RateInput;
  /** Output tokens (visible output; reasoning too unless `reasoningUsdPerMillion` is set). */
  outputUsdPerMillion: RateInput;
  /** Input tokens read from a prompt cache. @default null (billed at the input rate) */
  cachedInputUsdPerMillion?: RateInput | null;
  /** Input tokens written to a prompt cache. @default null (billed at the input rate) */
  cacheWriteUsdPerMillion?: RateInput | null;
  /** Reasoning (thinking) tokens. @default null (billed at the output rate) */
  reasoningUsdPerMillion?: RateInput | null;
  /** Who sells the model at this price, e.g. `openai`. @default null */
  provider?: string | null;
  /** Where the price comes from (a URL). @default null */
  source?: string | null;
  /** When the price was read from its source (`YYYY-MM-DD`). @default null */
  asOf?: string | null;
  /** Anything a reader of the price should know. @default null */
  note?: string | null;
  /** Other ids that are exactly this model at this price (e.g. a host's name for it). @default [] */
  aliases?: readonly string[];
}

/** Rates a {@link PriceTable.override} may change; the rest are kept. */
export type PriceOverride = Partial<PriceInput>;

/** The zod schema of the options of `priceUsage`. */
export const pricingOptionsSchema = z.strictObject({
  strict: z
    .boolean({ error: (issue) => `must be true or false, got ${typeOf(issue.input)}.` })
    .default(true),
  fallbackUsdPerMillion: rateSchema.nullable().default(null),
});

/** Options of {@link priceUsage}. */
export interface PricingOptions {
  /**
   * Refuse to price a model that has no price (`UnknownModelError`). With `false` (lax,
   * observe-only), an unknown model is priced at `fallbackUsdPerMillion`, which is then
   * required. @default true
   */
  strict?: boolean;
  /**
   * The rate, in USD per million tokens, for every token (input, cached, cache-write,
   * output, reasoning) of a model that has no price, in lax mode. Must be positive. Ignored
   * in strict mode. @default null
   */
  fallbackUsdPerMillion?: RateInput | null;
}

/** `"a string"`, `"null"`, `"an array"`, `"a Map"`, … for messages. */
export function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return "a string";
  if (typeof value === "number") return Number.isFinite(value) ? "a number" : String(value);
  if (typeof value === "object" && !isPlainObject(value)) {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)
      ?.constructor?.name;
    return typeof name === "string" && name !== "Object" && name !== ""
      ? `a ${name}`
      : "an object with a prototype";
  }
  return typeof value;
}

/**
 * True for `{ … }` (and `Object.create(null)`): an object whose fields are its own
 * enumerable keys. A `Map`, a class instance or an object that inherits fields is not — what
 * `Object.keys` shows of it is not what reading its fields gives.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** `a.b[2].c` from a zod path. */
export function fieldName(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const part of path)
    out += typeof part === "number" ? `[${part}]` : `${out ? "." : ""}${String(part)}`;
  return out || "value";
}

/** The value at a zod issue's path in the input (undefined when it is missing). */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const part of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}
