import { inspect } from "node:util";
import type { AuditModule } from "@gov/audit";
import {
  type AuditSink,
  type Clock,
  CORE_ENV_BINDINGS,
  CORE_FIELD_FIXES,
  ConfigError,
  type ConfigIssue,
  type CoreConfig,
  type CoreOptionsInput,
  coreOptionsSchema,
  createConsoleLogger,
  createStore,
  type EnvBinding,
  type GovernancePorts,
  type HaltGuard,
  type HealthReport,
  InvalidArgumentError,
  type Keyring,
  type Logger,
  type MigrationReport,
  type ModuleContext,
  noopAuditSink,
  noopHaltGuard,
  noopOperatorDirectory,
  type OperatorDirectory,
  readConfig,
  readHistoricalKeyEnv,
  requireOptionsObject,
  resolveKeyring,
  resolveSigningKey,
  resolveTarget,
  runMigrations,
  type Store,
  silentLogger,
  systemClock,
} from "@gov/core";
import type { CostModule } from "@gov/cost";
import type { GatesModule } from "@gov/gates";
import type { LoopModule } from "@gov/loop";
import type { PresenceModule } from "@gov/presence";
import type { ScopeModule } from "@gov/scope";
import type { StewardModule } from "@gov/steward";
import { type CoverageRegistry, settled } from "@gov/wrappers";
import { z } from "zod";
import { ModuleDisabledError } from "./errors";
import {
  type AgentControlSdkOptions,
  type AuditSdkOptions,
  BUILT_IN_MODULES,
  type CostSdkOptions,
  type CoverageSdkOptions,
  type GatesSdkOptions,
  type SdkModuleEntry,
  type StewardSdkOptions,
} from "./modules";

/**
 * Options of {@link GovernanceSDK.start}. Every option can also come from its environment
 * variable (`GOVERNANCE_DATABASE_URL`, `GOVERNANCE_AUDIT_SECRET`, …); an option passed here
 * wins over the variable.
 */
export interface GovernanceSDKOptions
  extends CoreOptionsInput,
    AuditSdkOptions,
    AgentControlSdkOptions,
    CostSdkOptions,
    GatesSdkOptions,
    StewardSdkOptions,
    CoverageSdkOptions {
  /** Where log lines go. @default a console logger at `logLevel` */
  logger?: Logger;
  /** The source of time for governance decisions. @default the system clock */
  clock?: Clock;
  /** The environment to read `GOVERNANCE_*` variables from. @default process.env */
  env?: Record<string, string | undefined>;
  /** Directory that relative paths (the embedded database) are resolved against. @default process.cwd() */
  cwd?: string;
}

/**
 * What the SDK parsed from its options and the environment, safe to log: secrets (the
 * audit secret, historical keys, anything bound to a secret variable) are left out, and
 * the database URL, which may hold a password, is replaced by its description.
 */
export type GovernanceConfig = Omit<
  CoreConfig,
  "auditSecret" | "historicalKeys" | "databaseUrl" | "auditSigningKey"
> & {
  /** Where the data lives, e.g. `Postgres at db:5432/gov` (never the connection string). */
  database: string;
} & Record<string, unknown>;

interface Composed {
  entry: SdkModuleEntry;
  instance: unknown;
}

/**
 * Runtime governance for an AI agent: one store, its migrations, the keyring, and the
 * modules enabled by the `enable*` options, wired together through core's ports (the
 * audit module's sink, the presence module's halt guard), and handed to composers (the
 * wrappers of model clients, contracts) as {@link GovernanceSDK.ports}.
 *
 * @example
 * ```ts
 * await using sdk = await GovernanceSDK.start({ databaseUrl: process.env.GOVERNANCE_DATABASE_URL });
 * const report = await sdk.health();
 * ```
 */
