import {
  CORE_ERROR_CODES,
  type ConfigError,
  GovernanceError,
  type InvalidArgumentError,
} from "@gov/core";
import { thrown } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { COST_ERROR_CODES, InvalidPriceError, UnknownModelError } from "./errors";
import { PriceTable, priceUsage } from "./price-table";
import bundled from "./prices.json" with { type: "json" };

function priceError(fn: () => unknown): InvalidPriceError {
  const error = thrown(fn);
  expect(InvalidPriceError.isInstance(error)).toBe(true);
  return error as InvalidPriceError;
}

function argumentError(fn: () => unknown): InvalidArgumentError {
  const error = thrown(fn);
  expect(GovernanceError.isInstance(error)).toBe(true);
  expect((error as GovernanceError).code).toBe(CORE_ERROR_CODES.INVALID_ARGUMENT);
  return error as InvalidArgumentError;
}

function configError(fn: () => unknown): ConfigError {
  const error = thrown(fn);
  expect(GovernanceError.isInstance(error)).toBe(true);
  expect((error as GovernanceError).code).toBe(CORE_ERROR_CODES.CONFIG_INVALID);
  return error as ConfigError;
}

const prices = new PriceTable();
const matchOf = (model: string) => prices.lookup(model)?.price.model ?? null;

describe("PriceTable lookup", () => {
  it("finds exact ids, in any case", () => {
    expect(prices.lookup("gpt-4o")).toMatchObject({ match: "exact", price: { model: "gpt-4o" } });
    expect(matchOf("GPT-4o-Mini")).toBe("gpt-4o-mini");
    expect(matchOf("claude-sonnet-4-6")).toBe("claude-sonnet-4-6");
  });

  it("resolves dated and versioned ids to their base entry (longest prefix)", () => {
    expect(prices.lookup("gpt-4o-2024-08-06")).toMatchObject({
      match: "prefix",
      price: { model: "gpt-4o" },
    });
    expect(matchOf("gpt-4o-2024-11-20")).toBe("gpt-4o");
    expect(matchOf("gpt-4o-mini-2024-07-18")).toBe("gpt-4o-mini");
    expect(matchOf("claude-3-5-sonnet-20241022")).toBe("claude-3-5-sonnet");
    expect(matchOf("claude-3-5-sonnet-latest")).toBe("claude-3-5-sonnet");
    expect(matchOf("claude-sonnet-4-6-20260401")).toBe("claude-sonnet-4-6");
    expect(matchOf("claude-opus-4-1-20250805")).toBe("claude-opus-4-1");
    expect(matchOf("claude-opus-4-20250514")).toBe("claude-opus-4");
    expect(matchOf("claude-haiku-4-5-20251001")).toBe("claude-haiku-4-5");
    expect(matchOf("gpt-4.1-mini-2025-04-14")).toBe("gpt-4.1-mini");
    expect(matchOf("o3-2025-04-16")).toBe("o3");
    expect(matchOf("gpt-5-2025-08-07")).toBe("gpt-5");
    expect(matchOf("gemini-2.0-flash-001")).toBe("gemini-2.0-flash");
    expect(matchOf("mistral-large-2411")).toBe("mistral-large");
    expect(matchOf("mistral-small-latest")).toBe("mistral-small");
    expect(matchOf("claude-3-5-sonnet-v2@20241022")).toBe("claude-3-5-sonnet");
  });

  it("prices the first gpt-4o snapshot at its own (launch) price, not gpt-4o's", () => {
    expect(prices.lookup("gpt-4o-2024-05-13")).toMatchObject({
      match: "exact",
      price: { inputUsdPerMillion: "5", outputUsdPerMillion: "15", cachedInputUsdPerMillion: null },
    });
  });

  // Regression: a different model must never be priced as the shorter model whose id it extends.
  it("never prices gpt-4o-mini (or other variants) as gpt-4o", () => {
    const table = new PriceTable({ defaults: false });
    table.set("gpt-4o", { inputUsdPerMillion: 2.5, outputUsdPerMillion: 10 });
    expect(table.lookup("gpt-4o-mini")).toBeNull();
    expect(table.lookup("gpt-4o-mini-2024-07-18")).toBeNull();
    expect(table.lookup("gpt-4o-audio-preview")).toBeNull();
    expect(table.lookup("gpt-4o2")).toBeNull();
    expect(table.lookup("gpt-4o-2024-08-06")?.price.model).toBe("gpt-4o");
    expect(prices.lookup("gpt-5-codex")).toBeNull();
    expect(prices.lookup("o3-deep-research")).toBeNull();
    expect(prices.lookup("gemini-2.5-flash-image")).toBeNull();
    // A minor version is a different model: claude-opus-4-8 is not claude-opus-4.
    expect(prices.lookup("claude-opus-4-8")).toBeNull();
    expect(prices.lookup("gpt-4")).toBeNull();
  });

  it("resolves provider-prefixed ids by the part after the last slash", () => {
    expect(prices.lookup("openai/gpt-4o")).toMatchObject({
      match: "exact",
      price: { model: "gpt-4o" },
    });
    expect(matchOf("openai/gpt-4o-mini")).toBe("gpt-4o-mini");
    expect(matchOf("anthropic/claude-3-5-sonnet-20241022")).toBe("claude-3-5-sonnet");
    expect(matchOf("openrouter/anthropic/claude-sonnet-4-6")).toBe("claude-sonnet-4-6");
    expect(matchOf("meta-llama/Llama-3.3-70B-Instruct-Turbo")).toBe("llama-3.3-70b");
    expect(matchOf("groq/llama-3.1-8b-instant")).toBe("llama-3.1-8b");
    expect(prices.lookup("openai/")).toBeNull();
  });

  it("lets an entry for the prefixed id win over the bare id", () => {
    const table = new PriceTable();
    table.set("azure/gpt-4o", { inputUsdPerMillion: 2.75, outputUsdPerMillion: 11 });
    expect(table.lookup("azure/gpt-4o")?.price.inputUsdPerMillion).toBe("2.75");
    expect(table.lookup("azure/gpt-4o-2024-08-06")?.price.model).toBe("azure/gpt-4o");
    expect(table.lookup("openai/gpt-4o")?.price.model).toBe("gpt-4o");
  });

  it("refuses model ids that are not ids", () => {
    for (const bad of [42, null, "", " gpt-4o", "gpt 4o", "gpt-4o\n", "x".repeat(257)]) {
      expect(argumentError(() => prices.lookup(bad as string)).field).toBe("model");
    }
  });
});

