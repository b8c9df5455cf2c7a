/**
 * The billing agent: it plans, calls its tools and answers, through an `openai` client that
 * it is given. It knows nothing of governance: the demo hands it a client wrapped with
 * `wrapOpenAI` (every model call halt-checked, scoped, budgeted and audited by the wrapper),
 * and hooks around each plan and tool call, where the demo checks scope, loops, the steward
 * and a human's approval.
 */
import type OpenAI from "openai";

type Message = OpenAI.Chat.ChatCompletionMessageParam;
type Completion = OpenAI.Chat.ChatCompletion;

/** A tool the agent may call: what the model is told about it, and the code that runs it. */
export interface Tool {
  description: string;
  /** The JSON Schema of its arguments. */
  parameters: Record<string, unknown>;
  run(args: Record<string, unknown>): Promise<unknown>;
}

/** The points where the demo hooks in around the agent's steps. Every hook may refuse by throwing. */
export interface AgentHooks {
  /** After each model call, with the completion the client returned (usage included). */
  afterModelCall(turn: number, completion: Completion, streamed: boolean): Promise<void>;
  beforePlan(steps: readonly string[]): Promise<void>;
  beforeToolCall(tool: string, args: Record<string, unknown>): Promise<void>;
  afterToolCall(tool: string, result: unknown): Promise<void>;
}

/** How the agent calls its model. */
export interface AgentOptions {
  /** @default "gpt-4o-mini" */
  model?: string;
  /** The output ceiling of each model call (what the wrapper reserves). @default 1024 */
  maxOutputTokens?: number;
  /** @default 20 */
  maxTurns?: number;
}

/** What one run of the agent did. */
export interface AgentRun {
  answer: string;
  modelCalls: number;
  /** How many of the model calls streamed. */
  streamedCalls: number;
  toolCalls: string[];
  /** Prompt plus completion tokens, as the API reported them. */
  tokens: number;
  /** The conversation, the answer included, to go on from. */
  messages: Message[];
}

const SYSTEM_PROMPT =
  'You are a billing agent. First reply with your plan as JSON, {"steps": [tool names]}; then carry it out with your tools.';

/** The billing agent's tools, all local. `admin_reset` is an administrator's tool of the same toolbox. */
export function billingTools(): Record<string, Tool> {
  const invoice = { invoiceId: { type: "string" } };
  return {
    lookup_invoice: {
      description: "Look up an invoice by id.",
      parameters: { type: "object", properties: invoice, required: ["invoiceId"] },
      run: async (args) => ({
        invoiceId: args.invoiceId,
        amount: 120,
        currency: "EUR",
        status: "paid",
      }),
    },
    issue_refund: {
      description: "Refund an invoice, in EUR.",
      parameters: {
        type: "object",
        properties: { ...invoice, amount: { type: "number" } },
        required: ["invoiceId", "amount"],
      },
      run: async (args) => ({ refundId: "RF-7", invoiceId: args.invoiceId, amount: args.amount }),
    },
    send_email: {
      description: "Email the customer.",
      parameters: {
        type: "object",
        properties: { to: { type: "string" }, subject: { type: "string" } },
        required: ["to", "subject"],
      },
      run: async (args) => ({ delivered: true, to: args.to }),
    },
    admin_reset: {
      description: "Reset a customer's account (administrators only).",
      parameters: { type: "object", properties: { customerId: { type: "string" } } },
      run: async (args) => ({ reset: true, customerId: args.customerId }),
    },
  };
}

/** The tools as the Chat Completions API takes them. */
function toolDefinitions(tools: Record<string, Tool>): OpenAI.Chat.ChatCompletionTool[] {
  return Object.entries(tools).map(([name, tool]) => ({
    type: "function",
    function: { name, description: tool.description, parameters: tool.parameters },
  }));
}

/** The plan the model answered with: `{"steps": [tool names]}`. */
function planOf(content: string | null): string[] {
  let plan: unknown;
  try {
    plan = JSON.parse(content ?? "");
  } catch {
    plan = null;
  }
  const steps = (plan as { steps?: unknown } | null)?.steps;
  if (!Array.isArray(steps) || !steps.every((step) => typeof step === "string"))
    throw new Error(`the model answered no plan ({"steps": [tool names]}): ${content}`);
  return steps;
}

/** The arguments of a tool call the model made (a JSON object). */
function argumentsOf(tool: string, json: string): Record<string, unknown> {
  let args: unknown;
  try {
    args = JSON.parse(json);
  } catch {
    args = null;
  }
  if (typeof args !== "object" || args === null || Array.isArray(args))
    throw new Error(`the model called ${tool} with arguments that are not a JSON object: ${json}`);
  return args as Record<string, unknown>;
}

/**
 * Run the agent to its final answer. Turn 1 asks for the plan (a whole completion, as JSON,
 * no tool call yet); the turns after it stream (`chat.completions.stream`, built on
 * `create({ stream: true })`), each a tool call or the answer.
 */
export async function runAgent(
  openai: OpenAI,
  tools: Record<string, Tool>,
  hooks: AgentHooks,
  task: string,
  options: AgentOptions = {},
): Promise<AgentRun> {
  const model = options.model ?? "gpt-4o-mini";
  const request = {
    model,
    tools: toolDefinitions(tools),
    max_completion_tokens: options.maxOutputTokens ?? 1024,
  };
  const messages: Message[] = [
    { role: "system", content: SYSTEM_PROMPT },
    { role: "user", content: task },
  ];
  const run: AgentRun = {
    answer: "",
    modelCalls: 0,
    streamedCalls: 0,
    toolCalls: [],
    tokens: 0,
    messages,
  };
  const answered = async (turn: number, completion: Completion, streamed: boolean) => {
    run.modelCalls++;
    if (streamed) run.streamedCalls++;
    run.tokens +=
      (completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0);
    await hooks.afterModelCall(turn, completion, streamed);
    const message = completion.choices[0]?.message;
    if (!message) throw new Error(`the model answered turn ${turn} with no choice`);
    messages.push({
      role: "assistant",
      content: message.content,
      ...(message.tool_calls?.length ? { tool_calls: message.tool_calls } : {}),
    });
    return message;
  };

  const planned = await openai.chat.completions.create({
    ...request,
    messages,
    tool_choice: "none",
    response_format: { type: "json_object" },
  });
  const steps = planOf((await answered(1, planned, false)).content);
  await hooks.beforePlan(steps);

  for (let turn = 2; turn <= (options.maxTurns ?? 20); turn++) {
    const stream = openai.chat.completions.stream({
      ...request,
      messages,
      stream_options: { include_usage: true },
    });
    const message = await answered(turn, await stream.finalChatCompletion(), true);
    const calls = (message.tool_calls ?? []).filter((call) => call.type === "function");
    if (calls.length === 0) {
      run.answer = message.content ?? "";
      return run;
    }
    for (const call of calls) {
      const name = call.function.name;
      const tool = tools[name];
      if (!tool) throw new Error(`the model asked for an unknown tool ${name}`);
      const args = argumentsOf(name, call.function.arguments);
      await hooks.beforeToolCall(name, args);
      const result = await tool.run(args);
      run.toolCalls.push(name);
      await hooks.afterToolCall(name, result);
      messages.push({ role: "tool", tool_call_id: call.id, content: JSON.stringify(result) });
    }
  }
  throw new Error(`the agent did not finish within ${options.maxTurns ?? 20} turns`);
}
