import {
  defineModule,
  InvalidArgumentError,
  type MigrationSource,
  type ModuleContext,
  requirePort,
} from "@gov/core";
import { requireIdList } from "./arguments";
import { type GuardOptions, guard } from "./guard";
import type { CognitiveTrace, InterventionResult } from "./models";
import {
  type BlueprintRegistry,
  fetchWithParents,
  PostgresBlueprintRegistry,
  PostgresStateStorage,
  PostgresTrustDebtStorage,
} from "./persistence";
import {
  type BlueprintSource,
  type EvaluateOptions,
  GovernanceSteward,
  type StewardOptions,
} from "./steward";

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

/**
 * The steward as a module of a composition: state and trust debt in `gov_steward` (unless
 * `persist: false`), the Postgres blueprint registry, and the context's audit sink, halt
 * guard, clock and logger.
 *
 * @example
 * ```ts
 * const module = await StewardModule.create(context, { blueprints: [yamlText] });
 * const result = await module.evaluate({ agentId: "a", action: "refund", parameters: { amount: 20 } });
 * ```
 */
export class StewardModule {
  /** The steward evaluating traces. */
  readonly steward: GovernanceSteward;
  /** The Postgres blueprint registry on the store. */
  readonly registry: PostgresBlueprintRegistry;
  readonly #context: ModuleContext;

  private constructor(
    context: ModuleContext,
    steward: GovernanceSteward,
    registry: PostgresBlueprintRegistry,
  ) {
    this.#context = context;
    this.steward = steward;
    this.registry = registry;
  }

  /**
   * @throws {PolicyError} for a bad blueprint, or none given.
   * @throws {BlueprintNotFound} for an id not in the registry.
   * @throws {InvalidArgumentError} for a context port without the methods the module calls.
   */
  static async create(
    context: ModuleContext,
    options: StewardModuleOptions = {},
  ): Promise<StewardModule> {
    if (typeof context !== "object" || context === null) {
      throw new InvalidArgumentError(
        "context",
        "must be a ModuleContext.",
        "Pass { store, keyring, clock, logger, audit, halt }; @gov/sdk wires it for you.",
      );
    }
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      throw new InvalidArgumentError(
        "options",
        `must be an object, got ${options === null ? "null" : typeof options}.`,
        "Pass { blueprints } or { blueprintIds }, or nothing.",
      );
    }
    const ids: unknown = options.blueprintIds;
    if (ids !== undefined && !(Array.isArray(ids) && ids.length === 0)) {
      requireIdList(ids, "blueprintIds", 'Pass blueprint ids, e.g. ["payments@2.1"].');
    }
    const persist = options.persist ?? true;
    requirePort(context.store, "store", ["query", "transaction"], "a Store", {
      optional: !persist,
    });
    const { blueprintIds, registry, persist: _persist, blueprints = [], ...rest } = options;
    const pgRegistry = new PostgresBlueprintRegistry(context.store, {
      ...(context.keyring === undefined ? {} : { keyring: context.keyring }),
      audit: context.audit,
      logger: context.logger,
    });
    const fetched =
      blueprintIds && blueprintIds.length > 0
        ? await fetchWithParents(registry ?? pgRegistry, blueprintIds)
        : [];
    const steward = new GovernanceSteward(
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
      { clock: context.clock, logger: context.logger, audit: context.audit, halt: context.halt },
    );
    return new StewardModule(context, steward, pgRegistry);
  }

  /** {@link GovernanceSteward.evaluate}. */
  evaluate(
    trace: CognitiveTrace,
    context?: Record<string, unknown>,
    options?: EvaluateOptions,
  ): Promise<InterventionResult> {
    return this.steward.evaluate(trace, context, options);
  }

  /** {@link GovernanceSteward.commit}: count an approved ESCALATE. */
  commit(result: InterventionResult | string): Promise<boolean> {
    return this.steward.commit(result);
  }

  /** {@link guard} with this steward (its blueprints, trust debt and audit) evaluating too. */
  guard<Args extends unknown[], Result>(
    options: Omit<GuardOptions<Args, Result>, "steward">,
    fn: (...args: Args) => Result | Promise<Result>,
  ): (...args: Args) => Promise<Result> {
    return guard({ ...options, steward: this.steward }, fn);
  }

  /** Wait for audit writes in flight. */
  async flush(): Promise<void> {
    await this.steward.flush();
  }

  /** Wait for audit writes in flight; the store belongs to the composition. */
  async close(): Promise<void> {
    void this.#context;
    await this.steward.flush();
  }
}

/** The steward's module definition, for `@gov/sdk` or a hand-written composition. */
export const stewardModule = defineModule({
  name: "steward",
  migrations: stewardMigrations,
  create: (context: ModuleContext, options: StewardModuleOptions) =>
    StewardModule.create(context, options),
  close: (module: StewardModule) => module.close(),
});