describe("PriceTable set and override", () => {
  it("adds a price, validated and stored exactly", () => {
    const table = new PriceTable({ defaults: false });
    expect(table.size).toBe(0);
    const price = table.set("Acme-1", {
      inputUsdPerMillion: "0.1",
      outputUsdPerMillion: 0.4,
      cachedInputUsdPerMillion: 0.025,
      aliases: ["acme-one"],
      source: "https://acme.example/pricing",
      asOf: "2026-01-01",
    });
    expect(price).toMatchObject({
      model: "acme-1",
      inputUsdPerMillion: "0.1",
      outputUsdPerMillion: "0.4",
      cachedInputUsdPerMillion: "0.025",
      cacheWriteUsdPerMillion: null,
      reasoningUsdPerMillion: null,
    });
    expect(table.lookup("ACME-ONE")?.price.model).toBe("acme-1");
    expect(table.list().map((entry) => entry.model)).toEqual(["acme-1"]);
  });

  it("replaces a price, and drops the aliases of the replaced entry", () => {
    const table = new PriceTable({ defaults: false });
    table.set("m", { inputUsdPerMillion: 1, outputUsdPerMillion: 2, aliases: ["m-old"] });
    table.set("m", { inputUsdPerMillion: 3, outputUsdPerMillion: 4 });
    expect(table.lookup("m")?.price.inputUsdPerMillion).toBe("3");
    expect(table.lookup("m-old")).toBeNull();
  });

  it("overrides some rates of a base entry, which every snapshot then uses", () => {
    const table = new PriceTable();
    table.override("gpt-4o", { outputUsdPerMillion: "12" });
    expect(table.lookup("gpt-4o-2024-08-06")?.price).toMatchObject({
      model: "gpt-4o",
      inputUsdPerMillion: "2.5",
      cachedInputUsdPerMillion: "1.25",
      outputUsdPerMillion: "12",
    });
    expect(prices.lookup("gpt-4o")?.price.outputUsdPerMillion).toBe("10"); // other tables unchanged
  });

  it("overriding a snapshot adds an exact entry for it only", () => {
    const table = new PriceTable();
    table.override("gpt-4o-2024-08-06", { inputUsdPerMillion: 2 });
    expect(table.lookup("gpt-4o-2024-08-06")).toMatchObject({
      match: "exact",
      price: { model: "gpt-4o-2024-08-06", inputUsdPerMillion: "2", outputUsdPerMillion: "10" },
    });
    expect(table.lookup("gpt-4o")?.price.inputUsdPerMillion).toBe("2.5");
  });

  it("refuses to override a model that has no price", () => {
    const error = thrown(() => new PriceTable().override("acme-9", { inputUsdPerMillion: 1 }));
    expect(UnknownModelError.isInstance(error)).toBe(true);
  });

  it("refuses bad prices, naming field, limit and fix, and changes nothing", () => {
    const table = new PriceTable({ defaults: false });
    table.set("keep", { inputUsdPerMillion: 1, outputUsdPerMillion: 2 });
    const cases: [unknown, string][] = [
      [null, "price"],
      [[], "price"],
      [{ outputUsdPerMillion: 1 }, "inputUsdPerMillion"],
      [{ inputUsdPerMillion: -1, outputUsdPerMillion: 1 }, "inputUsdPerMillion"],
      [{ inputUsdPerMillion: Number.NaN, outputUsdPerMillion: 1 }, "inputUsdPerMillion"],
      [
        { inputUsdPerMillion: 1, outputUsdPerMillion: Number.POSITIVE_INFINITY },
        "outputUsdPerMillion",
      ],
      [{ inputUsdPerMillion: "cheap", outputUsdPerMillion: 1 }, "inputUsdPerMillion"],
      [{ inputUsdPerMillion: true, outputUsdPerMillion: 1 }, "inputUsdPerMillion"],
      [{ inputUsdPerMillion: "0.0000000001", outputUsdPerMillion: 1 }, "inputUsdPerMillion"],
      [
        { inputUsdPerMillion: 1, outputUsdPerMillion: 1, reasoningUsdPerMillion: -2 },
        "reasoningUsdPerMillion",
      ],
      [{ inputUsdPerMillion: 1, outputUsdPerMillion: 1, input: 1 }, "input"],
      [{ inputUsdPerMillion: 1, outputUsdPerMillion: 1, aliases: ["ok", "not ok"] }, "aliases[1]"],
      [{ inputUsdPerMillion: 1, outputUsdPerMillion: 1, aliases: "m2" }, "aliases"],
    ];
    for (const [input, field] of cases) {
      const error = priceError(() => table.set("keep", input as never));
      expect(error.field).toBe(field);
      expect(error.code).toBe(COST_ERROR_CODES.PRICE_INVALID);
      expect(error.recoveryHint).toContain("inputUsdPerMillion");
    }
    const tooBig = priceError(() =>
      table.set("keep", { inputUsdPerMillion: 100_001, outputUsdPerMillion: 1 }),
    );
    expect(tooBig.limit).toBe(100_000);
    expect(tooBig.message).toContain("the limit is 100000");
    priceError(() => table.override("keep", { inputUsdPerMillion: -5 }));
    priceError(() => table.override("keep", null as never));
    expect(table.lookup("keep")?.price).toMatchObject({
      inputUsdPerMillion: "1",
      outputUsdPerMillion: "2",
    });
    expect(table.size).toBe(1);
    expect(
      argumentError(() => table.set(7 as never, { inputUsdPerMillion: 1, outputUsdPerMillion: 1 }))
        .field,
    ).toBe("model");
  });

  it("refuses bad constructor options", () => {
    argumentError(() => new PriceTable(null as never));
    expect(argumentError(() => new PriceTable({ defaults: "yes" } as never)).field).toBe(
      "options.defaults",
    );
    expect(argumentError(() => new PriceTable({ default: false } as never)).field).toBe(
      "options.default",
    );
  });
});

