import { describeError, GovernanceError, ModuleInputError } from "@gov/core";

/** The stable error codes of `@gov/gates`. A code never changes meaning once released. */
export const GATES_ERROR_CODES = {
  /** A token was refused; `reason` says why ({@link ApprovalTokenReason}). */
  APPROVAL_TOKEN_INVALID: "APPROVAL_TOKEN_INVALID",
  /** A legacy v1 token was presented after `acceptV1Until`. */
  TOKEN_VERSION_TOO_OLD: "TOKEN_VERSION_TOO_OLD",
  /** The reviewer is the requesting agent, or the operator bound to it. */
  SELF_APPROVAL: "SELF_APPROVAL",
  /** The agent's operator could not be looked up, so a grant was refused (fail closed). */
  SELF_APPROVAL_UNVERIFIABLE: "SELF_APPROVAL_UNVERIFIABLE",
  /** A reviewer denied the request. */
  APPROVAL_DENIED: "APPROVAL_DENIED",
  /** Nobody resolved the request in time (or it expired). */
  APPROVAL_TIMEOUT: "APPROVAL_TIMEOUT",
  /** A non-blocking approval is not granted yet; resume once it is. */
  APPROVAL_PENDING: "APPROVAL_PENDING",
  /** The decision's audit event could not be written, so the decision was not made. */
  APPROVAL_NOT_RECORDED: "APPROVAL_NOT_RECORDED",
  /** The approvals table could not be read or written. */
  APPROVAL_STORE_UNAVAILABLE: "APPROVAL_STORE_UNAVAILABLE",
  /** A stored request or decision does not verify: it was not written, as it is, by this module's keys. */
  APPROVAL_INTEGRITY: "APPROVAL_INTEGRITY",
  /** `request()` was given a key that the agent already used for a request of that kind. */
  APPROVAL_KEY_IN_USE: "APPROVAL_KEY_IN_USE",
  /** An argument or option failed validation; nothing was read or written. */
  GATES_INPUT_INVALID: "GATES_INPUT_INVALID",
} as const;

/** One of {@link GATES_ERROR_CODES}. */
export type GatesErrorCode = (typeof GATES_ERROR_CODES)[keyof typeof GATES_ERROR_CODES];

/**
 * Why a token was refused: the stable `reason` of an {@link ApprovalTokenError}, also
 * written to the audit chain (`approval.refused`, `metadata.reason`) when the request is
 * known.
 */
export type ApprovalTokenReason =
  /** Not a token of a known shape (wrong number of fields, bad characters, too long). */
  | "malformed"
  /** A v2 token whose key prefix is not 16 lower-case hex characters. */
  | "malformed_key_prefix"
  /** The key named by the token's prefix is not in the keyring. */
  | "historical_key_unavailable"
  /** The MAC does not match the token's fields under the key it names (forged or altered). */
  | "signature_mismatch"
  /** The token's expiry has passed. */
  | "expired"
  /** The request was already granted or denied: tokens are single-use. */
  | "already_used"
  /**
   * Another reviewer's decision on the request is being recorded (its audit event is being
   * written). Retryable: if that decision is recorded it stands (`already_used`); if it is
   * not, the request is pending again and this decision can be made.
   */
  | "in_progress"
  /** The approved action already ran (`verifyAction` / `requireApproval` execute an approval once). */
  | "already_executed"
  /** The approval is for another kind or another agent than the action about to run. */
  | "request_mismatch"
  /** The action is not the one the token (or the approval) is bound to. */
  | "action_hash_mismatch"
  /** No such request is stored (it may never have been stored). */
  | "unknown_request"
  /** A legacy v1 token after `acceptV1Until` ({@link TokenVersionTooOldError}). */
  | "version_too_old";

