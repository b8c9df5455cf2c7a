/**
 * `@gov/gates` — human approvals for AI agents: signed, single-use, action-bound tokens, and
 * approvals that run once. The boundary is the token: deliver it to reviewers only.
 */
export {
  ApprovalDenied,
  ApprovalIntegrityError,
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
export {
  DEFAULT_ACCEPT_V1_UNTIL,
  DEFAULT_AUDIT_TIMEOUT_MS,
  DEFAULT_EXPIRES_IN_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_STALE_CLAIM_MS,
  GATES_LIMITS,
  type GatesOptions,
} from "./models";
export {
  APPROVAL_EVENT_KINDS,
  type ApprovalDecision,
  type ApprovalGatedFunction,
  type ApprovalRecord,
  ApprovalRequest,
  type ApprovalRequestJson,
  type ApprovalStatus,
  type DenyOptions,
  GATES_RESOLVED_CHANNEL,
  type GatesContext,
  GatesModule,
  type GrantOptions,
  gatesMigrations,
  gatesModule,
  type ListPendingOptions,
  type PendingApproval,
  type RequestOptions,
  type RequireApprovalOptions,
  type VerifyActionOptions,
  WAKE_READ_SPACING_MS,
  type WaitForOptions,
} from "./module";
export { TOKEN_MAC_DOMAIN, TOKEN_V2_TAG } from "./token";
