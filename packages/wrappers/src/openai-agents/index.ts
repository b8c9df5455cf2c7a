/**
 * `@gov/wrappers/openai-agents`: govern an OpenAI Agents SDK agent (`@openai/agents` 0.14) —
 * {@link governAgent} adds the governance guardrails to the agent and its function tools, hides
 * the tools scope hides, answers `needsApproval` from `@gov/gates` and routes the model calls
 * through a wrapped OpenAI client; {@link resolveApprovals} answers a run's interruptions from
 * gates in any process; {@link GovernanceTracingProcessor} writes the run's spans into the audit
 * chain; {@link settleRunUsage} settles a run's usage when its model calls were not governed.
 * @module
 */

export type { ApprovalRequestNotice, ToolApprovalOptions } from "../ai-sdk/approval-options";
export {
  ToolCallBlockedError,
  type ToolCallBlockedReason,
} from "../errors";
export {
  type ApprovalItemLike,
  type ApprovalResolution,
  type ResolveApprovalsOptions,
  type RunStateLike,
  resolveApprovals,
} from "./approvals";
export {
  type GovernAgentOptions,
  governAgent,
  governanceErrorOf,
} from "./govern-agent";
export { type GovernanceOutputInfo, GUARDRAIL_NAMES } from "./guardrails";
export { type GovernanceTracingOptions, GovernanceTracingProcessor } from "./tracing";
export { type SettleRunUsageOptions, settleRunUsage } from "./usage";