/** A small sample in the exact format of LiteLLM's model_prices_and_context_window.json. */
const LITELLM_SAMPLE = {
  sample_spec: {
    input_cost_per_token: 0.0,
    litellm_provider: "one of https://docs.litellm.ai/docs/providers",
    max_tokens: "LEGACY parameter.",
    mode: "one of: chat, embedding, completion, image_generation, …",
    output_cost_per_token: 0.0,
  },
  "gpt-4o": {
    cache_read_input_token_cost: 1.25e-6,
    input_cost_per_token: 2.5e-6,
    litellm_provider: "openai",
    max_input_tokens: 128000,
    mode: "chat",
    output_cost_per_token: 1e-5,
    supports_prompt_caching: true,
  },
  "acme-claude": {
    cache_creation_input_token_cost: 3.75e-6,
    cache_read_input_token_cost: 3e-7,
    input_cost_per_token: 3e-6,
    input_cost_per_token_above_200k_tokens: 6e-6,
    litellm_provider: "anthropic",
    mode: "chat",
    output_cost_per_token: 1.5e-5,
  },
  "gemini/acme-thinker": {
    input_cost_per_token: 1.5e-7,
    litellm_provider: "gemini",
    mode: "chat",
    output_cost_per_reasoning_token: 3.5e-6,
    output_cost_per_token: 6e-7,
  },
  "acme-completion": { input_cost_per_token: 1.6666667e-7, output_cost_per_token: 2e-7 },
  "text-embedding-3-small": {
    input_cost_per_token: 2e-8,
    litellm_provider: "openai",
    mode: "embedding",
    output_cost_per_token: 0.0,
  },
  "1024-x-1024/dall-e-2": {
    input_cost_per_pixel: 1.9e-8,
    litellm_provider: "openai",
    mode: "image_generation",
  },
  "broken-negative": { input_cost_per_token: -1e-6, output_cost_per_token: 1e-6, mode: "chat" },
  "broken-string": { input_cost_per_token: "0.000001", output_cost_per_token: 1e-6, mode: "chat" },
  "broken-no-output": { input_cost_per_token: 1e-6, mode: "chat" },
  "broken-cache": {
    cache_read_input_token_cost: "cheap",
    input_cost_per_token: 1e-6,
    mode: "chat",
    output_cost_per_token: 2e-6,
  },
  "broken-precision": { input_cost_per_token: 1.2345678901234568e-7, output_cost_per_token: 1e-6 },
  "broken-huge": { input_cost_per_token: 0.5, output_cost_per_token: 1e-6 },
  "broken-not-an-object": 5,
  "broken id": { input_cost_per_token: 1e-6, output_cost_per_token: 1e-6 },
};

