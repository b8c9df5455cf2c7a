/**
 * `@gov/gates` — human approvals for AI agents: signed, single-use, action-bound tokens, and
 * approvals that run once. The boundary is the token: deliver it to reviewers only.
 */

export { gatesMigrations, gatesModule } from "./definition";
export {
  ApprovalDenied,
  ApprovalIntegrityError,
  ApprovalKeyInUseError,
  ApprovalNotRecordedError,
  ApprovalPending,
  ApprovalStoreError,
  type ApprovalStoreOperation,
  ApprovalTimeout,
  ApprovalTokenError,
  type ApprovalTokenErrorDetails,
  type ApprovalTokenReason,
  GATES_ERROR_CODES,
  type GatesErrorCode,
  InvalidGatesInputError,
  SelfApprovalError,
  SelfApprovalUnverifiableError,
  TokenVersionTooOldError,
} from "./errors";
export { APPROVAL_EVENT_KINDS, GATES_RESOLVED_CHANNEL } from "./events";
export {
  DEFAULT_ACCEPT_V1_UNTIL,
  DEFAULT_AUDIT_TIMEOUT_MS,
  DEFAULT_EXPIRES_IN_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_STALE_CLAIM_MS,
  GATES_LIMITS,
  type GatesOptions,
} from "./models";
export { GatesModule } from "./module";
export { ApprovalRequest, type ApprovalRequestJson } from "./request";
export { type GatesSdkOptions, gatesSdkContribution } from "./sdk-options";
export { TOKEN_MAC_DOMAIN, TOKEN_V2_TAG } from "./token";
export type {
  ApprovalDecision,
  ApprovalGatedFunction,
  ApprovalRecord,
  ApprovalStatus,
  DenyOptions,
  FindRequestOptions,
  GatesContext,
  GrantOptions,
  ListPendingOptions,
  PendingApproval,
  RequestOptions,
  RequireApprovalOptions,
  VerifyActionOptions,
  WaitForOptions,
} from "./types";
export { WAKE_READ_SPACING_MS } from "./wait";
