/**
 * `governAgent`: an OpenAI Agents SDK `Agent` governed — its guardrails, its function tools'
 * guardrails, `isEnabled` and `needsApproval`, and its model calls through a wrapped client.
 * @module
 */

import { typeOf } from "@gov/core";
import {
  type FunctionTool,
  getDefaultModel,
  OpenAIChatCompletionsModel,
  OpenAIResponsesModel,
} from "@openai/agents";
import { resolveApprovalOptions, type ToolApprovalOptions } from "../ai-sdk/approval-options";
import { ApprovalBridge, checkApprovalPorts } from "../ai-sdk/approvals";
import { InvalidWrapperOptionsError } from "../errors";
import { Governor } from "../governed-call";
import { type OpenAIClientLike, wrapOpenAI } from "../openai/wrap";
import { resolveWrapOptions, type WrapOptions } from "../options";
import { AgentGuardrails, type OwnApproval } from "./guardrails";

/** The options of {@link governAgent}. */
export type GovernAgentOptions = WrapOptions & {
  /**
   * The `OpenAI` client the agent's model calls go through. It is wrapped **in place** with
   * `wrapOpenAI` for this agent and session (halt, allowed models, hidden tools, the budget
   * reserved before each call and settled from its usage, `llm.*` audit events), and the governed
   * agent's model becomes a model of that client, by the agent's model name (the SDK's default
   * model when it has none). @default none: the model calls are not governed (see the README)
   */
  client?: OpenAIClientLike;
  /** Which OpenAI API the model of `client` calls. @default "responses" */
  api?: "responses" | "chat_completions";
  /**
   * Tool calls that need a reviewer's approval (`@gov/gates`), and the steward's verdict on
   * every call — the options of `governTools` (`@gov/wrappers/ai-sdk`). In `"framework"` mode
   * (the default) a call that needs approval is an interruption of the run (`needsApproval`);
   * {@link resolveApprovals} answers it from gates. @default none: no call is held for approval
   */
  approval?: ToolApprovalOptions;
};

const GOVERNED = Symbol.for("@gov/wrappers.openai-agents.governed");

interface AgentLike {
  name: string;
  model: unknown;
  tools: unknown[];
  inputGuardrails: unknown[];
  outputGuardrails: unknown[];
  clone(config: Record<string, unknown>): unknown;
}

function isAgent(value: unknown): value is AgentLike {
  const agent = value as Partial<AgentLike> | null;
  return (
    typeof agent === "object" &&
    agent !== null &&
    typeof agent.clone === "function" &&
    Array.isArray(agent.tools) &&
    Array.isArray(agent.inputGuardrails) &&
    Array.isArray(agent.outputGuardrails)
  );
}

function isFunctionTool(tool: unknown): tool is FunctionTool<unknown, never> {
  return (tool as { type?: unknown } | null)?.type === "function";
}

/** Split the options of `governAgent` from those every wrapper takes. */
function splitOptions(options: unknown): {
  wrap: unknown;
  client: OpenAIClientLike | undefined;
  api: "responses" | "chat_completions";
  approval: unknown;
} {
  if (typeof options !== "object" || options === null)
    return { wrap: options, client: undefined, api: "responses", approval: undefined };
  const { client, api, approval, ...wrap } = options as GovernAgentOptions;
  if (api !== undefined && api !== "responses" && api !== "chat_completions")
    throw new InvalidWrapperOptionsError(
      "options.api",
      `must be "responses" or "chat_completions", got ${JSON.stringify(api)}.`,
      'Use api: "responses" (the default) or "chat_completions".',
    );
  if (client !== undefined && (typeof client !== "object" || client === null))
    throw new InvalidWrapperOptionsError(
      "options.client",
      `must be an OpenAI client, got ${typeOf(client)}.`,
      "Pass the client the agent's model calls go through: client: new OpenAI().",
    );
  return { wrap, client, api: api ?? "responses", approval };
}

/** The governed copies of function tools (of every governed agent). */
const GOVERNED_TOOLS = new WeakSet<object>();

/** Whether scope hides a tool from the agent (scope's `filterTools` is synchronous). */
function isHidden(guardrails: AgentGuardrails, name: string): boolean {
  const { ports, agentId } = guardrails.governor.options;
  return ports.scope !== null && ports.scope.filterTools(agentId, [{ name }]).length === 0;
}

