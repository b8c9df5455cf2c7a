/**
 * The application's side of the AI SDK's approval flow for a governed tool set: AI SDK 7's
 * `toolApproval` answered by the bridge, and the reviewers' decisions (from `@gov/gates`)
 * turned into the `tool-approval-response` parts that resume a run.
 * @module
 */
import { parseOptions, typeOf } from "@gov/core";
import { z } from "zod";
import { InvalidWrapperOptionsError } from "../errors";
import { isObject } from "./shapes";
import { approvalsOf, type GovernedApprovals } from "./tools";

/** AI SDK 7's approval status of a tool call (the shapes the bridge answers with). */
export type GovernedApprovalStatus =
  | { type: "not-applicable" }
  | { type: "user-approval"; reason?: string }
  | { type: "denied"; reason: string };

/** What AI SDK 7 hands a `toolApproval` function (the fields read here). */
export interface ToolApprovalCallLike {
  toolCall: { toolName: string; toolCallId: string; input: unknown };
  messages?: unknown;
}

/** The `toolApproval` function {@link governedToolApproval} returns. */
export type GovernedToolApproval = (call: ToolApprovalCallLike) => Promise<GovernedApprovalStatus>;

/** A `tool-approval-response` part, as the application sends it back in a `tool` message. */
export interface ToolApprovalResponsePart {
  type: "tool-approval-response";
  approvalId: string;
  approved: boolean;
  reason?: string;
}

