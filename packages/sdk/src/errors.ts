import { GovernanceError } from "@gov/core";

/** The stable error codes of `@gov/sdk`. */
export const SDK_ERROR_CODES = {
  /** A module was accessed on the SDK although its enable flag is off. */
  MODULE_DISABLED: "MODULE_DISABLED",
} as const;

/**
 * `sdk.<module>` was accessed although the module is not enabled (the reference raises
 * `AttributeError`). The message names the flag that turns it on.
 */
export class ModuleDisabledError extends GovernanceError {
  /** The module, e.g. `audit`. */
  readonly module: string;
  /** The option that enables it, e.g. `enableAudit`. */
  readonly flag: string;

  constructor(module: string, flag: string) {
    super({
      code: SDK_ERROR_CODES.MODULE_DISABLED,
      message: `sdk.${module} is not available: the ${module} module is disabled (${flag}: false).`,
      recoveryHint: `Pass ${flag}: true to GovernanceSDK.start() (it is on by default), or stop using sdk.${module} in this deployment.`,
    });
    this.name = "ModuleDisabledError";
    this.module = module;
    this.flag = flag;
  }
}
