export * from "@gov/audit";
export * from "@gov/core";
export * from "@gov/cost";
// Two modules name an error BudgetExceeded, each after its reference: the cost module's (money)
// and the steward's (a tier-1 scorer over its latency budget). The umbrella names each by its
// module — CostBudgetExceeded and StewardBudgetExceeded — and keeps BudgetExceeded (the cost
// module's, as in the governance reference) and LatencyBudgetExceeded (the steward's).
export {
  BudgetExceeded,
  BudgetExceeded as CostBudgetExceeded,
} from "@gov/cost";
export * from "@gov/gates";
export * from "@gov/loop";
export * from "@gov/presence";
export * from "@gov/scope";
export * from "@gov/steward";
export {
  BudgetExceeded as LatencyBudgetExceeded,
  BudgetExceeded as StewardBudgetExceeded,
} from "@gov/steward";
export {
  COVERAGE_LIMITS,
  type CoverageEntry,
  type CoverageOptions,
  CoverageRegistry,
  type CoverageReport,
  coverageModule,
  InvalidWrapperOptionsError,
  NO_WRAPPERS_WARNING,
  ToolCallBlockedError,
  ToolCallOutOfScopeError,
  WRAPPERS_ERROR_CODES,
} from "@gov/wrappers";
export { ModuleDisabledError, SDK_ERROR_CODES } from "./errors";
export {
  type AgentControlSdkOptions,
  type AuditSdkOptions,
  BUILT_IN_MODULES,
  type CostSdkOptions,
  type CoverageSdkOptions,
  type GatesSdkOptions,
  type LoopSdkOptions,
  type PresenceSdkOptions,
  type ScopeSdkOptions,
  type SdkModuleEntry,
  type StewardSdkOptions,
  sdkEntry,
} from "./modules";
export { type GovernanceConfig, GovernanceSDK, type GovernanceSDKOptions } from "./sdk";
