/**
 * The `approval` option of `governTools`: which tool calls need a reviewer's approval, who is
 * asked, and how the run waits for the answer.
 * @module
 */
import { type ApprovalRequestLike, parseOptions } from "@gov/core";
import { z } from "zod";
import { InvalidWrapperOptionsError } from "../errors";

/** Why a tool call needs a reviewer's approval. */
export type ApprovalCause =
  /** The steward escalated the call (ESCALATE). */
  | "steward"
  /** The call's tool is in `approval.tools` (or the predicate said so). */
  | "listed"
  /** The tool's own `needsApproval` said so. */
  | "tool";

/**
 * What {@link ToolApprovalOptions.onRequest} is handed when a tool call needs approval: the
 * gates request, and the call it is for.
 */
export interface ApprovalRequestNotice {
  /**
   * The gates request. Its `token` decides it: deliver it to reviewers only (their channel,
   * your review screen), never to the agent, its logs or its message history.
   */
  readonly request: ApprovalRequestLike;
  /** The tool the model called. */
  readonly toolName: string;
  /** The call's input, as the model sent it (also the request's `payload.input`). */
  readonly input: unknown;
  /** The AI SDK's tool call id, when it gave one. */
  readonly toolCallId: string | null;
  /** Why approval is needed. */
  readonly cause: ApprovalCause;
  /** The steward's message when it escalated; null otherwise. */
  readonly message: string | null;
}

/**
 * The `approval` option of `governTools`: tool calls that need a reviewer's approval
 * (`@gov/gates`), and the steward's verdict on every call.
 *
 * A call needs approval when the steward escalates it (`steward: true`, ESCALATE), when its
 * tool is listed in `tools`, or when the tool's own `needsApproval` says so. The steward's
 * BLOCK refuses the call (`ToolCallBlockedError`), its HALT stops the agent
 * (`AgentHaltedError`, `haltedBy: "steward"`).
 */
export interface ToolApprovalOptions {
  /**
   * The tools whose every call needs approval: their names, or a predicate of the call
   * (`(toolName, input) => boolean`). @default none
   */
  tools?:
    | readonly string[]
    | ((toolName: string, input: unknown) => boolean | PromiseLike<boolean>);
  /**
   * Ask the steward (`governance.steward`) about every call before it runs: OK, NUDGE and FLAG
   * run it, ESCALATE asks a reviewer, BLOCK refuses it, HALT stops the agent. Refused when
   * there is no steward port (start the SDK with `enableSteward: true`). @default false
   */
  steward?: boolean;
  /**
   * How the run waits for a reviewer:
   * - `"framework"`: the AI SDK's own approval flow (AI SDK 6 and 7): the call comes back as a
   *   `tool-approval-request`, the run ends, and the application resumes it with
   *   `toolApprovalResponses()`; `execute` then runs only what gates granted.
   * - `"block"`: `execute` waits for the reviewer (`waitFor`, until `timeoutMs` or the run's
   *   `abortSignal`), then runs. Any AI SDK version (AI SDK 5 included).
   * @default "framework"
   */
  mode?: "framework" | "block";
  /**
   * How long a reviewer has to decide, in ms (1 second to 30 days): the request's
   * `expiresInMs`, and in block mode how long `execute` waits. @default the gates module's (one hour)
   */
  timeoutMs?: number;
  /**
   * Deliver a request to the reviewers: called once per request, awaited before the run goes
   * on. The token is in `notice.request.token`; never log it. A hook that throws refuses the
   * call (nobody could decide it).
   */
  onRequest: (notice: ApprovalRequestNotice) => void | PromiseLike<void>;
}

/** {@link ToolApprovalOptions} as the bridge uses them. */
export interface ResolvedApprovalOptions {
  readonly listed: ((toolName: string, input: unknown) => boolean | PromiseLike<boolean>) | null;
  readonly steward: boolean;
  readonly mode: "framework" | "block";
  readonly timeoutMs: number | null;
  readonly onRequest: (notice: ApprovalRequestNotice) => void | PromiseLike<void>;
}

/** The longest `timeoutMs`: the gates module's longest request (30 days). */
const MAX_TIMEOUT_MS = 30 * 86_400_000;

const isFunction = (value: unknown) => typeof value === "function";

const approvalOptionsSchema = z.strictObject({
  tools: z
    .union([
      z.array(z.string().min(1).max(256)).max(1_000),
      z.custom<(toolName: string, input: unknown) => boolean>(isFunction, {
        message: "must be an array of tool names or a function",
      }),
    ])
    .optional(),
  steward: z.boolean().optional(),
  mode: z.enum(["framework", "block"]).optional(),
  timeoutMs: z.number().int().min(1_000).max(MAX_TIMEOUT_MS).optional(),
  onRequest: z.custom<ToolApprovalOptions["onRequest"]>(isFunction, {
    message: "must be a function that delivers the request to a reviewer",
  }),
});

const FIXES = {
  "": "Pass approval: { onRequest, tools?, steward?, mode?, timeoutMs? }.",
  tools:
    'Pass the names of the tools whose calls need approval (["wire_money"]), or a function (toolName, input) => boolean.',
  steward: "Use true to ask the steward about every call, false (the default) not to.",
  mode: 'Use "framework" (the AI SDK\'s approval flow, AI SDK 6 and 7) or "block" (execute waits; any version).',
  timeoutMs: `Use a whole number of milliseconds from 1000 to ${MAX_TIMEOUT_MS} (30 days), or leave it out for the gates module's default.`,
  onRequest:
    "Pass onRequest: ({ request }) => … that delivers request.token to your reviewers (never log it): without it nobody can grant a request.",
};

/**
 * Read `governTools`' `approval` option.
 * @throws {InvalidWrapperOptionsError} `WRAPPERS_OPTIONS_INVALID`, naming the option.
 */
export function resolveApprovalOptions(value: unknown): ResolvedApprovalOptions {
  const data = parseOptions(approvalOptionsSchema, value, {
    field: "options.approval",
    required: true,
    fixes: FIXES,
    errorClass: InvalidWrapperOptionsError,
  });
  let listed: ResolvedApprovalOptions["listed"] = null;
  if (typeof data.tools === "function") listed = data.tools;
  else if (data.tools !== undefined && data.tools.length > 0) {
    const names = new Set(data.tools);
    listed = (toolName) => names.has(toolName);
  }
  return Object.freeze({
    listed,
    steward: data.steward ?? false,
    mode: data.mode ?? "framework",
    timeoutMs: data.timeoutMs ?? null,
    onRequest: data.onRequest,
  });
}
