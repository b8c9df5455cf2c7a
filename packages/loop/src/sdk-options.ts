import type { SdkContribution } from "@gov/core";

/** The loop module's switch as `GovernanceSDK.start()` takes it. */
export interface LoopSdkOptions {
  /** Runaway-loop detection (`sdk.loop`). @default true */
  enableLoop?: boolean;
}

/**
 * What the loop module contributes to `GovernanceSDK.start()`: its flag only (it has no SDK
 * options of its own), on by default.
 */
export const loopSdkContribution: SdkContribution = {
  flag: "enableLoop",
  enabledByDefault: true,
};
