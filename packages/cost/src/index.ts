/**
 * `@gov/cost` — prices that are right: a bundled price table, exact lookup with safe
 * snapshot matching, LiteLLM imports, and per-part pricing of cached, cache-write and
 * reasoning tokens. Budgets and reservations arrive next.
 */
export {
  COST_ERROR_CODES,
  type CostErrorCode,
  InvalidPriceError,
  InvalidUsageError,
  UnknownModelError,
} from "./errors";
export {
  COST_LIMITS,
  type PriceInput,
  type PriceOverride,
  type PricingOptions,
  type RateInput,
} from "./models";
export {
  type AppliedRates,
  type ExactAmounts,
  type LiteLLMImportIssue,
  type LiteLLMImportOptions,
  type LiteLLMImportResult,
  type ModelPrice,
  type PriceBreakdown,
  type PriceMatch,
  PriceTable,
  type PriceTableOptions,
  priceUsage,
} from "./price-table";
export { type NormalizedUsage, normalizeUsage, type UsageFormat } from "./usage";
