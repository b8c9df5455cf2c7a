import { ConfigError, InvalidArgumentError, parseOptions, typeOf } from "@gov/core";
import { z } from "zod";
import { InvalidPriceError, UnknownModelError } from "./errors";
import { type LiteLLMImportOptions, type LiteLLMImportResult, readLiteLLM } from "./litellm";
import {
  COST_LIMITS,
  fieldName,
  modelIdProblem,
  type PriceInput,
  type PriceOverride,
  type PricingOptions,
  priceInputSchema,
  pricingOptionsSchema,
  valueAt,
} from "./models";
import { femtoToUsd, rateToUsdPerMillion } from "./money";
import bundled from "./prices.json" with { type: "json" };
import { type NormalizedUsage, normalizeUsage, type ProviderUsage } from "./usage";

/** A price as the table holds it. Rates are exact decimal strings of USD per million tokens. */
export interface ModelPrice {
  /** The entry's model id (lower case). */
  readonly model: string;
  readonly inputUsdPerMillion: string;
  readonly outputUsdPerMillion: string;
  /** null: no separate rate; cached input is billed at the input rate. */
  readonly cachedInputUsdPerMillion: string | null;
  /** null: no separate rate; cache writes are billed at the input rate. */
  readonly cacheWriteUsdPerMillion: string | null;
  /** null: no separate rate; reasoning is billed at the output rate. */
  readonly reasoningUsdPerMillion: string | null;
  readonly provider: string | null;
  readonly source: string | null;
  readonly asOf: string | null;
  readonly note: string | null;
  readonly aliases: readonly string[];
}

/** How {@link PriceTable.lookup} found a price. */
export interface PriceMatch {
  /** The model id that was looked up, as given. */
  readonly model: string;
  /** `exact`: the id (or an alias) is in the table; `prefix`: the id is an entry plus a date or version suffix. */
  readonly match: "exact" | "prefix";
  /** The price that applies. */
  readonly price: ModelPrice;
}

/** The rates applied to one call, each non-null (base rates filled in). USD per million tokens. */
export interface AppliedRates {
  readonly inputUsdPerMillion: string;
  readonly cachedInputUsdPerMillion: string;
  readonly cacheWriteUsdPerMillion: string;
  readonly outputUsdPerMillion: string;
  readonly reasoningUsdPerMillion: string;
}

/** The amounts of a {@link PriceBreakdown} as exact decimal USD strings. */
export interface ExactAmounts {
  readonly input: string;
  readonly cachedInput: string;
  readonly cacheWrite: string;
  readonly output: string;
  readonly reasoning: string;
  readonly total: string;
}

/**
 * What one call cost, part by part. Amounts are computed exactly (integer femto-dollars);
 * the `*Usd` numbers are those exact amounts rounded once to the nearest double, and
 * `exactUsd` holds them as exact decimal strings.
 */
export interface PriceBreakdown {
  /** The model id, as given. */
  readonly model: string;
  /** The price entry that applied, or null when the fallback rate did. */
  readonly matched: string | null;
  /** How the price was found. */
  readonly match: "exact" | "prefix" | "fallback";
  /** The rates applied. */
  readonly rates: AppliedRates;
  /** The disjoint token counts that were priced. */
  readonly tokens: NormalizedUsage;
  readonly inputUsd: number;
  readonly cachedInputUsd: number;
  readonly cacheWriteUsd: number;
  readonly outputUsd: number;
  readonly reasoningUsd: number;
  readonly totalUsd: number;
  readonly exactUsd: ExactAmounts;
}

/** The zod form of {@link PriceTableOptions}. */
const TABLE_OPTIONS = z.strictObject({ defaults: z.boolean().optional() });

/** Options of the {@link PriceTable} constructor. */
export interface PriceTableOptions {
  /** Start with the bundled price list (`prices.json`); `false` starts empty. @default true */
  defaults?: boolean;
}

