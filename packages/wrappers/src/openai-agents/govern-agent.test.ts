/**
 * `governAgent` with the real `@openai/agents` Runner against the loopback OpenAI server
 * (Responses API), on both engines: the halt, hidden tools, scope, loops and the budget.
 */
import { AgentHaltedError, silentLogger } from "@gov/core";
import { eventually, testEngines } from "@gov/core/testing";
import { BudgetExceeded } from "@gov/cost";
import { LoopModule } from "@gov/loop";
import {
  type FunctionTool,
  InputGuardrailTripwireTriggered,
  OpenAIResponsesModel,
  OutputGuardrailTripwireTriggered,
  run,
  ToolCallError,
  ToolInputGuardrailTripwireTriggered,
  tool,
} from "@openai/agents";
import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AgentHarness, agentHarness } from "../__fixtures__/openai-agent";
import {
  AGENT,
  agentResponse,
  billingAgent,
  callOutputs,
  client,
  offered,
  SESSION,
  script,
} from "../__fixtures__/openai-agents";
import {
  CHAT_USAGE,
  chatCompletion,
  RESPONSES_USAGE,
  responseEvents,
} from "../__fixtures__/openai-server";
import { InvalidWrapperOptionsError } from "../errors";
import { type GovernAgentOptions, governAgent, governanceErrorOf } from "./govern-agent";
import { settleRunUsage } from "./usage";

const LOOKUP = { name: "lookup_invoice", input: { id: "INV-42" } };

