/**
 * A scripted agent with a fake LLM: no network, the same run every time. Each step goes
 * through the agent's governance hooks (before and after each plan, model call and tool
 * call), which later modules fill in: scope checks, budgets, approvals, the operator's halt,
 * the steward's judgement, and the audit chain underneath.
 */

/** One message of the fake conversation. */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
}

/** What the fake LLM answers: a plan, a tool call, or a final answer. */
export type ModelReply =
  | { type: "plan"; steps: string[]; usage: Usage }
  | { type: "tool_call"; tool: string; args: Record<string, unknown>; usage: Usage }
  | { type: "final"; text: string; usage: Usage };

/**
 * Token usage, shaped like the OpenAI response's. A type, not an interface: like the
 * provider's own type, it must be assignable to `trackUsage`'s usage (an object type with
 * an index signature, which interfaces do not satisfy).
 */
export type Usage = {
  prompt_tokens: number;
  completion_tokens: number;
};

/** A model that replays a script, keyed by turn. */
export class FakeLLM {
  readonly model = "gpt-4o-mini";
  readonly #script: ModelReply[];
  #turn = 0;

  constructor(script: ModelReply[]) {
    this.#script = script;
  }

  async complete(messages: readonly ChatMessage[]): Promise<ModelReply> {
    const reply = this.#script[this.#turn++];
    if (!reply)
      throw new Error(
        `the fake LLM's script has no turn ${this.#turn} (after ${messages.length} messages)`,
      );
    return reply;
  }
}

/** A tool the agent may call. */
export type Tool = (args: Record<string, unknown>) => Promise<unknown>;

/** The points where governance hooks in. Every hook may refuse by throwing. */
export interface GovernanceHooks {
  beforePlan(steps: readonly string[]): Promise<void>;
  beforeModelCall(model: string, turn: number): Promise<void>;
  afterModelCall(model: string, reply: ModelReply): Promise<void>;
  beforeToolCall(tool: string, args: Record<string, unknown>): Promise<void>;
  afterToolCall(tool: string, result: unknown): Promise<void>;
}

/** The billing agent's script: look up an invoice, refund it, tell the customer. */
export function refundScript(): ModelReply[] {
  return [
    {
      type: "plan",
      steps: ["lookup_invoice", "issue_refund", "send_email"],
      usage: { prompt_tokens: 120, completion_tokens: 30 },
    },
    {
      type: "tool_call",
      tool: "lookup_invoice",
      args: { invoiceId: "INV-42" },
      usage: { prompt_tokens: 160, completion_tokens: 20 },
    },
    {
      type: "tool_call",
      tool: "issue_refund",
      args: { invoiceId: "INV-42", amount: 120 },
      usage: { prompt_tokens: 210, completion_tokens: 25 },
    },
    {
      type: "tool_call",
      tool: "send_email",
      args: { to: "customer@example.com", subject: "Your refund" },
      usage: { prompt_tokens: 260, completion_tokens: 40 },
    },
    {
      type: "final",
      text: "Refunded 120.00 EUR on INV-42 and emailed the customer.",
      usage: { prompt_tokens: 300, completion_tokens: 18 },
    },
  ];
}

/** The billing agent's tools, all local. */
export function billingTools(): Record<string, Tool> {
  return {
    lookup_invoice: async (args) => ({
      invoiceId: args.invoiceId,
      amount: 120,
      currency: "EUR",
      status: "paid",
    }),
    issue_refund: async (args) => ({
      refundId: "RF-7",
      invoiceId: args.invoiceId,
      amount: args.amount,
    }),
    send_email: async (args) => ({ delivered: true, to: args.to }),
  };
}

/** What one run of the agent did. */
export interface AgentRun {
  answer: string;
  modelCalls: number;
  toolCalls: string[];
  tokens: number;
}

/** Run the agent to its final answer, through the hooks. */
export async function runAgent(
  llm: FakeLLM,
  tools: Record<string, Tool>,
  hooks: GovernanceHooks,
  task: string,
): Promise<AgentRun> {
  const messages: ChatMessage[] = [
    { role: "system", content: "You are a billing agent." },
    { role: "user", content: task },
  ];
  const run: AgentRun = { answer: "", modelCalls: 0, toolCalls: [], tokens: 0 };
  for (let turn = 1; turn <= 20; turn++) {
    await hooks.beforeModelCall(llm.model, turn);
    const reply = await llm.complete(messages);
    run.modelCalls++;
    run.tokens += reply.usage.prompt_tokens + reply.usage.completion_tokens;
    await hooks.afterModelCall(llm.model, reply);
    if (reply.type === "final") {
      run.answer = reply.text;
      return run;
    }
    if (reply.type === "plan") {
      await hooks.beforePlan(reply.steps);
      messages.push({ role: "assistant", content: `plan: ${reply.steps.join(" → ")}` });
      continue;
    }
    const tool = tools[reply.tool];
    if (!tool) throw new Error(`the agent asked for an unknown tool ${reply.tool}`);
    await hooks.beforeToolCall(reply.tool, reply.args);
    const result = await tool(reply.args);
    run.toolCalls.push(reply.tool);
    await hooks.afterToolCall(reply.tool, result);
    messages.push({ role: "tool", content: JSON.stringify(result) });
  }
  throw new Error("the agent did not finish within 20 turns");
}