/** The governed copy of one function tool: our guardrails around its own, its `isEnabled` and `needsApproval` governed. */
function governTool(
  tool: FunctionTool<unknown, never>,
  guardrails: AgentGuardrails,
): FunctionTool<unknown, never> {
  const own = tool.needsApproval as OwnApproval;
  // a function, or — as the SDK reads it — a boolean, or nothing (enabled)
  const isEnabled = tool.isEnabled as unknown;
  const governed: FunctionTool<unknown, never> = {
    ...tool,
    inputGuardrails: [guardrails.toolInput(own), ...(tool.inputGuardrails ?? [])],
    outputGuardrails: [...(tool.outputGuardrails ?? []), guardrails.toolOutput()],
    // Hidden tools are never offered to the model.
    isEnabled: async (context, agent) => {
      if (isHidden(guardrails, tool.name)) return false;
      if (typeof isEnabled === "function")
        return (await (isEnabled as typeof tool.isEnabled)(context, agent)) === true;
      return isEnabled !== false;
    },
  };
  if (guardrails.bridge?.mode === "framework")
    governed.needsApproval = guardrails.needsApproval(tool.name, own) as typeof tool.needsApproval;
  GOVERNED_TOOLS.add(governed);
  return governed;
}

/**
 * Govern the tools the runner gets from `agent.getAllTools()` that are not governed copies yet:
 * the tools of the agent's MCP servers (`mcpServers`), and function tools added to the governed
 * agent's `tools` afterwards — each governed like the others, a hidden one left out.
 */
function governAllTools(agent: object, guardrails: AgentGuardrails): void {
  const getAllTools = (agent as { getAllTools?: unknown }).getAllTools;
  if (typeof getAllTools !== "function") return;
  const copies = new WeakMap<object, FunctionTool<unknown, never>>();
  Object.defineProperty(agent, "getAllTools", {
    configurable: true,
    writable: true,
    value: async function governedGetAllTools(this: unknown, ...args: unknown[]) {
      const all = (await getAllTools.apply(this, args)) as unknown[];
      const tools: unknown[] = [];
      for (const tool of all) {
        if (!isFunctionTool(tool) || GOVERNED_TOOLS.has(tool)) tools.push(tool);
        else if (!isHidden(guardrails, tool.name)) {
          let copy = copies.get(tool);
          if (copy === undefined) {
            copy = governTool(tool, guardrails);
            copies.set(tool, copy);
          }
          tools.push(copy);
        }
      }
      return tools;
    },
  });
}

/**
 * Govern an OpenAI Agents SDK agent: returns a governed **copy** (`agent.clone(…)`; the given
 * agent is not changed, so that one agent definition can be governed for several agent ids).
 *
 * - An input guardrail (blocking, before the run's first model call) and an output guardrail
 *   (before the final output is handed over) check the operator's halt: a halted agent's run
 *   ends with `InputGuardrailTripwireTriggered` / `OutputGuardrailTripwireTriggered`, whose
 *   `result.output.outputInfo.error` is the `AgentHaltedError` ({@link governanceErrorOf}).
 * - Each function tool gets a tool input guardrail (halt, then scope, the loop count and, with
 *   `approval`, the steward and the reviewer's grant, verified by gates for exactly the call's
 *   arguments, once) and a tool output guardrail (`tool.result`); a refused call is
 *   `rejectContent` (the model reads why, the module that refused audited it), a halt is
 *   `throwException` (the run stops). A tool hidden by scope is disabled (`isEnabled`): never offered.
 * - With `client`, every model call goes through that client wrapped with `wrapOpenAI`.
 *
 * @example
 * ```ts
 * const governed = governAgent(agent, { governance: sdk, agentId: "billing-agent", client: new OpenAI() });
 * const result = await run(governed, "What is the balance of invoice INV-42?");
 * ```
 * @throws {InvalidWrapperOptionsError} not an `Agent`, bad options, `client` for an agent whose
 *   model is a `Model` object, or `approval.steward` without a steward port.
 */
