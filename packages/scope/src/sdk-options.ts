import type { SdkContribution } from "@gov/core";

/** The scope module's switch as `GovernanceSDK.start()` takes it. */
export interface ScopeSdkOptions {
  /** Tool and API allow-lists (`sdk.scope`). @default true */
  enableScope?: boolean;
}

/**
 * What the scope module contributes to `GovernanceSDK.start()`: its flag only (it has no SDK
 * options of its own), on by default.
 */
export const scopeSdkContribution: SdkContribution = {
  flag: "enableScope",
  enabledByDefault: true,
};