describe.each(testEngines())("governAgent on $name", (engine) => {
  let h: AgentHarness;
  let loop: LoopModule;
  beforeEach(async () => {
    if (!engine.available) return;
    // lookup_invoice allowed, delete_all hidden, gpt-4o only, a $1 session budget
    h = await agentHarness(engine);
    loop = new LoopModule({ audit: h.audit, logger: h.logger });
    loop.register({ agentId: AGENT, windowSeconds: 60, maxCalls: 2 });
  });
  afterEach(async () => {
    if (!engine.available) return;
    await loop.close();
    await h.close();
  });

  const kinds = () => h.kinds();
  /** The billing agent governed; with the model's client wrapped unless `client: false`. */
  function governed(options: Partial<GovernAgentOptions> & { model?: boolean } = {}) {
    const { model = true, ...rest } = options;
    const billing = billingAgent();
    // Without a governed client: the model is a plain client's, only the guardrails govern.
    const own = model
      ? billing.agent
      : billing.agent.clone({ model: new OpenAIResponsesModel(client(h.server), "gpt-4o") });
    const agent = governAgent(own, {
      governance: { ...h.governance, loop },
      agentId: AGENT,
      sessionId: SESSION,
      ...(model ? { client: client(h.server) } : {}),
      ...rest,
    });
    return { ...billing, agent };
  }

  it.skipIf(!engine.available)(
    "runs a tool through its guardrails and settles both model calls' usage",
    async () => {
      const { agent, ran } = governed();
      script(h.server, agentResponse({ calls: [LOOKUP] }));
      const result = await run(agent, "What does INV-42 say?");
      expect(result.finalOutput).toBe("Done.");
      expect(ran).toEqual([{ tool: "lookup_invoice", input: { id: "INV-42" } }]);
      const spent = await h.snapshot();
      expect(spent.sessionTokensUsed).toBe(2 * RESPONSES_USAGE.total_tokens);
      expect(spent.sessionUsdUsed).toBeGreaterThan(0);
      await eventually(() => kinds().includes("tool.result"));
      expect(kinds()).toEqual(
        expect.arrayContaining(["wrapper.registered", "llm.call", "llm.result", "tool.call"]),
      );
      const call = h.audit.events.find((event) => event.kind === "tool.call");
      expect(call?.metadata).toMatchObject({ tool: "lookup_invoice", toolCallId: "call_0" });
      expect(call?.sessionId).toBe(SESSION);
    },
  );

  it.skipIf(!engine.available)("stops a halted agent before its first model call", async () => {
    const { agent } = governed({ model: false });
    script(h.server, agentResponse({ calls: [LOOKUP] }));
    await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
    const error = await run(agent, "What does INV-42 say?").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InputGuardrailTripwireTriggered);
    expect(AgentHaltedError.isInstance(governanceErrorOf(error))).toBe(true);
    expect(h.server.received).toEqual([]);
  });

  /** An agent whose `escalate` tool halts it (the operator, meanwhile); its model is not governed. */
  function escalating() {
    h.scope.register({ agentId: AGENT, allowedTools: ["lookup_invoice", "escalate"] });
    const billing = billingAgent();
    const escalate = tool({
      name: "escalate",
      description: "Escalate to the operator",
      parameters: { type: "object", properties: {}, required: [], additionalProperties: false },
      strict: true,
      execute: async () => {
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        return "escalated";
      },
    });
    const agent = governAgent(
      billing.agent.clone({
        model: new OpenAIResponsesModel(client(h.server), "gpt-4o"),
        tools: [escalate, billing.tools.lookupInvoice],
      }),
      { governance: h.governance, agentId: AGENT, sessionId: SESSION },
    );
    return { agent, ran: billing.ran };
  }
  const ESCALATE = { name: "escalate", input: {} };

  it.skipIf(!engine.available)("stops a halted agent before its tool runs", async () => {
    const { agent, ran } = escalating();
    script(h.server, agentResponse({ calls: [ESCALATE] }), agentResponse({ calls: [LOOKUP] }));
    const error = await run(agent, "What does INV-42 say?").catch((caught: unknown) => caught);
    // The runner hands the tool guardrail's tripwire over in a ToolCallError.
    expect(error).toBeInstanceOf(ToolCallError);
    expect((error as ToolCallError).error).toBeInstanceOf(ToolInputGuardrailTripwireTriggered);
    expect(AgentHaltedError.isInstance(governanceErrorOf(error))).toBe(true);
    expect(ran).toEqual([]);
    expect(h.server.received).toHaveLength(2);
  });

  it.skipIf(!engine.available)(
    "withholds the final output of an agent halted during its run",
    async () => {
      const { agent } = escalating();
      script(h.server, agentResponse({ calls: [ESCALATE] }), agentResponse({ text: "Paid." }));
      const error = await run(agent, "Settle INV-42.").catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(OutputGuardrailTripwireTriggered);
      expect(AgentHaltedError.isInstance(governanceErrorOf(error))).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "a governed client refuses the model call of a halted agent",
    async () => {
      const { agent } = governed();
      script(h.server, agentResponse({ calls: [LOOKUP] }));
      const first = await run(agent, "hello");
      expect(first.finalOutput).toBeDefined();
      await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
      const before = h.server.received.length;
      const error = await run(agent, "again").catch((caught: unknown) => caught);
      expect(AgentHaltedError.isInstance(governanceErrorOf(error))).toBe(true);
      expect(h.server.received).toHaveLength(before);
    },
  );

  it.skipIf(!engine.available)("never offers a hidden tool to the model", async () => {
    for (const model of [false, true]) {
      const { agent } = governed({ model });
      script(h.server);
      await run(agent, "hello");
      const body = h.server.received.at(-1)?.body ?? {};
      expect(offered(body)).toContain("lookup_invoice");
      expect(offered(body)).not.toContain("delete_all");
    }
  });

  it.skipIf(!engine.available)(
    "refuses a call to a tool outside scope (the model reads why) and audits it",
    async () => {
      const { agent, ran } = governed({ model: false });
      const wire = { name: "wire_money", input: { to: "acct-7", amount: 120 }, id: "call_wire" };
      script(h.server, agentResponse({ calls: [wire] }));
      const result = await run(agent, "Pay acct-7.");
      expect(result.finalOutput).toBe("Done.");
      expect(ran).toEqual([]);
      const [refusal] = callOutputs(h.server.received[1]?.body ?? {});
      expect(refusal?.callId).toBe("call_wire");
      expect(JSON.stringify(refusal?.output)).toContain("wire_money");
      await eventually(() => kinds().includes("scope.violation"));
      expect(kinds()).not.toContain("tool.call");
    },
  );

  it.skipIf(!engine.available)(
    "with a governed client, a returned call outside scope is removed before the agent sees it",
    async () => {
      const { agent, ran } = governed();
      const wire = { name: "wire_money", input: { to: "acct-7", amount: 120 } };
      script(h.server, agentResponse({ calls: [wire] }));
      await run(agent, "Pay acct-7.");
      expect(ran).toEqual([]);
      await eventually(() => kinds().includes("llm.tool_call_blocked"));
    },
  );

  it.skipIf(!engine.available)("detects a loop of tool calls", async () => {
    const { agent, ran } = governed({ model: false });
    script(
      h.server,
      agentResponse({ calls: [{ ...LOOKUP, id: "call_1" }] }),
      agentResponse({ calls: [{ ...LOOKUP, id: "call_2" }] }),
      agentResponse({ calls: [{ ...LOOKUP, id: "call_3" }] }),
    );
    await run(agent, "Look INV-42 up, again and again.");
    expect(ran).toHaveLength(2);
    const outputs = callOutputs(h.server.received[3]?.body ?? {});
    expect(outputs.map((output) => output.callId)).toEqual(["call_1", "call_2", "call_3"]);
    await eventually(() => kinds().includes("loop.detected"));
  });

  it.skipIf(!engine.available)(
    "reserves the budget before the model call: over budget, the model is not called",
    async () => {
      h.cost.register({ agentId: AGENT, perSessionUsd: 0.000001 });
      const { agent } = governed();
      script(h.server);
      const error = await run(agent, "hello").catch((caught: unknown) => caught);
      expect(BudgetExceeded.isInstance(error)).toBe(true);
      expect(h.server.received).toEqual([]);
    },
  );

  it.skipIf(!engine.available)(
    'with api: "chat_completions", governs the Chat Completions calls of the model',
    async () => {
      const { agent } = governed({ api: "chat_completions" });
      h.server.reply = (request) => ({
        json: chatCompletion({ model: String(request.body.model) }),
      });
      const result = await run(agent, "hello");
      expect(result.finalOutput).toBe("Hello.");
      expect(h.server.received.map((request) => request.path)).toEqual(["/chat/completions"]);
      expect(h.server.received[0]?.body.tools).toEqual([
        expect.objectContaining({ function: expect.objectContaining({ name: "lookup_invoice" }) }),
        expect.objectContaining({ function: expect.objectContaining({ name: "wire_money" }) }),
      ]);
      const spent = await h.snapshot();
      expect(spent.sessionTokensUsed).toBe(CHAT_USAGE.total_tokens);
      expect(h.audit.events.find((event) => event.kind === "llm.call")?.metadata).toMatchObject({
        operation: "chat.completions.create",
      });
    },
  );

  it.skipIf(!engine.available)(
    "settles the usage of a run whose model was not governed, from the run's own usage",
    async () => {
      const { agent } = governed({ model: false });
      script(h.server, agentResponse({ calls: [LOOKUP] }));
      const result = await run(agent, "What does INV-42 say?");
      expect((await h.snapshot()).sessionTokensUsed).toBe(0);
      const options = { governance: h.governance, agentId: AGENT, sessionId: SESSION };
      expect(await settleRunUsage(result, { ...options, model: "gpt-4o" })).toBe(2);
      const spent = await h.snapshot();
      expect(spent.sessionTokensUsed).toBe(2 * RESPONSES_USAGE.total_tokens);
      expect(spent.sessionUsdUsed).toBeGreaterThan(0);
      expect(kinds()).toContain("agent.usage");
    },
  );

  it.skipIf(!engine.available)("settles a streamed run's usage", async () => {
    const { agent } = governed();
    h.server.reply = () => ({ sse: responseEvents() });
    const result = await run(agent, "hello", { stream: true });
    for await (const _event of result) {
      // read the run to its end
    }
    await result.completed;
    expect(result.finalOutput).toBe("Hello.");
    const spent = await h.snapshot();
    expect(spent.sessionTokensUsed).toBe(RESPONSES_USAGE.total_tokens);
    const call = h.audit.events.find((event) => event.kind === "llm.call");
    expect(call?.metadata).toMatchObject({ stream: true });
  });
});

