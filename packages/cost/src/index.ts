/**
 * `@gov/cost` — budgets that hold under concurrency, and prices that are right: caps per
 * session and per UTC day checked and reserved in one statement, usage settled from the
 * providers' own usage payloads with cached, cache-write and reasoning tokens priced at their
 * own rates, streams reconciled, and every breach written to the audit chain.
 */
export {
  ALERT_ID_HEADER,
  ALERT_SIGNATURE_HEADER,
  type BudgetAlertPayload,
  signAlert,
  type VerifyAlertOptions,
  verifyAlertSignature,
} from "./alerts";
export {
  BUDGET_CAPS,
  BUDGET_LIMITS,
  type BudgetAlertInput,
  type BudgetAlertJSON,
  type BudgetCap,
  BudgetPolicy,
  type BudgetPolicyInput,
  type BudgetPolicyJSON,
  type ExactCaps,
} from "./budget-policy";
export {
  BudgetCheckFailedError,
  BudgetExceeded,
  type BudgetExceededDetails,
  type BudgetUnit,
  COST_ERROR_CODES,
  type CostErrorCode,
  InvalidBudgetPolicyError,
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
  type BudgetReservation,
  type BudgetSnapshot,
  type CheckOptions,
  COST_AUDIT_KINDS,
  type CostMetrics,
  CostModule,
  type CostOptions,
  costMigrations,
  costModule,
  type ReconcileOptions,
  type TokenCounts,
  type TrackSpendOptions,
  type TrackUsageOptions,
  type UsageReceipt,
} from "./module";
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
