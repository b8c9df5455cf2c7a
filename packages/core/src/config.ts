import { z } from "zod";
import { parseDatabaseUrl } from "./database-url";
import { ConfigError, type ConfigIssue } from "./errors";
import {
  historicalKeysFromEnv,
  MIN_SECRET_BYTES,
  MIN_SECRET_DISTINCT_BYTES,
  SigningKey,
} from "./keys";

/** How an environment variable's text becomes an option value. */
export type EnvValueKind =
  | "string"
  | "secret"
  | "integer"
  | "number"
  | "boolean"
  | "date"
  | "string-list";

/**
 * Binds an environment variable to an option. An explicit option always wins over the
 * variable; the variable wins over the default.
 */
export interface EnvBinding {
  /** The variable, e.g. `GOVERNANCE_DATABASE_URL`. */
  env: string;
  /** The option path, e.g. `["pool", "max"]`. */
  path: readonly string[];
  kind: EnvValueKind;
}

/** What to tell the user when a field is wrong, keyed by option path (`pool.max`). */
export type FieldFixes = Readonly<Record<string, string>>;

const databaseUrlSchema = z
  .string()
  .refine((value) => parseDatabaseUrl(value) !== undefined, {
    // The value may contain a password: the message never repeats it.
    message:
      "is not a postgres:// or postgresql:// URL with a host, memory://, a file: URL, or a directory path.",
  })
  .optional();

