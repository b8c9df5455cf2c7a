import { describeValue, hasControlCharacters, typeOf } from "@gov/core";
import { z } from "zod";
import { decimalToUnits, isDecimalProblem, RATE_DIGITS } from "./money";
import type { PriceBreakdown } from "./price-table";
import type { ProviderUsage } from "./usage";

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

/** White space: never part of a model id (nor are control characters and bidi overrides). */
const WHITE_SPACE = /\s/;

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
  if (WHITE_SPACE.test(value) || hasControlCharacters(value) || !isWellFormed(value)) {
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
      `must be a number or a decimal string of USD per million tokens, got ${describeValue(issue.input)}.`,
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

/** What `checkOrRaise` is told about the call it checks. */
export interface CheckOptions {
  /** The model that will be called: prices the projection (required to project USD). */
  model?: string;
  /** Input tokens the call will send, if known (priced at the input rate). @default 0 */
  inputTokens?: number;
  /** The call's `max_tokens`: output tokens projected (priced at the higher of the output and reasoning rates). @default defaultMaxTokens */
  maxTokens?: number;
  /**
   * The completions the call asks for (OpenAI's `n`, whole, 1 to 1000): the output tokens
   * (`maxTokens`, or `defaultMaxTokens`) are projected once per completion. @default 1
   */
  choices?: number;
  /** Total tokens to project instead (input + output); overrides `maxTokens` and `choices`. */
  projectedTokens?: number;
  /** USD to project instead of pricing the tokens (a number or a decimal string). */
  projectedUsd?: number | string;
}

/**
 * What a passed check reserved. Pass `reservationId` to `trackUsage` / `reconcile` to settle
 * exactly this reservation (otherwise the session's oldest open reservation is settled).
 */
export interface BudgetReservation {
  /** The reservation, or null when nothing was reserved (nothing projected, no policy, fail-open). */
  readonly reservationId: string | null;
  readonly agentId: string;
  readonly sessionId: string;
  /** Tokens reserved. */
  readonly tokens: number;
  /** USD reserved. */
  readonly usd: number;
  /** USD reserved, exact. */
  readonly exactUsd: string;
  /** The UTC day the reservation counts against. */
  readonly day: string;
  /** True when the store could not be read and `failOpen` let the call through unchecked. */
  readonly failOpen: boolean;
  /** True when the agent has no registered policy (nothing was checked). */
  readonly unbudgeted: boolean;
}

/** What `track`, `trackUsage` and `reconcile` did. */
export interface UsageReceipt {
  /** The usage record's id (the same on every retry). */
  readonly usageId: string;
  /** True when it was recorded now; false when it was already recorded (idempotent) or is queued. */
  readonly recorded: boolean;
  /** True when the store was unreachable and the record waits in memory for a retry. */
  readonly queued: boolean;
  /** The reservation it settled, if any. */
  readonly reservationId: string | null;
  readonly tokens: number;
  readonly usd: number;
  readonly exactUsd: string;
  /** The priced parts (trackUsage, reconcile). */
  readonly breakdown: PriceBreakdown | null;
}

/** Options of `CostModule.track`. */
export interface TrackSpendOptions {
  /** Tokens used (whole, ≥ 0). */
  tokens: number;
  /** USD spent (≥ 0; a number or a decimal string). */
  usd: number | string;
  /** The model, for `modelBreakdown`. */
  model?: string | null;
  /**
   * The reservation this usage settles (from `checkOrRaise`). Leave it out to settle the
   * session's oldest open reservation; `null` settles none.
   */
  reservationId?: string | null;
}

/** Token counts as `trackUsage` takes them when no provider `usage` object is given. */
export interface TokenCounts {
  inputTokens?: number;
  outputTokens?: number;
  cachedInputTokens?: number;
  cacheWriteTokens?: number;
  reasoningTokens?: number;
}

/** Options of `CostModule.trackUsage`. */
export interface TrackUsageOptions extends TokenCounts {
  /** The model id, priced from the price table. */
  model: string;
  /**
   * The usage object as the library returned it — OpenAI (Chat Completions, Responses),
   * Anthropic, the Vercel AI SDK (4, 5, 6), LangChain's `usage_metadata`, the OpenAI Agents
   * SDK's `Usage`: cached, cache-write and reasoning tokens are each priced at their own rate
   * (see `normalizeUsage` for how each library counts them). Without it, the token counts are used.
   */
  usage?: ProviderUsage | null;
  /**
   * The reservation this usage settles (from `checkOrRaise`). Leave it out to settle the
   * session's oldest open reservation; `null` (a check that reserved nothing) settles none.
   */
  reservationId?: string | null;
}

/** Options of `CostModule.reconcile`. */
export interface ReconcileOptions extends TokenCounts {
  /** The reservation of the stream (from `checkOrRaise`); reconcile is idempotent per reservation. */
  reservationId: string;
  /** The model of the stream. */
  model: string;
  /** The final usage object, when the stream delivered one (any shape `trackUsage` reads). */
  usage?: ProviderUsage | null;
  /**
   * Chunks received, when the stream ended without usage (cancelled, failed, abandoned):
   * output is estimated conservatively at 8 tokens per chunk.
   */
  chunks?: number;
  /** Why the stream ended: `completed`, `cancelled`, `error`, `abandoned`, … (≤ 64 characters). */
  reason: string;
}

/** Usage and remaining budget of one agent and session (amounts in USD and tokens). */
export interface BudgetSnapshot {
  readonly agentId: string;
  readonly sessionId: string;
  /** The UTC day of the daily figures. */
  readonly day: string;
  readonly sessionUsdUsed: number;
  readonly sessionTokensUsed: number;
  /** Reserved by checks whose calls have not reported yet. */
  readonly sessionUsdReserved: number;
  readonly sessionTokensReserved: number;
  readonly agentDailyUsdUsed: number;
  readonly agentDailyTokensUsed: number;
  readonly agentDailyUsdReserved: number;
  readonly agentDailyTokensReserved: number;
  /** Seconds since the session started (database clock); null before its first check or usage. */
  readonly sessionSeconds: number | null;
  /** Limit − used − reserved (never below 0) per cap; null where the policy sets no cap. */
  readonly sessionUsdRemaining: number | null;
  readonly sessionTokensRemaining: number | null;
  readonly agentDailyUsdRemaining: number | null;
  readonly agentDailyTokensRemaining: number | null;
  readonly sessionSecondsRemaining: number | null;
  /** True when the store could not be read: the figures are zeros, not the truth. */
  readonly degraded: boolean;
}

/** Counters of what the module did since it started. */
export interface CostMetrics {
  checks: number;
  passed: number;
  exceeded: number;
  /** Refused checks that waited for this process's usage records in flight and checked again. */
  rechecks: number;
  /** Budget leases opened (`lease` option): one round trip that holds the budget of several calls. */
  leasesOpened: number;
  /** Checks admitted in a lease: the one that opened it, and those admitted without a round trip. */
  leaseAdmissions: number;
  checkFailures: number;
  failOpenPasses: number;
  usageRecorded: number;
  usageDuplicates: number;
  usageQueued: number;
  usageDropped: number;
  backlog: number;
  reservationsExpired: number;
  alertsSent: number;
  alertsFailed: number;
}
