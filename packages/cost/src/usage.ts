import { typeOf } from "@gov/core";
import { z } from "zod";
import { InvalidUsageError } from "./errors";
import { COST_LIMITS, fieldName, valueAt } from "./models";

/** Which usage shape a {@link NormalizedUsage} was read from. */
export type UsageFormat =
  /** OpenAI Chat Completions: `prompt_tokens`, `completion_tokens`, `*_details`. */
  | "openai-chat"
  /** OpenAI Responses: `input_tokens`, `output_tokens`, `input_tokens_details`, `output_tokens_details`. */
  | "openai-responses"
  /** Anthropic Messages: `input_tokens`, `output_tokens`, `cache_creation_input_tokens`, `cache_read_input_tokens`. */
  | "anthropic"
  /** Only `input_tokens` and `output_tokens`: OpenAI Responses and Anthropic read the same. */
  | "input-output"
  /** Vercel AI SDK 4: `promptTokens`, `completionTokens`. */
  | "ai-sdk-v4"
  /** Vercel AI SDK 5: `inputTokens`, `outputTokens`, `cachedInputTokens`, `reasoningTokens`. */
  | "ai-sdk-v5"
  /** Vercel AI SDK 6: `inputTokens`, `inputTokenDetails`, `outputTokens`, `outputTokenDetails`. */
  | "ai-sdk-v6"
  /** LangChain's `usage_metadata`: `input_tokens`, `input_token_details`, `output_token_details`. */
  | "langchain"
  /** The OpenAI Agents SDK's `Usage`: `requests`, `inputTokens`, `inputTokensDetails`, … */
  | "openai-agents"
  /** Already normalized (the output of {@link normalizeUsage}, or built by hand). */
  | "tokens";

/**
 * Token counts split into **disjoint** parts, each billed at its own rate: no token is in
 * two parts, and `totalTokens` is their sum.
 */
export interface NormalizedUsage {
  /** The shape this was read from. */
  format: UsageFormat;
  /** Input tokens neither read from nor written to a cache (billed at the input rate). */
  inputTokens: number;
  /** Input tokens read from a prompt cache (the cached-input rate). */
  cachedInputTokens: number;
  /** Input tokens written to a prompt cache (the cache-write rate). */
  cacheWriteTokens: number;
  /** Output tokens that are not reasoning (the output rate). */
  outputTokens: number;
  /** Reasoning tokens (the reasoning rate, or the output rate where there is none). */
  reasoningTokens: number;
  /** The sum of the five parts. */
  totalTokens: number;
}

const USAGE_FORMATS = [
  "openai-chat",
  "openai-responses",
  "anthropic",
  "input-output",
  "ai-sdk-v4",
  "ai-sdk-v5",
  "ai-sdk-v6",
  "langchain",
  "openai-agents",
  "tokens",
] as const satisfies readonly UsageFormat[];

/** A token count as the libraries type it: a count, or nothing reported. */
type Count = number | null | undefined;

/**
 * OpenAI Chat Completions `usage`. `prompt_tokens` **includes** the cached tokens and
 * `completion_tokens` **includes** the reasoning tokens.
 */
export interface OpenAIChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: Count;
  prompt_tokens_details?: { cached_tokens?: Count; readonly [field: string]: unknown } | null;
  completion_tokens_details?: {
    reasoning_tokens?: Count;
    readonly [field: string]: unknown;
  } | null;
  readonly [field: string]: unknown;
}

/**
 * OpenAI Responses `usage`. `input_tokens` **includes** the cached tokens and
 * `output_tokens` **includes** the reasoning tokens.
 */
export interface OpenAIResponsesUsage {
  input_tokens: number;
  output_tokens: number;
  total_tokens?: Count;
  input_tokens_details?: { cached_tokens?: Count; readonly [field: string]: unknown } | null;
  output_tokens_details?: { reasoning_tokens?: Count; readonly [field: string]: unknown } | null;
  readonly [field: string]: unknown;
}

/**
 * Anthropic Messages `usage`. `input_tokens` **excludes** cache reads and cache writes,
 * which are reported beside it.
 */
