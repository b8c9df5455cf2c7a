/**
 * `governanceMiddleware`: a Vercel AI SDK language-model middleware (`wrapLanguageModel`)
 * that puts every model call of an agent on the governed path.
 * @module
 */
import { type GovernedCall, Governor, safeLog } from "../governed-call";
import { resolveWrapOptions, type WrapOptions } from "../options";
import { withoutUnscopedProviderTools } from "../shapes";
import {
  finishReasonOf,
  forcedTool,
  hostToolCall,
  isObject,
  maxOutputTokensOf,
  namedTools,
  usageOf,
} from "./shapes";
import { governPartStream } from "./stream";

type Json = Record<string, unknown>;

/** The options of {@link governanceMiddleware}: those of every wrapper. */
export type GovernanceMiddlewareOptions = WrapOptions;

/**
 * The call options a middleware is handed (`LanguageModelV2CallOptions`,
 * `LanguageModelV3CallOptions`, `LanguageModelV4CallOptions`): the fields governance reads.
 */
export interface LanguageModelCallOptionsLike {
  /** The messages; recorded only with `recordContent`. */
  prompt?: unknown;
  /** The output ceiling: the worst case the budget reserves. */
  maxOutputTokens?: number;
  /** The tools offered to the model; hidden ones are removed before the call. */
  tools?: readonly unknown[];
  toolChoice?: unknown;
}

/** A language model of any specification version the middleware supports (V2, V3, V4). */
export interface LanguageModelLike {
  readonly specificationVersion: string;
  /** The provider's id, e.g. `openai.chat`; audited in the call's operation (`openai.chat.doGenerate`). */
  readonly provider: string;
  /** The model, checked against the agent's `allowedModels` and priced. */
  readonly modelId: string;
  doGenerate(options: never): PromiseLike<unknown>;
  doStream(options: never): PromiseLike<unknown>;
}

/** What `wrapGenerate` and `wrapStream` are handed by `wrapLanguageModel`. */
export interface MiddlewareCallLike<Generated, Streamed> {
  doGenerate: () => PromiseLike<Generated>;
  doStream: () => PromiseLike<Streamed>;
  params: LanguageModelCallOptionsLike;
  model: LanguageModelLike;
}

/**
 * A language-model middleware that fits the middleware types of AI SDK 5 (`middlewareVersion:
 * "v2"`), 6 (`specificationVersion: "v3"`) and 7 (which accepts any `specificationVersion`).
 */
export interface GovernanceMiddleware {
  readonly specificationVersion: "v3";
  readonly middlewareVersion: "v2";
  /** Governs `generateText` / `generateObject` calls (`doGenerate`). */
  wrapGenerate<Generated, Streamed>(
    options: MiddlewareCallLike<Generated, Streamed>,
  ): Promise<Generated>;
  /** Governs `streamText` / `streamObject` calls (`doStream`). */
  wrapStream<Generated, Streamed extends { stream: ReadableStream<unknown> }>(
    options: MiddlewareCallLike<Generated, Streamed>,
  ): Promise<Streamed>;
}

const OPERATIONS = { generate: "doGenerate", stream: "doStream" } as const;

/**
 * Marks the call options a governance middleware passes down (an enumerable symbol key, so
 * that a middleware in between that copies the options with a spread keeps it; providers
 * never see symbol keys). A governance middleware that finds it is wrapped by another and
 * stands aside: a model wrapped twice is governed, and charged, once.
 */
const GOVERNED_BY = Symbol.for("@gov/wrappers.ai-sdk.governedBy");

function governedBy(params: unknown): string | null {
  const mark = isObject(params) ? (params as Record<symbol, unknown>)[GOVERNED_BY] : undefined;
  return typeof mark === "string" ? mark : null;
}

/** The content the host sees: the model's, without the tool calls the agent may not make. */
async function filterContent(
  call: GovernedCall,
  content: unknown,
): Promise<{ content: unknown; removed: string[] }> {
  if (!Array.isArray(content)) return { content, removed: [] };
  const removed: string[] = [];
  const kept: unknown[] = [];
  for (const part of content) {
    const toolCall = hostToolCall(part);
    if (toolCall === null || (await call.allowToolCall(toolCall.toolName))) kept.push(part);
    else removed.push(toolCall.toolName);
  }
  return { content: removed.length === 0 ? content : kept, removed };
}

/**
 * A Vercel AI SDK language-model middleware that governs every call of the wrapped model, in
 * the order of `@gov/wrappers`: the halt check, the model (`model.modelId`) against the
 * agent's `allowedModels`, the tools offered (`params.tools`) filtered with
 * `scope.filterTools` (hidden ones never reach the model; a `toolChoice` that forces one is
 * refused with the scope module's `ScopeViolation`), the budget checked and the worst case
 * reserved (`maxOutputTokens`) — all before the provider is called; then `llm.call`, the
 * call, the usage settled (cached and reasoning tokens priced part by part), `llm.result`,
 * and the tool calls the model returned checked against scope (removed, or
 * `ToolCallOutOfScopeError`). Streams are settled at their `finish` part and reconciled when
 * they error, are cut, aborted or cancelled.
 *
 * Works with AI SDK 5 (`LanguageModelV2`), 6 (`LanguageModelV3`) and 7 (`LanguageModelV4`).
 *
 * @example
 * ```ts
 * import { generateText, wrapLanguageModel } from "ai";
 * import { openai } from "@ai-sdk/openai";
 *
 * const model = wrapLanguageModel({
 *   model: openai("gpt-4o"),
 *   middleware: governanceMiddleware({ governance: sdk, agentId: "billing-agent" }),
 * });
 * const { text } = await generateText({ model, prompt: "Summarize the open invoices." });
 * ```
 * @throws {InvalidWrapperOptionsError} bad options (an empty agent id, an unknown option).
 */
