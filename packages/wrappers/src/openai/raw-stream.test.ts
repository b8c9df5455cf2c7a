/**
 * Streams the host reads raw (`asResponse()`) or aborts before reading: governed as the
 * streams the client iterates — usage counted, tool calls checked, reservations never left held.
 */
import { eventually, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { versionsOn } from "../__fixtures__/harness";
import { CLIENTS, type OpenAIAgent, openAIAgent } from "../__fixtures__/openai-agent";
import { CHAT_USAGE, chatChunks } from "../__fixtures__/openai-server";

const ask = { model: "gpt-4o", messages: [{ role: "user" as const, content: "hi" }] };

/** The function names a chat stream's raw events carry. */
function toolNamesIn(events: string): string[] {
  const names: string[] = [];
  for (const line of events.split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const chunk = JSON.parse(line.slice(6)) as {
      choices?: { delta?: { tool_calls?: { function?: { name?: string } }[] } }[];
    };
    for (const call of chunk.choices?.[0]?.delta?.tool_calls ?? [])
      if (call.function?.name) names.push(call.function.name);
  }
  return names;
}

describe.each(testEngines())("OpenAI raw and aborted streams on $name", (engine) => {
  describe.each(versionsOn(engine, CLIENTS))("with $major", (client) => {
    let h: OpenAIAgent;
    beforeEach(async () => {
      if (engine.available) h = await openAIAgent(engine, client);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    // Guards against (attack, issue 14): `asResponse()` on a stream handed the raw events on
    // and reconciled the call "as if no chunk was received": the usage chunk the host read
    // cost nothing.
    it.skipIf(!engine.available)(
      "counts the usage of a stream read with asResponse()",
      async () => {
        h.server.reply = ({ body }) => ({ sse: chatChunks(body) });
        const openai = h.wrapped();
        const raw = await openai.chat.completions.create({ ...ask, stream: true }).asResponse();
        const text = await raw.text();
        expect(text).toContain("data: [DONE]");
        const after = await h.snapshot();
        expect(after.sessionTokensReserved).toBe(0);
        expect(after.sessionTokensUsed).toBe(CHAT_USAGE.total_tokens);
        expect(h.kinds()).toContain("llm.result");
      },
    );

    // Guards against: the raw events of a stream carried a tool call outside the agent's scope
    // to the host, unchecked.
    it.skipIf(!engine.available)(
      "removes an out-of-scope tool call from a stream read with asResponse()",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { toolCalls: ["wire_money", "lookup_invoice"] }),
        });
        const openai = h.wrapped();
        const raw = await openai.chat.completions.create({ ...ask, stream: true }).asResponse();
        expect(toolNamesIn(await raw.text())).toEqual(["lookup_invoice"]);
        expect((await h.snapshot()).sessionTokensReserved).toBe(0);
        await eventually(() => h.kinds().includes("llm.tool_call_blocked"));
      },
    );

    // Guards against (attack, issue 14): a stream aborted before it is read (a user's cancel)
    // kept its reservation until the cost module's TTL, blocking the agent's next calls.
    it.skipIf(!engine.available)("reconciles a stream aborted before it is read", async () => {
      h.server.reply = ({ body }) => ({ sse: chatChunks(body), hang: true, done: false });
      const openai = h.wrapped();
      const stream = await openai.chat.completions.create({
        ...ask,
        max_tokens: 500,
        stream: true,
      });
      stream.controller.abort();
      const after = await h.snapshot();
      expect(after.sessionTokensReserved).toBe(0);
      expect(after.sessionTokensUsed).toBeGreaterThan(0); // the prompt's estimate, never 0
      expect(h.kinds()).toContain("llm.result");
    });
  });
});
