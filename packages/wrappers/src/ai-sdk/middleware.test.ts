import { AgentHaltedError } from "@gov/core";
import { eventually, recordingAuditSink, rejectionOf, testEngines } from "@gov/core/testing";
import { generateText, wrapLanguageModel } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AI_SDKS, expectedUsd } from "../__fixtures__/ai-sdk";
import { versionsOn } from "../__fixtures__/harness";
import { AGENT, type AgentHarness, agentHarness, SESSION } from "../__fixtures__/openai-agent";
import { chatCompletion, startOpenAIServer } from "../__fixtures__/openai-server";
import { InvalidWrapperOptionsError, ToolCallOutOfScopeError } from "../errors";
import { governanceMiddleware } from "./middleware";

describe.each(testEngines())("governanceMiddleware on $name", (engine) => {
  describe.each(versionsOn(engine, AI_SDKS))("with $version", (sdk) => {
    const { generateText, wrapLanguageModel, tool, jsonSchema } = sdk.ai;
    let h: AgentHarness;
    beforeEach(async () => {
      if (engine.available) h = await agentHarness(engine);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    function model(options: Record<string, unknown> = {}, modelId = "gpt-4o") {
      const inner = sdk.chat(h.server.baseURL, modelId);
      expect(inner.specificationVersion).toBe(sdk.specification);
      return wrapLanguageModel({
        model: inner,
        middleware: governanceMiddleware({
          governance: h.governance,
          agentId: AGENT,
          sessionId: SESSION,
          ...options,
        }),
      });
    }

    const schema = jsonSchema<{ id?: string }>({ type: "object", properties: {} });
    const tools = {
      lookup_invoice: tool({ description: "Look up an invoice", inputSchema: schema }),
      wire_money: tool({ description: "Wire money", inputSchema: schema }),
      delete_all: tool({ description: "Delete everything", inputSchema: schema }),
    };
    const snapshot = () => h.snapshot();
    const kinds = () => h.kinds();

    it.skipIf(!engine.available)(
      "refuses a halted agent before any request reaches the server",
      async () => {
        const governed = model();
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        const error = await rejectionOf(() =>
          generateText({ model: governed, prompt: "hi", maxRetries: 0 }),
        );
        expect(AgentHaltedError.isInstance(error)).toBe(true);
        expect(h.server.received).toEqual([]);
      },
    );

    it.skipIf(!engine.available)("refuses a call over budget before any request", async () => {
      h.cost.register({ agentId: AGENT, perSessionUsd: 0.000001 });
      const error = await rejectionOf(() =>
        generateText({ model: model(), prompt: "hi", maxOutputTokens: 1000, maxRetries: 0 }),
      );
      expect((error as { code?: string }).code).toBe("BUDGET_EXCEEDED");
      expect(h.server.received).toEqual([]);
    });

    it.skipIf(!engine.available)(
      "refuses a model outside allowedModels before any request",
      async () => {
        const error = await rejectionOf(() =>
          generateText({ model: model({}, "gpt-4o-mini"), prompt: "hi", maxRetries: 0 }),
        );
        expect((error as { code?: string }).code).toBe("SCOPE_VIOLATION");
        expect(h.server.received).toEqual([]);
        expect((await snapshot()).sessionUsdReserved).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "strips hidden tools from what the server receives, and audits the call without content",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const result = await generateText({
          model: model(),
          prompt: "secret",
          tools,
          maxRetries: 0,
        });
        expect(result.text).toBe("Hello.");
        const sent = h.server.received[0]?.body.tools as { function: { name: string } }[];
        expect(sent.map((t) => t.function.name)).toEqual(["lookup_invoice", "wire_money"]);
        await eventually(() => kinds().includes("llm.result"));
        const call = h.audit.events.find((event) => event.kind === "llm.call");
        expect(call?.model).toBe("gpt-4o");
        expect(call?.metadata).toMatchObject({
          provider: "ai-sdk",
          operation: "openai.chat.doGenerate",
          stream: false,
          tools: ["lookup_invoice", "wire_money"],
          hiddenToolsRemoved: 1,
        });
        expect(JSON.stringify(h.audit.events)).not.toContain("secret");
      },
    );

    it.skipIf(!engine.available)(
      "refuses a call that forces a hidden tool, before any request, releasing its reservation",
      async () => {
        const error = await rejectionOf(() =>
          generateText({
            model: model(),
            prompt: "hi",
            tools,
            toolChoice: { type: "tool", toolName: "delete_all" },
            maxOutputTokens: 500,
            maxRetries: 0,
          }),
        );
        expect((error as { code?: string }).code).toBe("SCOPE_VIOLATION");
        expect(h.server.received).toEqual([]);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "prices usage with cached and reasoning tokens exactly and settles the reservation",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const result = await generateText({
          model: model(),
          prompt: "hi",
          maxOutputTokens: 500,
          maxRetries: 0,
        });
        expect(result.usage.inputTokens).toBe(1200);
        expect(result.usage.outputTokens).toBe(300);
        expect(h.server.received[0]?.body.max_tokens).toBe(500);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.usd).toBeCloseTo(expectedUsd(), 12);
        expect(done?.metadata?.finishReason).toBe("stop");
        expect(done?.metadata?.end).toBe("completed");
      },
    );

    it.skipIf(!engine.available)(
      "removes a returned tool call outside scope, and audits it",
      async () => {
        h.server.reply = () => ({
          json: chatCompletion({ toolCalls: ["lookup_invoice", "wire_money"] }),
        });
        const result = await generateText({
          model: model(),
          prompt: "hi",
          tools,
          maxRetries: 0,
        });
        expect(result.toolCalls.map((call) => call.toolName)).toEqual(["lookup_invoice"]);
        await eventually(() => kinds().includes("llm.tool_call_blocked"));
        const blocked = h.audit.events.find((event) => event.kind === "llm.tool_call_blocked");
        expect(blocked?.metadata).toMatchObject({ tool: "wire_money", action: "removed" });
        expect(kinds()).toContain("scope.violation");
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.removedToolCalls).toEqual(["wire_money"]);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );

    it.skipIf(!engine.available)(
      "throws for a returned tool call outside scope with onToolOutOfScope: throw, usage settled",
      async () => {
        h.server.reply = () => ({ json: chatCompletion({ toolCalls: ["wire_money"] }) });
        const error = await rejectionOf(() =>
          generateText({
            model: model({ onToolOutOfScope: "throw" }),
            prompt: "hi",
            tools,
            maxRetries: 0,
          }),
        );
        expect(ToolCallOutOfScopeError.isInstance(error)).toBe(true);
        expect((error as ToolCallOutOfScopeError).toolName).toBe("wire_money");
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );

    it.skipIf(!engine.available)(
      "audits llm.error, releases the reservation and rethrows the provider's error",
      async () => {
        h.server.reply = () => ({
          json: { error: { message: "bad", type: "invalid_request_error" } },
          status: 400,
        });
        const error = await rejectionOf(() =>
          generateText({ model: model(), prompt: "hi", maxOutputTokens: 500, maxRetries: 0 }),
        );
        expect((error as { statusCode?: number }).statusCode).toBe(400);
        expect((error as { name?: string }).name).toBe("AI_APICallError");
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBe(0);
        await eventually(() => kinds().includes("llm.error"));
        const failed = h.audit.events.find((event) => event.kind === "llm.error");
        expect(failed?.metadata?.error).toMatchObject({ name: "AI_APICallError" });
      },
    );

    it.skipIf(!engine.available)(
      "records the prompt and the answer only with recordContent, through redact",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const seen: string[] = [];
        await generateText({
          model: model({
            recordContent: true,
            redact: ({ part, content }: { part: string; content: unknown }) => {
              seen.push(part);
              return part === "input" ? "[prompt]" : { parts: (content as unknown[]).length };
            },
          }),
          prompt: "secret",
          maxRetries: 0,
        });
        await eventually(() => kinds().includes("llm.result"));
        expect(seen).toEqual(["input", "output"]);
        const call = h.audit.events.find((event) => event.kind === "llm.call");
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(call?.metadata?.input).toBe("[prompt]");
        expect(done?.metadata?.output).toEqual({ parts: 1 });
        expect(JSON.stringify(h.audit.events)).not.toContain("secret");
      },
    );

    it.skipIf(!engine.available)(
      "never lets concurrent calls jointly exceed a tight budget",
      async () => {
        h.cost.register({ agentId: AGENT, perSessionUsd: 0.02 });
        // each call uses what it reserves, so that the calls admitted after the first ones'
        // usage is known are as few as those admitted together
        h.server.reply = () => ({
          json: chatCompletion({
            usage: { prompt_tokens: 10, completion_tokens: 1000, total_tokens: 1010 },
          }),
        });
        const governed = model();
        // each call reserves 1000 output tokens of gpt-4o: only a few fit under $0.02
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () =>
            generateText({ model: governed, prompt: "hi", maxOutputTokens: 1000, maxRetries: 0 }),
          ),
        );
        const passed = results.filter((result) => result.status === "fulfilled").length;
        const refused = results.filter(
          (result) =>
            result.status === "rejected" &&
            (result.reason as { code?: string }).code === "BUDGET_EXCEEDED",
        ).length;
        expect(passed).toBeGreaterThan(0);
        expect(passed + refused).toBe(8);
        expect(refused).toBeGreaterThan(0);
        expect(h.server.received.length).toBe(passed);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed + after.sessionUsdReserved).toBeLessThanOrEqual(0.02);
      },
    );
  });
});

