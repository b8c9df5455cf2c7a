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
}

/**
 * Verification found a chain that is not intact: a row whose signature does not match, a
 * broken link, a gap, a fork, a second root, or rows missing below a signed checkpoint.
 */
export class ChainIntegrityError extends GovernanceError {
  readonly chain: string;
  readonly sessionId: string | null;
  readonly seq: number;
  readonly eventId: string | null;
  readonly reason: string;

  constructor(details: ChainIntegrityDetails) {
    const row = details.eventId ? ` (event ${details.eventId})` : "";
    super({
      code: AUDIT_ERROR_CODES.CHAIN_INTEGRITY,
      message: `Audit chain ${details.chain} is broken at seq ${details.seq}${row}: ${details.reason}.`,
      recoveryHint:
        "Treat the chain as tampered with from this row on: preserve the database as it is, compare it with backups, and investigate who had write access.",
    });
    this.name = "ChainIntegrityError";
    this.chain = details.chain;
    this.sessionId = details.sessionId;
    this.seq = details.seq;
    this.eventId = details.eventId;
    this.reason = details.reason;
  }
}

/** The in-memory audit store refused an event (full, with `onFull: "raise"`). */
export class StoreUnavailableError extends GovernanceError {
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
      recoveryHint: `Start this process with the newest chain key (key id ${details.newestKeyId}) as GOVERNANCE_AUDIT_SECRET (or the auditSecret option), and keep ${details.keyId} only for verifying, as GOVERNANCE_CHAIN_KEY_${details.keyId.toUpperCase()}.`,
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