describe("PriceTable importLiteLLM", () => {
  it("imports chat entries exactly, ignores non-chat ones, and reports bad ones", () => {
    const table = new PriceTable({ defaults: false });
    const result = table.importLiteLLM(JSON.stringify(LITELLM_SAMPLE));
    expect(result.imported).toEqual([
      "gpt-4o",
      "acme-claude",
      "gemini/acme-thinker",
      "acme-completion",
    ]);
    expect(result.ignored.map((entry) => entry.model)).toEqual([
      "sample_spec",
      "text-embedding-3-small",
      "1024-x-1024/dall-e-2",
    ]);
    expect(Object.fromEntries(result.skipped.map((entry) => [entry.model, entry.reason]))).toEqual({
      "broken-negative": expect.stringContaining("input_cost_per_token must not be negative"),
      "broken-string": expect.stringContaining("input_cost_per_token must be a number"),
      "broken-no-output": expect.stringContaining("no output_cost_per_token"),
      "broken-cache": expect.stringContaining("cache_read_input_token_cost must be a number"),
      "broken-precision": expect.stringContaining("decimal places"),
      "broken-huge": expect.stringContaining("the limit is 100000"),
      "broken-not-an-object": expect.stringContaining("must be an object"),
      "broken id": expect.stringContaining("whitespace"),
    });
    // Per token → per million, exactly: 3.75e-6 USD/token = 3.75 USD/M.
    expect(table.lookup("acme-claude")?.price).toMatchObject({
      inputUsdPerMillion: "3",
      outputUsdPerMillion: "15",
      cachedInputUsdPerMillion: "0.3",
      cacheWriteUsdPerMillion: "3.75",
      reasoningUsdPerMillion: null,
      provider: "anthropic",
    });
    expect(table.lookup("gemini/acme-thinker")?.price.reasoningUsdPerMillion).toBe("3.5");
    expect(table.lookup("acme-completion")?.price.inputUsdPerMillion).toBe("0.16666667");
    // Never half-imported: an entry with one bad rate is not in the table at all.
    for (const model of [
      "broken-cache",
      "broken-negative",
      "broken-no-output",
      "text-embedding-3-small",
    ]) {
      expect(table.lookup(model)).toBeNull();
    }
    expect(table.size).toBe(4);
  });

  it("replaces existing prices by default, and keeps them with overwrite: false", () => {
    const update = {
      "gpt-4o": { input_cost_per_token: 2e-6, output_cost_per_token: 8e-6, mode: "chat" },
    };
    const kept = new PriceTable();
    const result = kept.importLiteLLM(update, { overwrite: false });
    expect(result.imported).toEqual([]);
    expect(result.ignored[0]?.reason).toContain("overwrite is false");
    expect(kept.lookup("gpt-4o")?.price.inputUsdPerMillion).toBe("2.5");
    const replaced = new PriceTable();
    replaced.importLiteLLM(update);
    expect(replaced.lookup("gpt-4o-2024-08-06")?.price).toMatchObject({
      inputUsdPerMillion: "2",
      cachedInputUsdPerMillion: null,
      source: "LiteLLM model_prices_and_context_window.json",
    });
  });

  it("refuses input that is not a LiteLLM price file, importing nothing", () => {
    const table = new PriceTable({ defaults: false });
    expect(priceError(() => table.importLiteLLM("{not json")).field).toBe("json");
    for (const bad of [null, [], 5, "[]", undefined]) priceError(() => table.importLiteLLM(bad));
    expect(argumentError(() => table.importLiteLLM({}, { overwrite: "no" } as never)).field).toBe(
      "options.overwrite",
    );
    expect(argumentError(() => table.importLiteLLM({}, { replace: true } as never)).field).toBe(
      "options.replace",
    );
    argumentError(() => table.importLiteLLM({}, null as never));
    expect(table.size).toBe(0);
  });
});