const REASON_TEXT: Record<ApprovalTokenReason, { message: string; hint: string }> = {
  malformed: {
    message:
      "is malformed: it is not a v2 token (v2:<key id>:<request id>:<action hash>:<expires at>:<mac>) or a legacy v1 token",
    hint: "Pass the token exactly as request() returned it, without quotes, spaces or line breaks.",
  },
  malformed_key_prefix: {
    message: "has a malformed key prefix: it must be 16 lower-case hex characters",
    hint: "Pass the token exactly as request() returned it; it was altered on the way.",
  },
  historical_key_unavailable: {
    message: "was signed by a key that is not in the keyring",
    hint: "Add the key the token was issued under to the keyring (GOVERNANCE_CHAIN_KEY_<key id> or historicalKeys), or open a new request.",
  },
  signature_mismatch: {
    message: "does not verify: its MAC does not match its fields (forged or altered)",
    hint: "Only tokens returned by request() are accepted. Pass the token exactly as it was issued, or open a new request.",
  },
  expired: {
    message: "has expired",
    hint: "Open a new request (request(kind, agentId, { payload, expiresInMs })) and resolve it before it expires.",
  },
  already_used: {
    message: "was already used: the request is resolved, and tokens are single-use",
    hint: "Nothing to do: the first decision stands. Open a new request for a new decision.",
  },
  in_progress: {
    message: "names a request on which another decision is being recorded; it is not decided yet",
    hint: "Try again in a few seconds: if the other decision is recorded it stands (already_used); if it is not, the request is pending again and your decision can be made.",
  },
  already_executed: {
    message: "names an approval whose action already ran: an approved action runs once",
    hint: "Do not run the action again. Open a new request if it must run again.",
  },
  request_mismatch: {
    message: "names a request made for another action: its kind or agent is not the one expected",
    hint: "Pass the requestId of the request made for this action (the same kind and agent); an approval for one action never runs another.",
  },
  action_hash_mismatch: {
    message: "is bound to a different action: the action hash does not match",
    hint: "The action changed after it was submitted for approval. Open a new request for the action that is to run.",
  },
  unknown_request: {
    message: "names a request that is not stored",
    hint: "The request may never have been stored (request() returned stored: false). Open a new request.",
  },
  version_too_old: {
    message: "is a legacy v1 token, no longer accepted",
    hint: "Mint a fresh v2 token (enableV2Tokens: true, the default) by opening a new request, or extend the window with acceptV1Until (GOVERNANCE_GATES_ACCEPT_V1_UNTIL).",
  },
};

/** What an {@link ApprovalTokenError} is about. Never the token itself. */
export interface ApprovalTokenErrorDetails {
  reason: ApprovalTokenReason;
  /** The request the token names, when it could be read (and verified, for the later reasons). */
  requestId?: string | null;
  /** A sentence added to the message, e.g. when the token expired. */
  note?: string;
}

/**
 * A token was refused by `grant()` or `deny()` (or an approval by `verifyAction()`); nothing
 * was changed. Switch on `reason`, never on the message. The message and fields never
 * contain the token.
 *
 * @example
 * ```ts
 * try {
 *   await sdk.gates.grant(token, { reviewerId: "alice@company.com" });
 * } catch (error) {
 *   if (ApprovalTokenError.isInstance(error) && error.reason === "already_used") return;
 *   throw error;
 * }
 * ```
 */
export class ApprovalTokenError extends GovernanceError {
  static override readonly errorIdentity: string = "@gov/gates.ApprovalTokenError";

  /** Why the token was refused. */
  readonly reason: ApprovalTokenReason;
  /** The request the token names, or null when it could not be read. */
  readonly requestId: string | null;

  constructor(
    details: ApprovalTokenErrorDetails,
    code: string = GATES_ERROR_CODES.APPROVAL_TOKEN_INVALID,
  ) {
    const text = REASON_TEXT[details.reason];
    const subject = details.requestId
      ? `The approval token of request ${details.requestId}`
      : "The approval token";
    super({
      code,
      message: `${subject} ${text.message}.${details.note ? ` ${details.note}` : ""}`,
      recoveryHint: text.hint,
    });
    this.name = "ApprovalTokenError";
    this.reason = details.reason;
    this.requestId = details.requestId ?? null;
  }
}

/**
 * A legacy v1 token was presented after `acceptV1Until`. An {@link ApprovalTokenError} with
 * reason `version_too_old` and its own code, `TOKEN_VERSION_TOO_OLD`.
 */
export class TokenVersionTooOldError extends ApprovalTokenError {
  static override readonly errorIdentity = "@gov/gates.TokenVersionTooOldError";

  /** The cut-off that has passed, or null when v1 tokens are never accepted. */
  readonly acceptV1Until: Date | null;

  constructor(requestId: string | null, acceptV1Until: Date | null) {
    super(
      {
        reason: "version_too_old",
        requestId,
        note:
          acceptV1Until === null
            ? "v1 tokens are not accepted (acceptV1Until: null)."
            : `v1 tokens were accepted until ${acceptV1Until.toISOString()}.`,
      },
      GATES_ERROR_CODES.TOKEN_VERSION_TOO_OLD,
    );
    this.name = "TokenVersionTooOldError";
    this.acceptV1Until = acceptV1Until;
  }
}

