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
  static override readonly errorIdentity = "@gov/sdk.ModuleDisabledError";

  /** The module, e.g. `audit`. */
  readonly module: string;
  /** The option that enables it, e.g. `enableAudit`. */
  readonly flag: string;

  /**
   * @param options.enabledByDefault whether the module is on when its flag is not given (unknown
   *   when left out), so that the hint says whether it was turned off or was never turned on.
   */
  constructor(module: string, flag: string, options: { enabledByDefault?: boolean } = {}) {
    const { enabledByDefault } = options;
    super({
      code: SDK_ERROR_CODES.MODULE_DISABLED,
      message:
        enabledByDefault === false
          ? `sdk.${module} is not available: the ${module} module is off unless enabled (${flag}: true).`
          : `sdk.${module} is not available: the ${module} module is disabled (${flag}: false).`,
      recoveryHint:
        enabledByDefault === true
          ? `Leave ${flag} out of GovernanceSDK.start() (the module is on by default), or stop using sdk.${module} in this deployment.`
          : enabledByDefault === false
            ? `Pass ${flag}: true to GovernanceSDK.start() (the module is off by default), or stop using sdk.${module} in this deployment.`
            : `Pass ${flag}: true to GovernanceSDK.start(), or stop using sdk.${module} in this deployment.`,
    });
    this.name = "ModuleDisabledError";
    this.module = module;
    this.flag = flag;
  }
}
