/**
 * The second attack on the wrappers: requests whose parameters change between the check and
 * the send, content that serializes to more than it looks, tool calls renamed between the event
 * that announces them and the one the host acts on, and observation that never answers.
 */
import { createOpenAI } from "@ai-sdk/openai";
import type { AuditReceipt } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AI_SDKS } from "./__fixtures__/ai-sdk";
import {
  AGENT,
  attempt,
  CLIENTS,
  type OpenAIAgent,
  openAIAgent,
  SESSION,
} from "./__fixtures__/openai-agent";
import { chatCompletion, responseEvents } from "./__fixtures__/openai-server";
import { governanceMiddleware } from "./ai-sdk/middleware";
import { settled } from "./governed-call";
import { wrapOpenAI } from "./openai/wrap";

const messages = [{ role: "user" as const, content: "hi" }];

/** A Responses stream whose one function call is announced as `announced` and done as `done`. */
function renamedCallEvents(announced: string, done: string): unknown[] {
  const events = responseEvents({ toolCalls: [announced] }) as Record<string, unknown>[];
  for (const event of events) {
    const item = event.item as Record<string, unknown> | undefined;
    if (event.type === "response.output_item.done" && item?.type === "function_call")
      event.item = { ...item, name: done };
    const response = event.response as { output?: Record<string, unknown>[] } | undefined;
    if (event.type === "response.completed" && response?.output)
      event.response = {
        ...response,
        output: response.output.map((entry) =>
          entry.type === "function_call" ? { ...entry, name: done } : entry,
        ),
      };
  }
  return events;
}

