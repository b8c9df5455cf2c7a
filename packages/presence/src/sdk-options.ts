import type { SdkContribution } from "@gov/core";

/** The presence module's switch as `GovernanceSDK.start()` takes it. */
export interface PresenceSdkOptions {
  /** Heartbeats and the operator's halt (`sdk.presence`); every enforcement check consults it. @default true */
  enablePresence?: boolean;
}

/**
 * What the presence module contributes to `GovernanceSDK.start()`: its flag only (it has no
 * SDK options of its own), on by default.
 */
export const presenceSdkContribution: SdkContribution = {
  flag: "enablePresence",
  enabledByDefault: true,
};
