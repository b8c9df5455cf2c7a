export * from "@gov/core";
export { ModuleDisabledError, SDK_ERROR_CODES } from "./errors";
export { BUILT_IN_MODULES, type SdkModuleEntry } from "./modules";
export { type GovernanceConfig, GovernanceSDK, type GovernanceSDKOptions } from "./sdk";
