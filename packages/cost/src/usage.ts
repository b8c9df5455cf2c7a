import { z } from "zod";
import { InvalidUsageError } from "./errors";
import { COST_LIMITS, fieldName, typeOf, valueAt } from "./models";

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
});

const normalizedSchema = z.strictObject({
  format: z.enum(["openai-chat", "openai-responses", "anthropic", "input-output", "tokens"], {
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
  'Pass the usage object of the provider\'s response as it is: OpenAI Chat Completions ({ prompt_tokens, completion_tokens, prompt_tokens_details, completion_tokens_details }), OpenAI Responses ({ input_tokens, output_tokens, input_tokens_details, output_tokens_details }) or Anthropic ({ input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens }); or { format: "tokens", inputTokens, cachedInputTokens, cacheWriteTokens, outputTokens, reasoningTokens } with disjoint counts.';

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

/**
 * Read the usage object of an OpenAI or Anthropic response into disjoint token counts.
 *
 * - **OpenAI** (Chat Completions and Responses): `prompt_tokens` / `input_tokens` *include*
 *   the cached tokens, and `completion_tokens` / `output_tokens` *include* the reasoning
 *   tokens; they are subtracted, so that each token is billed once, at its own rate.
 *   OpenAI reports no cache writes (it does not charge for them).
 * - **Anthropic**: `input_tokens` *excludes* cache reads and cache writes, which are
 *   reported beside it and are added, not subtracted. Extended thinking is not reported
 *   apart from `output_tokens`, so it is billed as output (as Anthropic bills it).
 *
 * Missing or `null` detail counts read as 0; other fields are ignored.
 *
 * @example
 * ```ts
 * normalizeUsage({ prompt_tokens: 1000, completion_tokens: 500,
 *   prompt_tokens_details: { cached_tokens: 600 }, completion_tokens_details: { reasoning_tokens: 200 } });
 * // { format: "openai-chat", inputTokens: 400, cachedInputTokens: 600, cacheWriteTokens: 0,
 * //   outputTokens: 300, reasoningTokens: 200, totalTokens: 1500 }
 * ```
 * @throws {InvalidUsageError} for a shape it cannot read, a negative or fractional count, or
 *   a cached (reasoning) count larger than the count that includes it.
 */
export function normalizeUsage(usage: unknown): NormalizedUsage {
  if (typeof usage !== "object" || usage === null || Array.isArray(usage)) {
    throw new InvalidUsageError("usage", `must be an object, got ${typeOf(usage)}.`, SHAPES);
  }
  const openAiChat = has(usage, "prompt_tokens") || has(usage, "completion_tokens");
  const inputOutput = has(usage, "input_tokens") || has(usage, "output_tokens");
  const responses = has(usage, "input_tokens_details") || has(usage, "output_tokens_details");
  const anthropic =
    has(usage, "cache_creation_input_tokens") || has(usage, "cache_read_input_tokens");
  const normalized = has(usage, "format");

  if (
    [openAiChat, inputOutput, normalized].filter(Boolean).length > 1 ||
    (responses && anthropic)
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
  if (inputOutput) {
    const data = parse(anthropicSchema, usage);
    return build(anthropic ? "anthropic" : "input-output", {
      inputTokens: data.input_tokens,
      cachedInputTokens: data.cache_read_input_tokens,
      cacheWriteTokens: data.cache_creation_input_tokens,
      outputTokens: data.output_tokens,
      reasoningTokens: 0,
    });
  }
  throw new InvalidUsageError(
    "usage",
    `has none of the token counts of a known usage shape (keys: ${Object.keys(usage).slice(0, 10).join(", ") || "none"}).`,
    SHAPES,
  );
}
