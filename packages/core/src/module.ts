import type { Clock } from "./clock";
import type { Keyring } from "./keys";
import type { Logger } from "./logger";
import type { MigrationSource } from "./migrations";
import type { AuditSink, HaltGuard } from "./ports";
import type { Store } from "./store";

/**
 * What a module is given when it is constructed: the shared store, keys, clock and logger,
 * and the ports through which it reaches other modules without importing them.
 */
export interface ModuleContext {
  store: Store;
  keyring: Keyring;
  clock: Clock;
  logger: Logger;
  /** Where decisions are recorded; {@link noopAuditSink} when no audit module is composed. */
  audit: AuditSink;
  /** The operator's halt; {@link noopHaltGuard} when no presence module is composed. */
  halt: HaltGuard;
}

/** Ports a module can provide to the modules composed after it. */
export type ProvidedPorts = Partial<Pick<ModuleContext, "audit" | "halt">>;

/**
 * How a module plugs into a composition — `@gov/sdk`'s, or one written by hand. Each module
 * package exports one.
 *
 * @example
 * ```ts
 * export const auditModule = defineModule({
 *   name: "audit",
 *   migrations: { name: "audit", migrationsFolder: new URL("../drizzle", import.meta.url) },
 *   create: (context, options: AuditOptions) => new AuditModule(context, options),
 *   provides: (audit) => ({ audit }),
 *   close: (audit) => audit.close(),
 * });
 * ```
 */
export interface ModuleDefinition<
  Name extends string = string,
  Instance = unknown,
  Options = void,
> {
  /** The module's name: `sdk.<name>`, flag `enable<Name>`, schema `gov_<name>`. */
  readonly name: Name;
  /** Its migrations, if it stores anything. */
  readonly migrations?: MigrationSource;
  /** Construct the module. */
  create(context: ModuleContext, options: Options): Instance | Promise<Instance>;
  /** Ports the instance provides to modules composed after it. */
  provides?(instance: Instance): ProvidedPorts;
  /** Release what the instance holds (timers, subscriptions, buffers); called in reverse order. */
  close?(instance: Instance): Promise<void>;
}

/** Identity function that gives a module definition its precise type. */
export function defineModule<Name extends string, Instance, Options = void>(
  definition: ModuleDefinition<Name, Instance, Options>,
): ModuleDefinition<Name, Instance, Options> {
  return definition;
}