interface Entry {
  readonly input: bigint;
  readonly output: bigint;
  readonly cachedInput: bigint | null;
  readonly cacheWrite: bigint | null;
  readonly reasoning: bigint | null;
  readonly price: ModelPrice;
}

/** A remainder segment that does not change the price: a date, snapshot number, `latest`, or a `v2` / `v1:0` version. */
const VERSION_SEGMENT = /^(?:\d{2,8}|v\d+(?::\d+)?|latest)$/;
const SEPARATOR = /[-@]/;

function isVersionSuffix(remainder: string): boolean {
  const segments = remainder.split(SEPARATOR);
  // The remainder starts with a separator, so the first segment is empty.
  return segments.length > 1 && segments.slice(1).every((part) => VERSION_SEGMENT.test(part));
}

function checkModelId(field: string, model: unknown): string {
  const problem = modelIdProblem(model);
  if (problem) {
    throw new InvalidArgumentError(
      field,
      problem,
      `Pass the model id as the provider names it, e.g. "gpt-4o" or "claude-sonnet-4-6" (1–${COST_LIMITS.modelId} characters, no whitespace).`,
    );
  }
  return model as string;
}

const PRICE_FIX =
  "Pass { inputUsdPerMillion, outputUsdPerMillion } and optionally cachedInputUsdPerMillion, cacheWriteUsdPerMillion, reasoningUsdPerMillion (USD per million tokens, numbers or decimal strings, 0–100000, or null for no separate rate), provider, source, asOf, note and aliases.";

function toEntry(model: string, input: unknown, prefix = ""): Entry {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new InvalidPriceError(
      prefix || "price",
      `must be an object, got ${typeOf(input)}.`,
      PRICE_FIX,
    );
  }
  const result = priceInputSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    if (issue?.code === "unrecognized_keys") {
      throw new InvalidPriceError(
        fieldName(prefix, [...issue.path, issue.keys[0] ?? ""]),
        "is not a price field.",
        PRICE_FIX,
      );
    }
    const limit = issue?.code === "too_big" ? Number(issue.maximum) : undefined;
    const message =
      issue?.code === "invalid_type" && valueAt(input, issue.path) === undefined
        ? "is required."
        : (issue?.message ?? "is invalid.");
    throw new InvalidPriceError(fieldName(prefix, issue?.path ?? []), message, PRICE_FIX, limit);
  }
  const data = result.data;
  const aliases = data.aliases.map((alias, index) => {
    const problem = modelIdProblem(alias);
    if (problem)
      throw new InvalidPriceError(fieldName(prefix, ["aliases", index]), problem, PRICE_FIX);
    return alias.toLowerCase();
  });
  const decimal = (units: bigint | null) => (units === null ? null : rateToUsdPerMillion(units));
  return {
    input: data.inputUsdPerMillion,
    output: data.outputUsdPerMillion,
    cachedInput: data.cachedInputUsdPerMillion,
    cacheWrite: data.cacheWriteUsdPerMillion,
    reasoning: data.reasoningUsdPerMillion,
    price: Object.freeze({
      model,
      inputUsdPerMillion: rateToUsdPerMillion(data.inputUsdPerMillion),
      outputUsdPerMillion: rateToUsdPerMillion(data.outputUsdPerMillion),
      cachedInputUsdPerMillion: decimal(data.cachedInputUsdPerMillion),
      cacheWriteUsdPerMillion: decimal(data.cacheWriteUsdPerMillion),
      reasoningUsdPerMillion: decimal(data.reasoningUsdPerMillion),
      provider: data.provider,
      source: data.source,
      asOf: data.asOf,
      note: data.note,
      aliases: Object.freeze(aliases),
    }),
  };
}

