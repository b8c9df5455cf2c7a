import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from "node:crypto";
import { link, mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { inspect } from "node:util";
import type { DatabaseTarget } from "./database-url";
import { CORE_ERROR_CODES, GovernanceError, requireOptionsObject } from "./errors";
import type { Logger } from "./logger";

/** Minimum length of an audit secret, in bytes (as in the reference). */
export const MIN_SECRET_BYTES = 32;
/** Minimum number of distinct byte values in an audit secret (as in the reference). */
export const MIN_SECRET_DISTINCT_BYTES = 8;
/** Length of a key id: the first 16 hex characters of the key's fingerprint. */
export const KEY_ID_LENGTH = 16;
/** Name of the key file kept beside an embedded database. */
export const EMBEDDED_KEY_FILE = "audit-secret.key";
/** Name of the Ed25519 checkpoint signing key file kept beside an embedded database. */
export const EMBEDDED_SIGNING_KEY_FILE = "audit-signing-key.pem";
/** Environment variables that carry historical chain keys: `GOVERNANCE_CHAIN_KEY_<fingerprint prefix>`. */
export const CHAIN_KEY_ENV_PREFIX = "GOVERNANCE_CHAIN_KEY_";

const GENERATE_HINT =
  "Generate one with `openssl rand -base64 48` or `node -e \"console.log(require('node:crypto').randomBytes(48).toString('base64url'))\"`";

/** A secret was refused, or is missing where one is required. */
export class SecretError extends GovernanceError {
  static override readonly errorIdentity: string = "@gov/core.SecretError";

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
  const { text, created } = await readOrCreatePrivateFile(
    directory,
    EMBEDDED_KEY_FILE,
    () => `${randomBytes(48).toString("base64url")}\n`,
    logger,
    (problem, cause) =>
      new SecretError(
        CORE_ERROR_CODES.SECRET_FILE,
        path,
        `The embedded database's audit key file ${path} ${problem}.`,
        "Check the directory's permissions, or pass auditSecret (GOVERNANCE_AUDIT_SECRET) explicitly.",
        cause,
      ),
  );
  // Exactly the line it was created with: a file something appended to (a witness or log
  // pointed at it) must not silently become another key.
  if (!KEY_FILE_LINE.test(text)) {
    throw new SecretError(
      CORE_ERROR_CODES.SECRET_FILE,
      path,
      `The embedded database's audit key file ${path} does not hold the one line it was created with (${KEY_FILE_CHARACTERS} base64url characters and a line feed): it was changed or appended to, so it is not used.`,
      "Restore the file from a backup of the data directory (the key that signed the chain), or pass auditSecret (GOVERNANCE_AUDIT_SECRET) explicitly. If another program wrote to it (a witness or log path pointed at it), point that program elsewhere first.",
    );
  }
  const secret = text.trim();
  validateSecret(secret, path);
  return { secret, created, path };
}

/** Characters of the key line kept beside an embedded database (48 random bytes, base64url). */
const KEY_FILE_CHARACTERS = 64;
/** The key file as {@link loadOrCreateKeyFile} writes it (its line feed may be missing). */
const KEY_FILE_LINE = /^[A-Za-z0-9_-]{64}\n?$/;
/** The signing key file as {@link loadOrCreateSigningKeyFile} writes it: one PKCS#8 PEM block. */
const SIGNING_KEY_FILE_PEM =
  /^-----BEGIN PRIVATE KEY-----\n(?:[A-Za-z0-9+/=]{1,76}\n){1,64}-----END PRIVATE KEY-----\n?$/;
/** More than any key file this module writes holds. */
const MAX_KEY_FILE_BYTES = 16 * 1024;

/**
 * Read a private file (a key) in `directory`, creating it with `content()` on first use: the
 * content goes to a private temporary file (mode 0600, fsynced) that is then linked into
 * place. link() fails if the file exists, so the file appears atomically and complete, and of
 * concurrent first starts exactly one wins while the others read the winner's. A file that
 * other users can read is used, with a warning.
 */
async function readOrCreatePrivateFile(
  directory: string,
  name: string,
  content: () => string,
  logger: Logger,
  fail: (problem: string, cause: unknown) => SecretError,
): Promise<{ text: string; created: boolean }> {
  const path = join(directory, name);
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw fail("could not be created (the directory is not writable)", error);
  }
  let created = false;
  const temporary = join(directory, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}`);
  try {
    const handle = await open(temporary, "wx", 0o600);
    try {
      await handle.writeFile(content(), "utf8");
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
  try {
    const size = (await stat(path)).size;
    if (size > MAX_KEY_FILE_BYTES) {
      throw fail(
        `holds ${size} bytes, far more than a key (it was appended to, or it is another file)`,
        null,
      );
    }
    const text = await readFile(path, "utf8");
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      logger.warn(
        `The key file ${name} is readable by other users (mode ${mode.toString(8)}); run chmod 600 on it.`,
        { path },
      );
    }
    return { text, created };
  } catch (error) {
    if (error instanceof SecretError) throw error;
    throw fail("could not be read", error);
  }
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
  requireOptionsObject(
    options,
    "options",
    "Pass { target, auditSecret?, historicalKeys?, logger } (see readCoreConfig and resolveTarget).",
  );
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

// -----------------------------------------------------------------------------------------
// Ed25519 signing keys: what a verifier can check with a public key alone.

const SIGNING_KEY_HINT =
  "Generate one with `openssl genpkey -algorithm ed25519` (PKCS#8 PEM) and pass it as auditSigningKey (GOVERNANCE_AUDIT_SIGNING_KEY), as PEM or as the base64 of its DER form";

/**
 * The fingerprint of an Ed25519 public key: SHA-256 (hex) over
 * `"gov.signing-key-fingerprint.v1" || 0x00 || the key's SubjectPublicKeyInfo DER`. Its
 * first {@link KEY_ID_LENGTH} characters are the key's id, stored beside each signature.
 */
export function signingKeyFingerprint(publicKey: KeyObject): string {
  return createHash("sha256")
    .update("gov.signing-key-fingerprint.v1\0")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");
}

/** PEM as given, or with its line breaks written as `\n` (as environment files often do). */
function pemText(text: string): string {
  const trimmed = text.trim();
  return trimmed.includes("\\n") && !trimmed.includes("\n")
    ? trimmed.replaceAll("\\n", "\n")
    : trimmed;
}

function derBytes(text: string): Buffer | null {
  const compact = text.replace(/\s+/g, "");
  if (compact === "" || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) return null;
  return Buffer.from(
    compact,
    compact.includes("-") || compact.includes("_") ? "base64url" : "base64",
  );
}

/**
 * A key from PEM, the base64 of its DER form (SPKI for a public key, PKCS#8 for a private
 * one) or a `KeyObject`; null when it does not parse. The parser's error is dropped: it must
 * never carry any part of a private key into a log.
 */
function keyObject(value: string | KeyObject, type: "public" | "private"): KeyObject | null {
  try {
    if (typeof value !== "string") return value;
    if (value.includes("-----BEGIN")) {
      const pem = pemText(value);
      return type === "public" ? createPublicKey(pem) : createPrivateKey(pem);
    }
    const key = derBytes(value);
    if (!key) return null;
    return type === "public"
      ? createPublicKey({ key, format: "der", type: "spki" })
      : createPrivateKey({ key, format: "der", type: "pkcs8" });
  } catch {
    return null;
  }
}

/**
 * Whether `value` is private key material — the PEM armor of any private key (encrypted or
 * not, line breaks escaped or not), the base64 of a PKCS#8 DER, or a private `KeyObject` —
 * which must never be taken where a public key is expected ({@link VerifyingKey} refuses it).
 *
 * @example
 * ```ts
 * isPrivateKeyMaterial(signingKeyPem); // true
 * isPrivateKeyMaterial(sdk.audit.signingPublicKey!.pem); // false
 * ```
 */
export function isPrivateKeyMaterial(value: string | KeyObject): boolean {
  if (typeof value !== "string") return value?.type === "private";
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(value)) return true;
  const der = derBytes(value);
  if (!der) return false;
  try {
    createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    return true;
  } catch {
    return false;
  }
}

