/**
 * Reading the OpenAI wire shapes (Chat Completions and Responses) the wrapper needs: the tools
 * a request offers, by the name scope knows them by, and the request rewritten so that a tool
 * that is not offered is named nowhere in it.
 */
import type { NamedTool } from "../governed-call";
import { isObject, type Json } from "../shapes";

/**
 * The tools the host runs whose type is their scope name is their kind, not a name: a
 * `local_shell`, `shell`, `apply_patch` or computer tool (`computer` and `computer_use_preview`
 * are both known as `computer`). Their calls come back to the host and are checked then.
 */
const HOST_RUN_TYPES: Record<string, string> = {
  local_shell: "local_shell",
  shell: "shell",
  apply_patch: "apply_patch",
  computer: "computer",
  computer_use_preview: "computer",
};

/** Responses output items the host runs that are not function calls, and their tools' names. */
const HOST_RUN_CALLS: Record<string, string> = {
  local_shell_call: "local_shell",
  shell_call: "shell",
  apply_patch_call: "apply_patch",
  computer_call: "computer",
};

/**
 * The name scope knows a tool by: a function's or custom tool's name; for a remote MCP server
 * `mcp:<server_label>`; for a built-in tool its type (`web_search`, `file_search`,
 * `code_interpreter`, `image_generation`, …), the host-run ones as {@link HOST_RUN_TYPES} says.
 */
export function toolName(tool: unknown): string {
  if (!isObject(tool)) return "";
  const fn = tool.function;
  if (isObject(fn) && typeof fn.name === "string") return fn.name;
  const custom = tool.custom;
  if (isObject(custom) && typeof custom.name === "string") return custom.name;
  if (tool.type === "mcp") return `mcp:${String(tool.server_label ?? "")}`;
  if (typeof tool.name === "string") return tool.name;
  if (typeof tool.type !== "string") return "";
  return HOST_RUN_TYPES[tool.type] ?? tool.type;
}

/**
 * True for a tool that runs at the provider: anything but a function, a custom tool and the
 * host-run built-ins. An unknown type counts as provider-run (checked when offered).
 */
export function runsAtProvider(tool: unknown): boolean {
  if (!isObject(tool)) return false;
  const type = tool.type;
  if (type === undefined || type === "function" || type === "custom") return false;
  return typeof type !== "string" || !(type in HOST_RUN_TYPES);
}

/** The scope name of a call the model returned that the host runs; null for anything else. */
export function hostCallName(item: unknown): string | null {
  if (!isObject(item) || typeof item.type !== "string") return null;
  if (item.type === "function_call" || item.type === "custom_tool_call")
    return typeof item.name === "string" ? item.name : "";
  return HOST_RUN_CALLS[item.type] ?? null;
}

/** Where a tool was offered: `tools`, or the legacy `functions` of Chat Completions. */
export interface OfferedTool {
  in: "tools" | "functions";
  tool: unknown;
}

/** Every tool a request offers (`tools`, and `functions`), named; null when it offers none. */
export function offeredTools(body: Json): NamedTool<OfferedTool>[] | null {
  const tools = Array.isArray(body.tools) ? body.tools : null;
  const functions = Array.isArray(body.functions) ? body.functions : null;
  if (tools === null && functions === null) return null;
  return [
    ...(tools ?? []).map((tool) => ({
      name: toolName(tool),
      tool: { in: "tools" as const, tool },
    })),
    ...(functions ?? []).map((fn) => ({
      name: isObject(fn) && typeof fn.name === "string" ? fn.name : "",
      tool: { in: "functions" as const, tool: fn },
    })),
  ];
}

/** The tool names a `tool_choice` (or `function_call`) names; empty for `"auto"` and the like. */
function choiceNames(choice: unknown): string[] {
  if (!isObject(choice)) return [];
  if (choice.type === "allowed_tools") {
    const list = isObject(choice.allowed_tools) ? choice.allowed_tools.tools : choice.tools;
    return Array.isArray(list) ? list.map(toolName) : [];
  }
  if (choice.type === "mcp") return [`mcp:${String(choice.server_label ?? "")}`];
  return [toolName(choice)];
}

/** An `allowed_tools` choice keeping only the tools offered; null when none is left. */
function keptAllowedTools(choice: Json, offered: ReadonlySet<string>): Json | null {
  const nested = isObject(choice.allowed_tools);
  const list = nested ? (choice.allowed_tools as Json).tools : choice.tools;
  if (!Array.isArray(list)) return null;
  const kept = list.filter((tool) => offered.has(toolName(tool)));
  if (kept.length === 0) return null;
  return nested
    ? { ...choice, allowed_tools: { ...(choice.allowed_tools as Json), tools: kept } }
    : { ...choice, tools: kept };
}

/**
 * The request with only the tools that may be offered, and no other place naming a tool that
 * is not: a `tool_choice` (or legacy `function_call`) that forces one becomes `"auto"`; an
 * `allowed_tools` list keeps the offered ones (`"none"` when none is left); with no tool left,
 * no `tool_choice` at all (nor `function_call` without functions). The body is not changed; a copy is returned when anything changed.
 */
export function withTools(body: Json, kept: readonly OfferedTool[] | null): Json {
  if (kept === null && body.tool_choice === undefined && body.function_call === undefined)
    return body;
  const sent: Json = { ...body };
  const tools = (kept ?? []).filter((tool) => tool.in === "tools").map((tool) => tool.tool);
  const functions = (kept ?? []).filter((tool) => tool.in === "functions").map((t) => t.tool);
  if (Array.isArray(body.tools)) sent.tools = tools;
  if (Array.isArray(body.functions)) sent.functions = functions;
  const offered = new Set(tools.map(toolName));
  const offeredFunctions = new Set(functions.map((fn) => (isObject(fn) ? String(fn.name) : "")));
  const choice = body.tool_choice;
  if (choice !== undefined && tools.length === 0) delete sent.tool_choice;
  else if (isObject(choice)) {
    if (choice.type === "allowed_tools")
      sent.tool_choice = keptAllowedTools(choice, offered) ?? "none";
    else if (choiceNames(choice).some((name) => !offered.has(name))) sent.tool_choice = "auto";
  }
  const functionCall = body.function_call;
  if (isObject(functionCall)) {
    if (functions.length === 0) delete sent.function_call;
    else if (!offeredFunctions.has(String(functionCall.name))) sent.function_call = "auto";
  }
  return sent;
}

/** The output ceiling of a request, by the field each API uses. */
export function maxTokensOf(body: Json): number | undefined {
  for (const key of ["max_completion_tokens", "max_tokens", "max_output_tokens"]) {
    const value = body[key];
    if (typeof value === "number" && Number.isInteger(value) && value > 0) return value;
  }
  return undefined;
}