/**
 * The reviewer may not approve this request: they are the agent that asked, or the
 * operator bound to it by its heartbeat. Nothing was changed; the refusal was recorded
 * (`approval.refused`, reason `self_approval`).
 */
export class SelfApprovalError extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.SelfApprovalError";

  readonly requestId: string;
  readonly agentId: string;
  readonly reviewerId: string;
  /** `agent`: the reviewer is the agent; `operator`: the agent's bound operator. */
  readonly relation: "agent" | "operator";

  constructor(details: {
    requestId: string;
    agentId: string;
    reviewerId: string;
    relation: "agent" | "operator";
  }) {
    super({
      code: GATES_ERROR_CODES.SELF_APPROVAL,
      message:
        details.relation === "agent"
          ? `Request ${details.requestId} was made by agent ${JSON.stringify(details.agentId)}, which may not approve its own request.`
          : `Reviewer ${JSON.stringify(details.reviewerId)} is the operator bound to agent ${JSON.stringify(details.agentId)} and may not approve its request ${details.requestId}.`,
      recoveryHint:
        "Have another human, who neither is the agent nor operates it, review and grant the request.",
    });
    this.name = "SelfApprovalError";
    this.requestId = details.requestId;
    this.agentId = details.agentId;
    this.reviewerId = details.reviewerId;
    this.relation = details.relation;
  }
}

/**
 * A grant was refused because the operator bound to the agent could not be looked up
 * (the `operators` port failed): without it, self-approval cannot be ruled out, so the
 * grant fails closed. Nothing was changed.
 */
export class SelfApprovalUnverifiableError extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.SelfApprovalUnverifiableError";

  readonly requestId: string;
  readonly agentId: string;
  /**
   * True when the lookup failed when the request was made (the request can never be
   * granted; open a new one); false when it failed now (grant again once it works).
   */
  readonly atRequest: boolean;

  constructor(requestId: string, agentId: string, cause: unknown, atRequest = false) {
    super({
      code: GATES_ERROR_CODES.SELF_APPROVAL_UNVERIFIABLE,
      message: atRequest
        ? `Request ${requestId} cannot be granted: the operator bound to agent ${JSON.stringify(agentId)} could not be looked up when the request was made, so self-approval by that operator cannot be ruled out.`
        : `Request ${requestId} was not granted: the operator bound to agent ${JSON.stringify(agentId)} could not be looked up (${describeError(cause)}), so self-approval cannot be ruled out.`,
      recoveryHint: atRequest
        ? "Deny this request, and have the agent open a new one once the presence module's database is reachable."
        : "Restore the presence module's database connection and grant again; the token is still valid.",
      cause,
    });
    this.name = "SelfApprovalUnverifiableError";
    this.requestId = requestId;
    this.agentId = agentId;
    this.atRequest = atRequest;
  }
}

/** A reviewer denied the request. Thrown by `waitFor()` and `requireApproval()`. */
export class ApprovalDenied extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.ApprovalDenied";

  readonly requestId: string;
  /** Who denied it. */
  readonly reviewerId: string | null;
  /** Why. */
  readonly reason: string | null;

  constructor(requestId: string, reviewerId: string | null, reason: string | null) {
    super({
      code: GATES_ERROR_CODES.APPROVAL_DENIED,
      message: `Request ${requestId} was denied${reviewerId ? ` by ${JSON.stringify(reviewerId)}` : ""}${reason ? `: ${reason}` : "."}`,
      recoveryHint:
        "Do not perform the action. Change it and open a new request if it is still needed.",
    });
    this.name = "ApprovalDenied";
    this.requestId = requestId;
    this.reviewerId = reviewerId;
    this.reason = reason;
  }
}

/**
 * Nobody resolved the request in time: `waitFor()`'s timeout passed, or the request
 * expired first (`expired: true`). The waiter never decided the request (it only releases a
 * claim abandoned for longer than `staleClaimMs`).
 */
