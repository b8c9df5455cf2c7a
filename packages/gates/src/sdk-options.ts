import type { SdkContribution } from "@gov/core";
import { z } from "zod";

/** The gates module's options as `@gov/sdk` takes them (`GovernanceSDK.start({ … })`). */
export interface GatesSdkOptions {
  /** Human approvals with signed, single-use tokens (`sdk.gates`). @default true */
  enableGates?: boolean;
  /**
   * Mint v2 tokens, bound to the key current at issue (they survive a key rotation while the
   * old key is in the keyring). `false` mints legacy v1 tokens (deprecated). Env:
   * `GOVERNANCE_GATES_ENABLE_V2_TOKENS`. @default true
   */
  enableV2Tokens?: boolean;
  /**
   * Until when legacy v1 tokens are accepted; after it they are refused with
   * `TokenVersionTooOldError`. `null` refuses them always. Env:
   * `GOVERNANCE_GATES_ACCEPT_V1_UNTIL` (ISO 8601). @default 2026-07-17T00:00:00Z
   */
  acceptV1Until?: Date | string | null;
}

/** The gates options after the SDK parsed them. */
interface GatesSdkConfig {
  enableV2Tokens: boolean;
  acceptV1Until?: Date | string | null;
}

/**
 * What the gates module contributes to `GovernanceSDK.start()`: its flag, its options, their
 * environment variables and fixes, and how they become the module's `GatesOptions`.
 *
 * @example
 * ```ts
 * // GOVERNANCE_GATES_ACCEPT_V1_UNTIL=2026-07-17T00:00:00Z
 * const sdk = await GovernanceSDK.start({ enableV2Tokens: true });
 * ```
 */
export const gatesSdkContribution: SdkContribution<GatesSdkConfig> = {
  flag: "enableGates",
  enabledByDefault: true,
  options: {
    enableV2Tokens: z.boolean().default(true),
    acceptV1Until: z.union([z.date(), z.iso.datetime({ offset: true }), z.null()]).optional(),
  },
  env: [
    { env: "GOVERNANCE_GATES_ENABLE_V2_TOKENS", path: ["enableV2Tokens"], kind: "boolean" },
    { env: "GOVERNANCE_GATES_ACCEPT_V1_UNTIL", path: ["acceptV1Until"], kind: "date" },
  ],
  fixes: {
    enableV2Tokens: "Use true (v2 tokens, the default) or false (legacy v1 tokens, deprecated).",
    acceptV1Until:
      "Use an ISO 8601 timestamp, e.g. 2026-07-17T00:00:00Z, or null to refuse v1 tokens.",
  },
  moduleOptions: (config) => ({
    enableV2Tokens: config.enableV2Tokens,
    ...(config.acceptV1Until === undefined ? {} : { acceptV1Until: config.acceptV1Until }),
  }),
};