export class GovernanceSDK implements AsyncDisposable {
  /** The store every module keeps its data in. */
  readonly store: Store;
  /** The current chain key and the historical ones. */
  readonly keyring: Keyring;
  /** The clock governance decisions use. */
  readonly clock: Clock;
  readonly logger: Logger;
  /** The parsed configuration (without secrets). */
  readonly config: GovernanceConfig;
  /** What the migrations runner did at start. */
  readonly migrations: MigrationReport;
  /**
   * The enabled modules as `@gov/core`'s ports, for composers that take
   * `{ governance: sdk }` (or `sdk.ports`): `halt` (the presence module's guard), `scope`,
   * `loop`, `cost`, `gates` (an `ApprovalGate`), `steward` (a `StewardGuard`; the steward is
   * off unless `enableSteward`), `coverage` (the `CoverageRegistry` of `@gov/wrappers`),
   * `audit` (the audit module's sink) — each the module itself,
   * the object `sdk.scope`, `sdk.gates`, `sdk.steward` & co. return — and `logger`. Frozen. A
   * disabled module's port is absent (not a getter that throws), so that a composer treats it
   * as a port nobody provides; read them with core's `resolveGovernancePorts(sdk)`.
   *
   * @example
   * ```ts
   * const { scope, cost } = sdk.ports; // undefined when started with enableScope / enableCost: false
   * const { gates, steward } = sdk.ports; // steward: undefined unless started with enableSteward: true
   * const ports = resolveGovernancePorts(sdk); // no-ops and nulls where a port is absent
   * ```
   */
  readonly ports: GovernancePorts;
  readonly #modules: ReadonlyMap<string, Composed>;
  readonly #flags: ReadonlyMap<string, { flag: string; enabledByDefault: boolean }>;
  #closing: Promise<void> | null = null;

  private constructor(parts: {
    store: Store;
    keyring: Keyring;
    clock: Clock;
    logger: Logger;
    config: GovernanceConfig;
    migrations: MigrationReport;
    modules: Map<string, Composed>;
    flags: Map<string, { flag: string; enabledByDefault: boolean }>;
    ports: GovernancePorts;
  }) {
    this.store = parts.store;
    this.keyring = parts.keyring;
    this.clock = parts.clock;
    this.logger = parts.logger;
    this.config = parts.config;
    this.migrations = parts.migrations;
    this.#modules = parts.modules;
    this.#flags = parts.flags;
    this.ports = parts.ports;
  }

  /**
   * Read the options (merged with the environment), open the store, run the migrations of
   * the enabled modules, resolve the keyring and compose the modules.
   *
   * With a real Postgres an audit secret is required (`GOVERNANCE_AUDIT_SECRET`); with the
   * embedded database one is generated once and kept beside the data.
   *
   * @throws {ConfigError} when an option or variable is invalid (nothing is opened);
   *   {@link SecretError} when the secret is missing or weak; {@link StoreError} or
   *   {@link MigrationError} when the database cannot be opened or migrated.
   */
  static async start(options: GovernanceSDKOptions = {}): Promise<GovernanceSDK> {
    return GovernanceSDK.compose(options, BUILT_IN_MODULES);
  }