export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: Count;
  cache_read_input_tokens?: Count;
  /** The thinking tokens, part of `output_tokens`. */
  output_tokens_details?: { thinking_tokens?: Count; readonly [field: string]: unknown } | null;
  readonly [field: string]: unknown;
}

/** Vercel AI SDK 4 `LanguageModelUsage`: no cache or reasoning counts (they are in provider metadata). */
export interface AiSdkV4Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens?: Count;
  readonly [field: string]: unknown;
}

/**
 * Vercel AI SDK 5 `LanguageModelUsage`. Whether `cachedInputTokens` is part of `inputTokens`
 * depends on the provider, and the shape cannot say: OpenAI's provider reports it as part
 * (`prompt_tokens`), Anthropic's beside it (`input_tokens` excludes cache reads). It is read
 * **beside** `inputTokens` (added), so that spend is never under-counted: with OpenAI's
 * provider, the cached tokens are then priced twice — at the input rate inside
 * `inputTokens`, and again at the cached-input rate: `cachedInputTokens` × the input rate
 * more than the bill. AI SDK 6's `inputTokenDetails` are exact. `reasoningTokens` is read as part of
 * `outputTokens` (OpenAI's providers report it so), unless larger than it. A missing
 * `inputTokens` or `outputTokens` is refused (unreported usage is not free).
 */
export interface AiSdkV5Usage {
  inputTokens: Count;
  outputTokens: Count;
  totalTokens?: Count;
  cachedInputTokens?: Count;
  reasoningTokens?: Count;
  readonly [field: string]: unknown;
}

/**
 * Vercel AI SDK 6 `LanguageModelUsage`. `inputTokens` is the total: it **includes**
 * `inputTokenDetails.cacheReadTokens` and `cacheWriteTokens` (and `noCacheTokens` is the
 * rest); `outputTokens` **includes** `outputTokenDetails.reasoningTokens`. The deprecated
 * `cachedInputTokens` / `reasoningTokens` beside them are ignored (the details say the same).
 * The details are exact: prefer AI SDK 6 where cached tokens matter. A missing `inputTokens`
 * (`outputTokens`) is read from `noCacheTokens` (`textTokens`) and the other details when
 * given, and refused otherwise.
 */
export interface AiSdkV6Usage {
  inputTokens: Count;
  inputTokenDetails: {
    noCacheTokens?: Count;
    cacheReadTokens?: Count;
    cacheWriteTokens?: Count;
    readonly [field: string]: unknown;
  };
  outputTokens: Count;
  outputTokenDetails: {
    textTokens?: Count;
    reasoningTokens?: Count;
    readonly [field: string]: unknown;
  };
  totalTokens?: Count;
  readonly [field: string]: unknown;
}

/**
 * LangChain's `usage_metadata` (`AIMessage.usage_metadata`). `input_tokens` is the sum of
 * every input token type: it **includes** `input_token_details.cache_read` and
 * `cache_creation` (and `audio`, priced as input); `output_tokens` **includes**
 * `output_token_details.reasoning` (and `audio`, priced as output).
 */
export interface LangChainUsageMetadata {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  input_token_details?: {
    cache_read?: Count;
    cache_creation?: Count;
    audio?: Count;
    readonly [field: string]: unknown;
  };
  output_token_details?: { reasoning?: Count; audio?: Count; readonly [field: string]: unknown };
  readonly [field: string]: unknown;
}

/**
 * The OpenAI Agents SDK's `Usage` (`result.state.usage`, `RunContext.usage`): the sum over a
 * run's requests. `inputTokens` **includes** the `cached_tokens` of `inputTokensDetails` and
 * `outputTokens` **includes** the `reasoning_tokens` of `outputTokensDetails`; the details are
 * one record per request (or one record), and are summed.
 */
export interface OpenAIAgentsUsage {
  requests?: Count;
  inputTokens: number;
  outputTokens: number;
  totalTokens?: Count;
  inputTokensDetails?: TokenDetails | readonly TokenDetails[] | null;
  outputTokensDetails?: TokenDetails | readonly TokenDetails[] | null;
  readonly [field: string]: unknown;
}

/** One record of token details of the OpenAI Agents SDK (`{ cached_tokens }`, `{ reasoning_tokens }`). */
export type TokenDetails = Readonly<Record<string, number>>;

