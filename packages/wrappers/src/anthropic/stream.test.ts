import { eventually, rejectionOf, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AnthropicHarness, anthropicHarness, ask } from "../__fixtures__/anthropic-harness";
import { errorEvent, MODEL, messageEvents, USAGE, usdOf } from "../__fixtures__/anthropic-server";
import { ANTHROPIC_CLIENTS, versionsOn } from "../__fixtures__/harness";
import { ToolCallOutOfScopeError } from "../errors";

/** The input part of {@link USAGE} and `outputTokens`, priced: what a stream cut short costs. */
const inputAnd = (outputTokens: number) => usdOf({ ...USAGE, output_tokens: outputTokens });

describe.each(testEngines())("wrapAnthropic streams on $name", (engine) => {
  describe.each(versionsOn(engine, ANTHROPIC_CLIENTS))("with $major", (client) => {
    // The stream is governed by the same code on both paths (middleware, or the fetch of a
    // client before 0.101.0); what differs is the client's own stream reader, which the older
    // path exercises with four cases: a completed stream, a dropped and a refused tool call,
    // and a stream broken off by the consumer.
    const everyCase = client.via === "middleware";
    let h: AnthropicHarness;

    beforeEach(async () => {
      if (engine.available) h = await anthropicHarness(engine, client);
    });

    afterEach(async () => {
      if (engine.available) await h.close();
    });

    it.skipIf(!engine.available)(
      "settles a completed stream (create with stream: true) at the exact price",
      async () => {
        h.server.reply = () => ({ sse: messageEvents() });
        const anthropic = h.wrapped();
        const stream = await anthropic.messages.create({ model: MODEL, ...ask, stream: true });
        const seen: string[] = [];
        for await (const streamed of stream) seen.push(streamed.type);
        expect(seen).toEqual([
          "message_start",
          "content_block_start",
          "content_block_delta",
          "content_block_delta",
          "content_block_stop",
          "message_delta",
          "message_stop",
        ]);
        // settling began when the consumer's loop ended (snapshot() waits for it)
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(usdOf(USAGE), 12);
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.event("llm.result")?.metadata).toMatchObject({
          end: "completed",
          stream: true,
          finishReason: "end_turn",
        });
        expect(h.errors()).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "drops an out-of-scope tool_use block from messages.stream (events, iteration, finalMessage)",
      async () => {
        h.server.reply = () => ({
          sse: messageEvents({ toolUses: ["wire_money", "lookup_invoice"] }),
        });
        const anthropic = h.wrapped();
        const stream = anthropic.messages.stream({ model: MODEL, ...ask });
        let text = "";
        stream.on("text", (delta) => {
          text += delta;
        });
        const messages: unknown[] = [];
        stream.on("message", (message) => messages.push(message));
        const indexes: number[] = [];
        for await (const streamed of stream)
          if ("index" in streamed) indexes.push(streamed.index as number);
        const final = await stream.finalMessage();
        expect(text).toBe("Hello.");
        expect(messages).toHaveLength(1);
        // the dropped block's index (1) is gone and the next one renumbered into its place
        expect([...new Set(indexes)]).toEqual([0, 1]);
        expect(final.content).toEqual([
          expect.objectContaining({ type: "text", text: "Hello." }),
          expect.objectContaining({ type: "tool_use", name: "lookup_invoice", input: { id: 1 } }),
        ]);
        expect(final.stop_reason).toBe("tool_use");
        expect(final.usage.output_tokens).toBe(USAGE.output_tokens);
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(usdOf(USAGE), 12);
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.event("llm.call")?.metadata?.operation).toBe("messages.stream");
        expect(h.event("llm.tool_call_blocked")?.metadata).toMatchObject({ tool: "wire_money" });
        expect(h.event("llm.result")?.metadata?.removedToolCalls).toEqual(["wire_money"]);
      },
    );

    it.skipIf(!engine.available || !everyCase)(
      "ends the streamed turn when every tool call was dropped",
      async () => {
        h.server.reply = () => ({ sse: messageEvents({ toolUses: ["wire_money"] }) });
        const anthropic = h.wrapped();
        const final = await anthropic.messages.stream({ model: MODEL, ...ask }).finalMessage();
        expect(final.content.map((block) => block.type)).toEqual(["text"]);
        expect(final.stop_reason).toBe("end_turn");
      },
    );

    it.skipIf(!engine.available)(
      "refuses a streamed out-of-scope tool call with onToolOutOfScope: throw",
      async () => {
        h.server.reply = () => ({ sse: messageEvents({ toolUses: ["wire_money"] }), hang: true });
        const anthropic = h.wrapped({ onToolOutOfScope: "throw" });
        const stream = await anthropic.messages.create({ model: MODEL, ...ask, stream: true });
        const seen: string[] = [];
        const error = await rejectionOf(async () => {
          for await (const streamed of stream) seen.push(streamed.type);
        });
        expect(ToolCallOutOfScopeError.isInstance(error)).toBe(true);
        expect(seen).not.toContain("message_delta");
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeGreaterThan(0);
      },
    );

    it.skipIf(!engine.available)(
      "reconciles a stream the consumer breaks off, from what it received",
      async () => {
        h.server.reply = () => ({
          sse: messageEvents({ text: ["a", "b", "c", "d"] }).slice(0, 6),
          hang: true,
        });
        const anthropic = h.wrapped();
        const stream = await anthropic.messages.create({ model: MODEL, ...ask, stream: true });
        let count = 0;
        for await (const _ of stream) if (++count === 4) break;
        // settling began when the consumer's break returned (snapshot() waits for it)
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        // input as message_start reported it; output estimated at 8 tokens per delta received
        expect(after.sessionUsdUsed).toBeCloseTo(inputAnd(3 * 8), 12);
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.event("llm.result")?.metadata?.end).toBe("abandoned");
        expect(h.errors()).toEqual([]);
      },
    );

    it.skipIf(!engine.available || !everyCase)(
      "reconciles a messages.stream the consumer aborts",
      async () => {
        h.server.reply = () => ({ sse: messageEvents().slice(0, 4), hang: true });
        const anthropic = h.wrapped();
        const stream = anthropic.messages.stream({ model: MODEL, ...ask });
        stream.on("text", () => stream.abort());
        const error = await rejectionOf(() => stream.done());
        expect((error as Error).constructor.name).toBe("APIUserAbortError");
        expect(stream.aborted).toBe(true);
        await eventually(async () => (await h.snapshot()).sessionUsdReserved === 0);
        expect((await h.snapshot()).sessionUsdUsed).toBeCloseTo(inputAnd(8), 12);
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.event("llm.result")?.metadata?.end).toMatch(/^(aborted|abandoned)$/);
        expect(h.errors()).toEqual([]);
      },
    );

    it.skipIf(!engine.available || !everyCase)("reconciles a stream the server cuts", async () => {
      h.server.reply = () => ({ sse: messageEvents().slice(0, 5), cut: true });
      const drain = async (stream: AsyncIterable<unknown>) => {
        for await (const _ of stream) {
        }
      };
      // the host gets the error the client alone gives (its own class differs by major)
      const bare = client.create(h.server.baseURL);
      const expected = await rejectionOf(async () =>
        drain(await bare.messages.create({ model: MODEL, ...ask, stream: true })),
      );
      const anthropic = h.wrapped();
      const stream = await anthropic.messages.create({ model: MODEL, ...ask, stream: true });
      const error = await rejectionOf(() => drain(stream));
      expect((error as Error).constructor).toBe((expected as Error).constructor);
      const after = await h.snapshot();
      expect(after.sessionUsdReserved).toBe(0);
      expect(after.sessionUsdUsed).toBeCloseTo(inputAnd(2 * 8), 12);
      await eventually(() => h.kinds().includes("llm.error"));
      expect(h.event("llm.error")?.metadata).toMatchObject({ stream: true, chunks: 5 });
    });

    it.skipIf(!engine.available || !everyCase)(
      "reconciles a stream that errors (an error event mid-stream)",
      async () => {
        h.server.reply = () => ({ sse: [...messageEvents().slice(0, 4), errorEvent()] });
        const anthropic = h.wrapped();
        const stream = await anthropic.messages.create({ model: MODEL, ...ask, stream: true });
        const error = await rejectionOf(async () => {
          for await (const _ of stream) {
          }
        });
        expect((error as { error?: { error?: { type?: string } } }).error?.error?.type).toBe(
          "overloaded_error",
        );
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(inputAnd(8), 12);
        await eventually(() => h.kinds().includes("llm.error"));
        expect(h.event("llm.error")?.metadata?.error).toMatchObject({ code: "overloaded_error" });
        expect(h.kinds()).not.toContain("llm.result");
      },
    );
  });
});
