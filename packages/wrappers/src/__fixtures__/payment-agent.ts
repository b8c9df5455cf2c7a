/**
 * The agent of the resumed-approval tests, as one process holds it: a governed payment tool
 * whose calls need a reviewer, the loopback model's script, and the two runs — the first,
 * which stops at the approval request, and the one resumed from the saved messages.
 */
import type { GovernancePorts } from "@gov/core";
import type * as ai6 from "ai";
import type { ApprovalRequestNotice } from "../ai-sdk/approval-options";
import { governTools } from "../ai-sdk/tools";
import { toolCallCompletion } from "./ai-sdk";
import { chatCompletion, type OpenAIServer } from "./openai-server";

export const PAYMENT_AGENT = "billing-agent";
export const PAYMENT_PROMPT = "Pay 120 to acct-7.";
export const PAYMENT = { to: "acct-7", amount: 120 };
/** The call id the model gives its first call unless told otherwise. */
export const PAYMENT_CALL_ID = "call_resume_1";

/** A model of the AI SDK under test (typed as AI SDK 6's). */
type Model = Parameters<typeof ai6.generateText>[0]["model"];

/** A payment's input schema, `{ to, amount }`, in the AI SDK under test. */
export function paymentSchema(ai: typeof ai6) {
  return ai.jsonSchema<{ to: string; amount: number }>({
    type: "object",
    properties: { to: { type: "string" }, amount: { type: "number" } },
    required: ["to", "amount"],
  });
}

/**
 * The agent in one process: its own governed tool set (its own approval bridge and memory) on
 * the ports given, the inputs its tool ran with, and the requests it delivered. The tool
 * (`wire_money` unless named) needs approval: listed, or — `steward: true` — when the steward
 * escalates.
 */
export function paymentAgent(
  ai: typeof ai6,
  governance: GovernancePorts,
  options: { steward?: boolean; toolName?: string } = {},
) {
  const ran: unknown[] = [];
  const notices: ApprovalRequestNotice[] = [];
  const toolName = options.toolName ?? "wire_money";
  const tools = governTools(
    {
      [toolName]: ai.tool({
        description: "Pay an amount to an account",
        inputSchema: paymentSchema(ai),
        execute: async (input: unknown) => {
          ran.push(input);
          return "paid";
        },
      }),
    },
    {
      governance,
      agentId: PAYMENT_AGENT,
      approval: {
        ...(options.steward === true ? { steward: true } : { tools: [toolName] }),
        onRequest: (notice: ApprovalRequestNotice) => void notices.push(notice),
      },
    },
  );
  return { tools, ran, notices };
}

/** The model calls `toolName` with `input` under call id `id`, then answers once it has a result. */
export function callsTool(
  server: OpenAIServer,
  input: unknown,
  id = PAYMENT_CALL_ID,
  toolName = "wire_money",
): void {
  server.reply = ({ body }) =>
    ((body.messages ?? []) as { role: string }[]).some((message) => message.role === "tool")
      ? { json: chatCompletion({ content: "Done." }) }
      : { json: toolCallCompletion([{ name: toolName, input, id }]) };
}

/** The first run: it stops at the approval request. */
export function firstRun(ai: typeof ai6, model: Model, tools: Record<string, object>) {
  return ai.generateText({
    model,
    tools: tools as ai6.ToolSet,
    prompt: PAYMENT_PROMPT,
    stopWhen: ai.stepCountIs(3),
    maxRetries: 0,
  });
}

/**
 * The run resumed from the saved messages (JSON, as an application stores them; `edit` changes
 * that text first) with the approval responses.
 */
export function resumedRun(
  ai: typeof ai6,
  model: Model,
  tools: Record<string, object>,
  saved: string,
  responses: unknown[],
  edit: (text: string) => string = (text) => text,
) {
  return ai.generateText({
    model,
    tools: tools as ai6.ToolSet,
    messages: [
      { role: "user", content: PAYMENT_PROMPT },
      ...(JSON.parse(edit(saved)) as ai6.ModelMessage[]),
      { role: "tool", content: responses as ai6.ToolContent },
    ],
    stopWhen: ai.stepCountIs(3),
    maxRetries: 0,
  });
}