/** Already normalized, or built by hand: five disjoint counts (`totalTokens` is their sum). */
export interface NormalizedUsageInput {
  format: UsageFormat;
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
  cacheWriteTokens?: number;
  reasoningTokens?: number;
  totalTokens?: number;
}

/**
 * Every usage object `trackUsage`, `reconcile` and `priceUsage` read, as the libraries return
 * them: OpenAI (Chat Completions, Responses), Anthropic, the Vercel AI SDK (4, 5, 6),
 * LangChain's `usage_metadata` and the OpenAI Agents SDK's `Usage`; or normalized counts.
 */
export type ProviderUsage =
  | OpenAIChatUsage
  | OpenAIResponsesUsage
  | AnthropicUsage
  | AiSdkV4Usage
  | AiSdkV5Usage
  | AiSdkV6Usage
  | LangChainUsageMetadata
  | OpenAIAgentsUsage
  | NormalizedUsageInput;

const count = z
  .number({ error: (issue) => `must be a whole number of tokens, got ${typeOf(issue.input)}.` })
  .int({ error: (issue) => `must be a whole number of tokens, got ${String(issue.input)}.` })
  .min(0, { error: (issue) => `must not be negative, got ${String(issue.input)}.` })
  .max(COST_LIMITS.tokens, {
    error: (issue) => `is ${String(issue.input)}; the limit is ${COST_LIMITS.tokens} tokens.`,
  });

/** A count a provider may leave out or send as null: read as 0. */
const optionalCount = count.nullish().transform((value) => value ?? 0);

function details<K extends string>(key: K) {
  return z
    .looseObject({ [key]: optionalCount } as Record<K, typeof optionalCount>, {
      error: (issue) => `must be an object, got ${typeOf(issue.input)}.`,
    })
    .nullish();
}

const openAiChatSchema = z.looseObject({
  prompt_tokens: count,
  completion_tokens: count,
  prompt_tokens_details: details("cached_tokens"),
  completion_tokens_details: details("reasoning_tokens"),
});

const openAiResponsesSchema = z.looseObject({
  input_tokens: count,
  output_tokens: count,
  input_tokens_details: details("cached_tokens"),
  output_tokens_details: details("reasoning_tokens"),
});

const anthropicSchema = z.looseObject({
  input_tokens: count,
  output_tokens: count,
  cache_creation_input_tokens: optionalCount,
  cache_read_input_tokens: optionalCount,
  output_tokens_details: details("thinking_tokens"),
});

const aiSdkV4Schema = z.looseObject({ promptTokens: count, completionTokens: count });

const aiSdkV5Schema = z.looseObject({
  inputTokens: count.nullish(),
  outputTokens: count.nullish(),
  cachedInputTokens: optionalCount,
  reasoningTokens: optionalCount,
});

const objectOf = <T extends z.ZodRawShape>(shape: T) =>
  z.looseObject(shape, { error: (issue) => `must be an object, got ${typeOf(issue.input)}.` });

const aiSdkV6Schema = z.looseObject({
  inputTokens: count.nullish(),
  inputTokenDetails: objectOf({
    noCacheTokens: count.nullish(),
    cacheReadTokens: optionalCount,
    cacheWriteTokens: optionalCount,
  }),
  outputTokens: count.nullish(),
  outputTokenDetails: objectOf({ textTokens: count.nullish(), reasoningTokens: optionalCount }),
});

const langChainSchema = z.looseObject({
  input_tokens: count,
  output_tokens: count,
  input_token_details: objectOf({
    cache_read: optionalCount,
    cache_creation: optionalCount,
  }).nullish(),
  output_token_details: objectOf({ reasoning: optionalCount }).nullish(),
});

function agentDetails<K extends string>(key: K) {
  const record = objectOf({ [key]: optionalCount } as Record<K, typeof optionalCount>);
  return z
    .union([record, z.array(record)], {
      error: (issue) => `must be an object or an array of objects, got ${typeOf(issue.input)}.`,
    })
    .nullish()
    .transform((value) =>
      value == null
        ? 0
        : (Array.isArray(value) ? value : [value]).reduce(
            (sum, entry) => sum + (entry[key] as number),
            0,
          ),
    );
}