/** The options of {@link createStore}, validated at the boundary. */
export const storeOptionsSchema = z
  .object({
    /**
     * Where the data lives: `postgres://…`, `memory://`, a `file:` URL or a directory.
     * Unset: an embedded PGlite in `./.governance/`.
     */
    databaseUrl: databaseUrlSchema,
    /** Connection pool of a real Postgres (ignored by PGlite, which has one connection). */
    pool: z
      .object({
        /** Most connections open at once. @default 10 */
        max: z.int().min(1).max(1000).default(10),
        /** How long to wait for a connection before failing. @default 5000 */
        connectionTimeoutMs: z.int().min(100).max(600_000).default(5_000),
        /** Close connections idle for this long. @default 30000 */
        idleTimeoutMs: z.int().min(0).max(3_600_000).default(30_000),
        /** Cancel statements that run longer than this (0: no limit). @default 0 */
        statementTimeoutMs: z.int().min(0).max(3_600_000).default(0),
      })
      .strict()
      .prefault({}),
    /** Embedded database settings. */
    pglite: z
      .object({
        /**
         * Where the initialized database template is cached when the shipped one does not
         * match the installed PGlite; `false` disables the cache.
         * @default `$XDG_CACHE_HOME/gov` or `~/.cache/gov`
         */
        templateCacheDirectory: z.union([z.string().min(1), z.literal(false)]).optional(),
        /** Trade durability for speed (PGlite's `relaxedDurability`); never for evidence you keep. @default false */
        relaxedDurability: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /** `application_name` reported to Postgres. @default "gov" */
    applicationName: z
      .string()
      .regex(/^[\w .:@/-]{1,63}$/)
      .default("gov"),
  })
  .strict();

/** Validated store options. */
export type StoreConfig = z.output<typeof storeOptionsSchema>;

/** The options of {@link createStore} as a caller writes them. */
export type StoreOptionsInput = z.input<typeof storeOptionsSchema>;

const secretSchema = z
  .string()
  .refine((value) => Buffer.byteLength(value, "utf8") >= MIN_SECRET_BYTES, {
    message: `is too short: at least ${MIN_SECRET_BYTES} bytes are required.`,
  })
  .refine((value) => new Set(Buffer.from(value, "utf8")).size >= MIN_SECRET_DISTINCT_BYTES, {
    message: `is too weak: at least ${MIN_SECRET_DISTINCT_BYTES} distinct byte values are required.`,
  });

const signingKeySchema = z.string().refine(
  (value) => {
    try {
      new SigningKey(value);
      return true;
    } catch {
      return false;
    }
  },
  // Never the value: it is a private key.
  { message: "is not an Ed25519 private key (PKCS#8 PEM or the base64 of its DER form)." },
);

/**
 * The options every governance deployment shares: the store, the audit secret and the
 * historical keys, and logging. `@gov/sdk` extends this schema with the modules' options.
 */
export const coreOptionsSchema = storeOptionsSchema.extend({
  /**
   * The secret that keys the audit chain and approval tokens (≥ 32 bytes, ≥ 8 distinct
   * byte values). Required with a real Postgres; with the embedded database one is
   * generated once and kept beside the data.
   */
  auditSecret: secretSchema.optional(),
  /** Secrets of earlier keys, so that what they signed still verifies after a rotation. */
  historicalKeys: z.array(secretSchema).max(64).default([]),
  /**
   * The Ed25519 private key (PKCS#8 PEM, or the base64 of its DER form) that signs audit
   * checkpoints, so that whoever holds the database and the HMAC secret still cannot forge
   * one; verifiers need only its public key. With the embedded database one is generated
   * once and kept beside the data; with a real Postgres and none, checkpoints carry the HMAC
   * only.
   */
  auditSigningKey: signingKeySchema.optional(),
  /** Lowest level logged by the default logger. @default "info" */
  logLevel: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
});

/** Validated core options. */
export type CoreConfig = z.output<typeof coreOptionsSchema>;
/** Core options as a caller writes them. */
export type CoreOptionsInput = z.input<typeof coreOptionsSchema>;

/** The environment variables core reads (names as in the reference). */
export const CORE_ENV_BINDINGS: readonly EnvBinding[] = [
  { env: "GOVERNANCE_DATABASE_URL", path: ["databaseUrl"], kind: "secret" },
  { env: "GOVERNANCE_AUDIT_SECRET", path: ["auditSecret"], kind: "secret" },
  { env: "GOVERNANCE_AUDIT_SIGNING_KEY", path: ["auditSigningKey"], kind: "secret" },
  { env: "GOVERNANCE_DB_POOL_SIZE", path: ["pool", "max"], kind: "integer" },
  {
    env: "GOVERNANCE_DB_STATEMENT_TIMEOUT_MS",
    path: ["pool", "statementTimeoutMs"],
    kind: "integer",
  },
  { env: "GOVERNANCE_LOG_LEVEL", path: ["logLevel"], kind: "string" },
];

const GENERATE_SECRET = "generate one with `openssl rand -base64 48`";

/** How to fix each core option. */
export const CORE_FIELD_FIXES: FieldFixes = {
  databaseUrl:
    "Use postgres://user:password@host:5432/database for a real Postgres, memory:// for a throwaway embedded database, or a directory path (or leave it unset for ./.governance/).",
  "pool.max": "Use an integer from 1 to 1000.",
  "pool.connectionTimeoutMs": "Use an integer number of milliseconds from 100 to 600000.",
  "pool.idleTimeoutMs": "Use an integer number of milliseconds from 0 to 3600000.",
  "pool.statementTimeoutMs": "Use an integer number of milliseconds from 0 (no limit) to 3600000.",
  "pglite.templateCacheDirectory": "Use a writable directory path, or false to disable the cache.",
  "pglite.relaxedDurability": "Use true or false.",
  applicationName: "Use 1 to 63 letters, digits, spaces or . : @ / - _.",
  auditSecret: `Use a secret of at least ${MIN_SECRET_BYTES} bytes: ${GENERATE_SECRET}.`,
  historicalKeys: `Each historical key must be a former audit secret (at least ${MIN_SECRET_BYTES} bytes).`,
  auditSigningKey:
    "Use an Ed25519 private key: `openssl genpkey -algorithm ed25519` prints one as PKCS#8 PEM (or pass the base64 of its DER form).",
  logLevel: 'Use one of "debug", "info", "warn", "error", "silent".',
};

const TRUE_WORDS = new Set(["1", "true", "yes", "on"]);
const FALSE_WORDS = new Set(["0", "false", "no", "off"]);

function parseEnvValue(
  kind: EnvValueKind,
  text: string,
): { value: unknown } | { problem: string; fix: string } {
  const trimmed = text.trim();
  switch (kind) {
    case "string":
    case "secret":
      return { value: kind === "secret" ? text.trim() : trimmed };
    case "integer": {
      if (!/^[+-]?\d+$/.test(trimmed))
        return { problem: "is not an integer.", fix: "Use digits only, e.g. 10." };
      return { value: Number(trimmed) };
    }
    case "number": {
      const value = Number(trimmed);
      if (trimmed === "" || !Number.isFinite(value))
        return { problem: "is not a number.", fix: "Use a decimal number, e.g. 2.5." };
      return { value };
    }
    case "boolean": {
      const word = trimmed.toLowerCase();
      if (TRUE_WORDS.has(word)) return { value: true };
      if (FALSE_WORDS.has(word)) return { value: false };
      return { problem: "is not a boolean.", fix: "Use true or false (1/0, yes/no, on/off)." };
    }
    case "date": {
      const value = new Date(trimmed);
      // A time without a zone would be read in the host's zone: hosts would disagree.
      const zoneless = /\d[T ]\d{2}:\d{2}/.test(trimmed) && !/(Z|[+-]\d{2}:?\d{2})$/i.test(trimmed);
      if (zoneless)
        return {
          problem: "has a time without a zone (it would be read in each host's own zone).",
          fix: "Use an ISO 8601 timestamp with Z or an offset, e.g. 2026-07-17T00:00:00Z.",
        };
      if (trimmed === "" || Number.isNaN(value.getTime()))
        return {
          problem: "is not a date.",
          fix: "Use an ISO 8601 timestamp, e.g. 2026-07-17T00:00:00Z.",
        };
      return { value };
    }
    case "string-list":
      return { value: trimmed === "" ? [] : trimmed.split(",").map((part) => part.trim()) };
  }
}

function getPath(target: Record<string, unknown>, path: readonly string[]): unknown {
  let current: unknown = target;
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let current = target;
  path.forEach((key, index) => {
    if (index === path.length - 1) {
      current[key] = value;
      return;
    }
    const next = current[key];
    const copy =
      typeof next === "object" && next !== null && !Array.isArray(next)
        ? { ...(next as object) }
        : {};
    current[key] = copy;
    current = copy as Record<string, unknown>;
  });
}

/** What {@link readConfig} reads. */
export interface ReadConfigInput {
  /** The options passed in code. Explicit values win over the environment. */
  options: unknown;
  /** The environment; pass `process.env` at the edge of the application. */
  env: Record<string, string | undefined>;
}

/**
 * Read a configuration once, at the edge: merge the environment into the options (an
 * explicit option always wins), validate the result with `schema`, and report every
 * problem at once as a {@link ConfigError} naming the option or the variable, what is
 * wrong, and the fix. Values of secrets (database URLs, keys) are never repeated in the
 * error.
 *
 * @example
 * ```ts
 * const config = readConfig(coreOptionsSchema, CORE_ENV_BINDINGS, CORE_FIELD_FIXES, {
 *   options: { pool: { max: 20 } },
 *   env: process.env,
 * });
 * ```
 * @throws {ConfigError} `CONFIG_INVALID`
 */
export function readConfig<Schema extends z.ZodType>(
  schema: Schema,
  bindings: readonly EnvBinding[],
  fixes: FieldFixes,
  input: ReadConfigInput,
): z.output<Schema> {
  const issues: ConfigIssue[] = [];
  if (
    input.options !== undefined &&
    (typeof input.options !== "object" || input.options === null || Array.isArray(input.options))
  ) {
    throw new ConfigError([
      {
        source: "option",
        name: "options",
        problem: "must be an object.",
        fix: "Pass an options object, e.g. { databaseUrl }.",
      },
    ]);
  }
  const merged: Record<string, unknown> = {
    ...((input.options as Record<string, unknown> | undefined) ?? {}),
  };
  const envByPath = new Map<string, string>();
  for (const binding of bindings) {
    const text = input.env[binding.env];
    if (text === undefined || text === "") continue;
    if (getPath(merged, binding.path) !== undefined) continue;
    const parsed = parseEnvValue(binding.kind, text);
    if ("problem" in parsed) {
      issues.push({ source: "env", name: binding.env, problem: parsed.problem, fix: parsed.fix });
      continue;
    }
    setPath(merged, binding.path, parsed.value);
    envByPath.set(binding.path.join("."), binding.env);
  }
  const result = schema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.map(String).join(".");
      const fieldPath = issue.path.filter((part) => typeof part === "string").join(".");
      const fromEnv = envByPath.get(fieldPath);
      let problem = issue.message.replace(/\.$/, "");
      if (issue.code === "unrecognized_keys") {
        problem = `unknown option${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}`;
      }
      issues.push({
        source: fromEnv ? "env" : "option",
        name: fromEnv ?? (path === "" ? "options" : path),
        problem: `${problem}.`,
        fix:
          fixes[fieldPath] ??
          (issue.code === "unrecognized_keys"
            ? "Remove it, or check its spelling against the options table in the README."
            : "Correct the value; see the options table in the README."),
      });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return (result as { data: z.output<Schema> }).data;
}

/**
 * Read the core options and the historical keys in `GOVERNANCE_CHAIN_KEY_<prefix>`
 * variables. For a composition by hand (without `@gov/sdk`), call this at the edge and
 * pass the result to {@link createStore} and {@link resolveKeyring}.
 *
 * @throws {ConfigError} naming every bad option or variable.
 */
export function readCoreConfig(input: ReadConfigInput): CoreConfig {
  const config = readConfig(coreOptionsSchema, CORE_ENV_BINDINGS, CORE_FIELD_FIXES, input);
  return {
    ...config,
    historicalKeys: [...config.historicalKeys, ...readHistoricalKeyEnv(input.env)],
  };
}

/**
 * The secrets in `GOVERNANCE_CHAIN_KEY_<fingerprint prefix>` variables, each checked against
 * its name (a key pasted under the wrong name is refused, not ignored).
 *
 * @throws {ConfigError} naming every refused variable.
 */
export function readHistoricalKeyEnv(env: Record<string, string | undefined>): string[] {
  const { secrets, problems } = historicalKeysFromEnv(env);
  if (problems.length > 0) {
    throw new ConfigError(problems.map((problem) => ({ source: "env" as const, ...problem })));
  }
  return secrets;
}