export class ApprovalTimeout extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.ApprovalTimeout";

  readonly requestId: string;
  /** The timeout waited for, in milliseconds. */
  readonly timeoutMs: number;
  /** True when the request expired (no decision can come any more). */
  readonly expired: boolean;

  constructor(details: {
    requestId: string;
    timeoutMs: number;
    expired: boolean;
    cause?: unknown;
  }) {
    const unread =
      details.cause === undefined
        ? ""
        : ` The request could not be read at the last attempt (${describeError(details.cause)}).`;
    super({
      code: GATES_ERROR_CODES.APPROVAL_TIMEOUT,
      message: details.expired
        ? `Request ${details.requestId} expired before anyone granted or denied it.`
        : `Request ${details.requestId} was not resolved within ${details.timeoutMs} ms.${unread}`,
      recoveryHint: details.expired
        ? "Do not perform the action. Open a new request if it is still needed."
        : "Do not perform the action yet: wait again (waitFor), or open a new request.",
      cause: details.cause,
    });
    this.name = "ApprovalTimeout";
    this.requestId = details.requestId;
    this.timeoutMs = details.timeoutMs;
    this.expired = details.expired;
  }
}

/**
 * A non-blocking `requireApproval()` opened a request (or found it still pending) and did
 * not run the function. Resume with `resume(requestId, …args)` once it is granted.
 */
export class ApprovalPending extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.ApprovalPending";

  readonly requestId: string;

  constructor(requestId: string) {
    super({
      code: GATES_ERROR_CODES.APPROVAL_PENDING,
      message: `Request ${requestId} is waiting for a human decision; the action did not run.`,
      recoveryHint: `Deliver the token to a reviewer (onRequest), then call the wrapped function's resume(${JSON.stringify(requestId)}, …args) once it is granted.`,
    });
    this.name = "ApprovalPending";
    this.requestId = requestId;
  }
}

/**
 * A decision could not be recorded in the audit chain — the write failed, returned a
 * placeholder, or did not answer within `auditTimeoutMs` — so it was not made: the claim on
 * the request was released (recorded as `approval.released`) and the token can be used again.
 */
export class ApprovalNotRecordedError extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.ApprovalNotRecordedError";

  readonly requestId: string;
  /** The decision that was not made. */
  readonly decision: "granted" | "denied";

  constructor(requestId: string, decision: "granted" | "denied", cause?: unknown) {
    super({
      code: GATES_ERROR_CODES.APPROVAL_NOT_RECORDED,
      message: `Request ${requestId} was not ${decision}: its audit event could not be written${cause === undefined ? "" : ` (${describeError(cause)})`}. Nothing changed.`,
      recoveryHint:
        "Restore the audit chain's database (or spool) and try again with the same token; it is still valid.",
      cause,
    });
    this.name = "ApprovalNotRecordedError";
    this.requestId = requestId;
    this.decision = decision;
  }
}

/** What was being done when an {@link ApprovalStoreError} happened. */
export type ApprovalStoreOperation = "read" | "claim" | "publish" | "consume" | "request";

/**
 * The approvals table could not be read or written. For `read` and `claim` nothing
 * changed; for `publish`, the decision's audit event was written but the decision was not
 * published — waiters do not see it, and once the claim is older than `staleClaimMs` it is
 * released (recorded as `approval.released`) and the request can be decided again.
 */
export class ApprovalStoreError extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.ApprovalStoreError";

  readonly requestId: string | null;
  readonly operation: ApprovalStoreOperation;

  constructor(operation: ApprovalStoreOperation, requestId: string | null, cause: unknown) {
    const what: Record<ApprovalStoreOperation, string> = {
      read: "could not be read",
      claim:
        "could not be resolved; the decision was not made (a claim whose answer was lost is released after staleClaimMs)",
      publish:
        "was recorded in the audit chain but could not be published, so it was not made; waiters keep waiting",
      consume: "could not be marked as executed; the action did not run",
      request: "could not be stored; it cannot be granted",
    };
    super({
      code: GATES_ERROR_CODES.APPROVAL_STORE_UNAVAILABLE,
      message: `${requestId ? `Request ${requestId}` : "The approval request"} ${what[operation]} (${describeError(cause)}).`,
      recoveryHint:
        operation === "publish"
          ? "Restore the database connection; the unpublished claim is released after staleClaimMs (approval.released), then decide again with the same token."
          : "Restore the database connection and try again.",
      cause,
    });
    this.name = "ApprovalStoreError";
    this.requestId = requestId;
    this.operation = operation;
  }
}