/** The input a {@link ModelPrice} was made from, for merging in {@link PriceTable.override}. */
function toInput(price: ModelPrice): PriceInput {
  return {
    inputUsdPerMillion: price.inputUsdPerMillion,
    outputUsdPerMillion: price.outputUsdPerMillion,
    cachedInputUsdPerMillion: price.cachedInputUsdPerMillion,
    cacheWriteUsdPerMillion: price.cacheWriteUsdPerMillion,
    reasoningUsdPerMillion: price.reasoningUsdPerMillion,
    provider: price.provider,
    source: price.source,
    asOf: price.asOf,
    note: price.note,
    aliases: price.aliases,
  };
}

interface BundledProvider {
  provider: string;
  source: string;
  asOf: string;
  models: Record<string, Record<string, unknown>>;
}

let bundledEntries: ReadonlyMap<string, Entry> | undefined;

/** The bundled prices, validated once (a bad entry in `prices.json` is a defect that fails loudly). */
function defaults(): ReadonlyMap<string, Entry> {
  if (bundledEntries) return bundledEntries;
  const entries = new Map<string, Entry>();
  for (const group of (bundled as unknown as { providers: BundledProvider[] }).providers) {
    for (const [model, rates] of Object.entries(group.models)) {
      const id = checkModelId("prices.json model", model).toLowerCase();
      entries.set(
        id,
        toEntry(
          id,
          { provider: group.provider, source: group.source, asOf: group.asOf, ...rates },
          `prices.json ${model}`,
        ),
      );
    }
  }
  bundledEntries = entries;
  return entries;
}

/**
 * Prices of models in USD per million tokens, with the bundled list (`prices.json`) by
 * default, and the lookup rule of the README:
 *
 * 1. Ids are compared in lower case. The whole id is tried first, then — if it has a
 *    provider prefix such as `openai/` or `openrouter/anthropic/` — the part after the last `/`.
 * 2. For each, an exact entry or alias wins.
 * 3. Otherwise the longest entry that the id extends with **only** date, snapshot or version
 *    segments (`-2024-08-06`, `-20241022`, `-0613`, `-001`, `-latest`, `-v2`, `@20240620`):
 *    `gpt-4o-2024-08-06` is `gpt-4o`, but `gpt-4o-mini`, `gpt-5-pro` or `gpt-4o-audio-preview`
 *    are never priced as `gpt-4o` / `gpt-5` — a different model is unknown until priced.
 *
 * @example
 * ```ts
 * const prices = new PriceTable();
 * prices.set("my-finetune", { inputUsdPerMillion: 3, outputUsdPerMillion: 12 });
 * const cost = prices.priceUsage("gpt-4o-2024-08-06", response.usage);
 * cost.totalUsd; // 0.0125
 * ```
 */
export class PriceTable {
  readonly #entries = new Map<string, Entry>();
  readonly #aliases = new Map<string, string>();

  /** @throws {InvalidArgumentError} for options that are not `{ defaults?: boolean }`. */
  constructor(options: PriceTableOptions = {}) {
    const useDefaults =
      parseOptions(TABLE_OPTIONS, options, {
        fixes: {
          "": "Pass { defaults: true } (the bundled prices) or { defaults: false } (an empty table).",
          defaults: "Pass defaults: true to start with the bundled prices, false to start empty.",
        },
      }).defaults ?? true;
    if (useDefaults) for (const [id, entry] of defaults()) this.#put(id, entry);
  }

  /** Entries in the table (aliases not counted). */
  get size(): number {
    return this.#entries.size;
  }

