import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { auditModule, type CheckpointWitness, isCheckpointWitness } from "@gov/audit";
import {
  ConfigError,
  type EnvBinding,
  type FieldFixes,
  isPrivateKeyMaterial,
  type ModuleDefinition,
  VerifyingKey,
} from "@gov/core";
import { costModule } from "@gov/cost";
import { gatesModule } from "@gov/gates";
import { loopModule } from "@gov/loop";
import { presenceModule } from "@gov/presence";
import { scopeModule } from "@gov/scope";
import { stewardModule } from "@gov/steward";
import { z } from "zod";

/**
 * One module of the umbrella: its definition, the flag that enables it, and how the SDK's
 * parsed options become the module's own options.
 *
 * Modules add themselves to {@link BUILT_IN_MODULES}, in wiring order (the audit module
 * first, so that every other module writes through it; presence before the enforcement
 * modules, so that they see the operator's halt).
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
  /**
   * The module's options, from the SDK's parsed options; `cwd` is what relative paths are
   * resolved against (the SDK's `cwd` option, or the process's); `production` is
   * `NODE_ENV === "production"` in the SDK's environment.
   */
  moduleOptions?: (config: Config, environment: { cwd: string; production: boolean }) => unknown;
}

/** The audit module's options as the SDK takes them. */
export interface AuditSdkOptions {
  /** Audit module on or off (`sdk.audit`). @default true */
  enableAudit?: boolean;
  /** Verify the chains of what `sdk.audit.getEvents()` returns. Env: `GOVERNANCE_VERIFY_CHAIN_ON_READ`. @default false */
  verifyChainOnRead?: boolean;
  /**
   * Where audit events wait while the database is away; `false` turns the spool off (events
   * then become placeholders). Env: `GOVERNANCE_AUDIT_SPOOL_DIR`.
   * @default `<embedded database>/audit-spool`, or `./.governance/audit-spool`
   */
  auditSpoolDirectory?: string | false;
  /**
   * Sign every chain's head into a checkpoint this often; 0 turns it off. Heads reach the
   * witness only through checkpoints. Env: `GOVERNANCE_AUDIT_CHECKPOINT_INTERVAL_MS`.
   * @default 60000 with an `auditWitness`, else 0
   */
  auditCheckpointIntervalMs?: number;
  /**
   * Where every checkpoint is also written, outside the database, so that rows and
   * checkpoints deleted together are still caught (`sdk.audit.verifyChain({ witness })`): a
   * file path (JSON lines, append-only, fsynced; relative to `cwd`) or a `CheckpointWitness`.
   * Env: `GOVERNANCE_AUDIT_WITNESS_PATH`. @default none
   */
  auditWitness?: string | CheckpointWitness;
  /**
   * Ed25519 public keys (PEM or base64 DER) of earlier checkpoint signing keys, whose
   * checkpoints verification still believes. Public keys only: a private key is refused
   * (`ConfigError` naming the option, never the key), so that it never sits in `sdk.config`.
   * @default []
   * @example
   * ```ts
   * await GovernanceSDK.start({ auditTrustedSigningKeys: [previousSdk.audit.signingPublicKey!.pem] });
   * ```
   */
  auditTrustedSigningKeys?: string[];
}

/**
 * A trusted checkpoint signing key: an Ed25519 public key. A private key is refused (its
 * public half is not derived): it would sit in the parsed configuration, which is shown. The
 * message never repeats the value.
 */
const trustedSigningKeySchema = z
  .string()
  .min(1)
  .superRefine((value, context) => {
    if (isPrivateKeyMaterial(value)) {
      context.addIssue({
        code: "custom",
        message:
          "is a private key; only public keys are trusted here (keep the private key in auditSigningKey).",
      });
      return;
    }
    try {
      new VerifyingKey(value, "auditTrustedSigningKeys");
    } catch {
      context.addIssue({
        code: "custom",
        message: "is not an Ed25519 public key (PEM or the base64 of its DER form).",
      });
    }
  });

