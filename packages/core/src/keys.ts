import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { link, mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { inspect } from "node:util";
import type { DatabaseTarget } from "./database-url";
import { CORE_ERROR_CODES, GovernanceError } from "./errors";
import type { Logger } from "./logger";

/** Minimum length of an audit secret, in bytes (as in the reference). */
export const MIN_SECRET_BYTES = 32;
/** Minimum number of distinct byte values in an audit secret (as in the reference). */
export const MIN_SECRET_DISTINCT_BYTES = 8;
/** Length of a key id: the first 16 hex characters of the key's fingerprint. */
export const KEY_ID_LENGTH = 16;
/** Name of the key file kept beside an embedded database. */
export const EMBEDDED_KEY_FILE = "audit-secret.key";
/** Environment variables that carry historical chain keys: `GOVERNANCE_CHAIN_KEY_<fingerprint prefix>`. */
export const CHAIN_KEY_ENV_PREFIX = "GOVERNANCE_CHAIN_KEY_";

const GENERATE_HINT =
  "Generate one with `openssl rand -base64 48` or `node -e \"console.log(require('node:crypto').randomBytes(48).toString('base64url'))\"`";

/** A secret was refused, or is missing where one is required. */
export class SecretError extends GovernanceError {
  /** The option or environment variable that held the secret. */
  readonly field: string;

  constructor(code: string, field: string, message: string, recoveryHint: string, cause?: unknown) {
    super({ code, message, recoveryHint, cause });
    this.name = "SecretError";
    this.field = field;
  }
}

function toBytes(secret: string | Uint8Array): Buffer {
  return typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
}

/**
 * Check that a secret is strong enough to key the audit chain: at least
 * {@link MIN_SECRET_BYTES} bytes with at least {@link MIN_SECRET_DISTINCT_BYTES} distinct
 * byte values. The error names `field` and says how to generate a good secret; it never
 * contains the secret.
 *
 * @param field The option or variable the secret came from, for the message.
 * @throws {SecretError} `SECRET_INVALID`
 */
export function validateSecret(secret: string | Uint8Array, field = "auditSecret"): void {
  const bytes = toBytes(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new SecretError(
      CORE_ERROR_CODES.SECRET_INVALID,
      field,
      `${field} is too short: ${bytes.length} bytes, at least ${MIN_SECRET_BYTES} are required.`,
      `${GENERATE_HINT}, and pass it as ${field}.`,
    );
  }
  const distinct = new Set(bytes).size;
  if (distinct < MIN_SECRET_DISTINCT_BYTES) {
    throw new SecretError(
      CORE_ERROR_CODES.SECRET_INVALID,
      field,
      `${field} is too weak: only ${distinct} distinct byte values, at least ${MIN_SECRET_DISTINCT_BYTES} are required (a repeated character is not a secret).`,
      `${GENERATE_HINT}, and pass it as ${field}.`,
    );
  }
}

/**
 * The fingerprint of a key: SHA-256 (hex) over a domain-separated encoding of the key.
 * Safe to log and to store beside what the key signed; it identifies the key without
 * revealing it.
 */
export function keyFingerprint(secret: string | Uint8Array): string {
  return createHash("sha256")
    .update("gov.key-fingerprint.v1\0")
    .update(toBytes(secret))
    .digest("hex");
}

/**
 * A chain key: the secret, known by its fingerprint. The secret itself is not enumerable
 * and never appears in `JSON.stringify`, `console.log` or `util.inspect` output.
 */
export class ChainKey {
  /** SHA-256 fingerprint (64 hex characters). */
  readonly fingerprint: string;
  /** The first {@link KEY_ID_LENGTH} hex characters of the fingerprint. */
  readonly id: string;
  readonly #material: Buffer;

  /**
   * @param secret The key material; validated with {@link validateSecret}.
   * @param field Where it came from, for error messages.
   */
  constructor(secret: string | Uint8Array, field = "auditSecret") {
    validateSecret(secret, field);
    this.#material = toBytes(secret);
    this.fingerprint = keyFingerprint(secret);
    this.id = this.fingerprint.slice(0, KEY_ID_LENGTH);
  }

  /** HMAC-SHA256 of `data` under this key, as 32 bytes. */
  hmac(data: string | Uint8Array): Buffer {
    return createHmac("sha256", this.#material).update(data).digest();
  }

  /** HMAC-SHA256 of `data` under this key, as 64 lowercase hex characters. */
  hmacHex(data: string | Uint8Array): string {
    return createHmac("sha256", this.#material).update(data).digest("hex");
  }

  /**
   * Check an HMAC-SHA256 (hex) of `data` in constant time.
   * @returns true when `mac` is this key's HMAC of `data`.
   */
  verifyHex(data: string | Uint8Array, mac: string): boolean {
    return constantTimeEqualHex(this.hmacHex(data), mac);
  }

  toJSON(): { id: string; fingerprint: string } {
    return { id: this.id, fingerprint: this.fingerprint };
  }

  toString(): string {
    return `ChainKey(${this.id})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Compare two hex strings (MACs, hashes) in constant time. Unequal lengths compare as
 * unequal without leaking where they differ.
 */
export function constantTimeEqualHex(expected: string, actual: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(actual, "utf8");
  if (a.length !== b.length) {
    // Still spend the time of a comparison so the length check is not a fast path.
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/**
 * The current chain key plus historical keys, looked up by fingerprint prefix. Rows and
 * tokens record the id of the key that signed them; after a rotation, the old key stays
 * in the keyring so that what it signed still verifies.
 *
 * @example
 * ```ts
 * const keyring = new Keyring(new ChainKey(process.env.GOVERNANCE_AUDIT_SECRET!), [
 *   new ChainKey(oldSecret, "historicalKeys[0]"),
 * ]);
 * keyring.find(row.keyId)?.verifyHex(signedBytes, row.hmac);
 * ```
 */
export class Keyring {
  /** The key new signatures are made with. */
  readonly current: ChainKey;
  readonly #keys: readonly ChainKey[];

  constructor(current: ChainKey, historical: readonly ChainKey[] = []) {
    this.current = current;
    const seen = new Set<string>([current.fingerprint]);
    const keys = [current];
    for (const key of historical) {
      if (seen.has(key.fingerprint)) continue;
      seen.add(key.fingerprint);
      keys.push(key);
    }
    this.#keys = keys;
  }

  /** Every key, current first. */
  get keys(): readonly ChainKey[] {
    return this.#keys;
  }

  /**
   * The key whose fingerprint starts with `prefix` (a key id, or the whole fingerprint);
   * `undefined` when none does, or when the prefix is ambiguous or shorter than 8 characters.
   */
  find(prefix: string): ChainKey | undefined {
    const wanted = prefix.toLowerCase();
    if (wanted.length < 8 || !/^[0-9a-f]+$/.test(wanted)) return undefined;
    const matches = this.#keys.filter((key) => key.fingerprint.startsWith(wanted));
    return matches.length === 1 ? matches[0] : undefined;
  }

  /**
   * Like {@link Keyring.find}, but throws `KEY_NOT_FOUND` naming the missing key id and how
   * to supply it.
   */
  require(prefix: string): ChainKey {
    const key = this.find(prefix);
    if (key) return key;
    throw new SecretError(
      CORE_ERROR_CODES.KEY_NOT_FOUND,
      "historicalKeys",
      `No key with fingerprint prefix ${prefix} is in the keyring (it holds ${this.#keys.map((k) => k.id).join(", ")}).`,
      `Supply the historical key as ${CHAIN_KEY_ENV_PREFIX}${prefix.slice(0, KEY_ID_LENGTH).toUpperCase()} or in the historicalKeys option.`,
    );
  }

  toJSON(): { current: string; keys: string[] } {
    return { current: this.current.id, keys: this.#keys.map((key) => key.id) };
  }

  [inspect.custom](): string {
    return `Keyring(current=${this.current.id}, keys=${this.#keys.length})`;
  }
}

/**
 * Read historical chain keys from `GOVERNANCE_CHAIN_KEY_<fingerprint prefix>` variables.
 * The suffix must be a prefix (at least 8 hex characters, any case) of the key's own
 * fingerprint, so that a key pasted under the wrong name is refused rather than ignored.
 *
 * @returns the validated secrets, and the variables that were refused and why.
 */
export function historicalKeysFromEnv(env: Record<string, string | undefined>): {
  secrets: string[];
  problems: { name: string; problem: string; fix: string }[];
} {
  const secrets: string[] = [];
  const problems: { name: string; problem: string; fix: string }[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(CHAIN_KEY_ENV_PREFIX) || value === undefined || value.trim() === "")
      continue;
    const suffix = name.slice(CHAIN_KEY_ENV_PREFIX.length).toLowerCase();
    if (!/^[0-9a-f]{8,64}$/.test(suffix)) {
      problems.push({
        name,
        problem: "the suffix must be the key's fingerprint prefix (8 to 64 hex characters).",
        fix: `Rename it ${CHAIN_KEY_ENV_PREFIX}<first 16 hex characters of the key's fingerprint>.`,
      });
      continue;
    }
    let key: ChainKey;
    try {
      key = new ChainKey(value.trim(), name);
    } catch (error) {
      problems.push({
        name,
        problem: error instanceof Error ? error.message : "invalid key.",
        fix: GENERATE_HINT,
      });
      continue;
    }
    if (!key.fingerprint.startsWith(suffix)) {
      problems.push({
        name,
        problem: `the key's fingerprint starts with ${key.id}, not ${suffix}.`,
        fix: `Rename it ${CHAIN_KEY_ENV_PREFIX}${key.id.toUpperCase()}.`,
      });
      continue;
    }
    secrets.push(value.trim());
  }
  return { secrets, problems };
}

/**
 * Read the audit secret kept beside an embedded database, creating it (48 random bytes,
 * base64url, file mode 0600) on first use, so that chains still verify after a restart.
 * Concurrent first starts agree on one key: the file is created exclusively and the loser
 * reads the winner's.
 *
 * @param directory The governance home (created with mode 0700 if missing).
 * @throws {SecretError} `SECRET_FILE` when the file cannot be read or written, or
 *   `SECRET_INVALID` when it holds a weak secret.
 */
export async function loadOrCreateKeyFile(
  directory: string,
  logger: Logger,
): Promise<{ secret: string; created: boolean; path: string }> {
  const path = join(directory, EMBEDDED_KEY_FILE);
  const fail = (problem: string, cause: unknown) =>
    new SecretError(
      CORE_ERROR_CODES.SECRET_FILE,
      path,
      `The embedded database's audit key file ${path} ${problem}.`,
      "Check the directory's permissions, or pass auditSecret (GOVERNANCE_AUDIT_SECRET) explicitly.",
      cause,
    );
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw fail("could not be created (the directory is not writable)", error);
  }
  // Write the key to a private temporary file, then link it into place: link() fails if
  // the key file exists, so the file appears atomically and complete, and of concurrent
  // first starts exactly one wins while the others read the winner's key.
  let created = false;
  const temporary = join(
    directory,
    `.${EMBEDDED_KEY_FILE}.${process.pid}.${randomBytes(6).toString("hex")}`,
  );
  try {
    const handle = await open(temporary, "wx", 0o600);
    try {
      await handle.writeFile(`${randomBytes(48).toString("base64url")}\n`, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(temporary, path);
    created = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST")
      throw fail("could not be created", error);
  } finally {
    await rm(temporary, { force: true });
  }
  let secret: string;
  try {
    secret = (await readFile(path, "utf8")).trim();
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      logger.warn(
        `The audit key file is readable by other users (mode ${mode.toString(8)}); run chmod 600 on it.`,
        {
          path,
        },
      );
    }
  } catch (error) {
    throw fail("could not be read", error);
  }
  validateSecret(secret, path);
  return { secret, created, path };
}

/** What {@link resolveKeyring} needs. */
export interface ResolveKeyringOptions {
  /** Where the data lives (from the database URL). */
  target: DatabaseTarget;
  /** The configured audit secret, if any. */
  auditSecret?: string | undefined;
  /** Secrets of earlier keys. */
  historicalKeys?: readonly string[] | undefined;
  logger: Logger;
}

/**
 * The keyring of a deployment:
 *
 * - an explicit `auditSecret` (`GOVERNANCE_AUDIT_SECRET`) is the current key;
 * - otherwise, with an embedded database in a directory, the key kept beside the data
 *   (created once, mode 0600), so that chains still verify after a restart;
 * - with `memory://`, a random key that lives as long as the data;
 * - with a real Postgres and no secret: refused. A throwaway key would leave every chain
 *   unverifiable after the next restart.
 *
 * @throws {SecretError} `SECRET_REQUIRED`, `SECRET_INVALID` or `SECRET_FILE`.
 */
export async function resolveKeyring(options: ResolveKeyringOptions): Promise<Keyring> {
  const historical = (options.historicalKeys ?? []).map(
    (secret, index) => new ChainKey(secret, `historicalKeys[${index}]`),
  );
  if (options.auditSecret !== undefined) {
    return new Keyring(new ChainKey(options.auditSecret, "auditSecret"), historical);
  }
  const { target } = options;
  if (target.engine === "postgres") {
    throw new SecretError(
      CORE_ERROR_CODES.SECRET_REQUIRED,
      "auditSecret",
      `No audit secret is configured for ${target.description}. A generated key would be lost on restart and leave every audit chain unverifiable, so the SDK refuses to start.`,
      `Set GOVERNANCE_AUDIT_SECRET (or the auditSecret option) to a secret of at least ${MIN_SECRET_BYTES} bytes; ${GENERATE_HINT}. Keep it in your secret manager.`,
    );
  }
  if (target.directory === null) {
    options.logger.debug("Using a random audit key for the in-memory database.");
    return new Keyring(new ChainKey(randomBytes(48).toString("base64url")), historical);
  }
  const file = await loadOrCreateKeyFile(target.directory, options.logger);
  if (file.created) {
    options.logger.info(
      `Generated the embedded database's audit key in ${file.path} (keep it with the data).`,
    );
  }
  return new Keyring(new ChainKey(file.secret, file.path), historical);
}