  /**
   * Start with an explicit list of modules instead of the built-in ones: for a custom
   * umbrella that adds its own modules (defined with `defineModule`) to the same wiring.
   * Each entry's flag becomes an option; its module is reached with {@link getModule}.
   */
  static async compose(
    options: GovernanceSDKOptions,
    registry: readonly SdkModuleEntry[],
  ): Promise<GovernanceSDK> {
    requireOptionsObject(
      options,
      "options",
      "Pass GovernanceSDK.start({ databaseUrl, auditSecret, … }) or nothing; every option can also come from its GOVERNANCE_* variable.",
    );
    if (!Array.isArray(registry))
      throw new InvalidArgumentError(
        "registry",
        `must be an array of module entries, got ${registry === null ? "null" : typeof registry}.`,
        "Pass the modules to compose, e.g. [...BUILT_IN_MODULES, myModuleEntry].",
      );
    refuseCollisions(registry);
    const {
      logger: givenLogger,
      clock = systemClock,
      env = process.env,
      cwd,
      ...serializable
    } = options;
    const schema = coreOptionsSchema.extend(
      Object.fromEntries(
        registry.flatMap((entry) => [
          [entry.flag, z.boolean().default(entry.enabledByDefault)],
          ...Object.entries(entry.options ?? {}),
        ]),
      ),
    );
    const fixes = Object.assign(
      {},
      CORE_FIELD_FIXES,
      ...registry.map((entry) => ({ [entry.flag]: "Use true or false.", ...entry.fixes })),
    );
    const bindings = [...CORE_ENV_BINDINGS, ...registry.flatMap((entry) => entry.env ?? [])];
    const parsed = readConfig(schema, bindings, fixes, {
      options: serializable,
      env,
    }) as CoreConfig & Record<string, unknown>;
    const historicalKeys = [...parsed.historicalKeys, ...readHistoricalKeyEnv(env)];
    const logger =
      givenLogger ??
      (parsed.logLevel === "silent" ? silentLogger : createConsoleLogger(parsed.logLevel));
    const target = resolveTarget(parsed, cwd);
    // Refuse a missing or weak secret before connecting to anything.
    const keyring = await resolveKeyring({
      target,
      auditSecret: parsed.auditSecret,
      historicalKeys,
      logger,
    });
    const config = publicConfig(parsed, bindings, target.description);
    const enabled = registry.filter((entry) => config[entry.flag] === true);
    // The Ed25519 key of audit checkpoints (GOVERNANCE_AUDIT_SIGNING_KEY, or kept beside the
    // embedded database); only made or read when the audit module is composed.
    const signingKey = enabled.some((entry) => entry.definition.name === "audit")
      ? await resolveSigningKey({ target, signingKey: parsed.auditSigningKey, logger })
      : null;
    const store = await createStore({
      databaseUrl: parsed.databaseUrl,
      pool: config.pool,
      pglite: config.pglite,
      applicationName: config.applicationName,
      logger,
      production: env.NODE_ENV === "production",
      ...(cwd ? { cwd } : {}),
    });
    const composed: Composed[] = [];
    try {
      const migrations = await runMigrations(
        store,
        enabled.flatMap((entry) =>
          entry.definition.migrations ? [entry.definition.migrations] : [],
        ),
        { logger },
      );
      let audit: AuditSink = noopAuditSink;
      let halt: HaltGuard = noopHaltGuard;
      let operators: OperatorDirectory = noopOperatorDirectory;
      for (const entry of enabled) {
        const context: ModuleContext = {
          store,
          keyring,
          signingKey,
          clock,
          logger,
          audit,
          halt,
          operators,
        };
        const instance = await entry.definition.create(
          context,
          entry.moduleOptions?.(config, {
            cwd: cwd ?? process.cwd(),
            production: env.NODE_ENV === "production",
          }) as never,
        );
        composed.push({ entry, instance });
        const provided = entry.definition.provides?.(instance) ?? {};
        audit = provided.audit ?? audit;
        halt = provided.halt ?? halt;
        operators = provided.operators ?? operators;
      }
      const modules = new Map(composed.map((part) => [part.entry.definition.name, part]));
      return new GovernanceSDK({
        store,
        keyring,
        clock,
        logger,
        config,
        migrations,
        modules,
        ports: portsOf(modules, { audit, halt, logger }),
        flags: new Map(
          registry.map((entry) => [
            entry.definition.name,
            { flag: entry.flag, enabledByDefault: entry.enabledByDefault },
          ]),
        ),
      });
    } catch (error) {
      await closeModules(composed, logger);
      await store.close();
      throw error;
    }
  }

  /**
   * The instance of a composed module, by name (`sdk.getModule<AuditModule>("audit")` is
   * what `sdk.audit` returns).
   * @throws {ModuleDisabledError} naming the flag, when the module is disabled or unknown.
   */
  getModule<Instance>(name: string): Instance {
    const part = this.#modules.get(name);
    if (part) return part.instance as Instance;
    const known = this.#flags.get(name);
    throw new ModuleDisabledError(
      name,
      known?.flag ?? `enable${name.charAt(0).toUpperCase()}${name.slice(1)}`,
      known ? { enabledByDefault: known.enabledByDefault } : {},
    );
  }