describe.each(testEngines())("attack, second wave, on $name", (engine) => {
  let h: OpenAIAgent;
  beforeEach(async () => {
    if (engine.available) h = await openAIAgent(engine, CLIENTS[0]);
  });
  afterEach(async () => {
    if (engine.available) await h.close();
  });

  // Guards against: a parameter read again after governance checked it (a getter, a Proxy)
  // sends another model than the one scope allowed and the budget priced.
  it.skipIf(!engine.available)(
    "sends the model that scope checked, however often the request is read",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      let reads = 0;
      const body = {
        get model() {
          reads++;
          return reads <= 2 ? "gpt-4o" : "o1-pro";
        },
        max_tokens: 16,
        messages,
      };
      await attempt(() => h.wrapped().chat.completions.create(body));
      for (const request of h.server.received) expect(request.body.model).toBe("gpt-4o");
    },
  );

  // Guards against: a `max_tokens` read once for the reservation and again, larger, for the wire.
  it.skipIf(!engine.available)(
    "sends the output ceiling that was reserved, however often the request is read",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      let reads = 0;
      const body = {
        model: "gpt-4o",
        get max_tokens() {
          reads++;
          return reads <= 1 ? 16 : 1_000_000;
        },
        messages,
      };
      await attempt(() => h.wrapped().chat.completions.create(body));
      for (const request of h.server.received) expect(request.body.max_tokens).toBe(16);
    },
  );

  // Guards against: a request option `body` (which the client sends instead of the parameters)
  // that is undefined when the wrapper looks and a whole other request when the client does.
  it.skipIf(!engine.available)(
    "refuses or ignores a request option body however often it is read",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      let reads = 0;
      const options = {
        get body() {
          reads++;
          return reads <= 1 ? undefined : { model: "o1-pro", messages, tools: [] };
        },
      };
      await attempt(() =>
        h.wrapped().chat.completions.create({ model: "gpt-4o", max_tokens: 16, messages }, options),
      );
      for (const request of h.server.received) expect(request.body.model).toBe("gpt-4o");
    },
  );

  // Guards against: the input estimate walks the message objects while the client sends what
  // their `toJSON` returns: a prompt far over the budget is estimated at a few bytes and sent.
  it.skipIf(!engine.available)(
    "estimates the prompt as it is serialized (toJSON), and refuses one over the budget",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      const huge = "x".repeat(600_000); // ≈ $1.50 of gpt-4o input at one token per byte: over $1
      const message = {
        role: "user" as const,
        content: "hi",
        toJSON: () => ({ role: "user", content: huge }),
      };
      const error = await attempt(() =>
        h
          .wrapped()
          .chat.completions.create({ model: "gpt-4o", max_tokens: 16, messages: [message] }),
      );
      expect((error as { code?: unknown } | undefined)?.code).toBe("BUDGET_EXCEEDED");
      expect(h.server.received).toHaveLength(0);
    },
  );

  // Guards against: a request option that throws once the call was admitted (here a getter of
  // `stream_options`) leaves the reservation held until its TTL and writes no `llm.error`.
  it.skipIf(!engine.available)(
    "releases the reservation when the request throws after it was admitted",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      let reads = 0;
      const streamOptions = {
        get include_usage() {
          reads++;
          if (reads > 0) throw new Error("no");
          return true;
        },
      };
      const error = await attempt(() =>
        h.wrapped().chat.completions.create({
          model: "gpt-4o",
          max_tokens: 16,
          messages,
          stream: true,
          stream_options: streamOptions,
        }),
      );
      expect(error).toBeInstanceOf(Error);
      await settled();
      const after = await h.snapshot();
      expect(after.sessionTokensReserved).toBe(0);
      expect(h.kinds()).toContain("llm.error");
    },
  );

  // Guards against: a Responses stream whose function call is announced (output_item.added)
  // under a tool in scope and finished (output_item.done, response.completed) under another:
  // only the announced name is checked, and the host runs the other from the final response.
  it.skipIf(!engine.available)(
    "checks a Responses stream's call again when a later event renames it",
    async () => {
      h.server.reply = () => ({ sse: renamedCallEvents("lookup_invoice", "wire_money") });
      const stream = await h.wrapped().responses.create({
        model: "gpt-4o",
        input: "hi",
        stream: true,
      });
      const seen: string[] = [];
      for await (const event of stream) {
        const value = event as { type: string; item?: { name?: string }; response?: unknown };
        if (value.item?.name) seen.push(value.item.name);
        const output = (value.response as { output?: { name?: string }[] } | undefined)?.output;
        for (const item of output ?? []) if (item.name) seen.push(item.name);
      }
      expect(seen).not.toContain("wire_money");
      await settled(); // the refusal's evidence is written by then
      expect(h.kinds()).toContain("llm.tool_call_blocked");
    },
  );

  // Guards against: the AI SDK middleware decides a call once per call id, at its
  // tool-input-start; the @ai-sdk/openai Responses model takes the tool-call's name from
  // output_item.done, so a call renamed there runs a tool outside scope.
  it.skipIf(!engine.available)(
    "AI SDK: checks a tool-call again when its name differs from its tool-input-start",
    async () => {
      const sdk = AI_SDKS.find((candidate) => candidate.major === 6);
      if (sdk === undefined) throw new Error("ai@6 is under test");
      const { streamText, wrapLanguageModel, tool, jsonSchema } = sdk.ai;
      h.server.reply = () => ({ sse: renamedCallEvents("lookup_invoice", "wire_money") });
      const ran: string[] = [];
      const schema = jsonSchema<Record<string, never>>({ type: "object", properties: {} });
      const model = wrapLanguageModel({
        model: createOpenAI({ baseURL: h.server.baseURL, apiKey: "sk-test" }).responses("gpt-4o"),
        middleware: governanceMiddleware({
          governance: h.governance,
          agentId: AGENT,
          sessionId: SESSION,
        }),
      });
      const result = streamText({
        model,
        prompt: "hi",
        tools: {
          lookup_invoice: tool({
            inputSchema: schema,
            execute: async () => {
              ran.push("lookup_invoice");
              return "ok";
            },
          }),
          wire_money: tool({
            inputSchema: schema,
            execute: async () => {
              ran.push("wire_money");
              return "wired";
            },
          }),
        },
      });
      await result.consumeStream();
      await result.steps;
      expect(ran).not.toContain("wire_money");
    },
  );

  // Guards against: `n` completions without `max_tokens` reserve the cost module's default
  // once, not once per completion (the README: "the output ceiling … times OpenAI's n").
  it.skipIf(!engine.available)(
    "reserves n times the default output ceiling when max_tokens is absent",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      const asked: unknown[] = [];
      const openai = wrapOpenAI(CLIENTS[0].create(h.server.baseURL), {
        governance: {
          ...h.governance,
          cost: {
            checkOrRaise: (agentId, sessionId, options) => {
              asked.push(options);
              return h.costPort.checkOrRaise(agentId, sessionId, options);
            },
            trackUsage: (...args) => h.costPort.trackUsage(...args),
            reconcile: (...args) => h.costPort.reconcile(...args),
            release: (...args) => h.costPort.release(...args),
          },
        },
        agentId: AGENT,
        sessionId: SESSION,
      });
      await openai.chat.completions.create({ model: "gpt-4o", n: 4, messages });
      await openai.chat.completions.create({ model: "gpt-4o", n: 4, max_tokens: 10, messages });
      expect(asked[0]).toMatchObject({ choices: 4 });
      expect(asked[0]).not.toHaveProperty("maxTokens");
      expect(asked[1]).toMatchObject({ maxTokens: 40 });
      expect(asked[1]).not.toHaveProperty("choices");
    },
  );

  // Guards against: settled() (and so GovernanceSDK.close()) waiting for ever on an audit sink
  // that never answers.
  // (The sink here answers once the test is over, so that the suite's own settled() returns.)
  it.skipIf(!engine.available)("settled() returns when the audit sink never answers", async () => {
    h.server.reply = () => ({ json: chatCompletion() });
    let answer: () => void = () => undefined;
    const silence = new Promise<AuditReceipt>((resolve) => {
      answer = () => resolve({ eventId: "late", isPlaceholder: false });
    });
    const openai = wrapOpenAI(CLIENTS[0].create(h.server.baseURL), {
      governance: { ...h.governance, audit: { log: () => silence } },
      agentId: AGENT,
      sessionId: SESSION,
    });
    try {
      await openai.chat.completions.create({ model: "gpt-4o", max_tokens: 16, messages });
      const outcome = await Promise.race([
        settled({ timeoutMs: 300 }).then((left) => (left > 0 ? "gave up" : "nothing in flight")),
        new Promise((resolve) => setTimeout(() => resolve("hung"), 3_000)),
      ]);
      expect(outcome).toBe("gave up"); // returned, counting the unanswered events as in flight
      await expect(settled({ timeoutMs: -1 })).rejects.toMatchObject({ field: "timeoutMs" });
    } finally {
      answer();
    }
  });
});
