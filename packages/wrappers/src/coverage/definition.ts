import { defineModule, type ModuleContext, type SdkContribution } from "@gov/core";
import { z } from "zod";
import { coverageMigrations } from "../migrations";
import { type CoverageOptions, CoverageRegistry } from "./registry";

export { coverageMigrations };

/** The coverage registry's options as `GovernanceSDK.start()` takes them. */
export interface CoverageSdkOptions {
  /**
   * The registry of wrapped clients (`sdk.coverage`, and `sdk.ports.coverage` for the
   * wrappers). @default true
   */
  enableCoverage?: boolean;
  /**
   * Warn at start when no model client was ever governed in this database (the reference's
   * `warn_on_no_wrappers`). Env: `GOVERNANCE_WARN_ON_NO_WRAPPERS`. @default true
   */
  warnOnNoWrappers?: boolean;
}

/**
 * What the coverage registry contributes to `GovernanceSDK.start()`: `enableCoverage` (on by
 * default — the reference's `enable_coverage` is off by default, but a compliance report's
 * `coveragePct` needs it) and `warnOnNoWrappers`.
 */
export const coverageSdkContribution: SdkContribution<{ warnOnNoWrappers: boolean }> = {
  flag: "enableCoverage",
  enabledByDefault: true,
  options: { warnOnNoWrappers: z.boolean().default(true) },
  env: [{ env: "GOVERNANCE_WARN_ON_NO_WRAPPERS", path: ["warnOnNoWrappers"], kind: "boolean" }],
  fixes: {
    warnOnNoWrappers: "Use true (the default) or false.",
  },
  moduleOptions: (config): CoverageOptions => ({ warnOnNoWrappers: config.warnOnNoWrappers }),
};

/** The coverage registry's definition, for `@gov/sdk` and for composing it by hand. */
export const coverageModule = defineModule({
  name: "coverage",
  migrations: coverageMigrations,
  create: async (context: ModuleContext, options: CoverageOptions | undefined) => {
    const registry = new CoverageRegistry(context, options ?? {});
    await registry.start();
    return registry;
  },
  close: (registry: CoverageRegistry) => registry.close(),
  sdk: coverageSdkContribution,
});