const openAiAgentsSchema = z.looseObject({
  inputTokens: count,
  outputTokens: count,
  inputTokensDetails: agentDetails("cached_tokens"),
  outputTokensDetails: agentDetails("reasoning_tokens"),
});

const normalizedSchema = z.strictObject({
  format: z.enum(USAGE_FORMATS, {
    error: (issue) => `must be one of the usage formats, got ${JSON.stringify(issue.input)}.`,
  }),
  inputTokens: count,
  cachedInputTokens: count.default(0),
  cacheWriteTokens: count.default(0),
  outputTokens: count,
  reasoningTokens: count.default(0),
  totalTokens: count.optional(),
});

const SHAPES =
  'Pass the usage object as the library returned it: OpenAI Chat Completions ({ prompt_tokens, completion_tokens, prompt_tokens_details, completion_tokens_details }), OpenAI Responses ({ input_tokens, output_tokens, input_tokens_details, output_tokens_details }), Anthropic ({ input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens }), the Vercel AI SDK (v4 { promptTokens, completionTokens }; v5 { inputTokens, outputTokens, cachedInputTokens, reasoningTokens }; v6 { inputTokens, inputTokenDetails, outputTokens, outputTokenDetails }), LangChain usage_metadata ({ input_tokens, output_tokens, total_tokens, input_token_details, output_token_details }) or the OpenAI Agents SDK Usage ({ requests, inputTokens, outputTokens, inputTokensDetails, outputTokensDetails }); or { format: "tokens", inputTokens, cachedInputTokens, cacheWriteTokens, outputTokens, reasoningTokens } with disjoint counts.';

function parse<T>(schema: z.ZodType<T>, usage: unknown): T {
  const result = schema.safeParse(usage);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new InvalidUsageError("usage", "is invalid.", SHAPES);
  if (issue.code === "unrecognized_keys") {
    throw new InvalidUsageError(
      fieldName("usage", [...issue.path, issue.keys[0] ?? ""]),
      "is not a field of normalized usage.",
      "Use only format, inputTokens, cachedInputTokens, cacheWriteTokens, outputTokens, reasoningTokens and totalTokens.",
    );
  }
  const limit = issue.code === "too_big" ? Number(issue.maximum) : undefined;
  const field = fieldName("usage", issue.path);
  const message =
    issue.code === "invalid_type" && valueAt(usage, issue.path) === undefined
      ? "is required."
      : issue.message;
  throw new InvalidUsageError(field, message, SHAPES, limit);
}

function subset(
  part: number,
  whole: number,
  partField: string,
  wholeField: string,
  wholeMeaning: string,
): void {
  if (part > whole) {
    throw new InvalidUsageError(
      `usage.${partField}`,
      `is ${part}, more than usage.${wholeField} (${whole}), which ${wholeMeaning}.`,
      "Pass the usage object exactly as the provider returned it; do not subtract or add counts yourself.",
    );
  }
}

function build(format: UsageFormat, parts: Omit<NormalizedUsage, "format" | "totalTokens">) {
  const totalTokens =
    parts.inputTokens +
    parts.cachedInputTokens +
    parts.cacheWriteTokens +
    parts.outputTokens +
    parts.reasoningTokens;
  return Object.freeze({ format, ...parts, totalTokens });
}

const has = (record: object, key: string) => Object.hasOwn(record, key);

/** A part (reasoning) that the library reports either inside its whole or beside it. */
function partOf(part: number, whole: number): { rest: number; part: number } {
  return part <= whole ? { rest: whole - part, part } : { rest: whole, part };
}

/**
 * The input and output totals, each reported (or given by its details): a missing one is
 * refused, since unreported usage must not count as free (0 tokens).
 */