/**
 * An Ed25519 public key that checks signatures, known by its fingerprint: what an auditor
 * holds to verify checkpoints without any secret.
 *
 * @example
 * ```ts
 * const key = new VerifyingKey(process.env.GOVERNANCE_AUDIT_PUBLIC_KEY!); // PEM or base64 DER
 * key.verify(checkpoint.payload, checkpoint.signature); // true or false
 * ```
 */
export class VerifyingKey {
  /** SHA-256 fingerprint (64 hex characters), see {@link signingKeyFingerprint}. */
  readonly fingerprint: string;
  /** The first {@link KEY_ID_LENGTH} hex characters of the fingerprint. */
  readonly id: string;
  /** The key as SubjectPublicKeyInfo PEM, to hand to verifiers. */
  readonly pem: string;
  readonly #key: KeyObject;

  /**
   * @param publicKey An Ed25519 public key: SPKI PEM, the base64 of its DER form, or a
   *   `KeyObject`.
   * @param field Where it came from, for error messages.
   * @throws {SecretError} `SECRET_INVALID` when it is not an Ed25519 public key — a private
   *   key included (its public half is not derived: a private key never belongs where a
   *   public one is expected); the message never repeats the key.
   */
  constructor(publicKey: string | KeyObject, field = "publicKey") {
    if (
      (typeof publicKey === "string" || typeof publicKey === "object") &&
      publicKey !== null &&
      isPrivateKeyMaterial(publicKey)
    ) {
      throw new SecretError(
        CORE_ERROR_CODES.SECRET_INVALID,
        field,
        `${field} is a private key; only a public key belongs here (whoever holds the private key can sign checkpoints, and it would be kept with the public configuration).`,
        "Pass the public key as SubjectPublicKeyInfo PEM (-----BEGIN PUBLIC KEY-----): sdk.audit.signingPublicKey.pem, or `openssl pkey -in key.pem -pubout`. Keep the private key in auditSigningKey (GOVERNANCE_AUDIT_SIGNING_KEY) only.",
      );
    }
    const key = keyObject(publicKey, "public");
    if (key?.type !== "public" || key.asymmetricKeyType !== "ed25519") {
      throw new SecretError(
        CORE_ERROR_CODES.SECRET_INVALID,
        field,
        `${field} is not an Ed25519 public key.`,
        "Pass the public key as SubjectPublicKeyInfo PEM (-----BEGIN PUBLIC KEY-----), as the base64 of its DER form, or as a KeyObject; sdk.audit.signingPublicKey gives it.",
      );
    }
    this.#key = key;
    this.pem = key.export({ type: "spki", format: "pem" }).toString();
    this.fingerprint = signingKeyFingerprint(key);
    this.id = this.fingerprint.slice(0, KEY_ID_LENGTH);
  }

