export * from "@gov/audit";
export * from "@gov/core";
export * from "@gov/cost";
// Two modules name an error BudgetExceeded: the SDK's is the cost module's; the steward's
// (a tier-1 scorer over its latency budget) is re-exported as LatencyBudgetExceeded.
export { BudgetExceeded } from "@gov/cost";
export * from "@gov/gates";
export * from "@gov/loop";
export * from "@gov/presence";
export * from "@gov/scope";
export * from "@gov/steward";
export { BudgetExceeded as LatencyBudgetExceeded } from "@gov/steward";
export { ModuleDisabledError, SDK_ERROR_CODES } from "./errors";
export {
  type AgentControlSdkOptions,
  type AuditSdkOptions,
  BUILT_IN_MODULES,
  type CostSdkOptions,
  type GatesSdkOptions,
  type SdkModuleEntry,
  type StewardSdkOptions,
} from "./modules";
export { type GovernanceConfig, GovernanceSDK, type GovernanceSDKOptions } from "./sdk";