describe("priceUsage", () => {
  it("prices Anthropic cache writes, cache reads, input and output at their own rates", () => {
    // claude-sonnet-4-6: $3 input, $3.75 cache write, $0.30 cache read, $15 output per M.
    // input       1,200 × 3    / 1e6 = 0.0036
    // cache write 3,000 × 3.75 / 1e6 = 0.01125
    // cache read 20,000 × 0.30 / 1e6 = 0.006
    // output        850 × 15   / 1e6 = 0.01275
    // total = 0.0036 + 0.01125 + 0.006 + 0.01275 = 0.0336
    const cost = prices.priceUsage("claude-sonnet-4-6-20260401", {
      input_tokens: 1200,
      cache_creation_input_tokens: 3000,
      cache_read_input_tokens: 20_000,
      output_tokens: 850,
    });
    expect(cost).toMatchObject({
      model: "claude-sonnet-4-6-20260401",
      matched: "claude-sonnet-4-6",
      match: "prefix",
      inputUsd: 0.0036,
      cacheWriteUsd: 0.01125,
      cachedInputUsd: 0.006,
      outputUsd: 0.01275,
      reasoningUsd: 0,
      totalUsd: 0.0336,
    });
    expect(cost.exactUsd.total).toBe("0.0336");
  });

  it("prices OpenAI cached and reasoning tokens apart from the totals that include them", () => {
    // o4-mini: $1.10 input, $0.275 cached input, $4.40 output; reasoning has no own rate → $4.40.
    // input     (10,000 − 8,192) = 1,808 × 1.10  / 1e6 = 0.0019888
    // cached                       8,192 × 0.275 / 1e6 = 0.0022528
    // output     (3,000 − 2,048) =   952 × 4.40  / 1e6 = 0.0041888
    // reasoning                    2,048 × 4.40  / 1e6 = 0.0090112
    // total = 0.0174416
    const cost = prices.priceUsage("o4-mini-2025-04-16", {
      prompt_tokens: 10_000,
      completion_tokens: 3000,
      prompt_tokens_details: { cached_tokens: 8192 },
      completion_tokens_details: { reasoning_tokens: 2048 },
    });
    expect(cost.exactUsd).toEqual({
      input: "0.0019888",
      cachedInput: "0.0022528",
      cacheWrite: "0",
      output: "0.0041888",
      reasoning: "0.0090112",
      total: "0.0174416",
    });
    expect(cost.totalUsd).toBe(0.0174416);
    expect(cost.rates.reasoningUsdPerMillion).toBe("4.4");
  });

  it("prices the Responses shape the same way", () => {
    // gpt-5: $1.25 input, $0.125 cached, $10 output.
    // input 10,000 × 1.25 = 0.0125; cached 40,000 × 0.125 = 0.005;
    // output 200 × 10 = 0.002; reasoning 1,000 × 10 = 0.01 (all / 1e6); total 0.0295
    const cost = priceUsage("openai/gpt-5", {
      input_tokens: 50_000,
      input_tokens_details: { cached_tokens: 40_000 },
      output_tokens: 1200,
      output_tokens_details: { reasoning_tokens: 1000 },
    });
    expect(cost).toMatchObject({
      inputUsd: 0.0125,
      cachedInputUsd: 0.005,
      outputUsd: 0.002,
      reasoningUsd: 0.01,
    });
    expect(cost.exactUsd.total).toBe("0.0295");
  });

  it("uses a reasoning rate where one exists, and base rates where a rate is null", () => {
    const table = new PriceTable({ defaults: false });
    table.set("thinker", {
      inputUsdPerMillion: 1,
      outputUsdPerMillion: 4,
      reasoningUsdPerMillion: 8,
    });
    // input 1,000 × 1 = 0.001; cached 2,000 × 1 (no cached rate) = 0.002;
    // cache write 500 × 1 (no write rate) = 0.0005; output 500 × 4 = 0.002; reasoning 1,000 × 8 = 0.008
    // total 0.0135
    const cost = table.priceUsage("thinker", {
      format: "tokens",
      inputTokens: 1000,
      cachedInputTokens: 2000,
      cacheWriteTokens: 500,
      outputTokens: 500,
      reasoningTokens: 1000,
    });
    expect(cost).toMatchObject({
      inputUsd: 0.001,
      cachedInputUsd: 0.002,
      cacheWriteUsd: 0.0005,
      outputUsd: 0.002,
      reasoningUsd: 0.008,
      totalUsd: 0.0135,
    });
  });

  it("is exact where floating point is not", () => {
    // 3 calls' worth: 0.1 + 0.2 in floats is 0.30000000000000004; here each part is exact.
    const table = new PriceTable({ defaults: false });
    table.set("dime", { inputUsdPerMillion: "0.1", outputUsdPerMillion: "0.2" });
    const cost = table.priceUsage("dime", { input_tokens: 1_000_000, output_tokens: 1_000_000 });
    expect(cost.totalUsd).toBe(0.3);
    expect(cost.exactUsd.total).toBe("0.3");
    // One token of gpt-4o-mini input: 0.15 / 1e6 = 0.00000015.
    expect(
      prices.priceUsage("gpt-4o-mini", { prompt_tokens: 1, completion_tokens: 0 }).exactUsd.input,
    ).toBe("0.00000015");
  });

  it("throws UnknownModelError for an unknown model in strict mode (the default)", () => {
    for (const options of [
      undefined,
      {},
      { strict: true },
      { strict: true, fallbackUsdPerMillion: 5 },
    ]) {
      const error = thrown(() =>
        prices.priceUsage("gpt-9-turbo", { input_tokens: 1, output_tokens: 1 }, options),
      );
      expect(UnknownModelError.isInstance(error)).toBe(true);
      expect((error as UnknownModelError).code).toBe("UNKNOWN_MODEL");
      expect((error as UnknownModelError).model).toBe("gpt-9-turbo");
      expect((error as UnknownModelError).message).toContain('"gpt-9-turbo"');
      expect((error as UnknownModelError).recoveryHint).toContain("priceTable.set(");
    }
    expect(
      UnknownModelError.isInstance(
        thrown(() => priceUsage("gpt-4o-mini-pro", { input_tokens: 1, output_tokens: 1 })),
      ),
    ).toBe(true);
  });

  it("prices every token of an unknown model at the fallback rate in lax mode", () => {
    // 1,000 input + 200 cached + 800 output = 2,000 tokens × $15 / 1e6 = 0.03
    const cost = prices.priceUsage(
      "acme-unreleased",
      {
        prompt_tokens: 1200,
        completion_tokens: 800,
        prompt_tokens_details: { cached_tokens: 200 },
      },
      { strict: false, fallbackUsdPerMillion: 15 },
    );
    expect(cost).toMatchObject({
      matched: null,
      match: "fallback",
      totalUsd: 0.03,
      cachedInputUsd: 0.003,
    });
    // A known model is still priced at its own rate in lax mode.
    expect(
      prices.priceUsage(
        "gpt-4o",
        { prompt_tokens: 1_000_000, completion_tokens: 0 },
        { strict: false, fallbackUsdPerMillion: 15 },
      ),
    ).toMatchObject({ match: "exact", totalUsd: 2.5 });
  });

  it("refuses lax mode without a positive fallback: a configuration error", () => {
    const usage = { input_tokens: 1, output_tokens: 1 };
    for (const fallbackUsdPerMillion of [undefined, null, 0, "0"]) {
      const error = configError(() =>
        prices.priceUsage("gpt-4o", usage, { strict: false, fallbackUsdPerMillion }),
      );
      expect(error.issues[0]?.name).toBe("fallbackUsdPerMillion");
    }
    expect(
      configError(() =>
        prices.priceUsage("gpt-4o", usage, { strict: false, fallbackUsdPerMillion: -1 }),
      ).issues[0]?.name,
    ).toBe("fallbackUsdPerMillion");
    expect(
      configError(() => prices.priceUsage("gpt-4o", usage, { strict: "no" } as never)).issues[0]
        ?.name,
    ).toBe("strict");
    expect(
      configError(() => prices.priceUsage("gpt-4o", usage, { fallback: 1 } as never)).issues[0]
        ?.name,
    ).toBe("fallback");
    configError(() => prices.priceUsage("gpt-4o", usage, null as never));
    configError(() => priceUsage("gpt-4o", usage, 5 as never));
    configError(() => priceUsage("gpt-4o", usage, { strict: false }));
  });

  it("refuses a bad model id, bad usage and a bad table before pricing anything", () => {
    argumentError(() => prices.priceUsage("", { input_tokens: 1, output_tokens: 1 }));
    expect(thrown(() => prices.priceUsage("gpt-4o", { tokens: 5 } as never))).toMatchObject({
      code: "USAGE_INVALID",
    });
    expect(
      argumentError(() =>
        priceUsage("gpt-4o", { input_tokens: 1, output_tokens: 1 }, { table: {} as never }),
      ).field,
    ).toBe("options.table");
  });
});

