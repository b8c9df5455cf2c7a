import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { AgentHaltedError } from "@gov/core";
import { eventually, rejectionOf, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AI_SDKS, expectedUsd } from "../__fixtures__/ai-sdk";
import { versionsOn } from "../__fixtures__/harness";
import { AGENT, type AgentHarness, agentHarness, SESSION } from "../__fixtures__/openai-agent";
import { chatChunks } from "../__fixtures__/openai-server";
import { ToolCallOutOfScopeError } from "../errors";
import { governanceMiddleware } from "./middleware";

/** A full garbage collection (the test process runs without --expose-gc). */
const collectGarbage = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

describe.each(testEngines())("governanceMiddleware streams on $name", (engine) => {
  describe.each(versionsOn(engine, AI_SDKS))("with $version", (sdk) => {
    const { streamText, wrapLanguageModel, tool, jsonSchema } = sdk.ai;
    let h: AgentHarness;
    beforeEach(async () => {
      if (engine.available) h = await agentHarness(engine);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    function model(options: Record<string, unknown> = {}) {
      return wrapLanguageModel({
        model: sdk.chat(h.server.baseURL),
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
    };
    const snapshot = () => h.snapshot();
    const kinds = () => h.kinds();
    /** Nothing is held: the reservation was settled (or reconciled), and something was recorded. */
    const nothingHeld = async () => {
      const after = await snapshot();
      return after.sessionUsdReserved === 0 && after.sessionUsdUsed > 0;
    };
    const errors = () => h.logger.lines.filter((line) => line.level === "error");

    it.skipIf(!engine.available)(
      "settles a completed stream with its usage, which the provider asked for",
      async () => {
        h.server.reply = ({ body }) => ({ sse: chatChunks(body) });
        const result = streamText({
          model: model(),
          prompt: "hi",
          maxOutputTokens: 500,
          maxRetries: 0,
        });
        let text = "";
        for await (const delta of result.textStream) text += delta;
        expect(text).toBe("Hello.");
        expect(h.server.received[0]?.body.stream_options).toEqual({ include_usage: true });
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata).toMatchObject({
          end: "completed",
          stream: true,
          operation: "openai.chat.doStream",
          finishReason: "stop",
        });
        expect(done?.metadata?.usd).toBeCloseTo(expectedUsd(), 12);
        expect(errors()).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "removes an out-of-scope tool call and its input parts from the stream",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { toolCalls: ["wire_money", "lookup_invoice"] }),
        });
        const result = streamText({ model: model(), prompt: "hi", tools, maxRetries: 0 });
        const started: string[] = [];
        for await (const part of result.fullStream)
          if (part.type === "tool-input-start") started.push(part.toolName);
        expect(started).toEqual(["lookup_invoice"]);
        expect((await result.toolCalls).map((call) => call.toolName)).toEqual(["lookup_invoice"]);
        await eventually(() => kinds().includes("llm.result"));
        expect(kinds().filter((kind) => kind === "llm.tool_call_blocked")).toHaveLength(1);
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.removedToolCalls).toEqual(["wire_money"]);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );

    it.skipIf(!engine.available)(
      "errors the stream for an out-of-scope tool call with onToolOutOfScope: throw",
      async () => {
        h.server.reply = ({ body }) => ({ sse: chatChunks(body, { toolCalls: ["wire_money"] }) });
        const result = streamText({
          model: model({ onToolOutOfScope: "throw" }),
          prompt: "hi",
          tools,
          maxOutputTokens: 500,
          maxRetries: 0,
          onError: () => undefined,
        });
        const started: string[] = [];
        const error = await rejectionOf(async () => {
          for await (const part of result.fullStream)
            if (part.type === "tool-input-start") started.push(part.toolName);
        });
        expect(ToolCallOutOfScopeError.isInstance(error)).toBe(true);
        expect(started).toEqual([]);
        await eventually(nothingHeld);
        await eventually(() => kinds().includes("llm.tool_call_blocked"));
        const blocked = h.audit.events.find((event) => event.kind === "llm.tool_call_blocked");
        expect(blocked?.metadata).toMatchObject({ tool: "wire_money", action: "refused" });
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.end).toBe("refused");
      },
    );

    it.skipIf(!engine.available)(
      "refuses a halted agent before any request, through the stream's error",
      async () => {
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        const failures: unknown[] = [];
        const result = streamText({
          model: model(),
          prompt: "hi",
          maxRetries: 0,
          onError: ({ error }) => void failures.push(error),
        });
        for await (const _ of result.fullStream) {
        }
        expect(failures.some((error) => AgentHaltedError.isInstance(error))).toBe(true);
        expect(h.server.received).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "reconciles a stream the caller aborts (abortSignal)",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { text: ["a", "b", "c", "d"] }),
          hang: true,
          done: false,
        });
        const controller = new AbortController();
        const result = streamText({
          model: model(),
          prompt: "hi",
          maxOutputTokens: 500,
          maxRetries: 0,
          abortSignal: controller.signal,
        });
        let count = 0;
        for await (const _ of result.textStream) if (++count === 2) controller.abort();
        await eventually(nothingHeld);
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.end).toBe("aborted");
        expect(errors()).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "reconciles a stream the consumer cancels, and closes the connection",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { text: ["a", "b", "c", "d"] }),
          hang: true,
          done: false,
        });
        const { stream } = await model().doStream({
          prompt: [{ role: "user", content: [{ type: "text", text: "hi" }] }],
          maxOutputTokens: 500,
        });
        const reader = stream.getReader();
        let deltas = 0;
        while (deltas < 2) if ((await reader.read()).value?.type === "text-delta") deltas++;
        await reader.cancel();
        // the reconciliation began when cancel() resolved: settled() has it to wait for
        expect(await nothingHeld()).toBe(true);
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.end).toBe("abandoned");
        expect(errors()).toEqual([]);
      },
    );

    // AI SDK 5 and 6: streamText tees the model's stream: breaking out of textStream cancels
    // only the consumer's branch, and the AI SDK goes on reading the model's stream to its end.
    it.skipIf(!engine.available || sdk.major === 7)(
      "settles a streamText the consumer stops reading when the model's stream ends",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { text: Array.from({ length: 50 }, (_, index) => `t${index}`) }),
        });
        const result = streamText({
          model: model(),
          prompt: "hi",
          maxOutputTokens: 500,
          maxRetries: 0,
        });
        let count = 0;
        for await (const _ of result.textStream) if (++count === 2) break;
        await eventually(async () => (await snapshot()).sessionUsdReserved === 0);
        expect((await snapshot()).sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.end).toBe("completed");
      },
    );

    // AI SDK 7 neither reads the model's stream on nor cancels it when the consumer breaks out
    // of textStream: the stream is dropped, and reconciled once it is collected.
    it.skipIf(!engine.available || sdk.major !== 7)(
      "reconciles a streamText the consumer stops reading once the dropped stream is collected (AI SDK 7)",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { text: Array.from({ length: 50 }, (_, index) => `t${index}`) }),
        });
        await (async () => {
          const result = streamText({
            model: model(),
            prompt: "hi",
            maxOutputTokens: 500,
            maxRetries: 0,
          });
          let count = 0;
          for await (const _ of result.textStream) if (++count === 2) break;
        })();
        await eventually(async () => {
          collectGarbage();
          return (await snapshot()).sessionUsdReserved === 0;
        });
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.end).toBe("abandoned");
        expect((await snapshot()).sessionUsdUsed).toBeGreaterThan(0);
      },
    );

    it.skipIf(!engine.available)(
      "reconciles a stream dropped half-way without being cancelled, once it is collected",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { text: ["a", "b", "c", "d"] }),
          hang: true,
          done: false,
        });
        await (async () => {
          const { stream } = await model().doStream({
            prompt: [{ role: "user", content: [{ type: "text", text: "hi" }] }],
            maxOutputTokens: 500,
          });
          const reader = stream.getReader();
          let deltas = 0;
          while (deltas < 2) if ((await reader.read()).value?.type === "text-delta") deltas++;
        })();
        expect((await snapshot()).sessionUsdReserved).toBeGreaterThan(0);
        await eventually(async () => {
          collectGarbage();
          return nothingHeld();
        });
        await eventually(() => kinds().includes("llm.result"));
        const done = h.audit.events.find((event) => event.kind === "llm.result");
        expect(done?.metadata?.end).toBe("abandoned");
        expect(errors()).toEqual([]);
      },
    );

    it.skipIf(!engine.available)("reconciles a stream the server cuts", async () => {
      h.server.reply = ({ body }) => ({
        sse: chatChunks(body, { text: ["a", "b", "c"] }).slice(0, 3),
        cut: true,
      });
      const result = streamText({
        model: model(),
        prompt: "hi",
        maxOutputTokens: 500,
        maxRetries: 0,
        onError: () => undefined,
      });
      const error = await rejectionOf(async () => {
        for await (const _ of result.fullStream) {
        }
      });
      expect((error as { name?: string }).name).toBe("AI_APICallError");
      await eventually(nothingHeld);
      await eventually(() => kinds().includes("llm.error"));
      expect(kinds()).not.toContain("llm.result");
    });

    it.skipIf(!engine.available)(
      "reconciles a stream whose server sends an error event",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: [
            ...chatChunks(body, { text: ["a", "b"] }).slice(0, 3),
            { error: { message: "overloaded", type: "server_error", code: "overloaded" } },
          ],
        });
        const failures: unknown[] = [];
        const result = streamText({
          model: model(),
          prompt: "hi",
          maxOutputTokens: 500,
          maxRetries: 0,
          onError: ({ error }) => void failures.push(error),
        });
        for await (const _ of result.fullStream) {
        }
        expect(failures.length).toBeGreaterThan(0);
        await eventually(nothingHeld);
        await eventually(() => kinds().includes("llm.error"));
        expect(kinds()).not.toContain("llm.result");
      },
    );
  });
});
