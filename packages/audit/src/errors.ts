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
  /** An operation needs a component that is not configured. */
  AUDIT_NOT_CONFIGURED: "AUDIT_NOT_CONFIGURED",
} as const;

/** An audit event was refused before anything was written. */
export class InvalidAuditEventError extends GovernanceError {
  /** The field at fault, e.g. `metadata.prompt` or `kind`. */
  readonly field: string;
  /** The limit that was exceeded, if the problem is a limit. */
  readonly limit: number | undefined;

  constructor(field: string, problem: string, fix: string, limit?: number) {
    super({
      code: AUDIT_ERROR_CODES.AUDIT_EVENT_INVALID,
      message: `Invalid audit event: ${field} ${problem}`,
      recoveryHint: fix,
    });
    this.name = "InvalidAuditEventError";
    this.field = field;
    this.limit = limit;
  }
}

/** Where a chain stopped being intact. */
export interface ChainIntegrityDetails {
  /** The chain (the session id, or `agent:<agentId>`). */
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