function requireTotals(
  input: number | null | undefined,
  output: number | null | undefined,
  details: { input: string; output: string } | null,
): { input: number; output: number } {
  if (input != null && output != null) return { input, output };
  const fix =
    "Nothing was recorded, and the call's reservation (checkOrRaise) keeps holding its estimate until it is settled or expires. Pass the token counts you know instead (inputTokens, outputTokens), or reconcile a stream without usage with the chunks received.";
  if (input == null && output == null) {
    throw new InvalidUsageError(
      "usage",
      "has no token counts (inputTokens and outputTokens are both missing): the provider reported no usage.",
      fix,
    );
  }
  const [field, given] =
    input == null ? ["inputTokens", details?.input] : ["outputTokens", details?.output];
  throw new InvalidUsageError(
    `usage.${field}`,
    `is missing${given ? `, and ${given} does not give it` : ""}: the provider did not report it, and unreported tokens must not count as 0.`,
    fix,
  );
}

/**
 * Read a usage object into disjoint token counts, each billed once at its own rate. Whether a
 * library's cached (reasoning) count is a part of its input (output) total or reported beside
 * it differs by library; each is read as that library means it:
 *
 * | shape | cached / cache-write input | reasoning |
 * | --- | --- | --- |
 * | OpenAI Chat Completions, Responses | part of `prompt_tokens` / `input_tokens` (subtracted); no cache writes | part of `completion_tokens` / `output_tokens` |
 * | Anthropic | **beside** `input_tokens` (added) | not reported apart: billed as output |
 * | AI SDK 4 | not reported (provider metadata) | not reported |
 * | AI SDK 5 | `cachedInputTokens`: **beside** `inputTokens` (added) — exact for Anthropic's provider; with OpenAI's, whose `inputTokens` includes them, the cached tokens are priced at the input rate and again at the cached-input rate (`cachedInputTokens` × the input rate over the bill); no cache writes (Anthropic's are only in `providerMetadata`) | `reasoningTokens`: part of `outputTokens`, unless larger than it (then added) |
 * | AI SDK 6 | `inputTokenDetails.cacheReadTokens` / `cacheWriteTokens`: part of `inputTokens` (exact, whatever the provider) | `outputTokenDetails.reasoningTokens`: part of `outputTokens` |
 * | LangChain `usage_metadata` | `input_token_details.cache_read` / `cache_creation`: part of `input_tokens` | `output_token_details.reasoning`: part of `output_tokens` |
 * | OpenAI Agents SDK `Usage` | `cached_tokens` of `inputTokensDetails` (summed): part of `inputTokens`; no cache writes | `reasoning_tokens` of `outputTokensDetails`: part of `outputTokens` |
 *
 * Missing or `null` detail counts read as 0; other fields are ignored. A usage object of
 * the AI SDK whose `inputTokens` or `outputTokens` is missing is refused (unreported usage is
 * not free), unless AI SDK 6's details give it. AI SDK 5 cannot say whether its cached tokens
 * are part of `inputTokens`, so budgets fail closed: they are added (see the table).
 *
 * @example
 * ```ts
 * normalizeUsage({ prompt_tokens: 1000, completion_tokens: 500,
 *   prompt_tokens_details: { cached_tokens: 600 }, completion_tokens_details: { reasoning_tokens: 200 } });
 * // { format: "openai-chat", inputTokens: 400, cachedInputTokens: 600, cacheWriteTokens: 0,
 * //   outputTokens: 300, reasoningTokens: 200, totalTokens: 1500 }
 * ```
 * @throws {InvalidUsageError} for a shape it cannot read, a negative or fractional count, or
 *   a part (cached, reasoning) larger than the count that includes it.
 */
