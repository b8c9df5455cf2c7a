/**
 * The options of `governMcpClient` and `governMcpServer`: the MCP server's name (the namespace
 * of its tools in scope policies) and which calls need a reviewer's approval.
 * @module
 */
import { checkId, InvalidArgumentError, parseOptions, reportInvalidAs } from "@gov/core";
import { z } from "zod";
import type { ApprovalRequestNotice } from "../ai-sdk/approval-options";
import { type ResolvedApprovalOptions, resolveApprovalOptions } from "../ai-sdk/approval-options";
import { InvalidWrapperOptionsError } from "../errors";

/** The longest server name: a scope name is `<serverName>/<tool>`, 256 characters in all. */
export const MAX_SERVER_NAME_LENGTH = 64;

/**
 * What an MCP tool's annotations say, as the server declared them (`tools/list`). Hints only:
 * a server can declare anything.
 */
export interface McpToolAnnotations {
  readonly readOnlyHint?: boolean;
  readonly destructiveHint?: boolean;
  readonly idempotentHint?: boolean;
  readonly openWorldHint?: boolean;
}

/**
 * Which MCP tool calls need a reviewer's approval (`@gov/gates`) before they run. The call
 * waits (`waitFor`) until a reviewer grants or denies it, or `timeoutMs` passes; the grant is
 * verified for exactly that tool and those arguments (`verifyAction`), once.
 */
export interface McpApprovalOptions {
  /**
   * Calls of tools whose annotations say `destructiveHint: true` need approval. A tool
   * without annotations, or without that hint, does not (list it in `tools`). @default true
   */
  destructive?: boolean;
  /**
   * Further tools whose every call needs approval, by their scope name
   * (`<serverName>/<tool>`), or a predicate of the call. @default none
   */
  tools?:
    | readonly string[]
    | ((scopedName: string, input: unknown) => boolean | PromiseLike<boolean>);
  /**
   * Ask the steward (`governance.steward`) about every call: ESCALATE asks a reviewer, BLOCK
   * refuses (`ToolCallBlockedError`), HALT stops the agent. @default false
   */
  steward?: boolean;
  /** How long a reviewer has to decide, in ms (1 second to 30 days). @default the gates module's (one hour) */
  timeoutMs?: number;
  /**
   * Deliver a request to the reviewers (the token is in `notice.request.token`: never log it,
   * never hand it to the agent). Awaited; a hook that throws refuses the call.
   */
  onRequest: (notice: ApprovalRequestNotice) => void | PromiseLike<void>;
}

/** {@link McpApprovalOptions} as the governed call uses them. */
export interface ResolvedMcpApproval {
  readonly destructive: boolean;
  readonly bridge: ResolvedApprovalOptions;
}

/**
 * Read a server name: core's id rule, at most {@link MAX_SERVER_NAME_LENGTH} characters,
 * without `/` (the separator of scope names).
 * @throws {InvalidWrapperOptionsError} naming `options.serverName`.
 */
export function readServerName(value: unknown): string {
  let name: string;
  try {
    name = checkId(value, "options.serverName", { max: MAX_SERVER_NAME_LENGTH });
  } catch (error) {
    if (InvalidArgumentError.isInstance(error))
      throw reportInvalidAs(InvalidWrapperOptionsError, error);
    throw error;
  }
  if (name.includes("/"))
    throw new InvalidWrapperOptionsError(
      "options.serverName",
      `must not contain "/", got ${JSON.stringify(name)}.`,
      'Name the server without "/" (e.g. "billing"): its tools are known to scope as "billing/<tool>".',
    );
  return name;
}

const approvalSchema = z.looseObject({ destructive: z.boolean().optional() });

/**
 * Read the `approval` option: `destructive`, then the rest as `governTools`' block mode.
 * @throws {InvalidWrapperOptionsError} naming the option.
 */
export function resolveMcpApproval(value: unknown): ResolvedMcpApproval {
  const data = parseOptions(approvalSchema, value, {
    field: "options.approval",
    required: true,
    fixes: {
      "": "Pass approval: { onRequest, destructive?, tools?, steward?, timeoutMs? }.",
      destructive:
        "Use true (the default) to hold calls of tools annotated destructiveHint: true, false not to.",
    },
    errorClass: InvalidWrapperOptionsError,
  });
  const { destructive, mode, ...rest } = data as Record<string, unknown>;
  if (mode !== undefined)
    throw new InvalidWrapperOptionsError(
      "options.approval.mode",
      "does not apply to MCP: a call that needs approval always waits for the reviewer.",
      "Remove mode; use timeoutMs to bound the wait.",
    );
  return Object.freeze({
    destructive: destructive !== false,
    bridge: resolveApprovalOptions({ ...rest, mode: "block" }),
  });
}