describe("governanceMiddleware's options", () => {
  it("refuses an empty agent id and an unknown option", () => {
    expect(() => governanceMiddleware({ governance: {}, agentId: "" })).toThrow(
      InvalidWrapperOptionsError,
    );
    const error = (() => {
      try {
        governanceMiddleware({ governance: {}, agentId: "a", onToolOutOfScop: "throw" } as never);
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
    expect(error?.message).toContain("onToolOutOfScope");
  });

  it("records the wrapping in coverage and in the audit chain, and each call in coverage", async () => {
    const coverage: string[] = [];
    const audit = recordingAuditSink();
    const middleware = governanceMiddleware({
      governance: {
        audit,
        coverage: {
          record: (agentId: string, client: string, event?: string) =>
            void coverage.push(`${agentId}:${client}:${event}`),
        },
      },
      agentId: "a",
    });
    expect(coverage).toEqual(["a:ai-sdk:wrapped"]);
    await eventually(() => audit.kinds().includes("wrapper.registered"));
    expect(audit.events[0]?.metadata).toMatchObject({
      provider: "ai-sdk",
      via: "middleware",
      operations: ["doGenerate", "doStream"],
    });
    expect(middleware.specificationVersion).toBe("v3");
    expect(middleware.middlewareVersion).toBe("v2");
    const server = await startOpenAIServer();
    try {
      server.reply = () => ({ json: chatCompletion() });
      const model = AI_SDKS[0]?.chat(server.baseURL);
      if (model === undefined) throw new Error("no AI SDK under test");
      await generateText({ model: wrapLanguageModel({ model, middleware }), prompt: "hi" });
      expect(coverage).toEqual(["a:ai-sdk:wrapped", "a:ai-sdk:call"]);
    } finally {
      await server.close();
    }
  });
});
