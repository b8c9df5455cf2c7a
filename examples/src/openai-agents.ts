/**
 * An existing OpenAI Agents SDK agent, governed by `@gov` (`@gov/wrappers/openai-agents`). The
 * billing agent looks an invoice up and wires a payment, through the real `@openai/agents`
 * Runner and `openai` client talking to a loopback model server of ours (the Responses API, no
 * network). The lines marked `+` govern it: the hidden tool is never offered, the payment waits
 * for a reviewer's grant (the run is saved, and resumed from the saved state by an agent governed
 * anew, as another process would), every model call is budgeted and audited, and once an operator
 * halts the agent its next run never reaches the model.
 *
 * Run: `pnpm --filter @gov/examples openai-agents` (the embedded database in memory).
 */
import { GovernanceSDK, type GovernanceSDKOptions } from "@gov/sdk"; // +
import { settled } from "@gov/wrappers";
import {
  GovernanceTracingProcessor,
  governAgent,
  governanceErrorOf,
  resolveApprovals,
} from "@gov/wrappers/openai-agents"; // +
import { type OpenAIServer, response, startOpenAIServer } from "@gov/wrappers/testing";
import { Agent, RunState, run, setTraceProcessors, tool } from "@openai/agents";
import OpenAI from "openai";

/** Where the example writes what happened. */
export type Output = (line: string) => void;

const object = (properties: Record<string, unknown>) =>
  ({
    type: "object",
    properties,
    required: Object.keys(properties),
    additionalProperties: false,
  }) as const;

/** The agent's own code, unchanged by governance: its tools and instructions. */
function billingAgent(ran: string[]) {
  const lookupInvoice = tool({
    name: "lookup_invoice",
    description: "An invoice's balance",
    parameters: object({ invoiceId: { type: "string" } }),
    strict: true,
    execute: async (input) => {
      ran.push(`lookup_invoice ${JSON.stringify(input)}`);
      return "INV-42: 120 EUR due";
    },
  });
  const wireMoney = tool({
    name: "wire_money",
    description: "Wire money to an account",
    parameters: object({ to: { type: "string" }, amount: { type: "number" } }),
    strict: true,
    execute: async (input) => {
      ran.push(`wire_money ${JSON.stringify(input)}`);
      return "wired";
    },
  });
  const deleteCustomer = tool({
    name: "delete_customer",
    description: "Delete a customer",
    parameters: object({ customerId: { type: "string" } }),
    strict: true,
    execute: async () => "deleted",
  });
  return new Agent({
    name: "Billing",
    instructions: "You settle invoices.",
    model: "gpt-4o",
    tools: [lookupInvoice, wireMoney, deleteCustomer],
  });
}

/** The model's answers, in order: look the invoice up, pay it, then say so. */
function scriptModel(server: OpenAIServer): void {
  const call = (name: string, input: unknown, id: string) => {
    const answer = response({ toolCalls: [name] });
    const [, item] = answer.output as Record<string, unknown>[];
    answer.output = [{ ...item, call_id: id, arguments: JSON.stringify(input) }];
    return answer;
  };
  const answers = [
    call("lookup_invoice", { invoiceId: "INV-42" }, "call_lookup"),
    call("wire_money", { to: "acct-7", amount: 120 }, "call_pay"),
  ];
  server.reply = () => ({ json: answers.shift() ?? response() });
}

/** Run the governed agent against the loopback model server, on the SDK started with `options`. */
export async function runOpenAIAgentsExample(
  options: GovernanceSDKOptions,
  output: Output,
): Promise<void> {
  const server = await startOpenAIServer();
  scriptModel(server);
  const ran: string[] = [];
  const agent = billingAgent(ran);
  // One client per process (wrapOpenAI binds a client to one agent and session).
  const client = () => new OpenAI({ apiKey: "sk-loopback", baseURL: server.baseURL });

  const sdk = await GovernanceSDK.start({ warnOnNoWrappers: false, ...options }); // +
  try {
    sdk.scope.register({
      agentId: "billing-agent",
      allowedTools: ["lookup_invoice", "wire_money"],
      hiddenTools: ["delete_customer"],
      allowedModels: ["gpt-4o"],
    }); // +
    sdk.cost.register({ agentId: "billing-agent", perSessionUsd: 5 }); // +
    const session = { governance: sdk, agentId: "billing-agent", sessionId: "ticket-4711" }; // +
    setTraceProcessors([new GovernanceTracingProcessor(session)]); // + the run's spans, audited
    const tokens: string[] = [];
    const governance = {
      ...session,
      // Payments wait for a reviewer. Yours: deliver the token to one (never to the agent).
      approval: {
        tools: ["wire_money"],
        onRequest: ({ request }: { request: { token: string } }) => {
          output("approval asked: wire_money");
          tokens.push(request.token);
        },
      },
    }; // +

    const first = await run(
      governAgent(agent, { ...governance, client: client() }),
      "Pay invoice INV-42.",
    ); // +
    const request = server.received[0]?.body ?? {};
    const offered = (request.tools as { name: string }[]).map((offer) => offer.name);
    output(`tools offered: ${offered.join(", ")}`);
    output(`paused for: ${first.interruptions.map((item) => item.name).join(", ")}`);
    const saved = first.state.toString();

    // A reviewer grants the request, from anywhere.
    for (const token of tokens) await sdk.gates.grant(token, { reviewerId: "bob@example.com" });

    // Another process: the agent governed anew, the run restored, the decision read from gates.
    const governed = governAgent(agent, { ...governance, client: client() });
    const state = await RunState.fromString(governed, saved);
    const answers = await resolveApprovals(state);
    output(
      `decisions: ${answers.map((answer) => `${answer.toolName} ${answer.status}`).join(", ")}`,
    );
    const resumed = await run(governed, state);
    output(`answer: ${String(resumed.finalOutput)}`);
    output(`the tools ran: ${ran.join("; ")}`);

    await sdk.presence.halt("billing-agent", { haltedBy: "ops@example.com", reason: "review" });
    const before = server.received.length;
    try {
      await run(governed, "Pay invoice INV-43.");
    } catch (error) {
      const refusal = governanceErrorOf(error) as Error;
      output(`after the halt: ${refusal.name}, model calls ${server.received.length - before}`);
    }
    await settled();
    const spent = await sdk.cost.snapshot("billing-agent", "ticket-4711");
    output(`spent: ${spent.sessionTokensUsed} tokens over ${before} model calls`);
    const events = await sdk.audit.getEvents({ agentId: "billing-agent" });
    const spans = events.filter((event) => event.kind === "agent.span");
    output(
      `audited: ${spans.length > 0 ? "the run's spans" : "no spans"}, ${events.filter((event) => event.kind === "tool.call").length} tool calls`,
    );
  } finally {
    setTraceProcessors([]);
    await sdk.close();
    await server.close();
  }
  output("closed cleanly");
}

if (import.meta.url === `file://${process.argv[1]}`)
  await runOpenAIAgentsExample({ databaseUrl: "memory://" }, (line) =>
    process.stdout.write(`${line}\n`),
  );
