import { GovernanceError } from "@gov/core";

/** The stable error codes of `@gov/cost`. A code never changes meaning once released. */
export const COST_ERROR_CODES = {
  /** No price is known for the model, and strict mode (the default) refuses to guess. */
  UNKNOWN_MODEL: "UNKNOWN_MODEL",
  /** A price (rates, a price-table entry or an imported price file) was refused; nothing changed. */
  PRICE_INVALID: "PRICE_INVALID",
  /** A usage object could not be read; nothing was priced. */
  USAGE_INVALID: "USAGE_INVALID",
} as const;

/** One of {@link COST_ERROR_CODES}. */
export type CostErrorCode = (typeof COST_ERROR_CODES)[keyof typeof COST_ERROR_CODES];

/**
 * No price is known for the model: there is no entry for its id, no alias, and no entry that
 * it extends with a date or version suffix (see the README for the lookup rule). Thrown in
 * strict mode (the default), where a missing price must never count as $0 — a misspelled
 * or unreleased model id would otherwise spend for free. Nothing was priced.
 *
 * @example
 * ```ts
 * try {
 *   prices.priceUsage("gpt-9", usage);
 * } catch (error) {
 *   if (UnknownModelError.isInstance(error)) prices.set(error.model, { inputUsdPerMillion: 1, outputUsdPerMillion: 4 });
 *   else throw error;
 * }
 * ```
 */
export class UnknownModelError extends GovernanceError {
  /** The model id that has no price, as given. */
  readonly model: string;

  constructor(model: string) {
    const quoted = JSON.stringify(model);
    super({
      code: COST_ERROR_CODES.UNKNOWN_MODEL,
      message: `No price is known for model ${quoted}: the price table has no entry for it, no alias, and no entry that it extends with a date or version suffix. Nothing was priced (strict mode).`,
      recoveryHint: `Check the model id for typos; or add its price with priceTable.set(${quoted}, { inputUsdPerMillion, outputUsdPerMillion, cachedInputUsdPerMillion, cacheWriteUsdPerMillion }), or import a current LiteLLM price file with priceTable.importLiteLLM(json). For observe-only use you may instead pass strict: false with fallbackUsdPerMillion (GOVERNANCE_COST_STRICT_UNKNOWN_MODELS=false and GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION).`,
    });
    this.name = "UnknownModelError";
    this.model = model;
  }

  /** True for an `UnknownModelError` from any copy of `@gov/cost`. */
  static override isInstance(error: unknown): error is UnknownModelError {
    return GovernanceError.isInstance(error) && error.code === COST_ERROR_CODES.UNKNOWN_MODEL;
  }
}

/** A price was refused: the field at fault, the limit, and the fix. Nothing changed. */
export class InvalidPriceError extends GovernanceError {
  /** The field at fault, e.g. `inputUsdPerMillion` or `json`. */
  readonly field: string;
  /** The limit that was exceeded, if the problem is a limit. */
  readonly limit: number | undefined;

  constructor(field: string, problem: string, fix: string, limit?: number) {
    super({
      code: COST_ERROR_CODES.PRICE_INVALID,
      message: `Invalid price: ${field} ${problem}`,
      recoveryHint: fix,
    });
    this.name = "InvalidPriceError";
    this.field = field;
    this.limit = limit;
  }

  /** True for an `InvalidPriceError` from any copy of `@gov/cost`. */
  static override isInstance(error: unknown): error is InvalidPriceError {
    return GovernanceError.isInstance(error) && error.code === COST_ERROR_CODES.PRICE_INVALID;
  }
}

/** A usage object was refused: the field at fault, the limit, and the fix. Nothing was priced. */
export class InvalidUsageError extends GovernanceError {
  /** The field at fault, e.g. `usage.prompt_tokens_details.cached_tokens`. */
  readonly field: string;
  /** The limit that was exceeded, if the problem is a limit. */
  readonly limit: number | undefined;

  constructor(field: string, problem: string, fix: string, limit?: number) {
    super({
      code: COST_ERROR_CODES.USAGE_INVALID,
      message: `Invalid usage: ${field} ${problem}`,
      recoveryHint: fix,
    });
    this.name = "InvalidUsageError";
    this.field = field;
    this.limit = limit;
  }

  /** True for an `InvalidUsageError` from any copy of `@gov/cost`. */
  static override isInstance(error: unknown): error is InvalidUsageError {
    return GovernanceError.isInstance(error) && error.code === COST_ERROR_CODES.USAGE_INVALID;
  }
}
