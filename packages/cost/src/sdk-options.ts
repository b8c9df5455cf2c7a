import { resolve } from "node:path";
import type { SdkContribution } from "@gov/core";
import { z } from "zod";
import type { CostOptions } from "./options";

/** The cost module's options as the SDK takes them. */
export interface CostSdkOptions {
  /** Budgets, prices, reservations (`sdk.cost`). @default true */
  enableCost?: boolean;
  /**
   * When the budget cannot be read, let `checkOrRaise` pass (availability over safety)
   * instead of denying; logged and audit-logged either way. Env: `GOVERNANCE_COST_FAIL_OPEN`.
   * @default false
   */
  costFailOpen?: boolean;
  /**
   * Output tokens a check projects when the caller declares no `maxTokens` (≥ 1). Env:
   * `GOVERNANCE_DEFAULT_MAX_TOKENS`. @default null
   */
  defaultMaxTokens?: number | null;
  /**
   * Refuse to price an unknown model (`UnknownModelError`) instead of guessing. Env:
   * `GOVERNANCE_COST_STRICT_UNKNOWN_MODELS`. @default true
   */
  costStrictUnknownModels?: boolean;
  /**
   * With `costStrictUnknownModels: false`, the rate (USD per million tokens, > 0) of every
   * token of an unknown model. Env: `GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION`.
   * @default null
   */
  costUnknownModelFallbackUsdPerMillion?: number | null;
  /**
   * Where usage waits, durably, while the database is away (replayed when it is back, also by
   * the next process); `false` keeps it in memory only. Env: `GOVERNANCE_COST_SPOOL_DIR`.
   * @default `<embedded database>/cost-spool`, or `./.governance/cost-spool`
   */
  costSpoolDirectory?: string | false;
  /**
   * Budget leases (`CostOptions.lease`): checks admitted locally in a lease that holds the
   * budget of several calls, one round trip per lease instead of per check. @default null
   */
  costLease?: { calls?: number; idleMs?: number } | null;
}

/** The cost module's SDK options once parsed (defaults applied). */
interface CostSdkConfig {
  costFailOpen: boolean;
  defaultMaxTokens: number | null;
  costStrictUnknownModels: boolean;
  costUnknownModelFallbackUsdPerMillion: number | null;
  costSpoolDirectory?: string | false;
  costLease: { calls?: number; idleMs?: number } | null;
}

/**
 * What the cost module contributes to `GovernanceSDK.start()`: the `enableCost` flag (on by
 * default), its `cost*` options and `defaultMaxTokens`, their environment variables, and how
 * they become {@link CostOptions}.
 */
export const costSdkContribution: SdkContribution<CostSdkConfig> = {
  flag: "enableCost",
  enabledByDefault: true,
  options: {
    costFailOpen: z.boolean().default(false),
    defaultMaxTokens: z.number().int().min(1).max(10_000_000_000).nullable().default(null),
    costStrictUnknownModels: z.boolean().default(true),
    costUnknownModelFallbackUsdPerMillion: z
      .number()
      .positive()
      .max(100_000)
      .nullable()
      .default(null),
    costSpoolDirectory: z.union([z.string().min(1), z.literal(false)]).optional(),
    costLease: z
      .strictObject({
        calls: z.int().min(2).max(1_000).optional(),
        idleMs: z.int().min(10).max(600_000).optional(),
      })
      .nullable()
      .default(null),
  },
  env: [
    { env: "GOVERNANCE_COST_SPOOL_DIR", path: ["costSpoolDirectory"], kind: "string" },
    { env: "GOVERNANCE_COST_FAIL_OPEN", path: ["costFailOpen"], kind: "boolean" },
    { env: "GOVERNANCE_DEFAULT_MAX_TOKENS", path: ["defaultMaxTokens"], kind: "integer" },
    {
      env: "GOVERNANCE_COST_STRICT_UNKNOWN_MODELS",
      path: ["costStrictUnknownModels"],
      kind: "boolean",
    },
    {
      env: "GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION",
      path: ["costUnknownModelFallbackUsdPerMillion"],
      kind: "number",
    },
  ],
  fixes: {
    costFailOpen:
      "Use true (availability over safety) or false (deny when the budget cannot be read).",
    defaultMaxTokens: "Use a whole number of tokens from 1 to 10000000000, or leave it unset.",
    costStrictUnknownModels: "Use true or false.",
    costUnknownModelFallbackUsdPerMillion:
      "Use a positive rate in USD per million tokens (at most 100000), e.g. 10.",
    costSpoolDirectory:
      "Use a writable directory path, or false to keep unwritten usage in memory.",
    costLease:
      "Use { calls, idleMs } (calls from 2 to 1000, idleMs from 10 to 600000, both optional), or null for one reservation per check.",
  },
  moduleOptions: (config, { cwd }): CostOptions => ({
    ...(config.costSpoolDirectory === undefined
      ? {}
      : {
          spoolDirectory:
            config.costSpoolDirectory === false ? null : resolve(cwd, config.costSpoolDirectory),
        }),
    failOpen: config.costFailOpen,
    defaultMaxTokens: config.defaultMaxTokens,
    strictUnknownModels: config.costStrictUnknownModels,
    unknownModelFallbackUsdPerMillion: config.costUnknownModelFallbackUsdPerMillion,
    lease: config.costLease,
  }),
};
