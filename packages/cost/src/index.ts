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
export { COST_AUDIT_KINDS } from "./audit-kinds";
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
export { costMigrations, costModule } from "./definition";
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
export type {
  LiteLLMImportIssue,
  LiteLLMImportOptions,
  LiteLLMImportResult,
} from "./litellm";
export {
  type BudgetReservation,
  type BudgetSnapshot,
  type CheckOptions,
  COST_LIMITS,
  type CostMetrics,
  type PriceInput,
  type PriceOverride,
  type PricingOptions,
  type RateInput,
  type ReconcileOptions,
  type TokenCounts,
  type TrackSpendOptions,
  type TrackUsageOptions,
  type UsageReceipt,
} from "./models";
export { CostModule } from "./module";
export type { CostOptions } from "./options";
export {
  type AppliedRates,
  type ExactAmounts,
  type ModelPrice,
  type PriceBreakdown,
  type PriceMatch,
  PriceTable,
  type PriceTableOptions,
  priceUsage,
} from "./price-table";
export { type CostSdkOptions, costSdkContribution } from "./sdk-options";
export {
  type AiSdkV4Usage,
  type AiSdkV5Usage,
  type AiSdkV6Usage,
  type AnthropicUsage,
  type LangChainUsageMetadata,
  type NormalizedUsage,
  type NormalizedUsageInput,
  normalizeUsage,
  type OpenAIAgentsUsage,
  type OpenAIChatUsage,
  type OpenAIResponsesUsage,
  type ProviderUsage,
  type TokenDetails,
  type UsageFormat,
} from "./usage";
