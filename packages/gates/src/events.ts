/**
 * The channel on which resolutions (grants, denials, expiries) are announced to every
 * process; the payload is the request id. Sent in the statement that publishes the
 * resolution, so it is delivered on commit.
 */
export const GATES_RESOLVED_CHANNEL = "gov_gates_resolved";

/** The audit event kinds this module writes. */
export const APPROVAL_EVENT_KINDS = {
  /** A request was opened (and stored). */
  requested: "approval.requested",
  /** A request could not be stored: its token can never be granted. */
  requestFailed: "approval.request_failed",
  /** A reviewer granted a request. */
  granted: "approval.granted",
  /** A reviewer denied a request. */
  denied: "approval.denied",
  /** Clean-up found a request past its expiry with no decision. */
  expired: "approval.expired",
  /**
   * A genuine token for a known request was refused (replay, expiry, self-approval, …), or an
   * execution was refused by `verifyAction` / `requireApproval`.
   */
  refused: "approval.refused",
  /**
   * A claim was given back without its decision taking effect: its audit write failed or
   * timed out, or it was older than `staleClaimMs` (its process died). An `approval.granted` /
   * `approval.denied` event with the same request id, reviewer and `resolvedAt` — before or
   * after this one in the chain — did not take effect.
   */
  released: "approval.released",
  /**
   * An approved action was executed (`verifyAction` / `requireApproval` marked it executed).
   * An approval runs once: two of these for one request mean that its executed marker was
   * cleared in the table.
   */
  executed: "approval.executed",
  /** A legacy v1 token was accepted before `acceptV1Until`. */
  legacyTokenParsed: "gates.legacy_token_parsed",
} as const;
