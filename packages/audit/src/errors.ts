import { GovernanceError } from "@gov/core";

/** The stable error codes of `@gov/audit`. */
export const AUDIT_ERROR_CODES = {
  /** An event failed validation; nothing was written. */
  AUDIT_EVENT_INVALID: "AUDIT_EVENT_INVALID",
  /** Verification found a row that does not belong to an intact chain. */
  CHAIN_INTEGRITY: "CHAIN_INTEGRITY",
  /** The in-memory store is full and was told to refuse rather than evict. */
  STORE_UNAVAILABLE: "STORE_UNAVAILABLE",
  /** The in-memory store evicted rows; the chain it holds is no longer complete. */
  CHAIN_TRUNCATED: "CHAIN_TRUNCATED",
  /** A key rotation was refused. */
  KEY_ROTATION_INVALID: "KEY_ROTATION_INVALID",
  /**
   * This process signs with a key that the rotation history says was retired: it may not
   * start, rotate, or write with it.
   */
  AUDIT_KEY_RETIRED: "AUDIT_KEY_RETIRED",
  /** An operation needs a component that is not configured. */
  AUDIT_NOT_CONFIGURED: "AUDIT_NOT_CONFIGURED",
  /**
   * `importSpool` could not record the import in the chain (nor in the spool): nothing was
   * imported. A refused file is `SPOOL_FILE_REFUSED` (from `@gov/core`).
   */
  SPOOL_IMPORT_FAILED: "SPOOL_IMPORT_FAILED",
  /**
   * A witness file cannot be used: it is missing or unreadable, not a regular file, a
   * symbolic link, linked from elsewhere (appending), or does not hold witness lines.
   */
  AUDIT_WITNESS_UNAVAILABLE: "AUDIT_WITNESS_UNAVAILABLE",
  /**
   * The database refuses this process's rows because of a key rotation record that names its
   * key as retired but is not signed by that key: a table owner forged it.
   */
  AUDIT_KEY_ROTATION_FORGED: "AUDIT_KEY_ROTATION_FORGED",
} as const;

/** An audit event was refused before anything was written. */
export class InvalidAuditEventError extends GovernanceError {
  static override readonly errorIdentity = "@gov/audit.InvalidAuditEventError";

  /** The field at fault, e.g. `metadata.prompt` or `kind`. */
  readonly field: string;
  /** The limit that was exceeded, if the problem is a limit. */
  readonly limit: number | undefined;

  /**
   * @param field The field at fault.
   * @param problem What is wrong with it.
   * @param fix How to fix it.
   * @param limit The limit exceeded, if any.
   * @param cause The error that made the value unusable (a getter that threw), if any.
   */
  constructor(field: string, problem: string, fix: string, limit?: number, cause?: unknown) {
    super({
      code: AUDIT_ERROR_CODES.AUDIT_EVENT_INVALID,
      message: `Invalid audit event: ${field} ${problem}`,
      recoveryHint: fix,
      cause,
    });
    this.name = "InvalidAuditEventError";
    this.field = field;
    this.limit = limit;
  }
}

/** Where a chain stopped being intact. */
export interface ChainIntegrityDetails {
  /**
   * The chain (the session id, or `agent:<agentId>`), or `gov_audit.key_rotations` for a
   * failure of the key rotation history itself (then `seq` is the rotation's place in the
   * history, from 1, and `sessionId` is null).
   */
  chain: string;
  /** The session id of that chain, or null for an agent's chain. */
  sessionId: string | null;
  /** The sequence number of the first bad row (or where a missing row should be). */
  seq: number;
  /** The id of the first bad row, when there is a row. */
  eventId: string | null;
  /** What is wrong, e.g. `hmac mismatch`, `gap`, `fork`, `truncated`. */
  reason: string;
  /**
   * The id of the key that signed the row (or checkpoint) when that key is not in the
   * keyring: then a changed or rotated audit secret is the likelier cause.
   */
  unknownKeyId?: string;
}

/** The environment variable that gives a process an older chain key, by its id. */
export function chainKeyVariable(keyId: string): string {
  return `GOVERNANCE_CHAIN_KEY_${keyId.toUpperCase()}`;
}

/** The form of a key id our keys produce: 16 lower-case hex characters. */
const KEY_ID_FORM = /^[0-9a-f]{16}$/;
/** How many key ids a message names at most. */
const KEY_IDS_SHOWN = 5;

/**
 * A key id read from a table, as a message may show it: a table owner can write anything
 * there (line breaks that forge log lines, a megabyte of text), so a key id not of the form
 * our keys produce is never repeated.
 */
export function displayKeyId(keyId: string): string {
  return KEY_ID_FORM.test(keyId) ? keyId : "a malformed key id (not shown)";
}

/** Key ids read from a table, for a message: at most five, malformed ones only counted. */
export function displayKeyIds(keyIds: readonly string[]): string {
  const wellFormed = keyIds.filter((keyId) => KEY_ID_FORM.test(keyId));
  const malformed = keyIds.length - wellFormed.length;
  const shown = wellFormed.slice(0, KEY_IDS_SHOWN);
  const parts = [...shown];
  if (wellFormed.length > shown.length) parts.push(`${wellFormed.length - shown.length} more`);
  if (malformed > 0)
    parts.push(`${malformed} malformed key id${malformed === 1 ? "" : "s"} (not shown)`);
  return parts.join(", ");
}

