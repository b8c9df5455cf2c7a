export * from "@gov/audit";
export * from "@gov/core";
export * from "@gov/cost";
export * from "@gov/gates";
export * from "@gov/loop";
export * from "@gov/presence";
export * from "@gov/scope";
export { ModuleDisabledError, SDK_ERROR_CODES } from "./errors";
export {
  type AgentControlSdkOptions,
  type AuditSdkOptions,
  BUILT_IN_MODULES,
  type CostSdkOptions,
  type GatesSdkOptions,
  type SdkModuleEntry,
} from "./modules";
export { type GovernanceConfig, GovernanceSDK, type GovernanceSDKOptions } from "./sdk";