  /** Every price in the table, sorted by model id. */
  list(): ModelPrice[] {
    return [...this.#entries.values()]
      .map((entry) => entry.price)
      .sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
  }

  /**
   * The price that applies to a model id, or null when there is none (see the class for the
   * rule).
   *
   * @example
   * ```ts
   * prices.lookup("claude-3-5-sonnet-20241022")?.price.model; // "claude-3-5-sonnet"
   * prices.lookup("gpt-4o-mini")?.price.model; // "gpt-4o-mini", never "gpt-4o"
   * ```
   * @throws {InvalidArgumentError} when `model` is not a 1–256 character id without whitespace.
   */
  lookup(model: string): PriceMatch | null {
    const found = this.#find(checkModelId("model", model));
    return found ? Object.freeze({ model, match: found.match, price: found.entry.price }) : null;
  }

  /**
   * Add a price, or replace the one for this exact id. Validated as a whole: on any
   * problem nothing changes. Returns the stored price.
   *
   * @example
   * ```ts
   * prices.set("claude-sonnet-4-6", {
   *   inputUsdPerMillion: 3, outputUsdPerMillion: 15,
   *   cachedInputUsdPerMillion: 0.3, cacheWriteUsdPerMillion: 3.75,
   * });
   * ```
   * @throws {InvalidArgumentError} for a bad model id; {@link InvalidPriceError} for bad rates.
   */
  set(model: string, price: PriceInput): ModelPrice {
    const id = checkModelId("model", model).toLowerCase();
    const entry = toEntry(id, price);
    this.#put(id, entry);
    return entry.price;
  }

  /**
   * Change some rates of the price that applies to `model` and store the result under
   * `model` itself: overriding `gpt-4o` changes every `gpt-4o-…` snapshot, overriding
   * `gpt-4o-2024-08-06` adds an exact entry for that snapshot only. Validated as a whole.
   *
   * @example
   * ```ts
   * prices.override("gpt-4o", { cachedInputUsdPerMillion: "1.25" });
   * ```
   * @throws {UnknownModelError} when no price applies to `model` (use {@link PriceTable.set}).
   */
  override(model: string, changes: PriceOverride): ModelPrice {
    const id = checkModelId("model", model).toLowerCase();
    if (typeof changes !== "object" || changes === null || Array.isArray(changes)) {
      throw new InvalidPriceError("price", `must be an object, got ${typeOf(changes)}.`, PRICE_FIX);
    }
    const found = this.#find(id);
    if (!found) throw new UnknownModelError(model);
    const base = toInput(found.entry.price);
    if (found.entry.price.model !== id) base.aliases = [];
    const entry = toEntry(id, { ...base, ...changes });
    this.#put(id, entry);
    return entry.price;
  }

  /**
   * Import prices in the format LiteLLM publishes (`model_prices_and_context_window.json`:
   * per model `input_cost_per_token`, `output_cost_per_token`, `cache_read_input_token_cost`,
   * `cache_creation_input_token_cost`, `output_cost_per_reasoning_token`, `litellm_provider`,
   * `mode`). Per-token costs are converted to per-million exactly. `sample_spec` and entries
   * whose `mode` is not `chat`, `completion` or `responses` are ignored; an entry with a
   * missing or bad cost is skipped as a whole and reported — never half-imported. Keys are
   * taken as they are (`gemini/gemini-2.5-pro` stays prefixed). Tiered rates (above 200K
   * tokens), audio, image and per-request costs are not read.
   *
   * @example
   * ```ts
   * const json = await (await fetch(LITELLM_PRICES_URL)).text();
   * const { imported, skipped } = prices.importLiteLLM(json);
   * ```
   * @throws {InvalidPriceError} when `json` is not a JSON object (nothing is imported).
   */
  importLiteLLM(json: unknown, options: LiteLLMImportOptions = {}): LiteLLMImportResult {
    const { ready, ignored, skipped } = readLiteLLM(json, options, {
      isPriced: (id) => this.#entries.has(id),
      toEntry,
    });
    for (const [id, entry] of ready) this.#put(id, entry);
    return Object.freeze({
      imported: Object.freeze(ready.map(([id]) => id)),
      ignored: Object.freeze(ignored),
      skipped: Object.freeze(skipped),
    });
  }

  /**
   * Price one call: each part of the usage at its own rate — input, cached input (or the
   * input rate where there is none), cache writes (or the input rate), output, and reasoning
   * (or the output rate). Exact: computed in integer femto-dollars.
   *
   * An unknown model throws {@link UnknownModelError} in strict mode (the default); in lax
   * mode (`strict: false`) every token is priced at `fallbackUsdPerMillion`, which lax mode
   * requires.
   *
   * @example
   * ```ts
   * const cost = prices.priceUsage("claude-sonnet-4-6", message.usage);
   * cost.cachedInputUsd; // cache reads at $0.30 / M
   * ```
   * @throws {UnknownModelError} (strict) · {@link InvalidUsageError} · `ConfigError` for lax
   *   mode without a positive fallback · `InvalidArgumentError` for a bad model id.
   */
  priceUsage(model: string, usage: ProviderUsage, options: PricingOptions = {}): PriceBreakdown {
    const settings = parsePricingOptions(options);
    checkModelId("model", model);
    const tokens = normalizeUsage(usage);
    const found = this.#find(model);
    if (found) {
      const { entry } = found;
      return breakdown(model, entry.price.model, found.match, tokens, {
        input: entry.input,
        cachedInput: entry.cachedInput ?? entry.input,
        cacheWrite: entry.cacheWrite ?? entry.input,
        output: entry.output,
        reasoning: entry.reasoning ?? entry.output,
      });
    }
    if (settings.strict || settings.fallback === null) throw new UnknownModelError(model);
    const rate = settings.fallback;
    return breakdown(model, null, "fallback", tokens, {
      input: rate,
      cachedInput: rate,
      cacheWrite: rate,
      output: rate,
      reasoning: rate,
    });
  }

  #put(id: string, entry: Entry): void {
    const previous = this.#entries.get(id);
    if (previous) {
      for (const alias of previous.price.aliases) {
        if (this.#aliases.get(alias) === id) this.#aliases.delete(alias);
      }
    }
    this.#entries.set(id, entry);
    for (const alias of entry.price.aliases) this.#aliases.set(alias, id);
  }

  #exact(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry) return entry;
    const target = this.#aliases.get(key);
    return target === undefined ? undefined : this.#entries.get(target);
  }

