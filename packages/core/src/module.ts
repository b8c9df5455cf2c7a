import type { z } from "zod";
import type { Clock } from "./clock";
import type { EnvBinding, FieldFixes } from "./config";
import { typeOf } from "./describe";
import { InvalidArgumentError } from "./errors";
import type { Keyring, SigningKey } from "./keys";
import type { Logger } from "./logger";
import type { MigrationSource } from "./migrations";
import type { AuditSink, HaltGuard, OperatorDirectory } from "./ports";
import type { Store } from "./store";

/**
 * What a module is given when it is constructed: the shared store, keys, clock and logger,
 * and the ports through which it reaches other modules without importing them.
 */
export interface ModuleContext {
  store: Store;
  keyring: Keyring;
  /**
   * The Ed25519 key that signs audit checkpoints (see `resolveSigningKey`); absent or null
   * when none is configured, and checkpoints then carry the HMAC only.
   */
  signingKey?: SigningKey | null;
  clock: Clock;
  logger: Logger;
  /** Where decisions are recorded; {@link noopAuditSink} when no audit module is composed. */
  audit: AuditSink;
  /** The operator's halt; {@link noopHaltGuard} when no presence module is composed. */
  halt: HaltGuard;
  /**
   * Who answers for each agent (the operator bound by its heartbeat); absent or
   * {@link noopOperatorDirectory} when no presence module is composed.
   */
  operators?: OperatorDirectory;
}

/** Ports a module can provide to the modules composed after it. */
export type ProvidedPorts = Partial<Pick<ModuleContext, "audit" | "halt" | "operators">>;

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
  /**
   * What the module contributes to `GovernanceSDK.start()`: its flag, its options in the
   * SDK's flat option object, their environment variables and fixes, and how they become the
   * module's own options. The module owns this; the SDK only composes the contributions.
   */
  // biome-ignore lint/suspicious/noExplicitAny: a module's parsed SDK options are its own shape
  readonly sdk?: SdkContribution<any>;
}

/**
 * A module's part of the umbrella's configuration, the way a plugin contributes its options
 * to a host: `GovernanceSDK.start()` merges every enabled module's `options` into one schema,
 * reads their `env` bindings, and hands each module `moduleOptions(parsed)`.
 *
 * @example
 * ```ts
 * const sdk: SdkContribution<{ costFailOpen: boolean }> = {
 *   flag: "enableCost",
 *   enabledByDefault: true,
 *   options: { costFailOpen: z.boolean().default(false) },
 *   env: [{ env: "GOVERNANCE_COST_FAIL_OPEN", path: ["costFailOpen"], kind: "boolean" }],
 *   fixes: { costFailOpen: "Use true or false." },
 *   moduleOptions: (config) => ({ failOpen: config.costFailOpen }),
 * };
 * ```
 */
export interface SdkContribution<Config = Record<string, unknown>> {
  /** The option that turns the module on or off, e.g. `enableAudit`. */
  readonly flag: `enable${string}`;
  /** Whether it is on when the flag is not given. */
  readonly enabledByDefault: boolean;
  /** The module's options in the SDK's flat option object (e.g. `costFailOpen`), prefixed by the module's name unless the reference names them otherwise. */
  readonly options?: z.ZodRawShape;
  /** Environment variables for those options (the reference's names). */
  readonly env?: readonly EnvBinding[];
  /** How to fix each of those options, keyed by option name. */
  readonly fixes?: FieldFixes;
  /**
   * The module's own options from the SDK's parsed options; `cwd` is what relative paths are
   * resolved against (the SDK's `cwd` option, or the process's); `production` is
   * `NODE_ENV === "production"` in the SDK's environment. May throw a `ConfigError`.
   */
  moduleOptions?(config: Config, environment: { cwd: string; production: boolean }): unknown;
}

/** Identity function that gives a module definition its precise type. */
export function defineModule<Name extends string, Instance, Options = void>(
  definition: ModuleDefinition<Name, Instance, Options>,
): ModuleDefinition<Name, Instance, Options> {
  return definition;
}

/**
 * Refuse a port of a module's context that is not an object with the methods the module
 * calls, naming the field (`context.<field>`), what is missing and how to fix it. With
 * `optional`, an absent port (undefined) is accepted: the module uses its default.
 *
 * @example
 * ```ts
 * requirePort(context.clock, "clock", ["now", "nowMs"], "a Clock");
 * ```
 * @throws {InvalidArgumentError} `INVALID_ARGUMENT`
 */
export function requirePort(
  value: unknown,
  field: string,
  methods: readonly string[],
  what: string,
  options: { optional?: boolean } = {},
): void {
  if (value === undefined && options.optional) return;
  const fix = `Pass context.${field} with ${methods.map((method) => `${method}()`).join(", ")}${options.optional ? ", or leave it out for its default" : ""}; @gov/sdk wires it for you.`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(
      `context.${field}`,
      `must be ${what}, got ${typeOf(value)}.`,
      fix,
    );
  }
  const missing = methods.filter(
    (method) => typeof (value as Record<string, unknown>)[method] !== "function",
  );
  if (missing.length > 0) {
    throw new InvalidArgumentError(
      `context.${field}`,
      `must be ${what}, but it has no ${missing.join(", ")} method${missing.length > 1 ? "s" : ""}.`,
      fix,
    );
  }
}

/**
 * Check that `value` is a usable {@link Keyring} — it finds keys by id and has a current key
 * that signs — before a module signs or verifies state with it; throws
 * {@link InvalidArgumentError} naming `field` (e.g. `context.keyring`) otherwise.
 *
 * @param purpose what the module uses it for, said in the error (e.g. "stored policies are
 *   signed and verified with it").
 * @param fix how to fix it. @default pass the deployment's Keyring
 * @example
 * ```ts
 * requireKeyring(context.keyring, "context.keyring", "stored policies are signed with it");
 * ```
 */
export function requireKeyring(
  value: unknown,
  field: string,
  purpose: string,
  fix = `Pass ${field}: the deployment's Keyring (resolveKeyring, or new Keyring(new ChainKey(secret))); @gov/sdk wires it for you.`,
): asserts value is Keyring {
  const usable =
    typeof value === "object" &&
    value !== null &&
    typeof (value as { find?: unknown }).find === "function" &&
    typeof (value as { current?: { hmacHex?: unknown } }).current?.hmacHex === "function";
  if (!usable) {
    throw new InvalidArgumentError(
      field,
      `must be a Keyring with a current key (${purpose}), got ${typeOf(value)}.`,
      fix,
    );
  }
}
