/**
 * The demo's model: a loopback HTTP server of `@gov/wrappers/testing` that speaks the OpenAI
 * Chat Completions wire format (JSON, and server-sent events when the request streams), and
 * plays a scripted conversation. The agent talks to it through the real `openai` client, so
 * that every byte goes the way it would to the provider — and nothing leaves the machine.
 */
import {
  chatChunks,
  chatCompletion,
  type OpenAIServer,
  type ReceivedRequest,
  type Reply,
  startOpenAIServer,
} from "@gov/wrappers/testing";

/** The model the scripted server plays. */
export const MODEL = "gpt-4o-mini";

/** One scripted turn of the model: a text answer or one tool call, and the usage it reports. */
export interface ScriptedTurn {
  /** The assistant's text (a plan as JSON, the final answer). */
  text?: string;
  /** The tool the model calls, with its arguments. */
  toolCall?: { name: string; arguments: Record<string, unknown> };
  /** What the provider reports the turn cost, as the API sends it. */
  usage: { prompt_tokens: number; completion_tokens: number };
}

/** The final answer of the refund conversation. */
export const REFUND_ANSWER = "Refunded 120.00 EUR on INV-42 and emailed the customer.";

/**
 * The billing agent's conversation, keyed by turn: a plan, three tool calls (look up the
 * invoice, refund it, tell the customer), the answer, and a long summary for the customer.
 */
export function refundScript(): ScriptedTurn[] {
  return [
    {
      text: JSON.stringify({ steps: ["lookup_invoice", "issue_refund", "send_email"] }),
      usage: { prompt_tokens: 120, completion_tokens: 30 },
    },
    {
      toolCall: { name: "lookup_invoice", arguments: { invoiceId: "INV-42" } },
      usage: { prompt_tokens: 160, completion_tokens: 20 },
    },
    {
      toolCall: { name: "issue_refund", arguments: { invoiceId: "INV-42", amount: 120 } },
      usage: { prompt_tokens: 210, completion_tokens: 25 },
    },
    {
      toolCall: {
        name: "send_email",
        arguments: { to: "customer@example.com", subject: "Your refund" },
      },
      usage: { prompt_tokens: 260, completion_tokens: 40 },
    },
    { text: REFUND_ANSWER, usage: { prompt_tokens: 300, completion_tokens: 18 } },
    {
      text:
        "Dear customer, we looked into invoice INV-42 and found that you were charged twice " +
        "for the same order. We refunded the duplicate payment of 120.00 EUR to the card you " +
        "paid with; depending on your bank, it appears on your statement within five to ten " +
        "working days. We are sorry for the trouble, and thank you for your patience.",
      usage: { prompt_tokens: 340, completion_tokens: 75 },
    },
  ];
}

/** The usage object as the API sends it (no cached or reasoning tokens in these turns). */
function usageOf(turn: ScriptedTurn): Record<string, unknown> {
  const { prompt_tokens, completion_tokens } = turn.usage;
  return {
    prompt_tokens,
    completion_tokens,
    total_tokens: prompt_tokens + completion_tokens,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
  };
}

/**
 * The turn a request asks for: one more than the assistant messages it carries, so that a
 * request is answered the same way however often it is sent (a retry gets the same turn).
 */
export function turnOf(body: Record<string, unknown>): number {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  return (
    1 +
    messages.filter(
      (message) =>
        typeof message === "object" &&
        message !== null &&
        (message as { role?: unknown }).role === "assistant",
    ).length
  );
}

/** The helpers send `{}` as each tool call's arguments: give the scripted call its own. */
function withArguments(turn: ScriptedTurn, toolCall: unknown): void {
  const fn = (toolCall as { function?: { arguments?: unknown } }).function;
  if (turn.toolCall && fn && fn.arguments === "{}")
    fn.arguments = JSON.stringify(turn.toolCall.arguments);
}

/** A scripted turn as the API answers it: a whole completion, or its chunks when streamed. */
function replyOf(turn: ScriptedTurn, body: Record<string, unknown>): Reply {
  const toolCalls = turn.toolCall ? [turn.toolCall.name] : [];
  if (body.stream !== true) {
    const completion = chatCompletion({
      model: String(body.model),
      content: turn.text ?? null,
      toolCalls,
      usage: usageOf(turn),
    });
    for (const choice of completion.choices as { message: { tool_calls?: unknown[] } }[])
      for (const toolCall of choice.message.tool_calls ?? []) withArguments(turn, toolCall);
    return { json: completion };
  }
  // The text in word-sized deltas, as a model streams it.
  const text = turn.text === undefined ? [] : (turn.text.match(/\S+\s*/g) ?? []);
  const chunks = chatChunks(body, { text, toolCalls }) as Record<string, unknown>[];
  for (const chunk of chunks) {
    // The usage chunk (sent when the request asked for it) reports the turn's own usage.
    if (typeof chunk.usage === "object" && chunk.usage !== null) chunk.usage = usageOf(turn);
    for (const choice of chunk.choices as { delta: { tool_calls?: unknown[] } }[])
      for (const toolCall of choice.delta.tool_calls ?? []) withArguments(turn, toolCall);
  }
  return { sse: chunks };
}

/**
 * Start the scripted model on a free loopback port. A request past the end of the script is
 * answered 400 (`invalid_request_error`, which the client does not retry), naming the turn.
 *
 * @example
 * ```ts
 * const server = await startScriptedModel();
 * const openai = new OpenAI({ baseURL: server.baseURL, apiKey: "sk-demo" });
 * // … run the agent …
 * await server.close();
 * ```
 */
export async function startScriptedModel(
  script: readonly ScriptedTurn[] = refundScript(),
): Promise<OpenAIServer> {
  const server = await startOpenAIServer();
  server.reply = (request: ReceivedRequest): Reply => {
    const turn = turnOf(request.body);
    const scripted = script[turn - 1];
    if (request.path !== "/chat/completions" || scripted === undefined)
      return {
        status: 400,
        json: {
          error: {
            type: "invalid_request_error",
            code: null,
            param: null,
            message: `the scripted model has no answer for ${request.path}, turn ${turn} (its script has ${script.length} turns)`,
          },
        },
      };
    return replyOf(scripted, request.body);
  };
  return server;
}