const audit: SdkModuleEntry<{
  verifyChainOnRead: boolean;
  auditSpoolDirectory?: string | false;
  auditCheckpointIntervalMs?: number;
  auditWitness?: string | CheckpointWitness;
  auditTrustedSigningKeys: string[];
}> = {
  definition: auditModule,
  flag: "enableAudit",
  enabledByDefault: true,
  options: {
    verifyChainOnRead: z.boolean().default(false),
    auditSpoolDirectory: z.union([z.string().min(1), z.literal(false)]).optional(),
    auditCheckpointIntervalMs: z.number().int().min(0).max(86_400_000).optional(),
    auditWitness: z
      .union([
        z.string().min(1),
        z.custom<CheckpointWitness>(isCheckpointWitness, {
          message: "must be a file path or an object with append() and read().",
        }),
      ])
      .optional(),
    auditTrustedSigningKeys: z.array(trustedSigningKeySchema).max(64).default([]),
  },
  env: [
    { env: "GOVERNANCE_VERIFY_CHAIN_ON_READ", path: ["verifyChainOnRead"], kind: "boolean" },
    { env: "GOVERNANCE_AUDIT_SPOOL_DIR", path: ["auditSpoolDirectory"], kind: "string" },
    {
      env: "GOVERNANCE_AUDIT_CHECKPOINT_INTERVAL_MS",
      path: ["auditCheckpointIntervalMs"],
      kind: "integer",
    },
    { env: "GOVERNANCE_AUDIT_WITNESS_PATH", path: ["auditWitness"], kind: "string" },
  ],
  fixes: {
    verifyChainOnRead: "Use true or false.",
    auditSpoolDirectory: "Use a writable directory path, or false to turn the spool off.",
    auditCheckpointIntervalMs: "Use an integer number of milliseconds from 0 (off) to 86400000.",
    auditWitness:
      "Use the path of a file outside the database's reach, or an object with append() and read() (a CheckpointWitness).",
    auditTrustedSigningKeys:
      "Use Ed25519 public keys as PEM (-----BEGIN PUBLIC KEY-----), e.g. sdk.audit.signingPublicKey.pem or `openssl pkey -in key.pem -pubout`; never a private key.",
  },
  moduleOptions: (config, { cwd }) => ({
    verifyChainOnRead: config.verifyChainOnRead,
    ...(config.auditSpoolDirectory === undefined
      ? {}
      : {
          spoolDirectory:
            config.auditSpoolDirectory === false ? null : resolve(cwd, config.auditSpoolDirectory),
        }),
    ...(config.auditCheckpointIntervalMs === undefined
      ? {}
      : { checkpointIntervalMs: config.auditCheckpointIntervalMs }),
    ...(config.auditWitness === undefined
      ? {}
      : {
          witness:
            typeof config.auditWitness === "string"
              ? resolve(cwd, config.auditWitness)
              : config.auditWitness,
        }),
    trustedSigningKeys: config.auditTrustedSigningKeys,
  }),
};

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
}

const cost: SdkModuleEntry<{
  costFailOpen: boolean;
  defaultMaxTokens: number | null;
  costStrictUnknownModels: boolean;
  costUnknownModelFallbackUsdPerMillion: number | null;
  costSpoolDirectory?: string | false;
}> = {
  definition: costModule,
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
  },
  moduleOptions: (config, { cwd }) => ({
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
  }),
};

/** The gates module's options as the SDK takes them. */
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

const gates: SdkModuleEntry<{ enableV2Tokens: boolean; acceptV1Until?: Date | string | null }> = {
  definition: gatesModule,
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

/** The steward's options as the SDK takes them. */
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

const steward: SdkModuleEntry<{
  stewardBlueprints?: (string | Record<string, unknown>)[];
  stewardBlueprintDirectory?: string;
  stewardBlueprintIds?: string[];
  stewardConformanceLevel?: "minimal" | "standard" | "complete";
  stewardPersist: boolean;
}> = {
  definition: stewardModule,
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
  moduleOptions: (config, { cwd, production }) => {
    const blueprints: (string | Record<string, unknown>)[] = [...(config.stewardBlueprints ?? [])];
    if (config.stewardBlueprintDirectory !== undefined) {
      const directory = resolve(cwd, config.stewardBlueprintDirectory);
      try {
        for (const name of readdirSync(directory).sort()) {
          if (/\.ya?ml$/i.test(name)) blueprints.push(readFileSync(join(directory, name), "utf8"));
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

/** The presence, scope and loop modules' switches as the SDK takes them. */
export interface AgentControlSdkOptions {
  /** Heartbeats and the operator's halt (`sdk.presence`); every enforcement check consults it. @default true */
  enablePresence?: boolean;
  /** Tool and API allow-lists (`sdk.scope`). @default true */
  enableScope?: boolean;
  /** Runaway-loop detection (`sdk.loop`). @default true */
  enableLoop?: boolean;
}

/**
 * The modules `GovernanceSDK.start()` composes, in wiring order: audit first (every other
 * module writes through it), presence next (the enforcement modules after it get its halt
 * guard and operator directory), then scope, cost, gates, the steward and loop.
 */
export const BUILT_IN_MODULES: readonly SdkModuleEntry[] = [
  audit as SdkModuleEntry,
  { definition: presenceModule, flag: "enablePresence", enabledByDefault: true },
  { definition: scopeModule, flag: "enableScope", enabledByDefault: true },
  cost as SdkModuleEntry,
  gates as SdkModuleEntry,
  steward as SdkModuleEntry,
  { definition: loopModule, flag: "enableLoop", enabledByDefault: true },
];