/**
 * What to do about rows signed by keys that are not in the keyring: most likely the audit
 * secret changed (or was rotated) and the old one was not kept. Names key ids, never keys;
 * a malformed key id (never produced by a key of ours) is not repeated.
 */
export function unknownKeyAdvice(keyIds: readonly string[]): string {
  const wellFormed = keyIds.filter((keyId) => KEY_ID_FORM.test(keyId));
  if (wellFormed.length === 0)
    return "No key of ours has a key id of that form: the rows were not written by a process of this deployment.";
  const variables = wellFormed.slice(0, KEY_IDS_SHOWN).map(chainKeyVariable).join(", ");
  return `If GOVERNANCE_AUDIT_SECRET (or the auditSecret option) was changed or rotated, give this process the old secret as ${variables} (keeping the new one as GOVERNANCE_AUDIT_SECRET) and verify again.`;
}

/**
 * Verification found a chain that is not intact: a row whose signature does not match, a
 * broken link, a gap, a fork, a second root, or rows missing below a signed checkpoint.
 */
export class ChainIntegrityError extends GovernanceError {
  static override readonly errorIdentity = "@gov/audit.ChainIntegrityError";

  readonly chain: string;
  readonly sessionId: string | null;
  readonly seq: number;
  readonly eventId: string | null;
  readonly reason: string;

  /**
   * The key id that signed the failing row or checkpoint when the keyring does not hold it
   * (a changed or rotated audit secret is then the likelier cause); null otherwise.
   */
  readonly unknownKeyId: string | null;

  constructor(details: ChainIntegrityDetails) {
    const row = details.eventId ? ` (event ${details.eventId})` : "";
    const unknownKey = details.unknownKeyId ?? null;
    const tampered =
      "the chain as tampered with from this row on: preserve the database as it is, compare it with backups, and investigate who had write access.";
    super({
      code: AUDIT_ERROR_CODES.CHAIN_INTEGRITY,
      message:
        unknownKey === null
          ? `Audit chain ${details.chain} is broken at seq ${details.seq}${row}: ${details.reason}.`
          : `Audit chain ${details.chain} cannot be verified at seq ${details.seq}${row}: ${details.reason}. The likelier cause is a changed or rotated audit secret (this process was not given key ${displayKeyId(unknownKey)}); tampering is the other.`,
      recoveryHint:
        unknownKey === null
          ? `Treat ${tampered}`
          : `${unknownKeyAdvice([unknownKey])} If no secret with key id ${displayKeyId(unknownKey)} was ever yours, treat ${tampered}`,
    });
    this.name = "ChainIntegrityError";
    this.chain = details.chain;
    this.sessionId = details.sessionId;
    this.seq = details.seq;
    this.eventId = details.eventId;
    this.reason = details.reason;
    this.unknownKeyId = unknownKey;
  }
}

/** The in-memory audit store refused an event (full, with `onFull: "raise"`). */
export class StoreUnavailableError extends GovernanceError {
  static override readonly errorIdentity = "@gov/audit.StoreUnavailableError";

  constructor(message: string, recoveryHint: string) {
    super({ code: AUDIT_ERROR_CODES.STORE_UNAVAILABLE, message, recoveryHint });
    this.name = "StoreUnavailableError";
  }
}

/**
 * The current chain key of this process was retired by a key rotation: the rotation history
 * (`gov_audit.key_rotations`, signed by the key itself) says so. A retired key never signs
 * again; the module refuses to start with it.
 *
 * The message names the key id (never the key) and the rotation; the recovery hint says how
 * to start with the newer key.
 */
export class RetiredKeyError extends GovernanceError {
  static override readonly errorIdentity = "@gov/audit.RetiredKeyError";

  /** The id of the retired key. */
  readonly keyId: string;

  constructor(details: {
    keyId: string;
    rotationId: string;
    rotatedAt: string;
    newKeyId: string;
    /** The newest key of the history as far as it is known (`newKeyId` when unsure). */
    newestKeyId: string;
    /** What was refused, e.g. `start the audit module`. */
    action: string;
  }) {
    super({
      code: AUDIT_ERROR_CODES.AUDIT_KEY_RETIRED,
      message: `Cannot ${details.action}: the audit chain key ${details.keyId} was retired at ${details.rotatedAt} by key rotation ${details.rotationId} (to key ${details.newKeyId}), and a retired key never signs again.`,
      recoveryHint: `Start this process with the newest chain key (key id ${details.newestKeyId}) as GOVERNANCE_AUDIT_SECRET (or the auditSecret option), and keep ${details.keyId} only for verifying, as ${chainKeyVariable(details.keyId)}.`,
    });
    this.name = "RetiredKeyError";
    this.keyId = details.keyId;
  }
}

/**
 * A witness file cannot be used (code `AUDIT_WITNESS_UNAVAILABLE`): verifying against it
 * rejects with this error, and appending to it fails (the module warns and retries at the
 * next checkpoint). The message names the path and the problem, never the file's content.
 */
export class WitnessUnavailableError extends GovernanceError {
  static override readonly errorIdentity = "@gov/audit.WitnessUnavailableError";

  /** The witness file, as an absolute path. */
  readonly path: string;

  constructor(path: string, problem: string, fix: string, cause?: unknown) {
    super({
      code: AUDIT_ERROR_CODES.AUDIT_WITNESS_UNAVAILABLE,
      message: `The witness file ${path} ${problem}.`,
      recoveryHint: fix,
      cause,
    });
    this.name = "WitnessUnavailableError";
    this.path = path;
  }
}