  /**
   * Check an Ed25519 signature (128 lowercase hex characters) of `data`.
   * @returns true when `signature` is this key's signature of `data`; false otherwise,
   *   including for a signature that is not 64 bytes of hex.
   */
  verify(data: string | Uint8Array, signature: string): boolean {
    if (typeof signature !== "string" || !/^[0-9a-f]{128}$/.test(signature)) return false;
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    return verify(null, bytes, this.#key, Buffer.from(signature, "hex"));
  }

  toJSON(): { id: string; fingerprint: string; pem: string } {
    return { id: this.id, fingerprint: this.fingerprint, pem: this.pem };
  }

  toString(): string {
    return `VerifyingKey(${this.id})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * An Ed25519 private key that signs audit checkpoints, so that whoever holds the database
 * and the HMAC secret still cannot forge one. The private key is not enumerable and never
 * appears in `JSON.stringify`, `console.log`, `inspect` or an error message; only its
 * {@link SigningKey.publicKey} is shown.
 *
 * @example
 * ```ts
 * const key = new SigningKey(process.env.GOVERNANCE_AUDIT_SIGNING_KEY!); // PKCS#8 PEM or base64 DER
 * const signature = key.sign(payload); // 128 hex characters
 * key.publicKey.verify(payload, signature); // true
 * ```
 */
export class SigningKey {
  /** The public half, for verifiers. */
  readonly publicKey: VerifyingKey;
  readonly #key: KeyObject;

  /**
   * @param privateKey An Ed25519 private key: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the
   *   base64 of its DER form, or a `KeyObject`.
   * @param field Where it came from, for error messages (never the key itself).
   * @throws {SecretError} `SECRET_INVALID` when it is not an Ed25519 private key.
   */
  constructor(privateKey: string | KeyObject, field = "auditSigningKey") {
    const key = keyObject(privateKey, "private");
    if (key?.type !== "private" || key.asymmetricKeyType !== "ed25519") {
      throw new SecretError(
        CORE_ERROR_CODES.SECRET_INVALID,
        field,
        `${field} is not an Ed25519 private key (PKCS#8 PEM or the base64 of its DER form).`,
        `${SIGNING_KEY_HINT}.`,
      );
    }
    this.#key = key;
    this.publicKey = new VerifyingKey(createPublicKey(key), field);
  }

  /** A new random key (for an in-memory database, or tests). */
  static generate(): SigningKey {
    return new SigningKey(generateKeyPairSync("ed25519").privateKey);
  }

  /** The public key's id: the first {@link KEY_ID_LENGTH} hex characters of its fingerprint. */
  get id(): string {
    return this.publicKey.id;
  }

  /** The public key's fingerprint. */
  get fingerprint(): string {
    return this.publicKey.fingerprint;
  }