describe("the bundled price list", () => {
  const providers = (
    bundled as unknown as { providers: { provider: string; source: string; asOf: string }[] }
  ).providers;

  it("covers OpenAI, Anthropic, Google, Meta and Mistral, each with a source and a date", () => {
    expect(providers.map((group) => group.provider)).toEqual([
      "openai",
      "anthropic",
      "google",
      "meta",
      "mistral",
    ]);
    for (const group of providers) {
      expect(group.source.length).toBeGreaterThan(10);
      expect(group.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });

  it("prices the models the reference names", () => {
    for (const model of [
      "claude-opus-4-7",
      "claude-sonnet-4-6",
      "claude-haiku-4-5",
      "gpt-4o",
      "gpt-4o-mini",
    ]) {
      expect(prices.lookup(model)?.match).toBe("exact");
    }
  });

  it("has sane rates: positive, cached ≤ input, every entry reachable with a dated id", () => {
    for (const price of prices.list()) {
      const input = Number(price.inputUsdPerMillion);
      expect(input, price.model).toBeGreaterThan(0);
      expect(Number(price.outputUsdPerMillion), price.model).toBeGreaterThan(0);
      if (price.cachedInputUsdPerMillion !== null) {
        expect(Number(price.cachedInputUsdPerMillion), price.model).toBeLessThan(input);
      }
      if (price.cacheWriteUsdPerMillion !== null) {
        expect(Number(price.cacheWriteUsdPerMillion), price.model).toBeGreaterThan(input);
      }
      expect(prices.lookup(`${price.model}-20990101`)?.price.model).toBe(price.model);
    }
  });
});