describe("governAgent's options", () => {
  const governance = { logger: silentLogger };
  it("refuses what is not an agent, a client for a Model object, a bad api and an unknown option", () => {
    const { agent } = billingAgent();
    const model = new OpenAIResponsesModel(new OpenAI({ apiKey: "sk-test" }), "gpt-4o");
    const cases: [unknown, Record<string, unknown>, string][] = [
      [{}, {}, "agent"],
      [agent.clone({ model }), { client: new OpenAI({ apiKey: "sk-test" }) }, "options.client"],
      [agent, { api: "completions" }, "options.api"],
      [agent, { onToolOutOfScop: "throw" }, "onToolOutOfScop"],
      [agent, { agentId: "" }, "options.agentId"],
    ];
    for (const [target, options, field] of cases) {
      const error = attempt(() =>
        governAgent(target as typeof agent, { governance, agentId: AGENT, ...options }),
      );
      expect(InvalidWrapperOptionsError.isInstance(error), field).toBe(true);
      expect((error as InvalidWrapperOptionsError).message).toContain(field);
    }
  });

  it("leaves the agent it was given as it was", () => {
    const { agent } = billingAgent();
    const governed = governAgent(agent, { governance, agentId: AGENT });
    expect(governed).not.toBe(agent);
    expect(agent.inputGuardrails).toEqual([]);
    const guardrailsOf = (tools: readonly unknown[]) =>
      tools.map((entry) => ((entry as FunctionTool).inputGuardrails ?? []).length);
    expect(guardrailsOf(agent.tools)).toEqual([0, 0, 0]);
    expect(guardrailsOf(governed.tools)).toEqual([1, 1, 1]);
    expect(governed.inputGuardrails.map((guardrail) => guardrail.name)).toEqual(["gov.halt"]);
  });
});

function attempt(call: () => unknown): unknown {
  try {
    call();
    return undefined;
  } catch (error) {
    return error;
  }
}
