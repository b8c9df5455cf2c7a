/**
 * Reading the Vercel AI SDK's language-model shapes the middleware needs — call options,
 * content, stream parts, usage and finish reasons — across the specification versions of
 * AI SDK 5 (`LanguageModelV2`), 6 (`LanguageModelV3`) and 7 (`LanguageModelV4`). Read by
 * shape, not by the model's declared version: the versions differ only in usage and finish
 * reasons, and each is told apart by its fields.
 * @module
 */
import type { ProviderUsageLike } from "@gov/core";
import type { NamedTool } from "../governed-call";
import { isObject, type Json } from "../shapes";

export { isObject };

/** A whole, non-negative token count, or undefined. */
function countOf(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** The tools of the call options (`params.tools`) with the names scope knows them by. */
export function namedTools(tools: unknown): NamedTool<unknown>[] | null {
  if (!Array.isArray(tools)) return null;
  return tools.map((tool) => ({
    name: isObject(tool) && typeof tool.name === "string" ? tool.name : "",
    tool,
  }));
}

/** The tool a call forces (`toolChoice: { type: "tool", toolName }`), or null. */
export function forcedTool(toolChoice: unknown): string | null {
  return isObject(toolChoice) &&
    toolChoice.type === "tool" &&
    typeof toolChoice.toolName === "string"
    ? toolChoice.toolName
    : null;
}

/** `maxOutputTokens` of the call options, when it is a positive whole number. */
export function maxOutputTokensOf(params: Json): number | undefined {
  const value = params.maxOutputTokens;
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : undefined;
}

/** A finish reason: V2's string, or V3/V4's `{ unified, raw }`. */
export function finishReasonOf(value: unknown): string | null {
  if (typeof value === "string") return value;
  return isObject(value) && typeof value.unified === "string" ? value.unified : null;
}

/**
 * How a provider of the V2 specification (AI SDK 5) counts its `cachedInputTokens` and
 * `reasoningTokens`: inside `inputTokens` / `outputTokens`, or beside them. V2's usage shape
 * cannot say, and the providers differ; V3 and V4 report the parts apart and need no table.
 */
interface V2Convention {
  cachedInsideInput: boolean;
  reasoningInsideOutput: boolean;
  /** Where the provider reports cache writes (its provider metadata), if anywhere. */
  cacheWrites?: (metadata: Json) => unknown;
}

const OPENAI: V2Convention = {
  // prompt_tokens includes cached_tokens; completion_tokens includes reasoning_tokens
  cachedInsideInput: true,
  reasoningInsideOutput: true,
};

const ANTHROPIC: V2Convention = {
  // input_tokens excludes cache reads and writes; the writes are only in provider metadata
  cachedInsideInput: false,
  reasoningInsideOutput: true,
  cacheWrites: (metadata) =>
    isObject(metadata.anthropic) ? metadata.anthropic.cacheCreationInputTokens : undefined,
};

const GOOGLE: V2Convention = {
  // promptTokenCount includes cachedContentTokenCount; candidatesTokenCount excludes thoughts
  cachedInsideInput: true,
  reasoningInsideOutput: false,
};

/** The V2 providers whose conventions are known, by their `provider` id. */
const V2_CONVENTIONS: readonly [RegExp, V2Convention][] = [
  [/^(openai|azure)(\.|$)/, OPENAI],
  [/^(vertex\.)?anthropic(\.|$)/, ANTHROPIC],
  [/^google(\.|$)/, GOOGLE],
];

/**
 * The usage a language model reported, in a shape `@gov/cost` prices exactly, or null when
 * the model reported no usage (the call is then reconciled from what was received).
 *
 * - V3 / V4 (`inputTokens: { total, noCache, cacheRead, cacheWrite }`, `outputTokens: { total,
 *   text, reasoning }`): handed on as AI SDK 6's `LanguageModelUsage` (`inputTokenDetails`,
 *   `outputTokenDetails`), which `@gov/cost` reads part by part.
 * - V2 (`inputTokens`, `outputTokens`, `cachedInputTokens`, `reasoningTokens`): for the
 *   providers whose conventions are known (OpenAI and Azure, Anthropic, Google), made
 *   explicit in the same shape; for any other provider handed on as it is, which `@gov/cost`
 *   reads failing closed (cached tokens added to the input: see its `normalizeUsage`).
 */
export function usageOf(
  usage: unknown,
  provider: string,
  providerMetadata?: unknown,
): ProviderUsageLike | null {
  if (!isObject(usage)) return null;
  if (isObject(usage.inputTokens) || isObject(usage.outputTokens))
    return v3Usage(usage.inputTokens, usage.outputTokens);
  const input = countOf(usage.inputTokens);
  const output = countOf(usage.outputTokens);
  if (input === undefined || output === undefined) return null;
  const convention = V2_CONVENTIONS.find(([pattern]) => pattern.test(provider))?.[1];
  if (convention === undefined) return usage;
  const cached = countOf(usage.cachedInputTokens) ?? 0;
  const reasoning = countOf(usage.reasoningTokens) ?? 0;
  const written =
    convention.cacheWrites && isObject(providerMetadata)
      ? (countOf(convention.cacheWrites(providerMetadata)) ?? 0)
      : 0;
  const inputTotal = convention.cachedInsideInput ? input : input + cached + written;
  const outputTotal = convention.reasoningInsideOutput ? output : output + reasoning;
  // A part larger than the total that should hold it: the provider broke its convention;
  // hand the usage on as it is, for @gov/cost to read (and refuse, or read failing closed).
  if (cached + written > inputTotal || reasoning > outputTotal) return usage;
  return {
    inputTokens: inputTotal,
    inputTokenDetails: {
      noCacheTokens: inputTotal - cached - written,
      cacheReadTokens: cached,
      cacheWriteTokens: written,
    },
    outputTokens: outputTotal,
    outputTokenDetails: { textTokens: outputTotal - reasoning, reasoningTokens: reasoning },
  };
}

function v3Usage(inputTokens: unknown, outputTokens: unknown): ProviderUsageLike | null {
  const input = isObject(inputTokens) ? inputTokens : {};
  const output = isObject(outputTokens) ? outputTokens : {};
  const noCache = countOf(input.noCache);
  const cacheRead = countOf(input.cacheRead);
  const cacheWrite = countOf(input.cacheWrite);
  const text = countOf(output.text);
  const reasoning = countOf(output.reasoning);
  const inputTotal =
    countOf(input.total) ??
    (noCache === undefined ? undefined : noCache + (cacheRead ?? 0) + (cacheWrite ?? 0));
  const outputTotal =
    countOf(output.total) ?? (text === undefined ? undefined : text + (reasoning ?? 0));
  // Nothing reported (a stream cut before its usage): reconciled from what was received.
  if (inputTotal === undefined || outputTotal === undefined) return null;
  return {
    inputTokens: inputTotal,
    inputTokenDetails: {
      noCacheTokens: noCache,
      cacheReadTokens: cacheRead,
      cacheWriteTokens: cacheWrite,
    },
    outputTokens: outputTotal,
    outputTokenDetails: { textTokens: text, reasoningTokens: reasoning },
  };
}

/** A tool call the host would execute (not one the provider already executed). */
export function hostToolCall(part: unknown): { toolCallId: string; toolName: string } | null {
  if (!isObject(part) || part.type !== "tool-call" || part.providerExecuted === true) return null;
  return {
    toolCallId: typeof part.toolCallId === "string" ? part.toolCallId : "",
    toolName: typeof part.toolName === "string" ? part.toolName : "",
  };
}
