/**
 * An OpenAI agent on the wrappers' own harness (the modules on a fresh store): it may call
 * `lookup_invoice`, must never see `delete_all`, may use `gpt-4o` only and has a $1 session
 * budget; a real OpenAI client of one major is wrapped for it.
 */
import type { TestEngine } from "@gov/core/testing";
import { settled } from "../governed-call";
import { wrapOpenAI } from "../openai/wrap";
import { CLIENTS, type Harness, harness } from "./harness";

export const AGENT = "billing-agent";
export const SESSION = "s-1";

export type OpenAIClient = ReturnType<(typeof CLIENTS)[number]["create"]>;

/** The billing agent's modules on a fresh harness, with readers of its spend and its events. */
export interface AgentHarness extends Harness {
  /** The session's spend, once every governed call has settled. */
  snapshot(): ReturnType<Harness["cost"]["snapshot"]>;
  /** The kinds of the audit events recorded so far, in order. */
  kinds(): string[];
}

export interface OpenAIAgent extends AgentHarness {
  /** A client of the major under test, pointed at the loopback server and wrapped for AGENT. */
  wrapped(options?: Record<string, unknown>): OpenAIClient;
}

/** The agent's scope and budget on a fresh harness, for any client. */
export async function agentHarness(engine: TestEngine): Promise<AgentHarness> {
  const h = await harness(engine);
  h.scope.register({
    agentId: AGENT,
    allowedTools: ["lookup_invoice"],
    hiddenTools: ["delete_all"],
    allowedModels: ["gpt-4o"],
  });
  h.cost.register({ agentId: AGENT, perSessionUsd: 1 });
  return Object.assign(h, {
    snapshot: async () => {
      await settled();
      return h.cost.snapshot(AGENT, SESSION);
    },
    kinds: () => h.audit.events.map((event) => event.kind),
  });
}

/** The agent with a real OpenAI client of one major wrapped for it. */
export async function openAIAgent(
  engine: TestEngine,
  client: (typeof CLIENTS)[number],
): Promise<OpenAIAgent> {
  const h = await agentHarness(engine);
  return Object.assign(h, {
    wrapped: (options: Record<string, unknown> = {}) =>
      wrapOpenAI(client.create(h.server.baseURL), {
        governance: h.governance,
        agentId: AGENT,
        sessionId: SESSION,
        ...options,
      }),
  });
}

/** The names of the functions a request offered (Chat Completions and Responses shapes). */
export function offeredNames(body: Record<string, unknown>): string[] {
  const tools = Array.isArray(body.tools) ? (body.tools as Record<string, unknown>[]) : [];
  return tools.map((tool) => {
    const fn = tool.function as { name?: string } | undefined;
    return String(fn?.name ?? tool.name ?? tool.type);
  });
}

export { CLIENTS };

/** Run a call and return how it ended: its error, or undefined when it resolved. */
export async function attempt(call: () => unknown): Promise<unknown> {
  try {
    await call();
    return undefined;
  } catch (error) {
    return error ?? new Error("rejected with nothing");
  }
}