  #find(model: string): { entry: Entry; match: "exact" | "prefix" } | null {
    const key = model.toLowerCase();
    const slash = key.lastIndexOf("/");
    const candidates = slash >= 0 && slash < key.length - 1 ? [key, key.slice(slash + 1)] : [key];
    for (const candidate of candidates) {
      const exact = this.#exact(candidate);
      if (exact) return { entry: exact, match: "exact" };
      for (let index = candidate.length - 1; index > 0; index--) {
        if (!SEPARATOR.test(candidate.charAt(index))) continue;
        const entry = this.#exact(candidate.slice(0, index));
        if (entry && isVersionSuffix(candidate.slice(index))) return { entry, match: "prefix" };
      }
    }
    return null;
  }
}

interface Rates {
  input: bigint;
  cachedInput: bigint;
  cacheWrite: bigint;
  output: bigint;
  reasoning: bigint;
}

function breakdown(
  model: string,
  matched: string | null,
  match: PriceBreakdown["match"],
  tokens: NormalizedUsage,
  rates: Rates,
): PriceBreakdown {
  const input = BigInt(tokens.inputTokens) * rates.input;
  const cachedInput = BigInt(tokens.cachedInputTokens) * rates.cachedInput;
  const cacheWrite = BigInt(tokens.cacheWriteTokens) * rates.cacheWrite;
  const output = BigInt(tokens.outputTokens) * rates.output;
  const reasoning = BigInt(tokens.reasoningTokens) * rates.reasoning;
  const total = input + cachedInput + cacheWrite + output + reasoning;
  const exactUsd = Object.freeze({
    input: femtoToUsd(input),
    cachedInput: femtoToUsd(cachedInput),
    cacheWrite: femtoToUsd(cacheWrite),
    output: femtoToUsd(output),
    reasoning: femtoToUsd(reasoning),
    total: femtoToUsd(total),
  });
  return Object.freeze({
    model,
    matched,
    match,
    rates: Object.freeze({
      inputUsdPerMillion: rateToUsdPerMillion(rates.input),
      cachedInputUsdPerMillion: rateToUsdPerMillion(rates.cachedInput),
      cacheWriteUsdPerMillion: rateToUsdPerMillion(rates.cacheWrite),
      outputUsdPerMillion: rateToUsdPerMillion(rates.output),
      reasoningUsdPerMillion: rateToUsdPerMillion(rates.reasoning),
    }),
    tokens,
    inputUsd: Number(exactUsd.input),
    cachedInputUsd: Number(exactUsd.cachedInput),
    cacheWriteUsd: Number(exactUsd.cacheWrite),
    outputUsd: Number(exactUsd.output),
    reasoningUsd: Number(exactUsd.reasoning),
    totalUsd: Number(exactUsd.total),
    exactUsd,
  });
}

