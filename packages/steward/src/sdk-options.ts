import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError, type SdkContribution } from "@gov/core";
import { z } from "zod";
import type { StewardModuleOptions } from "./module";

/** The steward's options as `GovernanceSDK.start()` takes them. */
export interface StewardSdkOptions {
  /**
   * Blueprints, tripwires, trust debt and interventions (`sdk.steward`). Off unless asked
   * for, since it needs blueprints. @default false
   */
  enableSteward?: boolean;
  /** Blueprints given directly: YAML texts or objects. @default [] */
  stewardBlueprints?: readonly (string | Record<string, unknown>)[];
  /**
   * A directory whose `*.yaml` / `*.yml` files are loaded as blueprints. Env:
   * `GOVERNANCE_STEWARD_BLUEPRINT_DIR`.
   */
  stewardBlueprintDirectory?: string;
  /**
   * Blueprint ids (`name@version`) to load, with their parents, from the Postgres registry
   * (`sdk.steward.registry`). Env: `GOVERNANCE_STEWARD_BLUEPRINT_IDS` (comma-separated).
   */
  stewardBlueprintIds?: readonly string[];
  /**
   * `minimal` (OK and BLOCK only), `standard` (all six interventions, trust debt) or
   * `complete` (every evaluation in the audit chain, evidence enforced). Env:
   * `GOVERNANCE_STEWARD_CONFORMANCE_LEVEL`. @default "standard"
   */
  stewardConformanceLevel?: "minimal" | "standard" | "complete";
  /** Keep state and trust debt in Postgres, shared by every process. Env: `GOVERNANCE_STEWARD_PERSIST`. @default true */
  stewardPersist?: boolean;
}

/** The steward's SDK options once parsed (defaults applied). */
interface StewardSdkConfig {
  stewardBlueprints?: (string | Record<string, unknown>)[];
  stewardBlueprintDirectory?: string;
  stewardBlueprintIds?: string[];
  stewardConformanceLevel?: "minimal" | "standard" | "complete";
  stewardPersist: boolean;
}

/** The `*.yaml` / `*.yml` files of a directory, in name order, as text. */
function readBlueprintDirectory(directory: string): string[] {
  const texts: string[] = [];
  try {
    for (const name of readdirSync(directory).sort()) {
      if (/\.ya?ml$/i.test(name)) texts.push(readFileSync(join(directory, name), "utf8"));
    }
  } catch (error) {
    throw new ConfigError([
      {
        source: "option",
        name: "stewardBlueprintDirectory",
        problem: `cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"}).`,
        fix: "Use a readable directory of *.yaml blueprint files (GOVERNANCE_STEWARD_BLUEPRINT_DIR).",
      },
    ]);
  }
  return texts;
}

/**
 * What the steward module contributes to `GovernanceSDK.start()`: the flag `enableSteward`
 * (off by default: it needs blueprints), the `steward*` options, their environment variables
 * and fixes, and how they become {@link StewardModuleOptions}.
 *
 * @throws {ConfigError} from `moduleOptions`, for a blueprint directory that cannot be read.
 */
export const stewardSdkContribution: SdkContribution<StewardSdkConfig> = {
  flag: "enableSteward",
  enabledByDefault: false,
  options: {
    stewardBlueprints: z
      .array(z.union([z.string().min(1), z.record(z.string(), z.unknown())]))
      .optional(),
    stewardBlueprintDirectory: z.string().min(1).optional(),
    stewardBlueprintIds: z.array(z.string().min(1)).optional(),
    stewardConformanceLevel: z.enum(["minimal", "standard", "complete"]).optional(),
    stewardPersist: z.boolean().default(true),
  },
  env: [
    {
      env: "GOVERNANCE_STEWARD_BLUEPRINT_DIR",
      path: ["stewardBlueprintDirectory"],
      kind: "string",
    },
    { env: "GOVERNANCE_STEWARD_BLUEPRINT_IDS", path: ["stewardBlueprintIds"], kind: "string-list" },
    {
      env: "GOVERNANCE_STEWARD_CONFORMANCE_LEVEL",
      path: ["stewardConformanceLevel"],
      kind: "string",
    },
    { env: "GOVERNANCE_STEWARD_PERSIST", path: ["stewardPersist"], kind: "boolean" },
  ],
  fixes: {
    stewardBlueprints: "Pass blueprints as YAML texts or objects.",
    stewardBlueprintDirectory: "Use a directory of *.yaml blueprint files.",
    stewardBlueprintIds:
      'Use blueprint ids such as "payments@1.0.0" (comma-separated in the variable).',
    stewardConformanceLevel: "Use minimal, standard or complete.",
    stewardPersist: "Use true or false.",
  },
  moduleOptions: (config, { cwd, production }): StewardModuleOptions => {
    const blueprints: (string | Record<string, unknown>)[] = [...(config.stewardBlueprints ?? [])];
    if (config.stewardBlueprintDirectory !== undefined) {
      blueprints.push(...readBlueprintDirectory(resolve(cwd, config.stewardBlueprintDirectory)));
    }
    return {
      blueprints,
      ...(config.stewardBlueprintIds ? { blueprintIds: config.stewardBlueprintIds } : {}),
      ...(config.stewardConformanceLevel
        ? { conformanceLevel: config.stewardConformanceLevel }
        : {}),
      persist: config.stewardPersist,
      production,
    };
  },
};
