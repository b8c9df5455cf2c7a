/** Reading the Anthropic Messages wire shapes the wrapper needs: tools, usage, tool_use blocks. */
import type { GovernedCall, NamedTool } from "../governed-call";
import { isObject, type Json } from "../shapes";

/**
 * The name scope knows a tool by: an MCP connector toolset as `mcp:<mcp_server_name>`, else its
 * `name` (custom and server tools have one), else its type.
 */
function toolName(tool: unknown): string {
  if (!isObject(tool)) return "";
  if (tool.type === "mcp_toolset") return `mcp:${String(tool.mcp_server_name ?? "")}`;
  if (typeof tool.name === "string") return tool.name;
  return typeof tool.type === "string" ? tool.type : "";
}

/** The versioned tool types whose calls the host runs (they come back as `tool_use` blocks). */
const HOST_RUN_TYPES = /^(bash|text_editor|computer|memory)_\d/;

/**
 * True for a server tool, which runs at Anthropic (`web_search_*`, `web_fetch_*`,
 * `code_execution_*`, …): a tool with a `type` other than `custom` and the host-run
 * `bash_*`, `text_editor_*`, `computer_*` and `memory_*`. An unknown type counts as
 * provider-run (checked when offered).
 */
export function runsAtProvider(tool: unknown): boolean {
  if (!isObject(tool) || tool.type === undefined || tool.type === "custom") return false;
  return typeof tool.type !== "string" || !HOST_RUN_TYPES.test(tool.type);
}

/** The request's `tools` with the names scope knows them by; null when it offers none. */
export function namedTools(tools: unknown): NamedTool<unknown>[] | null {
  if (!Array.isArray(tools)) return null;
  return tools.map((tool) => ({ name: toolName(tool), tool }));
}

/** `max_tokens`, the call's output ceiling (required by the API; thinking budgets count in it). */
export function maxTokensOf(body: Json): number | undefined {
  const value = body.max_tokens;
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : undefined;
}

/**
 * The request with only the tools that may be offered, and no other place naming a tool that
 * is not: a `tool_choice` that names a tool not offered (removed, or never offered) is set
 * back to `auto` (so that its name is not sent either); with no tool left, no `tool_choice`
 * at all. The body is not changed; a copy is returned when anything changed.
 */
export function withTools(body: Json, tools: unknown[] | null): Json {
  const choice = body.tool_choice;
  const offered = tools ?? [];
  const names = new Set(offered.map(toolName));
  const choiceOk = !isObject(choice) || choice.type !== "tool" || names.has(String(choice.name));
  const toolsKept = tools === null || tools.length === (body.tools as unknown[]).length;
  if (toolsKept && choiceOk && (!isObject(choice) || offered.length > 0)) return body;
  const sent: Json = tools === null ? { ...body } : { ...body, tools };
  if (!isObject(choice)) return sent;
  if (offered.length === 0) {
    delete sent.tool_choice;
    return sent;
  }
  if (!choiceOk) {
    sent.tool_choice = {
      type: "auto",
      ...(choice.disable_parallel_tool_use === undefined
        ? {}
        : { disable_parallel_tool_use: choice.disable_parallel_tool_use }),
    };
  }
  return sent;
}

/** Anthropic's usage counts: `input_tokens` excludes the cache reads and writes beside it. */
export interface AnthropicUsageCounts {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

const count = (value: unknown): number | null =>
  typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : null;

/**
 * The four counts a Messages `usage` is billed by, and nothing else: the API also sends
 * `output_tokens_details` (thinking tokens, a breakdown of `output_tokens`, billed as output),
 * `cache_creation` (the cache writes by TTL), `server_tool_use` and `service_tier`, which the
 * price table does not price apart. Null when the input or output count is missing.
 */
export function usageOf(usage: unknown): AnthropicUsageCounts | null {
  if (!isObject(usage)) return null;
  const input = count(usage.input_tokens);
  const output = count(usage.output_tokens);
  if (input === null || output === null) return null;
  return {
    input_tokens: input,
    output_tokens: output,
    cache_creation_input_tokens: count(usage.cache_creation_input_tokens) ?? 0,
    cache_read_input_tokens: count(usage.cache_read_input_tokens) ?? 0,
  };
}

/**
 * A `message_delta`'s usage over what was known: its counts are cumulative totals of the whole
 * message, so a count it carries replaces the earlier one (never added); one it omits stays.
 */
export function mergeUsage(known: Json | null, delta: unknown): Json | null {
  if (!isObject(delta)) return known;
  const merged: Json = { ...known };
  for (const [key, value] of Object.entries(delta)) if (value != null) merged[key] = value;
  return merged;
}

/** True for a block the host runs: a client tool call (server tools already ran at Anthropic). */
export function isToolUse(block: unknown): block is Json & { name: string } {
  return isObject(block) && block.type === "tool_use" && typeof block.name === "string";
}

/**
 * Check the tool_use blocks of a whole Message and remove those outside scope, in place. When
 * every tool call was removed, `stop_reason: "tool_use"` becomes `"end_turn"`: the host's loop
 * then does not wait for tool results it will never have.
 *
 * @returns The names of the tools removed.
 * @throws {ToolCallOutOfScopeError} with `onToolOutOfScope: "throw"`.
 */
export async function filterMessage(call: GovernedCall, message: Json): Promise<string[]> {
  const removed: string[] = [];
  if (!Array.isArray(message.content)) return removed;
  const kept: unknown[] = [];
  let keptCalls = 0;
  for (const block of message.content) {
    if (isToolUse(block)) {
      if (!(await call.allowToolCall(block.name))) {
        removed.push(block.name);
        continue;
      }
      keptCalls++;
    }
    kept.push(block);
  }
  if (removed.length > 0) {
    message.content = kept;
    if (keptCalls === 0 && message.stop_reason === "tool_use") message.stop_reason = "end_turn";
  }
  return removed;
}

/**
 * An error the API answered with — an HTTP error status, or an `error` event in a stream — as
 * the `llm.error` event describes it: its status and the API's error type
 * (`overloaded_error`, `invalid_request_error`, …). The host gets the client's own error.
 */
export class AnthropicApiError {
  readonly name = "APIError";
  constructor(
    readonly status: number | undefined,
    readonly code: string | undefined,
  ) {}
}

/** The API's error type from an error body (`{ type: "error", error: { type } }`). */
export function errorTypeOf(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  const error = body.error;
  return isObject(error) && typeof error.type === "string" ? error.type : undefined;
}