/** Options of {@link toolApprovalResponses}. */
export interface ToolApprovalResponsesOptions {
  /**
   * How long to wait for the reviewers of the requests still undecided, in ms (up to 30
   * days). 0 reads once: an undecided request gets no response yet. @default 0
   */
  timeoutMs?: number;
  /** Stop waiting when aborted (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** The governed tools of a set, by name; refused when none has approvals. */
function governedApprovals(tools: unknown, call: string): Map<string, GovernedApprovals> {
  if (!isObject(tools) || Array.isArray(tools))
    throw new InvalidWrapperOptionsError(
      "tools",
      `must be the tool set governTools() returned, got ${typeOf(tools)}.`,
      `Pass the governed tools: ${call}(governTools(tools, { …, approval })).`,
    );
  const found = new Map<string, GovernedApprovals>();
  for (const [name, tool] of Object.entries(tools)) {
    const approvals = approvalsOf(tool);
    if (approvals !== null) found.set(name, approvals);
  }
  if (found.size === 0)
    throw new InvalidWrapperOptionsError(
      "tools",
      "has no tool governed with approval: governTools() was not given the approval option.",
      `Pass the tools governTools(tools, { …, approval: { onRequest } }) returned to ${call}().`,
    );
  return found;
}

/**
 * AI SDK 7's `toolApproval` for a tool set governed with `approval` (framework mode): the
 * steward's BLOCK and a call that needs an approval nobody can give answer `denied` (with
 * the reason the model sees), a call that needs a reviewer opens a gates request and answers
 * `user-approval`, the steward's HALT throws `AgentHaltedError` (`haltedBy: "steward"`), and
 * anything else is `not-applicable`. A tool of the set without approvals answers as its own
 * `needsApproval` would.
 *
 * `toolApproval` takes precedence over the tools' `needsApproval` in AI SDK 7; without it the
 * governed `needsApproval` answers instead (refusals then reach the model as tool errors).
 * The tool still runs only once gates verified the grant for exactly its input.
 *
 * @example
 * ```ts
 * const tools = governTools(myTools, { governance: sdk, agentId, approval: { tools: ["wire_money"], onRequest } });
 * const result = await generateText({ model, tools, toolApproval: governedToolApproval(tools), prompt });
 * ```
 * @throws {InvalidWrapperOptionsError} `tools` is not a tool set governed with `approval`.
 */
export function governedToolApproval(tools: object): GovernedToolApproval {
  const governed = governedApprovals(tools, "governedToolApproval");
  const all = tools as Record<string, unknown>;
  return async (call) => {
    const toolCall = isObject(call) && isObject(call.toolCall) ? call.toolCall : null;
    if (toolCall === null || typeof toolCall.toolName !== "string")
      return { type: "denied", reason: "The tool call could not be read." };
    const { toolName, toolCallId, input } = toolCall as ToolApprovalCallLike["toolCall"];
    const approvals = governed.get(toolName);
    const options = { toolCallId, messages: isObject(call) ? call.messages : undefined };
    if (approvals === undefined) {
      const tool = Object.hasOwn(all, toolName) ? all[toolName] : undefined;
      const own = isObject(tool) ? tool.needsApproval : undefined;
      const needed =
        own === true ||
        (typeof own === "function" &&
          (await (own as (input: unknown, options: unknown) => unknown)(input, options)) === true);
      return needed ? { type: "user-approval" } : { type: "not-applicable" };
    }
    // The steward's HALT (and a halted agent) throws AgentHaltedError: the run stops.
    const decision = await approvals.bridge.decide(toolName, input, options, approvals.own);
    switch (decision.kind) {
      case "run":
        return { type: "not-applicable" };
      case "blocked":
        // Denied here: the AI SDK will not execute it, so nothing is left to remember.
        if (typeof toolCallId === "string") approvals.bridge.forget(toolCallId);
        return { type: "denied", reason: decision.error.message };
      case "approval":
        return {
          type: "user-approval",
          reason:
            decision.cause === "steward"
              ? "The steward escalated this call to a reviewer."
              : "This call needs a reviewer's approval.",
        };
    }
  };
}

const responsesOptionsSchema = z.strictObject({
  timeoutMs: z
    .number()
    .int()
    .min(0)
    .max(30 * 86_400_000)
    .optional(),
  signal: z
    .custom<AbortSignal>((value) => value instanceof AbortSignal, {
      message: "must be an AbortSignal",
    })
    .optional(),
});

/** An approval request the application holds, and the tool it is for when that can be read. */
interface HeldApprovalRequest {
  approvalId: string;
  toolCallId: string;
  toolName: string | null;
}

/**
 * The approval requests among what the application holds: result content, steps, or messages.
 * The tool's name comes with the request in a result's content, and from the call's
 * `tool-call` part in messages.
 */
function approvalRequestsIn(parts: unknown): HeldApprovalRequest[] {
  const found: HeldApprovalRequest[] = [];
  const toolNames = new Map<string, string>();
  const visit = (part: unknown, depth: number): void => {
    if (!isObject(part) || depth > 3) return;
    if (part.type === "tool-call") {
      if (typeof part.toolCallId === "string" && typeof part.toolName === "string")
        toolNames.set(part.toolCallId, part.toolName);
      return;
    }
    if (part.type === "tool-approval-request") {
      const toolCall = isObject(part.toolCall) ? part.toolCall : {};
      const toolCallId =
        typeof part.toolCallId === "string"
          ? part.toolCallId
          : typeof toolCall.toolCallId === "string"
            ? toolCall.toolCallId
            : null;
      if (typeof part.approvalId === "string" && toolCallId !== null)
        found.push({
          approvalId: part.approvalId,
          toolCallId,
          toolName: typeof toolCall.toolName === "string" ? toolCall.toolName : null,
        });
      return;
    }
    // An assistant message, or a step: their parts.
    if (Array.isArray(part.content)) for (const inner of part.content) visit(inner, depth + 1);
  };
  if (Array.isArray(parts)) for (const part of parts) visit(part, 0);
  else visit(parts, 0);
  // One response per request, however many times the request was handed over.
  return [...new Map(found.map((request) => [request.approvalId, request])).values()].map(
    (request) => ({
      ...request,
      toolName: request.toolName ?? toolNames.get(request.toolCallId) ?? null,
    }),
  );
}

/**
 * The reviewers' decisions on the approval requests of a governed tool set, as the
 * `tool-approval-response` parts the application sends back to resume the run
 * (`{ role: "tool", content: responses }`): approved once gates reads the request granted,
 * denied (with the reviewer's reason, which the model sees) when denied, expired or changed.
 * A request still undecided gets no response (wait for it with `timeoutMs`), nor does one for
 * a tool this set does not govern. A run resumed after a restart or in another process is
 * answered too: the requests are found in gates by their tool call ids (hand over the parts
 * that name the calls' tools — `result.content`, or the messages with their `tool-call` parts).
 *
 * An approval here is not what lets the tool run: its `execute` verifies the grant with gates
 * for exactly the call's input, once — an approval the application makes up is refused.
 *
 * @param parts What holds the `tool-approval-request` parts: `result.content`, `result.steps`,
 *   or the messages (`result.response.messages`).
 * @example
 * ```ts
 * const result = await generateText({ model, tools, messages, stopWhen: stepCountIs(5) });
 * const responses = await toolApprovalResponses(tools, result.content, { timeoutMs: 60_000 });
 * messages.push(...result.response.messages, { role: "tool", content: responses });
 * await generateText({ model, tools, messages, stopWhen: stepCountIs(5) }); // runs what was granted
 * ```
 * @throws {InvalidWrapperOptionsError} `tools` is not a tool set governed with `approval`, or bad options (rejects).
 */
export async function toolApprovalResponses(
  tools: object,
  parts: unknown,
  options: ToolApprovalResponsesOptions = {},
): Promise<ToolApprovalResponsePart[]> {
  const governed = governedApprovals(tools, "toolApprovalResponses");
  const { timeoutMs = 0, signal } = parseOptions(responsesOptionsSchema, options, {
    fixes: {
      timeoutMs:
        "Use a whole number of milliseconds to wait for undecided requests (0, the default, reads once).",
      signal: "Pass an AbortSignal, or leave it out.",
    },
    errorClass: InvalidWrapperOptionsError,
  });
  const bridges = new Set([...governed.values()].map((approvals) => approvals.bridge));
  const answers = await Promise.all(
    approvalRequestsIn(parts).map(async ({ approvalId, toolCallId, toolName }) => {
      // The bridge of the call's tool (it alone looks the request up in gates), or — the tool
      // unknown — whichever bridge asked in this process.
      const tool = toolName === null ? undefined : governed.get(toolName);
      for (const bridge of tool === undefined ? bridges : [tool.bridge]) {
        const answer = await bridge.answer(toolCallId, tool === undefined ? null : toolName, {
          timeoutMs,
          ...(signal === undefined ? {} : { signal }),
        });
        if (answer !== null)
          return {
            type: "tool-approval-response" as const,
            approvalId,
            approved: answer.approved,
            ...(answer.reason === undefined ? {} : { reason: answer.reason }),
          };
      }
      return null;
    }),
  );
  return answers.filter((answer) => answer !== null);
}
