import { normalizeUsage, type ProviderUsage } from "@gov/cost";
import { describe, expect, it } from "vitest";
import { finishReasonOf, usageOf } from "./shapes";

/** The disjoint parts @gov/cost prices, read from what the middleware hands it. */
function parts(usage: ReturnType<typeof usageOf>) {
  if (usage === null) return null;
  const { format: _format, totalTokens: _total, ...rest } = normalizeUsage(usage as ProviderUsage);
  return rest;
}

describe("usageOf", () => {
  it("reads V3 / V4 usage part by part", () => {
    const usage = usageOf(
      {
        inputTokens: { total: 1200, noCache: 150, cacheRead: 1000, cacheWrite: 50 },
        outputTokens: { total: 300, text: 100, reasoning: 200 },
        raw: { anything: true },
      },
      "openai.chat",
    );
    expect(parts(usage)).toEqual({
      inputTokens: 150,
      cachedInputTokens: 1000,
      cacheWriteTokens: 50,
      outputTokens: 100,
      reasoningTokens: 200,
    });
  });

  it("reads V3 totals from their parts, and no usage as none", () => {
    const usage = usageOf(
      {
        inputTokens: { total: undefined, noCache: 20, cacheRead: 80, cacheWrite: undefined },
        outputTokens: { total: undefined, text: 7, reasoning: 3 },
      },
      "anthropic.messages",
    );
    expect(parts(usage)).toEqual({
      inputTokens: 20,
      cachedInputTokens: 80,
      cacheWriteTokens: 0,
      outputTokens: 7,
      reasoningTokens: 3,
    });
    const none = { total: undefined, noCache: undefined, cacheRead: undefined };
    expect(
      usageOf(
        { inputTokens: { ...none, cacheWrite: undefined }, outputTokens: { ...none } },
        "openai.chat",
      ),
    ).toBeNull();
  });

  it("reads V2 usage by the provider's convention", () => {
    const v2 = {
      inputTokens: 1200,
      outputTokens: 300,
      cachedInputTokens: 1000,
      reasoningTokens: 200,
    };
    // OpenAI (and Azure): cached inside the input, reasoning inside the output
    for (const provider of ["openai.chat", "openai.responses", "azure.chat"])
      expect(parts(usageOf(v2, provider))).toEqual({
        inputTokens: 200,
        cachedInputTokens: 1000,
        cacheWriteTokens: 0,
        outputTokens: 100,
        reasoningTokens: 200,
      });
    // Google: cached inside the input, thoughts beside the output
    expect(parts(usageOf(v2, "google.generative-ai"))).toEqual({
      inputTokens: 200,
      cachedInputTokens: 1000,
      cacheWriteTokens: 0,
      outputTokens: 300,
      reasoningTokens: 200,
    });
    // Anthropic: cache reads beside the input, cache writes in provider metadata
    expect(
      parts(
        usageOf(
          { inputTokens: 200, outputTokens: 300, cachedInputTokens: 1000 },
          "anthropic.messages",
          { anthropic: { cacheCreationInputTokens: 40 } },
        ),
      ),
    ).toEqual({
      inputTokens: 200,
      cachedInputTokens: 1000,
      cacheWriteTokens: 40,
      outputTokens: 300,
      reasoningTokens: 0,
    });
  });

  it("hands another provider's V2 usage on as it is, and no usage as none", () => {
    const v2 = { inputTokens: 10, outputTokens: 5, cachedInputTokens: 4 };
    expect(usageOf(v2, "mistral.chat")).toBe(v2);
    expect(usageOf({ inputTokens: undefined, outputTokens: 5 }, "openai.chat")).toBeNull();
    expect(usageOf(undefined, "openai.chat")).toBeNull();
  });
});

describe("finishReasonOf", () => {
  it("reads V2's string and V3's { unified, raw }", () => {
    expect(finishReasonOf("tool-calls")).toBe("tool-calls");
    expect(finishReasonOf({ unified: "stop", raw: "end_turn" })).toBe("stop");
    expect(finishReasonOf(undefined)).toBeNull();
  });
});