  /**
   * The tamper-evident audit chain: every decision of the other modules lands here.
   * @throws {ModuleDisabledError} when started with `enableAudit: false`.
   */
  get audit(): AuditModule {
    return this.getModule<AuditModule>("audit");
  }

  /**
   * Heartbeats, agent status and the operator's halt, which every enforcement check obeys.
   * @throws {ModuleDisabledError} when started with `enablePresence: false`.
   */
  get presence(): PresenceModule {
    return this.getModule<PresenceModule>("presence");
  }

  /**
   * What each agent may call: tool, API and model allow-lists, hidden tools, default deny.
   * @throws {ModuleDisabledError} when started with `enableScope: false`.
   */
  get scope(): ScopeModule {
    return this.getModule<ScopeModule>("scope");
  }

  /**
   * Budgets that hold under concurrency, prices, reservations and stream reconciliation.
   * @throws {ModuleDisabledError} when started with `enableCost: false`.
   */
  get cost(): CostModule {
    return this.getModule<CostModule>("cost");
  }

  /**
   * Human approvals: signed, single-use, action-bound tokens; waits across processes.
   * @throws {ModuleDisabledError} when started with `enableGates: false`.
   */
  get gates(): GatesModule {
    return this.getModule<GatesModule>("gates");
  }

  /**
   * The steward: blueprints of CEL tripwires and checks, trust debt, interventions, guard().
   * @throws {ModuleDisabledError} unless started with `enableSteward: true`.
   */
  get steward(): StewardModule {
    return this.getModule<StewardModule>("steward");
  }

  /**
   * Runaway detection: the same tool called too often in a session's sliding window.
   * @throws {ModuleDisabledError} when started with `enableLoop: false`.
   */
  get loop(): LoopModule {
    return this.getModule<LoopModule>("loop");
  }

  /**
   * The registry of wrapped model clients (`@gov/wrappers`): which agents make governed calls,
   * through which clients, and the coverage of a set of agents (`coveragePct`).
   * @throws {ModuleDisabledError} when started with `enableCoverage: false`.
   */
  get coverage(): CoverageRegistry {
    return this.getModule<CoverageRegistry>("coverage");
  }

  /** Whether a module is composed in this SDK. */
  isEnabled(name: string): boolean {
    return this.#modules.has(name);
  }

  /** Check that the database answers; never throws. */
  health(options?: { timeoutMs?: number }): Promise<HealthReport> {
    return this.store.health(options);
  }

  /**
   * Wait for the wrapped model calls of this process to settle their usage (`settled()` of
   * `@gov/wrappers`, at most 30 s: what is still in flight then is logged), then close the modules (in reverse order of composition, so that the
   * audit module flushes last) and the store. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const left = await settled();
      if (left > 0)
        this.logger.warn(
          "GovernanceSDK.close(): wrapped model calls had not settled after 30 s (an audit sink or database that does not answer); closing anyway.",
          { inFlight: left },
        );
      await closeModules([...this.#modules.values()], this.logger);
      await this.store.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** What `console.log(sdk)` shows; never a secret or a driver's options. */
  [inspect.custom](): string {
    return `GovernanceSDK(${this.store.description}; modules: ${[...this.#modules.keys()].join(", ") || "none"})`;
  }