export function normalizeUsage(usage: ProviderUsage): NormalizedUsage {
  if (typeof usage !== "object" || usage === null || Array.isArray(usage)) {
    throw new InvalidUsageError("usage", `must be an object, got ${typeOf(usage)}.`, SHAPES);
  }
  const openAiChat = has(usage, "prompt_tokens") || has(usage, "completion_tokens");
  const inputOutput = has(usage, "input_tokens") || has(usage, "output_tokens");
  // Anthropic reports its thinking tokens as output_tokens_details.thinking_tokens; the
  // Responses API its reasoning tokens as output_tokens_details.reasoning_tokens.
  const outputDetails = (usage as { output_tokens_details?: unknown }).output_tokens_details;
  const thinking =
    typeof outputDetails === "object" &&
    outputDetails !== null &&
    has(outputDetails, "thinking_tokens");
  const anthropic =
    has(usage, "cache_creation_input_tokens") ||
    has(usage, "cache_read_input_tokens") ||
    has(usage, "cache_creation") ||
    thinking;
  const responses =
    has(usage, "input_tokens_details") || (has(usage, "output_tokens_details") && !anthropic);
  const langChain = has(usage, "input_token_details") || has(usage, "output_token_details");
  const normalized = has(usage, "format");
  const aiSdkV4 = has(usage, "promptTokens") || has(usage, "completionTokens");
  const aiSdkV6 = has(usage, "inputTokenDetails") || has(usage, "outputTokenDetails");
  const agents =
    has(usage, "inputTokensDetails") || has(usage, "outputTokensDetails") || has(usage, "requests");
  const camel = has(usage, "inputTokens") || has(usage, "outputTokens");
  const snakeCase = openAiChat || inputOutput;
  const camelCase = aiSdkV4 || aiSdkV6 || agents || camel;

  if (
    [openAiChat, inputOutput, normalized].filter(Boolean).length > 1 ||
    [responses, anthropic, langChain].filter(Boolean).length > 1 ||
    (snakeCase && camelCase) ||
    (aiSdkV4 && (aiSdkV6 || agents || camel)) ||
    (aiSdkV6 && agents)
  ) {
    throw new InvalidUsageError(
      "usage",
      "mixes the fields of several usage shapes, so it cannot be read without guessing whether cached tokens are included.",
      SHAPES,
    );
  }
  if (normalized) {
    const data = parse(normalizedSchema, usage);
    const built = build("tokens", data);
    if (data.totalTokens !== undefined && data.totalTokens !== built.totalTokens) {
      throw new InvalidUsageError(
        "usage.totalTokens",
        `is ${data.totalTokens}, but the parts add up to ${built.totalTokens}.`,
        "The five counts are disjoint: totalTokens must be their sum (or leave it out).",
      );
    }
    return Object.freeze({ ...built, format: data.format });
  }
  if (openAiChat) {
    const data = parse(openAiChatSchema, usage);
    const cached = data.prompt_tokens_details?.cached_tokens ?? 0;
    const reasoning = data.completion_tokens_details?.reasoning_tokens ?? 0;
    subset(
      cached,
      data.prompt_tokens,
      "prompt_tokens_details.cached_tokens",
      "prompt_tokens",
      "includes the cached tokens",
    );
    subset(
      reasoning,
      data.completion_tokens,
      "completion_tokens_details.reasoning_tokens",
      "completion_tokens",
      "includes the reasoning tokens",
    );
    return build("openai-chat", {
      inputTokens: data.prompt_tokens - cached,
      cachedInputTokens: cached,
      cacheWriteTokens: 0,
      outputTokens: data.completion_tokens - reasoning,
      reasoningTokens: reasoning,
    });
  }
  if (inputOutput && responses) {
    const data = parse(openAiResponsesSchema, usage);
    const cached = data.input_tokens_details?.cached_tokens ?? 0;
    const reasoning = data.output_tokens_details?.reasoning_tokens ?? 0;
    subset(
      cached,
      data.input_tokens,
      "input_tokens_details.cached_tokens",
      "input_tokens",
      "includes the cached tokens in the OpenAI Responses shape",
    );
    subset(
      reasoning,
      data.output_tokens,
      "output_tokens_details.reasoning_tokens",
      "output_tokens",
      "includes the reasoning tokens",
    );
    return build("openai-responses", {
      inputTokens: data.input_tokens - cached,
      cachedInputTokens: cached,
      cacheWriteTokens: 0,
      outputTokens: data.output_tokens - reasoning,
      reasoningTokens: reasoning,
    });
  }
  if (inputOutput && langChain) {
    const data = parse(langChainSchema, usage);
    const read = data.input_token_details?.cache_read ?? 0;
    const write = data.input_token_details?.cache_creation ?? 0;
    const reasoning = data.output_token_details?.reasoning ?? 0;
    subset(
      read + write,
      data.input_tokens,
      "input_token_details.cache_read (with cache_creation)",
      "input_tokens",
      "includes the cache reads and writes in LangChain's usage_metadata",
    );
    subset(
      reasoning,
      data.output_tokens,
      "output_token_details.reasoning",
      "output_tokens",
      "includes the reasoning tokens",
    );
    return build("langchain", {
      inputTokens: data.input_tokens - read - write,
      cachedInputTokens: read,
      cacheWriteTokens: write,
      outputTokens: data.output_tokens - reasoning,
      reasoningTokens: reasoning,
    });
  }
  if (inputOutput) {
    const data = parse(anthropicSchema, usage);
    // Thinking tokens are part of output_tokens (billed at the output rate).
    const thinkingTokens = data.output_tokens_details?.thinking_tokens ?? 0;
    subset(
      thinkingTokens,
      data.output_tokens,
      "output_tokens_details.thinking_tokens",
      "output_tokens",
      "includes the thinking tokens",
    );
    return build(anthropic ? "anthropic" : "input-output", {
      inputTokens: data.input_tokens,
      cachedInputTokens: data.cache_read_input_tokens,
      cacheWriteTokens: data.cache_creation_input_tokens,
      outputTokens: data.output_tokens - thinkingTokens,
      reasoningTokens: thinkingTokens,
    });
  }
  if (aiSdkV4) {
    const data = parse(aiSdkV4Schema, usage);
    return build("ai-sdk-v4", {
      inputTokens: data.promptTokens,
      cachedInputTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: data.completionTokens,
      reasoningTokens: 0,
    });
  }
  if (agents) {
    const data = parse(openAiAgentsSchema, usage);
    subset(
      data.inputTokensDetails,
      data.inputTokens,
      "inputTokensDetails.cached_tokens",
      "inputTokens",
      "includes the cached tokens",
    );
    subset(
      data.outputTokensDetails,
      data.outputTokens,
      "outputTokensDetails.reasoning_tokens",
      "outputTokens",
      "includes the reasoning tokens",
    );
    return build("openai-agents", {
      inputTokens: data.inputTokens - data.inputTokensDetails,
      cachedInputTokens: data.inputTokensDetails,
      cacheWriteTokens: 0,
      outputTokens: data.outputTokens - data.outputTokensDetails,
      reasoningTokens: data.outputTokensDetails,
    });
  }
  if (aiSdkV6) {
    const data = parse(aiSdkV6Schema, usage);
    const {
      noCacheTokens,
      cacheReadTokens: read,
      cacheWriteTokens: write,
    } = data.inputTokenDetails;
    const { textTokens, reasoningTokens: reasoning } = data.outputTokenDetails;
    const { input, output } = requireTotals(
      data.inputTokens ?? (noCacheTokens == null ? null : noCacheTokens + read + write),
      data.outputTokens ?? (textTokens == null ? null : textTokens + reasoning),
      {
        input: "usage.inputTokenDetails.noCacheTokens",
        output: "usage.outputTokenDetails.textTokens",
      },
    );
    subset(
      read + write,
      input,
      "inputTokenDetails.cacheReadTokens (with cacheWriteTokens)",
      "inputTokens",
      "includes the cache reads and writes in AI SDK 6",
    );
    subset(
      reasoning,
      output,
      "outputTokenDetails.reasoningTokens",
      "outputTokens",
      "includes the reasoning tokens",
    );
    return build("ai-sdk-v6", {
      inputTokens: input - read - write,
      cachedInputTokens: read,
      cacheWriteTokens: write,
      outputTokens: output - reasoning,
      reasoningTokens: reasoning,
    });
  }
  if (camel) {
    const data = parse(aiSdkV5Schema, usage);
    const totals = requireTotals(data.inputTokens, data.outputTokens, null);
    const output = partOf(data.reasoningTokens, totals.output);
    // Beside, never part of: the shape cannot say which, and a budget must not under-count.
    return build("ai-sdk-v5", {
      inputTokens: totals.input,
      cachedInputTokens: data.cachedInputTokens,
      cacheWriteTokens: 0,
      outputTokens: output.rest,
      reasoningTokens: output.part,
    });
  }
  throw new InvalidUsageError(
    "usage",
    `has none of the token counts of a known usage shape (keys: ${Object.keys(usage).slice(0, 10).join(", ") || "none"}).`,
    SHAPES,
  );
}