  /** The Ed25519 signature of `data`, as 128 lowercase hex characters. */
  sign(data: string | Uint8Array): string {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    return sign(null, bytes, this.#key).toString("hex");
  }

  toJSON(): { id: string; fingerprint: string } {
    return { id: this.id, fingerprint: this.fingerprint };
  }

  toString(): string {
    return `SigningKey(${this.id})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Read the Ed25519 checkpoint signing key kept beside an embedded database
 * ({@link EMBEDDED_SIGNING_KEY_FILE}, PKCS#8 PEM), creating it on first use — once, mode
 * 0600, atomically, exactly as {@link loadOrCreateKeyFile} keeps the HMAC key.
 *
 * @throws {SecretError} `SECRET_FILE` when the file cannot be read or written, or
 *   `SECRET_INVALID` when it does not hold an Ed25519 private key.
 */
export async function loadOrCreateSigningKeyFile(
  directory: string,
  logger: Logger,
): Promise<{ key: SigningKey; created: boolean; path: string }> {
  const path = join(directory, EMBEDDED_SIGNING_KEY_FILE);
  const { text, created } = await readOrCreatePrivateFile(
    directory,
    EMBEDDED_SIGNING_KEY_FILE,
    () =>
      generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    logger,
    (problem, cause) =>
      new SecretError(
        CORE_ERROR_CODES.SECRET_FILE,
        path,
        `The embedded database's signing key file ${path} ${problem}.`,
        "Check the directory's permissions, or pass auditSigningKey (GOVERNANCE_AUDIT_SIGNING_KEY) explicitly.",
        cause,
      ),
  );
  // Exactly the PEM it was created with: a file something appended to, or replaced, is
  // refused rather than read as whatever key it now parses as.
  const refuse = (problem: string) =>
    new SecretError(
      CORE_ERROR_CODES.SECRET_FILE,
      path,
      `The embedded database's signing key file ${path} ${problem}, so it is not used.`,
      "Restore the file from a backup of the data directory (the key whose public half verifies the checkpoints), or pass auditSigningKey (GOVERNANCE_AUDIT_SIGNING_KEY) explicitly. If another program wrote to it (a witness or log path pointed at it), point that program elsewhere first.",
    );
  if (!SIGNING_KEY_FILE_PEM.test(text))
    throw refuse(
      "does not hold the one PKCS#8 PEM block it was created with: it was changed or appended to",
    );
  try {
    return { key: new SigningKey(text, path), created, path };
  } catch {
    throw refuse("does not hold an Ed25519 private key");
  }
}

/** What {@link resolveSigningKey} needs. */
export interface ResolveSigningKeyOptions {
  /** Where the data lives (from the database URL). */
  target: DatabaseTarget;
  /** The configured Ed25519 private key (PKCS#8 PEM or base64 DER), if any. */
  signingKey?: string | undefined;
  logger: Logger;
}

/**
 * The Ed25519 key that signs audit checkpoints:
 *
 * - an explicit `signingKey` (`GOVERNANCE_AUDIT_SIGNING_KEY`);
 * - otherwise, with an embedded database in a directory, the key kept beside the data
 *   (created once, mode 0600, next to the HMAC key file);
 * - with `memory://`, a random key that lives as long as the data;
 * - with a real Postgres and no key: `null` — checkpoints then carry the HMAC only (said
 *   once, at info level). A generated key would sign what no verifier can trust.
 *
 * @example
 * ```ts
 * const signingKey = await resolveSigningKey({ target, signingKey: config.auditSigningKey, logger });
 * signingKey?.publicKey.pem; // hand this to auditors
 * ```
 * @throws {SecretError} `SECRET_INVALID` or `SECRET_FILE`.
 */
export async function resolveSigningKey(
  options: ResolveSigningKeyOptions,
): Promise<SigningKey | null> {
  requireOptionsObject(
    options,
    "options",
    "Pass { target, signingKey?, logger } (see readCoreConfig and resolveTarget).",
  );
  if (options.signingKey !== undefined)
    return new SigningKey(options.signingKey, "auditSigningKey");
  const { target } = options;
  if (target.engine === "postgres") {
    options.logger.info(
      "Audit checkpoints are signed with the HMAC key only. Set GOVERNANCE_AUDIT_SIGNING_KEY (an Ed25519 private key) so that whoever holds the database and the HMAC secret cannot forge them.",
    );
    return null;
  }
  if (target.directory === null) return SigningKey.generate();
  const file = await loadOrCreateSigningKeyFile(target.directory, options.logger);
  if (file.created) {
    options.logger.info(
      `Generated the embedded database's checkpoint signing key in ${file.path} (keep it with the data; its public key ${file.key.id} verifies checkpoints).`,
    );
  }
  return file.key;
}
