import {
  defineModule,
  InvalidArgumentError,
  type MigrationSource,
  type ModuleContext,
  parseOptions,
  requirePort,
} from "@gov/core";
import { z } from "zod";
import { requireIdList } from "./arguments";
import { StewardNotStartedError } from "./errors";
import { type GuardOptions, guard } from "./guard";
import type { CognitiveTrace, InterventionResult } from "./models";
import {
  type BlueprintSource,
  type EvaluateOptions,
  STEWARD_OPTION_FIXES,
  type StewardOptions,
  stewardOptionsShape,
} from "./options";
import {
  type BlueprintRegistry,
  fetchWithParents,
  PostgresBlueprintRegistry,
  PostgresStateStorage,
  PostgresTrustDebtStorage,
} from "./persistence";
import { stewardSdkContribution } from "./sdk-options";
import { GovernanceSteward } from "./steward";

/** The steward module's migrations: schema `gov_steward`. */
export const stewardMigrations: MigrationSource = {
  name: "steward",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/** Options of the steward module (the SDK maps its `steward*` options onto these). */
export interface StewardModuleOptions extends Omit<StewardOptions, "blueprints"> {
  /** Blueprints given directly (objects, YAML text, compiled). */
  blueprints?: readonly BlueprintSource[];
  /** Blueprint ids to load from `registry` (with their parents). */
  blueprintIds?: readonly string[];
  /** Where `blueprintIds` are found. @default the Postgres registry on the store */
  registry?: BlueprintRegistry;
  /**
   * Keep state and trust debt in Postgres (`gov_steward`), shared by every process, rather
   * than in this process's memory. @default true
   */
  persist?: boolean;
}

const moduleOptionsSchema = z.strictObject({
  ...stewardOptionsShape,
  // Checked item by item when the steward is built (a bad one is a PolicyError).
  blueprints: z.array(z.unknown()).optional(),
  blueprintIds: z.array(z.unknown()).optional(),
  registry: z
    .custom<BlueprintRegistry>(
      (value) =>
        typeof value === "object" &&
        value !== null &&
        typeof (value as { get?: unknown }).get === "function",
      { error: "must be a BlueprintRegistry (with a get method)." },
    )
    .optional(),
  persist: z.boolean().optional(),
});

const MODULE_OPTION_FIXES: Readonly<Record<string, string>> = {
  ...STEWARD_OPTION_FIXES,
  "": "Pass { blueprints } or { blueprintIds }, or nothing.",
  blueprints: "Pass blueprints as YAML texts, objects or compiled blueprints.",
  blueprintIds: 'Pass blueprint ids, e.g. ["payments@2.1"].',
  registry: "Pass a BlueprintRegistry (DirectoryBlueprintRegistry, PostgresBlueprintRegistry).",
  persist: "Use true or false.",
};

/**
 * The steward as a module of a composition: state and trust debt in `gov_steward` (unless
 * `persist: false`), the Postgres blueprint registry, and the context's audit sink, halt
 * guard, clock and logger.
 *
 * Constructed like every module: `new StewardModule(context, options)` checks the options
 * (no I/O), `start()` loads the blueprints (from `blueprintIds`, with their parents) and
 * builds the steward, `close()` waits for its audit writes. `StewardModule.create` and
 * `stewardModule.create` do the first two.
 *
 * @example
 * ```ts
 * const module = await StewardModule.create(context, { blueprints: [yamlText] });
 * const result = await module.evaluate({ agentId: "a", action: "refund", parameters: { amount: 20 } });
 * ```
 */
export class StewardModule {
  /** The Postgres blueprint registry on the store. */
  readonly registry: PostgresBlueprintRegistry;
  readonly #context: ModuleContext;
  readonly #options: StewardModuleOptions;
  #steward: GovernanceSteward | null = null;
  #starting: Promise<void> | null = null;

  /**
   * @throws {InvalidArgumentError} for options that are not an object, an unknown option (with
   *   a "did you mean"), a bad value, or a context port without the methods the module calls.
   */
  constructor(context: ModuleContext, options: StewardModuleOptions = {}) {
    if (typeof context !== "object" || context === null) {
      throw new InvalidArgumentError(
        "context",
        "must be a ModuleContext.",
        "Pass { store, keyring, clock, logger, audit, halt }; @gov/sdk wires it for you.",
      );
    }
    parseOptions(moduleOptionsSchema, options, { fixes: MODULE_OPTION_FIXES });
    const ids: unknown = options.blueprintIds;
    if (ids !== undefined && !(Array.isArray(ids) && ids.length === 0)) {
      requireIdList(ids, "blueprintIds", 'Pass blueprint ids, e.g. ["payments@2.1"].');
    }
    requirePort(context.store, "store", ["query", "transaction"], "a Store", {
      optional: options.persist === false,
    });
    // Named as the module's context ports (the registry would name them as its own options).
    requirePort(context.audit, "audit", ["log"], "an AuditSink", { optional: true });
    requirePort(context.logger, "logger", ["warn", "error"], "a Logger", { optional: true });
    this.#context = context;
    this.#options = options;
    this.registry = new PostgresBlueprintRegistry(context.store, {
      ...(context.keyring === undefined ? {} : { keyring: context.keyring }),
      audit: context.audit,
      logger: context.logger,
    });
  }

  /**
   * A started module: `new StewardModule(context, options)`, then `start()`.
   *
   * @throws {PolicyError} for a bad blueprint, or none given.
   * @throws {BlueprintNotFound} for an id not in the registry.
   * @throws {InvalidArgumentError} for bad options or a context port without the methods the
   *   module calls.
   */
  static async create(
    context: ModuleContext,
    options: StewardModuleOptions = {},
  ): Promise<StewardModule> {
    const module = new StewardModule(context, options);
    await module.start();
    return module;
  }

  /**
   * Load the blueprints (`blueprintIds` from the registry, with their parents) and build the
   * steward. Idempotent: later calls wait for the first; after a failure, a call tries again.
   *
   * @throws {PolicyError} for a bad blueprint, or none given.
   * @throws {BlueprintNotFound} for an id not in the registry.
   */
  async start(): Promise<void> {
    if (this.#steward !== null) return;
    this.#starting ??= this.#start().finally(() => {
      this.#starting = null;
    });
    await this.#starting;
  }

  async #start(): Promise<void> {
    const context = this.#context;
    const { blueprintIds, registry, persist = true, blueprints = [], ...rest } = this.#options;
    const fetched =
      blueprintIds && blueprintIds.length > 0
        ? await fetchWithParents(registry ?? this.registry, blueprintIds)
        : [];
    this.#steward = new GovernanceSteward(
      { clock: context.clock, logger: context.logger, audit: context.audit, halt: context.halt },
      {
        ...rest,
        blueprints: [...blueprints, ...fetched],
        ...(persist
          ? {
              stateStorage: rest.stateStorage ?? new PostgresStateStorage(context.store),
              trustDebtStorage:
                rest.trustDebtStorage ?? new PostgresTrustDebtStorage(context.store),
            }
          : {}),
      },
    );
  }

  /**
   * The steward evaluating traces.
   * @throws {StewardNotStartedError} before `start()` finished.
   */
  get steward(): GovernanceSteward {
    if (this.#steward === null) throw new StewardNotStartedError("module.steward");
    return this.#steward;
  }

  /** {@link GovernanceSteward.evaluate}; rejects with {@link StewardNotStartedError} before `start()`. */
  async evaluate(
    trace: CognitiveTrace,
    context?: Record<string, unknown>,
    options?: EvaluateOptions,
  ): Promise<InterventionResult> {
    return this.steward.evaluate(trace, context, options);
  }

  /** {@link GovernanceSteward.commit}: count an approved ESCALATE. */
  async commit(result: InterventionResult | string): Promise<boolean> {
    return this.steward.commit(result);
  }

  /**
   * {@link guard} with this steward (its blueprints, trust debt and audit) evaluating too.
   * @throws {StewardNotStartedError} before `start()` finished.
   */
  guard<Args extends unknown[], Result>(
    options: Omit<GuardOptions<Args, Result>, "steward">,
    fn: (...args: Args) => Result | Promise<Result>,
  ): (...args: Args) => Promise<Result> {
    return guard({ ...options, steward: this.steward }, fn);
  }

  /** Wait for audit writes in flight. */
  async flush(): Promise<void> {
    await this.#steward?.flush();
  }

  /** Wait for audit writes in flight; the store belongs to the composition. Idempotent. */
  async close(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    await this.#steward?.close();
  }

  /** {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The steward's module definition, for `@gov/sdk` or a hand-written composition. */
export const stewardModule = defineModule({
  name: "steward",
  migrations: stewardMigrations,
  create: (context: ModuleContext, options: StewardModuleOptions) =>
    StewardModule.create(context, options),
  close: (module: StewardModule) => module.close(),
  sdk: stewardSdkContribution,
});
