import { type AuditSdkOptions, auditModule } from "@gov/audit";
import { ConfigError, type ModuleDefinition, type SdkContribution } from "@gov/core";
import { type CostSdkOptions, costModule } from "@gov/cost";
import { type GatesSdkOptions, gatesModule } from "@gov/gates";
import { type LoopSdkOptions, loopModule } from "@gov/loop";
import { type PresenceSdkOptions, presenceModule } from "@gov/presence";
import { type ScopeSdkOptions, scopeModule } from "@gov/scope";
import { type StewardSdkOptions, stewardModule } from "@gov/steward";
import { type CoverageSdkOptions, coverageModule } from "@gov/wrappers";

export type {
  AuditSdkOptions,
  CostSdkOptions,
  CoverageSdkOptions,
  GatesSdkOptions,
  LoopSdkOptions,
  PresenceSdkOptions,
  ScopeSdkOptions,
  StewardSdkOptions,
};

/**
 * One module of the umbrella: its definition and what it contributes to the SDK's options
 * (its flag, options, environment variables, fixes and how they become the module's own
 * options). Each module owns its contribution (`ModuleDefinition.sdk`); the SDK only
 * composes them, in wiring order (see {@link BUILT_IN_MODULES}).
 */
export interface SdkModuleEntry<Config = Record<string, unknown>> extends SdkContribution<Config> {
  // biome-ignore lint/suspicious/noExplicitAny: entries of different modules share one list
  definition: ModuleDefinition<string, any, any>;
}

/** The presence, scope and loop modules' switches as the SDK takes them. */
export interface AgentControlSdkOptions
  extends PresenceSdkOptions,
    ScopeSdkOptions,
    LoopSdkOptions {}

/**
 * The entry of a module for the SDK: its definition with the contribution it declares.
 * @throws {ConfigError} when the module declares no SDK contribution.
 */
// biome-ignore lint/suspicious/noExplicitAny: any module's definition
export function sdkEntry(definition: ModuleDefinition<string, any, any>): SdkModuleEntry {
  if (!definition.sdk) {
    throw new ConfigError([
      {
        source: "option",
        name: definition.name,
        problem: "declares no SDK contribution (ModuleDefinition.sdk).",
        fix: "Give the module's defineModule({ … }) an `sdk` field: its flag, options, env bindings and moduleOptions.",
      },
    ]);
  }
  return { ...definition.sdk, definition };
}

/**
 * The modules `GovernanceSDK.start()` composes, in wiring order: audit first (every other
 * module writes through it), presence next (the enforcement modules after it get its halt
 * guard and operator directory), then scope, cost, gates, the steward and loop.
 */
export const BUILT_IN_MODULES: readonly SdkModuleEntry[] = [
  auditModule,
  presenceModule,
  scopeModule,
  costModule,
  gatesModule,
  stewardModule,
  loopModule,
  coverageModule,
].map(sdkEntry);
