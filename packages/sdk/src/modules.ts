import type { EnvBinding, FieldFixes, ModuleDefinition } from "@gov/core";
import type { z } from "zod";

/**
 * One module of the umbrella: its definition, the flag that enables it, and how the SDK's
 * parsed options become the module's own options.
 *
 * Later modules add themselves to {@link BUILT_IN_MODULES}, in wiring order (the audit
 * module first, so that every other module writes through it; presence before the
 * enforcement modules, so that they see the operator's halt).
 */
export interface SdkModuleEntry<Config = Record<string, unknown>> {
  // biome-ignore lint/suspicious/noExplicitAny: entries of different modules share one list
  definition: ModuleDefinition<string, any, any>;
  /** The option that turns it on or off, e.g. `enableAudit`. */
  flag: `enable${string}`;
  /** Whether it is on when the flag is not given. */
  enabledByDefault: boolean;
  /** The module's own options in the SDK's schema (e.g. `costFailOpen`). */
  options?: z.ZodRawShape;
  /** Environment variables for those options. */
  env?: readonly EnvBinding[];
  /** How to fix each of those options. */
  fixes?: FieldFixes;
  /** The module's options, from the SDK's parsed options. */
  moduleOptions?: (config: Config) => unknown;
}

/** The modules `GovernanceSDK.start()` composes. Each module's issue adds its entry. */
export const BUILT_IN_MODULES: readonly SdkModuleEntry[] = [];