/**
 * A stored request or decision does not verify under the keyring: the row was not written by
 * this module as it is (changed by hand, signed by a key that is not in the keyring, or — a
 * request — made by an earlier version that did not sign requests). Refused: an approval that
 * cannot be proven is no approval.
 *
 * - `subject: "request"`: what the request is (its kind, agent, expiry, token, operator…) does
 *   not match its request MAC, or it has none. `grant()` refuses it (recorded as
 *   `approval.refused`, reason `request_integrity`); `waitFor()` refuses to wait for it;
 *   `deny()` still works.
 * - `subject: "decision"`: a grant or denial does not match its decision MAC, or is a grant
 *   signed in the format of an earlier version (which did not cover the expiry).
 *   `waitFor()` and `verifyAction()` refuse it.
 *
 * @example
 * ```ts
 * try {
 *   await gates.verifyAction(requestId, payload, { kind, agentId });
 * } catch (error) {
 *   if (ApprovalIntegrityError.isInstance(error)) alertSecurity(error.requestId, error.subject);
 *   throw error;
 * }
 * ```
 */
export class ApprovalIntegrityError extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.ApprovalIntegrityError";

  readonly requestId: string;
  /** What does not verify: the request (as it was made) or its decision. */
  readonly subject: "request" | "decision";

  constructor(requestId: string, problem: string, subject: "request" | "decision" = "decision") {
    super({
      code: GATES_ERROR_CODES.APPROVAL_INTEGRITY,
      message: `The stored ${subject} of request ${requestId} does not verify: ${problem}`,
      recoveryHint:
        subject === "request"
          ? "Do not grant it: deny it, and have the agent open a new request. Investigate who changed gov_gates.requests (the audit chain holds what was asked: approval.requested)."
          : "Do not perform the action. Investigate who changed gov_gates.requests (the audit chain holds the real decision); if a key was rotated, add the old key to the keyring.",
    });
    this.name = "ApprovalIntegrityError";
    this.requestId = requestId;
    this.subject = subject;
  }
}

/**
 * `request()` was given a `key` that the agent already used for a request of the same kind:
 * a key names one request, and its token was handed out when that request was made. Nothing
 * was stored or recorded, and no token was returned. Look the request up instead
 * (`findRequest({ agentId, kind, key })`), or choose another key for another request.
 *
 * @example
 * ```ts
 * try {
 *   await gates.request("tool.wire_money", "billing-agent", { payload, key: toolCallId });
 * } catch (error) {
 *   if (!ApprovalKeyInUseError.isInstance(error)) throw error;
 *   const asked = await gates.findRequest({ agentId: "billing-agent", kind: "tool.wire_money", key: toolCallId });
 * }
 * ```
 */
export class ApprovalKeyInUseError extends GovernanceError {
  static override readonly errorIdentity = "@gov/gates.ApprovalKeyInUseError";

  readonly agentId: string;
  readonly kind: string;
  /** The key already in use. */
  readonly key: string;

  constructor(details: { agentId: string; kind: string; key: string; cause?: unknown }) {
    super({
      code: GATES_ERROR_CODES.APPROVAL_KEY_IN_USE,
      message: `Agent ${JSON.stringify(details.agentId)} already has a request of kind ${JSON.stringify(details.kind)} with key ${JSON.stringify(details.key)}; a key names one request. Nothing was stored.`,
      recoveryHint:
        "Read that request with findRequest({ agentId, kind, key }) (its token was handed out when it was made), or pass another key for another request.",
      cause: details.cause,
    });
    this.name = "ApprovalKeyInUseError";
    this.agentId = details.agentId;
    this.kind = details.kind;
    this.key = details.key;
  }
}

/**
 * An argument or option was refused before anything was read or written: the field at
 * fault, the limit where one was exceeded, and the fix. It is a core `InvalidArgumentError`
 * (`InvalidArgumentError.isInstance(error)` is true, as for every module's bad input) with
 * the code of `@gov/gates`, `GATES_INPUT_INVALID`; every problem found is in `issues`.
 *
 * @example
 * ```ts
 * try {
 *   await gates.request("", "billing-agent");
 * } catch (error) {
 *   if (InvalidGatesInputError.isInstance(error)) console.error(error.field, error.recoveryHint);
 * }
 * ```
 */
export class InvalidGatesInputError extends ModuleInputError {
  static override readonly errorIdentity = "@gov/gates.InvalidGatesInputError";

  /** Always `GATES_INPUT_INVALID`. */
  override readonly code: string = GATES_ERROR_CODES.GATES_INPUT_INVALID;
}
