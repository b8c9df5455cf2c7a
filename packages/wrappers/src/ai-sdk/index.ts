/**
 * `@gov/wrappers/ai-sdk`: govern a Vercel AI SDK agent (AI SDK 5, 6 and 7) —
 * {@link governanceMiddleware} for its model calls (`wrapLanguageModel`),
 * {@link governTools} for its tools' `execute`, and the approvals of its tool calls answered
 * by `@gov/gates` and the steward ({@link governedToolApproval}, {@link toolApprovalResponses}).
 * @module
 */
export {
  ToolCallBlockedError,
  type ToolCallBlockedReason,
} from "../errors";
export type {
  ApprovalCause,
  ApprovalRequestNotice,
  ToolApprovalOptions,
} from "./approval-options";
export {
  type GovernedApprovalStatus,
  type GovernedToolApproval,
  governedToolApproval,
  type ToolApprovalCallLike,
  type ToolApprovalResponsePart,
  type ToolApprovalResponsesOptions,
  toolApprovalResponses,
} from "./approval-responses";
export {
  type GovernanceMiddleware,
  type GovernanceMiddlewareOptions,
  governanceMiddleware,
  type LanguageModelCallOptionsLike,
  type LanguageModelLike,
  type MiddlewareCallLike,
} from "./middleware";
export { type GovernToolsOptions, governTools } from "./tools";
