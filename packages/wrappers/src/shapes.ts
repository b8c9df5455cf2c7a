/**
 * Helpers the provider adapters share: reading JSON objects, how a stream ended by an error,
 * and checking the tools a request offers that run at the provider (which scope must allow
 * when they are offered: their calls are never returned to be checked).
 * @module
 */
import { AgentHaltedError } from "@gov/core";
import { ToolCallOutOfScopeError } from "./errors";
import { type CallEnd, type Governor, isAbort, type NamedTool } from "./governed-call";

/** A JSON object as read from the wire. */
export type Json = Record<string, unknown>;

/** True for a non-null object (a JSON object read from the wire). */
export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null;
}

/**
 * How a call or stream that ended with `error` ended: `refused` (a tool call out of scope with
 * `onToolOutOfScope: "throw"`), `aborted` (the caller's abort) or `failed`.
 */
export function endOf(error: unknown): CallEnd {
  if (ToolCallOutOfScopeError.isInstance(error)) return "refused";
  return isAbort(error) ? "aborted" : "failed";
}

/**
 * The offered tools without the provider-run ones the agent's scope does not allow.
 *
 * A tool that runs at the provider (a web search, a remote MCP server, a code sandbox) has no
 * moment where its call comes back to be checked: by then it has run. So it is checked when
 * it is offered, by the name scope knows it by, with `scope.check(agentId, { tool })` — the
 * same rule as a returned tool call: it must be in `allowedTools` (a refusal is audited by
 * scope). A tool scope refuses is not offered; the call goes on with the others.
 *
 * @throws {AgentHaltedError} the agent is halted; nothing was sent.
 */
export async function withoutUnscopedProviderTools<T>(
  governor: Governor,
  tools: NamedTool<T>[] | null,
  runsAtProvider: (tool: T) => boolean,
): Promise<NamedTool<T>[] | null> {
  const { ports, agentId } = governor.options;
  if (tools === null || ports.scope === null) return tools;
  const kept: NamedTool<T>[] = [];
  for (const named of tools) {
    if (!runsAtProvider(named.tool)) {
      kept.push(named);
      continue;
    }
    try {
      await ports.scope.check(agentId, { tool: named.name });
      kept.push(named);
    } catch (error) {
      // enforcement fails closed: any refusal (or a scope that cannot answer) drops the tool
      if (AgentHaltedError.isInstance(error)) throw error;
    }
  }
  return kept;
}
