/**
 * Attack: the Vercel AI SDK middleware — governance applied twice, provider-run tools.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { testEngines } from "@gov/core/testing";
import { generateText as generateText6, wrapLanguageModel as wrapLanguageModel6 } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AI_SDKS, expectedUsd } from "../__fixtures__/ai-sdk";
import { chatCompletion, response } from "../__fixtures__/openai-server";
import { governanceMiddleware } from "../ai-sdk/middleware";
import {
  AGENT,
  attempt,
  CLIENTS,
  type OpenAIAgent,
  offeredNames,
  openAIAgent,
  SESSION,
} from "./__fixtures__/agent";

describe.each(testEngines())("AI SDK middleware on $name", (engine) => {
  let h: OpenAIAgent;
  beforeEach(async () => {
    if (engine.available) h = await openAIAgent(engine, CLIENTS[0]);
  });
  afterEach(async () => {
    if (engine.available) await h.close();
  });
  const middleware = () =>
    governanceMiddleware({ governance: h.governance, agentId: AGENT, sessionId: SESSION });

  describe.each(AI_SDKS)("with $version", (sdk) => {
    // Break: the issue says "wrapping twice is a no-op with a warning". A model wrapped with
    // the governance middleware twice (a library wraps it, the application wraps it again)
    // is governed twice: two reservations, two `llm.call`s, and the usage settled twice —
    // the call is charged double. Expected: the inner (or outer) governance notices the other
    // and stands aside, with a warning; the call is charged once.
    it.skipIf(!engine.available)(
      "charges a call once when the model is wrapped with governance twice",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const { generateText, wrapLanguageModel } = sdk.ai;
        const once = wrapLanguageModel({
          model: sdk.chat(h.server.baseURL),
          middleware: middleware(),
        });
        const twice = wrapLanguageModel({ model: once, middleware: middleware() });
        await generateText({ model: twice, prompt: "hi", maxRetries: 0 });
        const after = await h.snapshot();
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );
  });

  // Break: provider-run tools (`openai.tools.webSearch()`, and MCP, code interpreter, …) are
  // only filtered when hidden; one the agent may not use is sent and runs at the provider,
  // whose `tool-call` parts come back `providerExecuted` and are not checked either.
  // Expected: a provider-run tool outside `allowedTools` is refused or removed before the
  // call, never sent.
  it.skipIf(!engine.available)(
    "never offers the provider a provider-run tool outside allowedTools (ai@6)",
    async () => {
      h.server.reply = () => ({ json: response() });
      const provider = createOpenAI({ baseURL: h.server.baseURL, apiKey: "sk-test" });
      const model = wrapLanguageModel6({
        model: provider.responses("gpt-4o"),
        middleware: middleware(),
      });
      await attempt(() =>
        generateText6({
          model,
          prompt: "find invoice 42 online",
          tools: { web_search: provider.tools.webSearch({}) } as never,
          maxRetries: 0,
        }),
      );
      const offered = h.server.received.flatMap((request) => offeredNames(request.body));
      expect(h.server.received.length).toBeGreaterThan(0);
      expect(offered).not.toContain("web_search");
    },
  );
});