export function governanceMiddleware(options: GovernanceMiddlewareOptions): GovernanceMiddleware {
  const resolved = resolveWrapOptions(options);
  const governor = new Governor(resolved, "ai-sdk");
  governor.registered({ via: "middleware", operations: Object.values(OPERATIONS) });

  /** Step 1 (and the forced tool): the call admitted, and the call options to send. */
  async function admit(
    kind: keyof typeof OPERATIONS,
    params: LanguageModelCallOptionsLike,
    model: LanguageModelLike,
  ): Promise<{ call: GovernedCall; sent: Json | null }> {
    const body = params as Json;
    const maxTokens = maxOutputTokensOf(body);
    const original = namedTools(body.tools);
    // Provider-run tools (web search, code interpreter, remote MCP: any tool that is not a
    // `function`) run before their call could be checked: scope decides when they are offered.
    const offered = await withoutUnscopedProviderTools(
      governor,
      original,
      (tool) => !isObject(tool) || tool.type !== "function",
    );
    const { call, tools } = await governor.admit(
      {
        operation: `${providerOf(model)}.${OPERATIONS[kind]}`,
        model: model.modelId,
        ...(maxTokens === undefined ? {} : { maxTokens }),
        stream: kind === "stream",
        input: body.prompt,
      },
      offered,
    );
    if (tools === null || original === null || tools.length === original.length)
      return { call, sent: null };
    const forced = forcedTool(body.toolChoice);
    const scope = resolved.ports.scope;
    if (forced !== null && scope !== null && !tools.some((tool) => isNamed(tool, forced))) {
      // The call forces a tool that was hidden: refused (and audited) as scope refuses it.
      try {
        await scope.check(resolved.agentId, { tool: forced });
      } catch (error) {
        call.failed(error);
        throw error;
      }
    }
    return { call, sent: { ...body, tools } };
  }

  let warnedNested = false;
  /** The outer governance's agent, when this middleware is wrapped by another (then it stands aside). */
  function outerGovernance(params: unknown): string | null {
    const outer = governedBy(params);
    if (outer !== null && !warnedNested) {
      warnedNested = true;
      safeLog(
        resolved.ports.logger,
        "warn",
        `@gov/wrappers: this model is wrapped with governanceMiddleware twice; the outer one (agent ${JSON.stringify(outer)}) governs its calls and this one (agent ${JSON.stringify(resolved.agentId)}) stands aside, so that each call is governed and charged once. Wrap the model once.`,
      );
    }
    return outer;
  }
  /** The options sent down, marked as governed. */
  const marked = (options: Json): Json => ({ ...options, [GOVERNED_BY]: resolved.agentId });

  return {
    specificationVersion: "v3",
    middlewareVersion: "v2",

    async wrapGenerate<Generated, Streamed>({
      doGenerate,
      params,
      model,
    }: MiddlewareCallLike<Generated, Streamed>): Promise<Generated> {
      if (outerGovernance(params) !== null) return doGenerate();
      const { call, sent } = await admit("generate", params, model);
      let result: Generated;
      try {
        result = (await model.doGenerate(marked(sent ?? (params as Json)) as never)) as Generated;
      } catch (error) {
        call.failed(error);
        throw error;
      }
      if (!isObject(result)) {
        call.succeeded({ usage: null, finishReason: null });
        return result;
      }
      const usage = usageOf(result.usage, providerOf(model), result.providerMetadata);
      const finishReason = finishReasonOf(result.finishReason);
      let filtered: Awaited<ReturnType<typeof filterContent>>;
      try {
        filtered = await filterContent(call, result.content);
      } catch (error) {
        // A refused tool call (or a halt meanwhile): the usage is still settled.
        call.succeeded({ usage, finishReason }, "refused");
        throw error;
      }
      call.succeeded({
        usage,
        finishReason,
        removedToolCalls: filtered.removed,
        output: filtered.content,
      });
      return filtered.removed.length === 0
        ? result
        : ({ ...result, content: filtered.content } as Generated);
    },

    async wrapStream<Generated, Streamed extends { stream: ReadableStream<unknown> }>({
      doStream,
      params,
      model,
    }: MiddlewareCallLike<Generated, Streamed>): Promise<Streamed> {
      if (outerGovernance(params) !== null) return doStream();
      const { call, sent } = await admit("stream", params, model);
      let result: Streamed;
      try {
        result = (await model.doStream(marked(sent ?? (params as Json)) as never)) as Streamed;
      } catch (error) {
        call.failed(error);
        throw error;
      }
      if (!isObject(result) || !isReadable(result.stream)) {
        call.reconciled({ usage: null, finishReason: null }, "completed", 0);
        return result;
      }
      return {
        ...result,
        stream: governPartStream(call, result.stream, providerOf(model), abortSignalOf(params)),
      };
    },
  };
}

/** The call's `abortSignal`, when the caller gave one. */
function abortSignalOf(params: unknown): AbortSignal | undefined {
  const signal = isObject(params) ? params.abortSignal : undefined;
  return signal instanceof AbortSignal ? signal : undefined;
}

/** The model's provider id (`openai.chat`), which names the call's operation in the audit. */
function providerOf(model: LanguageModelLike): string {
  return typeof model.provider === "string" && model.provider.length > 0
    ? model.provider
    : "unknown";
}

function isReadable(value: unknown): value is ReadableStream<unknown> {
  return isObject(value) && typeof value.getReader === "function";
}

function isNamed(tool: unknown, name: string): boolean {
  return isObject(tool) && tool.name === name;
}
