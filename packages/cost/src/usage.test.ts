import { describe, expect, it } from "vitest";
import { COST_ERROR_CODES, InvalidUsageError } from "./errors";
import { normalizeUsage } from "./usage";

function usageError(usage: unknown): InvalidUsageError {
  try {
    normalizeUsage(usage);
  } catch (error) {
    expect(InvalidUsageError.isInstance(error)).toBe(true);
    expect((error as InvalidUsageError).code).toBe(COST_ERROR_CODES.USAGE_INVALID);
    return error as InvalidUsageError;
  }
  throw new Error(`expected InvalidUsageError for ${JSON.stringify(usage)}`);
}

describe("normalizeUsage", () => {
  // OpenAI's prompt_tokens INCLUDE cached tokens; completion_tokens INCLUDE reasoning tokens.
  it("subtracts cached and reasoning tokens from the OpenAI Chat Completions totals", () => {
    expect(
      normalizeUsage({
        prompt_tokens: 1000,
        completion_tokens: 500,
        total_tokens: 1500,
        prompt_tokens_details: { cached_tokens: 600, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 200, accepted_prediction_tokens: 0 },
      }),
    ).toEqual({
      format: "openai-chat",
      inputTokens: 400,
      cachedInputTokens: 600,
      cacheWriteTokens: 0,
      outputTokens: 300,
      reasoningTokens: 200,
      totalTokens: 1500,
    });
  });

  it("reads Chat Completions usage without details (or with null details) as uncached", () => {
    expect(normalizeUsage({ prompt_tokens: 10, completion_tokens: 5 })).toMatchObject({
      inputTokens: 10,
      cachedInputTokens: 0,
      outputTokens: 5,
      reasoningTokens: 0,
    });
    expect(
      normalizeUsage({
        prompt_tokens: 10,
        completion_tokens: 5,
        prompt_tokens_details: null,
        completion_tokens_details: { reasoning_tokens: null },
      }),
    ).toMatchObject({ inputTokens: 10, outputTokens: 5, totalTokens: 15 });
  });

  // The Responses API has the same inclusion rule under different names.
  it("subtracts cached and reasoning tokens from the OpenAI Responses totals", () => {
    expect(
      normalizeUsage({
        input_tokens: 50_000,
        input_tokens_details: { cached_tokens: 40_000 },
        output_tokens: 1200,
        output_tokens_details: { reasoning_tokens: 1000 },
        total_tokens: 51_200,
      }),
    ).toEqual({
      format: "openai-responses",
      inputTokens: 10_000,
      cachedInputTokens: 40_000,
      cacheWriteTokens: 0,
      outputTokens: 200,
      reasoningTokens: 1000,
      totalTokens: 51_200,
    });
  });

  // Anthropic's input_tokens EXCLUDE cache reads and writes: they are added, never subtracted.
  it("adds Anthropic cache reads and writes beside input_tokens", () => {
    expect(
      normalizeUsage({
        input_tokens: 1200,
        cache_creation_input_tokens: 3000,
        cache_read_input_tokens: 20_000,
        output_tokens: 850,
        service_tier: "standard",
      }),
    ).toEqual({
      format: "anthropic",
      inputTokens: 1200,
      cachedInputTokens: 20_000,
      cacheWriteTokens: 3000,
      outputTokens: 850,
      reasoningTokens: 0,
      totalTokens: 25_050,
    });
    // Regression: input_tokens smaller than the cache read is normal for Anthropic, not an error.
    expect(
      normalizeUsage({
        input_tokens: 3,
        cache_read_input_tokens: 9000,
        cache_creation_input_tokens: null,
        output_tokens: 1,
      }),
    ).toMatchObject({ inputTokens: 3, cachedInputTokens: 9000, cacheWriteTokens: 0 });
  });

  it("reads bare input_tokens / output_tokens the same for both providers", () => {
    expect(normalizeUsage({ input_tokens: 7, output_tokens: 9 })).toMatchObject({
      format: "input-output",
      inputTokens: 7,
      outputTokens: 9,
      totalTokens: 16,
    });
  });

  it("accepts its own output and hand-built disjoint counts", () => {
    const once = normalizeUsage({
      prompt_tokens: 100,
      completion_tokens: 50,
      prompt_tokens_details: { cached_tokens: 40 },
    });
    expect(normalizeUsage(once)).toEqual(once);
    expect(normalizeUsage({ format: "tokens", inputTokens: 5, outputTokens: 6 })).toEqual({
      format: "tokens",
      inputTokens: 5,
      cachedInputTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 6,
      reasoningTokens: 0,
      totalTokens: 11,
    });
  });

  it("refuses what is not a usage object", () => {
    for (const bad of [null, undefined, [], "usage", 42])
      expect(usageError(bad).field).toBe("usage");
    expect(usageError({}).message).toContain("none of the token counts");
    // The AI SDK's camelCase usage has no disjoint meaning: refused, not guessed.
    expect(usageError({ inputTokens: 10, outputTokens: 5, cachedInputTokens: 4 }).field).toBe(
      "usage",
    );
  });

  it("refuses counts that are negative, fractional, too large or not numbers, naming the field", () => {
    expect(usageError({ prompt_tokens: -1, completion_tokens: 0 }).field).toBe(
      "usage.prompt_tokens",
    );
    expect(usageError({ prompt_tokens: 1.5, completion_tokens: 0 }).message).toContain(
      "whole number",
    );
    expect(usageError({ prompt_tokens: "10", completion_tokens: 0 }).field).toBe(
      "usage.prompt_tokens",
    );
    expect(usageError({ prompt_tokens: 10 }).message).toContain(
      "usage.completion_tokens is required",
    );
    const tooBig = usageError({ input_tokens: 1e11, output_tokens: 0 });
    expect(tooBig.limit).toBe(10_000_000_000);
    expect(
      usageError({ input_tokens: 1, output_tokens: 1, cache_read_input_tokens: -3 }).field,
    ).toBe("usage.cache_read_input_tokens");
    expect(
      usageError({ prompt_tokens: 1, completion_tokens: 1, prompt_tokens_details: 5 }).field,
    ).toBe("usage.prompt_tokens_details");
  });

  it("refuses cached or reasoning counts larger than the OpenAI totals that include them", () => {
    expect(
      usageError({
        prompt_tokens: 10,
        completion_tokens: 1,
        prompt_tokens_details: { cached_tokens: 11 },
      }).field,
    ).toBe("usage.prompt_tokens_details.cached_tokens");
    expect(
      usageError({
        input_tokens: 10,
        output_tokens: 1,
        output_tokens_details: { reasoning_tokens: 2 },
      }).field,
    ).toBe("usage.output_tokens_details.reasoning_tokens");
  });

  it("refuses shapes that mix providers, where cached tokens could be counted twice", () => {
    expect(
      usageError({ prompt_tokens: 1, completion_tokens: 1, input_tokens: 1 }).message,
    ).toContain("mixes");
    expect(
      usageError({
        input_tokens: 10,
        output_tokens: 1,
        input_tokens_details: { cached_tokens: 5 },
        cache_read_input_tokens: 5,
      }).message,
    ).toContain("mixes");
  });

  it("refuses hand-built counts with a wrong total or an unknown field", () => {
    expect(
      usageError({ format: "tokens", inputTokens: 1, outputTokens: 1, totalTokens: 3 }).field,
    ).toBe("usage.totalTokens");
    expect(usageError({ format: "tokens", inputTokens: 1, outputTokens: 1, cached: 1 }).field).toBe(
      "usage.cached",
    );
    expect(usageError({ format: "gemini", inputTokens: 1, outputTokens: 1 }).field).toBe(
      "usage.format",
    );
  });
});