export function governAgent<TAgent extends object>(
  agent: TAgent,
  options: GovernAgentOptions,
): TAgent {
  if (!isAgent(agent))
    throw new InvalidWrapperOptionsError(
      "agent",
      `must be an Agent of @openai/agents, got ${typeOf(agent)}.`,
      "Pass the agent you run: governAgent(new Agent({ name, instructions, tools }), options).",
    );
  const source: AgentLike = agent;
  const { wrap, client, api, approval } = splitOptions(options);
  const resolved = resolveWrapOptions(wrap);
  if ((agent as Record<symbol, unknown>)[GOVERNED] !== undefined)
    resolved.ports.logger.warn(
      "@gov/wrappers: governAgent() was given an agent that is governed already; its copy is governed twice.",
      { agentId: resolved.agentId },
    );
  let model: unknown = source.model;
  if (client !== undefined) {
    if (typeof model !== "string")
      throw new InvalidWrapperOptionsError(
        "options.client",
        "was given for an agent whose model is a Model object: its calls do not go through that client.",
        "Give the agent a model name (model: 'gpt-4o'), or leave client out and govern the model's own client with wrapOpenAI.",
      );
    const wrapped = wrapOpenAI(client, { ...(wrap as WrapOptions), sessionId: resolved.sessionId });
    const name = model === "" ? getDefaultModel() : model;
    model =
      api === "responses"
        ? new OpenAIResponsesModel(wrapped as never, name)
        : new OpenAIChatCompletionsModel(wrapped as never, name);
  }
  const governor = new Governor(resolved, "openai-agents");
  let bridge: ApprovalBridge | null = null;
  if (approval !== undefined) {
    const approvalOptions = resolveApprovalOptions(approval);
    checkApprovalPorts(resolved, approvalOptions, "governAgent()");
    bridge = new ApprovalBridge(governor, approvalOptions);
  }
  const guardrails = new AgentGuardrails(governor, bridge);
  const tools = source.tools.map((tool) =>
    isFunctionTool(tool) ? governTool(tool, guardrails) : tool,
  );
  governor.registered({
    agent: source.name,
    tools: source.tools.filter(isFunctionTool).map((tool) => tool.name),
    model: client === undefined ? "not governed" : api,
  });
  const governed = source.clone({
    model,
    tools,
    inputGuardrails: [guardrails.input(), ...source.inputGuardrails],
    outputGuardrails: [...source.outputGuardrails, guardrails.output()],
  }) as TAgent;
  governAllTools(governed, guardrails);
  warnUngovernedHandoffs(source, resolved);
  Object.defineProperty(governed, GOVERNED, { value: { agentId: resolved.agentId, bridge } });
  return governed;
}

/** A handoff leads to an agent whose run is its own: warn about those not governed (by their names). */
function warnUngovernedHandoffs(
  source: AgentLike,
  resolved: ReturnType<typeof resolveWrapOptions>,
): void {
  const handoffs = (source as { handoffs?: unknown }).handoffs;
  if (!Array.isArray(handoffs)) return;
  const ungoverned: string[] = [];
  for (const handoff of handoffs) {
    const target = isAgent(handoff) ? handoff : (handoff as { agent?: unknown } | null)?.agent;
    if (isAgent(target) && (target as unknown as Record<symbol, unknown>)[GOVERNED] === undefined)
      ungoverned.push(String(target.name));
  }
  if (ungoverned.length > 0)
    resolved.ports.logger.warn(
      "@gov/wrappers: governAgent() was given an agent whose handoffs lead to agents that are not governed: their tools and model calls are not. Govern each (governAgent) before handing off to it.",
      { agentId: resolved.agentId, handoffs: ungoverned },
    );
}

/** @internal The approval bridge of a governed agent, or null (not governed, or no `approval`). */
export function bridgeOf(agent: unknown): ApprovalBridge | null {
  const governed = (agent as Record<symbol, { bridge: ApprovalBridge | null }> | null)?.[GOVERNED];
  return governed?.bridge ?? null;
}

/**
 * The governance error behind an Agents SDK error: the `AgentHaltedError` (or other refusal) a
 * governed guardrail reported as a tripwire (`InputGuardrailTripwireTriggered`,
 * `OutputGuardrailTripwireTriggered`, `ToolInputGuardrailTripwireTriggered`, also inside the
 * `ToolCallError` the runner wraps a tool's failure in), or the error itself when it is not one
 * of those (an error of a governed model call: `AgentHaltedError`, `BudgetExceeded`, …).
 *
 * @example
 * ```ts
 * try { await run(governed, input); }
 * catch (error) { if (AgentHaltedError.isInstance(governanceErrorOf(error))) … }
 * ```
 */
export function governanceErrorOf(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 4; depth++) {
    const candidate = current as {
      result?: { output?: { outputInfo?: { error?: unknown } | null } };
      error?: unknown;
    } | null;
    const info = candidate?.result?.output?.outputInfo;
    if (typeof info === "object" && info !== null && info.error !== undefined) return info.error;
    // ToolCallError: the tool's failure (here, its guardrail's tripwire) in `error`
    if (candidate?.error instanceof Error) current = candidate.error;
    else break;
  }
  return current;
}
