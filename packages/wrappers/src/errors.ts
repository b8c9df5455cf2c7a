import { GovernanceError, ModuleInputError } from "@gov/core";

/** The stable error codes of `@gov/wrappers`. A code never changes meaning once released. */
export const WRAPPERS_ERROR_CODES = {
  /** `wrapOpenAI` (or another wrapper) was given bad options; the client was not wrapped. */
  WRAPPERS_OPTIONS_INVALID: "WRAPPERS_OPTIONS_INVALID",
  /**
   * The model returned a call to a tool the agent may not use, and the wrapper was told to
   * refuse it (`onToolOutOfScope: "throw"`); the host never saw the response.
   */
  TOOL_CALL_OUT_OF_SCOPE: "TOOL_CALL_OUT_OF_SCOPE",
  /**
   * A governed tool was not run: the steward blocked it, or it needed a reviewer's approval
   * that could not be asked for or was not found (`ToolCallBlockedError.reason` says which).
   */
  TOOL_CALL_BLOCKED: "TOOL_CALL_BLOCKED",
  /**
   * A governed MCP server could not tell which agent called a tool (`governMcpServer`'s
   * `agentId` returned no valid id, or threw): the handler did not run.
   */
  MCP_CALLER_UNIDENTIFIED: "MCP_CALLER_UNIDENTIFIED",
} as const;

/** One of {@link WRAPPERS_ERROR_CODES}. */
export type WrappersErrorCode = (typeof WRAPPERS_ERROR_CODES)[keyof typeof WRAPPERS_ERROR_CODES];

/**
 * A wrapper was given bad options (an empty agent id, an unknown option, a `governance` that
 * is neither the SDK nor an object of ports). Nothing was wrapped.
 */
export class InvalidWrapperOptionsError extends ModuleInputError {
  static override readonly errorIdentity = "@gov/wrappers.InvalidWrapperOptionsError";
  override readonly code: string = WRAPPERS_ERROR_CODES.WRAPPERS_OPTIONS_INVALID;
}

/**
 * The model asked to call a tool outside the agent's scope and the wrapper was created with
 * `onToolOutOfScope: "throw"`. The call's usage was settled and the refusal audited
 * (`llm.tool_call_blocked` with `action: "refused"`) before this was thrown; the scope
 * module's own refusal (its
 * `ScopeViolation`) is the `cause`.
 */
export class ToolCallOutOfScopeError extends GovernanceError {
  static override readonly errorIdentity = "@gov/wrappers.ToolCallOutOfScopeError";
  /** The agent the model answered. */
  readonly agentId: string;
  /** The tool the model asked for. */
  readonly toolName: string;

  constructor(agentId: string, toolName: string, cause: unknown) {
    super({
      code: WRAPPERS_ERROR_CODES.TOOL_CALL_OUT_OF_SCOPE,
      message: `The model asked agent "${agentId}" to call tool "${toolName}", which is outside the agent's scope; the response was withheld.`,
      recoveryHint:
        'Add the tool to the agent\'s allowedTools if it may use it, stop offering it to the model, or wrap the client with onToolOutOfScope: "remove" to drop such calls instead.',
      cause,
    });
    this.name = "ToolCallOutOfScopeError";
    this.agentId = agentId;
    this.toolName = toolName;
  }
}

/**
 * Why {@link ToolCallBlockedError} refused a tool call:
 * - `steward_block`: the steward's verdict was BLOCK (its message is the error's);
 * - `steward_error`: the steward could not evaluate the call (enforcement fails closed);
 * - `steward_commit_refused`: the approval of an escalated call could no longer be counted
 *   against the steward's limits (`commit` answered false): evaluate it again;
 * - `approval_unavailable`: the call needs a reviewer's approval and none can be asked for
 *   (no `gates` port, the request was not stored, or `onRequest` failed);
 * - `approval_missing`: the call needs a reviewer's approval and no request was made for it —
 *   none by this process, and none in gates under its tool call id (the approval was answered
 *   by the application alone, the AI SDK does not ask `needsApproval` — use `mode: "block"` —,
 *   or the run was resumed elsewhere with a gates port that cannot look requests up).
 */
export type ToolCallBlockedReason =
  | "steward_block"
  | "steward_error"
  | "steward_commit_refused"
  | "approval_unavailable"
  | "approval_missing";

const BLOCKED_HINTS: Readonly<Record<ToolCallBlockedReason, string>> = {
  steward_block:
    "The steward's blueprint blocks this call (see the message and its tripwires); change the arguments, or the blueprint if the call should be allowed.",
  steward_error:
    "The steward could not evaluate the call (see the cause); fix the steward (its store, its blueprints) and try again.",
  steward_commit_refused:
    "The approval could no longer be counted against the steward's limits (already used, or forgotten): let the agent call the tool again, for a new evaluation and approval.",
  approval_unavailable:
    "Give the wrapper (governTools, governAgent, governMcpClient, governMcpServer) a gates port (the GovernanceSDK, or { gates }) and an approval.onRequest that delivers the token to a reviewer; see the cause when there is one.",
  approval_missing:
    'Answer the approval request through the framework — toolApprovalResponses() for the AI SDK, resolveApprovals(state) for the OpenAI Agents SDK — and resume the run with the call it asked about (its tool call id finds the request in gates from any process, with a gates port that has findRequest, as @gov/gates has), or use approval: { mode: "block" }.',
};

/**
 * A governed tool call was refused before it ran (`governTools`, `governAgent`,
 * `governMcpClient` or `governMcpServer`, with `approval` or the steward): the
 * steward blocked it, or it needed a reviewer's approval that could not be asked for or was
 * not found; {@link reason} says which. Audited as `tool.blocked` before it is thrown. A
 * reviewer's denial, and an approval that does not match the call, are the gates module's
 * own errors (`ApprovalDenied`, `ApprovalTokenError`) instead.
 */
export class ToolCallBlockedError extends GovernanceError {
  static override readonly errorIdentity = "@gov/wrappers.ToolCallBlockedError";
  /** The agent whose call was refused. */
  readonly agentId: string;
  /** The tool that was not run. */
  readonly toolName: string;
  /** Why: see {@link ToolCallBlockedReason}. */
  readonly reason: ToolCallBlockedReason;
  /** The steward's trace of the evaluation, when the steward decided. */
  readonly traceId: string | null;

  constructor(details: {
    agentId: string;
    toolName: string;
    reason: ToolCallBlockedReason;
    /** What happened, for the agent and the audit (no secrets: the steward's message, a fixed text). */
    message: string;
    traceId?: string | null;
    cause?: unknown;
  }) {
    super({
      code: WRAPPERS_ERROR_CODES.TOOL_CALL_BLOCKED,
      message: `Tool "${details.toolName}" of agent "${details.agentId}" was not run: ${details.message}`,
      recoveryHint: BLOCKED_HINTS[details.reason],
      ...(details.cause === undefined ? {} : { cause: details.cause }),
    });
    this.name = "ToolCallBlockedError";
    this.agentId = details.agentId;
    this.toolName = details.toolName;
    this.reason = details.reason;
    this.traceId = details.traceId ?? null;
  }
}