  toJSON(): { config: GovernanceConfig; modules: string[]; key: string } {
    return {
      config: this.config,
      modules: [...this.#modules.keys()],
      key: this.keyring.current.id,
    };
  }
}

/** The parsed options without anything secret. */
function publicConfig(
  parsed: CoreConfig & Record<string, unknown>,
  bindings: readonly EnvBinding[],
  database: string,
): GovernanceConfig {
  const secretPaths = bindings
    .filter((binding) => binding.kind === "secret")
    .map((binding) => binding.path);
  const {
    auditSecret: _secret,
    historicalKeys: _keys,
    databaseUrl: _url,
    auditSigningKey: _signingKey,
    ...rest
  } = parsed;
  const config: Record<string, unknown> = { ...rest, database };
  for (const path of secretPaths) {
    const [head, ...tail] = path;
    if (head === undefined || !(head in config)) continue;
    if (tail.length === 0) {
      delete config[head];
    } else if (tail.length === 1 && typeof config[head] === "object" && config[head] !== null) {
      const nested = { ...(config[head] as Record<string, unknown>) };
      delete nested[tail[0] as string];
      config[head] = nested;
    }
  }
  return config as GovernanceConfig;
}

/**
 * The ports of what was composed ({@link GovernanceSDK.ports}): the audit sink and the halt
 * guard that modules provided (none when no module did), the scope, loop, cost, gates and
 * steward modules and the coverage registry when composed, and the logger. Absent ports are
 * left out.
 */
function portsOf(
  modules: ReadonlyMap<string, Composed>,
  provided: { audit: AuditSink; halt: HaltGuard; logger: Logger },
): GovernancePorts {
  const instance = <Instance>(name: string) => modules.get(name)?.instance as Instance | undefined;
  const ports: GovernancePorts = {};
  if (provided.halt !== noopHaltGuard) ports.halt = provided.halt;
  const scope = instance<ScopeModule>("scope");
  if (scope !== undefined) ports.scope = scope;
  const loop = instance<LoopModule>("loop");
  if (loop !== undefined) ports.loop = loop;
  const cost = instance<CostModule>("cost");
  if (cost !== undefined) ports.cost = cost;
  const gates = instance<GatesModule>("gates");
  if (gates !== undefined) ports.gates = gates;
  const steward = instance<StewardModule>("steward");
  if (steward !== undefined) ports.steward = steward;
  const coverage = instance<CoverageRegistry>("coverage");
  if (coverage !== undefined) ports.coverage = coverage;
  if (provided.audit !== noopAuditSink) ports.audit = provided.audit;
  ports.logger = provided.logger;
  return Object.freeze(ports);
}

async function closeModules(composed: readonly Composed[], logger: Logger): Promise<void> {
  for (const part of [...composed].reverse()) {
    try {
      await part.entry.definition.close?.(part.instance);
    } catch (error) {
      logger.error(`The ${part.entry.definition.name} module did not close cleanly.`, { error });
    }
  }
}

/**
 * Refuse a registry in which two modules would claim the same name, flag, option or
 * environment variable, or a module would claim one of core's: merged silently, the later
 * would replace the earlier's schema and default (a plugin could turn `costFailOpen` on).
 * @throws {ConfigError} naming every collision; nothing has been opened.
 */
function refuseCollisions(registry: readonly SdkModuleEntry[]): void {
  const issues: ConfigIssue[] = [];
  const owners = new Map<string, string>();
  for (const key of Object.keys(coreOptionsSchema.shape)) owners.set(`option ${key}`, "@gov/core");
  for (const binding of CORE_ENV_BINDINGS) owners.set(`variable ${binding.env}`, "@gov/core");
  const claim = (what: string, name: string, owner: string) => {
    const key = `${what} ${name}`;
    const previous = owners.get(key);
    if (previous === undefined) {
      owners.set(key, owner);
      return;
    }
    issues.push({
      source: "option",
      name,
      problem: `is claimed by two modules: ${previous} and ${owner} (${what}).`,
      fix: "Give each module's SDK contribution its own names (prefix them with the module's name), and compose each module once.",
    });
  };
  for (const entry of registry) {
    const owner = `module "${entry?.definition?.name}"`;
    claim("module", String(entry?.definition?.name), owner);
    claim("option", entry.flag, owner);
    for (const option of Object.keys(entry.options ?? {})) claim("option", option, owner);
    for (const binding of entry.env ?? []) claim("variable", binding.env, owner);
  }
  if (issues.length > 0) throw new ConfigError(issues);
}
