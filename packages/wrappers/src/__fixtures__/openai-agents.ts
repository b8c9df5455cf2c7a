/**
 * An OpenAI Agents SDK agent on the loopback OpenAI server (Responses API): its tools record
 * what they ran, and the server answers from a script of responses, one per model call.
 */
import { Agent, tool } from "@openai/agents";
import OpenAI from "openai";
import { type OpenAIServer, response } from "./openai-server";

// The agent and session of the wrappers' agent harness (`agentHarness`), which these tests use.
export { AGENT, SESSION } from "./openai-agent";

/** The payment the approval tests' model asks for. */
export const PAY = { name: "wire_money", input: { to: "acct-7", amount: 120 }, id: "call_pay" };

/** One function call of a scripted response. */
export interface ScriptedCall {
  name: string;
  input: unknown;
  id?: string;
}

/** A Responses API response that calls tools (ids `call_<index>` unless given), or says `text`. */
export function agentResponse(options: { calls?: readonly ScriptedCall[]; text?: string } = {}) {
  const calls = options.calls ?? [];
  const full = response({ toolCalls: calls.map((call) => call.name) });
  const output = full.output as Record<string, unknown>[];
  if (calls.length === 0) {
    const [message] = output as { content: { text: string }[] }[];
    if (message?.content[0] && options.text !== undefined) message.content[0].text = options.text;
    return full;
  }
  // Only the calls: the agent runs them and asks the model again.
  full.output = output.slice(1).map((item, index) => {
    const call = calls[index] as ScriptedCall;
    return {
      ...item,
      call_id: call.id ?? item.call_id,
      arguments: JSON.stringify(call.input),
    };
  });
  return full;
}

/**
 * Answer the server's next model calls with these responses, in order; once they are used up,
 * with the text "Done.".
 */
export function script(server: OpenAIServer, ...responses: Record<string, unknown>[]): void {
  const queue = [...responses];
  server.reply = () => ({ json: queue.shift() ?? agentResponse({ text: "Done." }) });
}

/** A real `openai` client on the loopback server. */
export function client(server: OpenAIServer): OpenAI {
  return new OpenAI({ apiKey: "sk-test", baseURL: server.baseURL, maxRetries: 0 });
}

const object = (properties: Record<string, unknown>) => ({
  type: "object" as const,
  properties,
  required: Object.keys(properties),
  additionalProperties: false as const,
});

/** The agent's tools, each recording the inputs it ran with. */
export function billingTools(ran: { tool: string; input: unknown }[]) {
  const record = (name: string, output: string) => async (input: unknown) => {
    ran.push({ tool: name, input });
    return output;
  };
  return {
    lookupInvoice: tool({
      name: "lookup_invoice",
      description: "Look an invoice up",
      parameters: object({ id: { type: "string" } }),
      strict: true,
      execute: record("lookup_invoice", "INV-42: 120 EUR, unpaid"),
    }),
    wireMoney: tool({
      name: "wire_money",
      description: "Wire money to an account",
      parameters: object({ to: { type: "string" }, amount: { type: "number" } }),
      strict: true,
      execute: record("wire_money", "wired"),
    }),
    deleteAll: tool({
      name: "delete_all",
      description: "Delete every invoice",
      parameters: object({}),
      strict: true,
      execute: record("delete_all", "deleted"),
    }),
  };
}

/** The billing agent with every tool, and what its tools ran. */
export function billingAgent() {
  const ran: { tool: string; input: unknown }[] = [];
  const all = billingTools(ran);
  const agent = new Agent({
    name: "Billing",
    instructions: "You answer questions about invoices.",
    model: "gpt-4o",
    tools: [all.lookupInvoice, all.wireMoney, all.deleteAll],
  });
  return { agent, ran, tools: all };
}

/** The names of the function tools a Responses request offered. */
export function offered(body: Record<string, unknown>): string[] {
  const tools = Array.isArray(body.tools) ? (body.tools as { name?: string }[]) : [];
  return tools.map((entry) => String(entry.name));
}

/** The function call outputs a Responses request sends back to the model. */
export function callOutputs(body: Record<string, unknown>): { callId: string; output: unknown }[] {
  const input = Array.isArray(body.input) ? (body.input as Record<string, unknown>[]) : [];
  return input
    .filter((item) => item.type === "function_call_output")
    .map((item) => ({ callId: String(item.call_id), output: item.output }));
}