const OPTIONS_FIX = {
  strict:
    "Pass strict: true (the default: unknown models throw UnknownModelError) or strict: false with fallbackUsdPerMillion.",
  fallbackUsdPerMillion:
    "Pass fallbackUsdPerMillion as a positive number of USD per million tokens (at most 100000), e.g. 15, together with strict: false (GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION).",
} as const;

function parsePricingOptions(options: unknown): { strict: boolean; fallback: bigint | null } {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ConfigError([
      {
        source: "option",
        name: "options",
        problem: `must be an object, got ${typeOf(options)}.`,
        fix: "Pass { strict, fallbackUsdPerMillion } or nothing.",
      },
    ]);
  }
  const result = pricingOptionsSchema.safeParse(options);
  if (!result.success) {
    const issue = result.error.issues[0];
    const name =
      issue?.code === "unrecognized_keys"
        ? (issue.keys[0] ?? "options")
        : fieldName("", issue?.path ?? []);
    throw new ConfigError([
      {
        source: "option",
        name,
        problem:
          issue?.code === "unrecognized_keys"
            ? "is not a pricing option."
            : (issue?.message ?? "is invalid."),
        fix:
          name === "strict" || name === "fallbackUsdPerMillion"
            ? OPTIONS_FIX[name]
            : "The options are strict and fallbackUsdPerMillion.",
      },
    ]);
  }
  const { strict, fallbackUsdPerMillion } = result.data;
  if (!strict && (fallbackUsdPerMillion === null || fallbackUsdPerMillion === 0n)) {
    throw new ConfigError([
      {
        source: "option",
        name: "fallbackUsdPerMillion",
        problem:
          fallbackUsdPerMillion === null
            ? "is required when strict is false: lax mode prices unknown models at this rate, and without it they would count as $0."
            : "must be positive: a $0 fallback would let unknown models spend for free.",
        fix: OPTIONS_FIX.fallbackUsdPerMillion,
      },
    ]);
  }
  return { strict, fallback: fallbackUsdPerMillion };
}

const sharedTable = { current: undefined as PriceTable | undefined };

/**
 * Price one call with the bundled prices (or `options.table`). See
 * {@link PriceTable.priceUsage}.
 *
 * @example
 * ```ts
 * const cost = priceUsage("gpt-4o-mini", completion.usage);
 * const lax = priceUsage(model, usage, { strict: false, fallbackUsdPerMillion: 15 });
 * ```
 */
export function priceUsage(
  model: string,
  usage: ProviderUsage,
  options: PricingOptions & { table?: PriceTable } = {},
): PriceBreakdown {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    return new PriceTable({ defaults: false }).priceUsage(model, usage, options);
  }
  const { table, ...rest } = options;
  if (table !== undefined && !(table instanceof PriceTable)) {
    throw new InvalidArgumentError(
      "options.table",
      `must be a PriceTable, got ${typeOf(table)}.`,
      "Pass a PriceTable (new PriceTable()), or leave table out to use the bundled prices.",
    );
  }
  sharedTable.current ??= new PriceTable();
  return (table ?? sharedTable.current).priceUsage(model, usage, rest);
}
