import { AgentHaltedError, type ProviderUsageLike } from "@gov/core";
import { InvalidWrapperOptionsError } from "../errors";
import { GovernedCall, Governor } from "../governed-call";
import { type ApiPromiseLike, GovernedPromise } from "../governed-promise";
import { governStream, type StreamHooks } from "../governed-stream";
import { resolveWrapOptions, type WrapOptions } from "../options";
import { isObject, type Json, withoutUnscopedProviderTools } from "../shapes";
import { type EventState, governedEventStream, parseEventData, readEvent, withBody } from "../sse";
import { chatFinishReason, chatStreamHooks, chatUsage, filterChatCompletion } from "./chat";
import {
  filterResponse,
  responseFinishReason,
  responseStreamHooks,
  responseUsage,
} from "./responses";
import { maxTokensOf, offeredTools, runsAtProvider, withTools } from "./shapes";

type Create = (this: unknown, body: unknown, options?: unknown) => ApiPromiseLike<unknown>;

/** The options of {@link wrapOpenAI}. */
export type WrapOpenAIOptions = WrapOptions;

/** The part of an `OpenAI` client the wrapper governs (any major from 4 on). */
export interface OpenAIClientLike {
  chat?: { completions?: { create: (...args: never[]) => unknown } };
  responses?: { create: (...args: never[]) => unknown };
  /** openai 5 and later: a copy of the client with other options (governed too). */
  withOptions?: (options: never) => unknown;
}

const WRAPPED = Symbol.for("@gov/wrappers.openai.wrapped");
/** Marks a client `fetch` that checks the halt before every HTTP attempt. */
const HALT_CHECKED = Symbol.for("@gov/wrappers.openai.halt-checked");

/**
 * The client rethrows an error of its `fetch` as a connection error (after its retries): the
 * halt refusal behind one is given to the host as it is.
 */
function haltBehind(error: unknown): unknown {
  const cause = isObject(error) ? error.cause : undefined;
  return AgentHaltedError.isInstance(cause) ? cause : error;
}

interface Operation {
  name: string;
  /** The stream hooks and whether to ask the server for usage. */
  stream(call: GovernedCall, body: Json): { body: Json; hooks: StreamHooks<Json> };
  finish(
    call: GovernedCall,
    value: Json,
  ): Promise<{
    removed: string[];
    usage: ProviderUsageLike | null;
    finish: string | null;
    output: unknown;
  }>;
  input(body: Json): unknown;
}

const CHAT: Operation = {
  name: "chat.completions.create",
  stream(call, body) {
    const options = isObject(body.stream_options) ? body.stream_options : {};
    const asked = options.include_usage === true;
    return {
      body: asked ? body : { ...body, stream_options: { ...options, include_usage: true } },
      hooks: chatStreamHooks(call, asked),
    };
  },
  async finish(call, value) {
    const removed = await filterChatCompletion(call, value);
    return {
      removed,
      usage: chatUsage(value),
      finish: chatFinishReason(value),
      output: Array.isArray(value.choices)
        ? value.choices.map((choice) => (isObject(choice) ? choice.message : undefined))
        : undefined,
    };
  },
  input: (body) => body.messages,
};

const RESPONSES: Operation = {
  name: "responses.create",
  stream(call, body) {
    return { body, hooks: responseStreamHooks(call) };
  },
  async finish(call, value) {
    const removed = await filterResponse(call, value);
    return {
      removed,
      usage: responseUsage(value),
      finish: responseFinishReason(value),
      output: value.output,
    };
  },
  input: (body) => ({ instructions: body.instructions, input: body.input }),
};

/**
 * A shallow copy of the host's request parameters or options, each read once: what governance
 * checks is what the client sends, even when a getter (or a Proxy) would answer differently
 * the next time it is read. Anything else is returned as it is.
 */
function readOnce(value: unknown): unknown {
  return isObject(value) ? { ...value } : value;
}

function governedCreate(governor: Governor, original: Create, operation: Operation): Create {
  return function create(this: unknown, parameters: unknown, options?: unknown) {
    const sent = (async () => {
      const body = readOnce(parameters);
      const requestOptions = readOnce(options);
      if (!isObject(body) || typeof body.model !== "string")
        throw new InvalidWrapperOptionsError(
          "body",
          "must be the request's parameters with a model.",
          `Call ${operation.name}({ model, … }) as the client expects.`,
        );
      if (isObject(requestOptions) && requestOptions.body !== undefined)
        throw new InvalidWrapperOptionsError(
          "options.body",
          "replaces the request's parameters after governance checked them; a governed client does not accept it.",
          `Pass the parameters as the first argument of ${operation.name}(…), not in the request options.`,
        );
      // an option `body: undefined` would still replace the parameters in the client's spread
      if (isObject(requestOptions)) delete requestOptions.body;
      const stream = body.stream === true;
      const maxTokens = maxTokensOf(body);
      const offered = await withoutUnscopedProviderTools(governor, offeredTools(body), (tool) =>
        tool.in === "tools" ? runsAtProvider(tool.tool) : false,
      );
      const { call, tools } = await governor.admit(
        {
          operation: operation.name,
          model: body.model,
          ...(maxTokens === undefined ? {} : { maxTokens }),
          stream,
          input: operation.input(body),
          ...(typeof body.n === "number" ? { choices: body.n } : {}),
        },
        offered,
      );
      let inner: ApiPromiseLike<unknown>;
      let hooks: StreamHooks<Json> | null = null;
      try {
        let sentBody: Json = withTools(body, tools);
        if (stream) ({ body: sentBody, hooks } = operation.stream(call, sentBody));
        inner = original.call(this, sentBody, requestOptions);
      } catch (error) {
        // admitted: whatever throws before the request is handed over releases the reservation
        call.failed(error);
        throw error;
      }
      return { call, inner, hooks, requestOptions };
    })();
    // Observed through the returned promise; this only keeps an unawaited refusal quiet.
    sent.catch(() => undefined);
    return new GovernedPromise<unknown>({
      value: async () => {
        const { call, inner, hooks } = await sent;
        let value: unknown;
        try {
          value = await inner;
        } catch (error) {
          call.failed(error);
          throw haltBehind(error);
        }
        if (hooks !== null && isObject(value) && typeof value.iterator === "function") {
          const streamObject = value as {
            iterator: () => AsyncIterator<Json>;
            controller?: unknown;
          };
          const source = streamObject.iterator.bind(streamObject);
          let used = false;
          // Aborted before it is read (a user's cancel): nothing will be read, so it is
          // reconciled now rather than held until the reservation's TTL.
          const signal =
            streamObject.controller instanceof AbortController
              ? streamObject.controller.signal
              : null;
          const onAbort = () => {
            if (used) return;
            used = true;
            call.reconciled({ usage: null, finishReason: null }, "aborted", 0);
          };
          signal?.addEventListener("abort", onAbort, { once: true });
          streamObject.iterator = () => {
            if (used) return source();
            used = true;
            signal?.removeEventListener("abort", onAbort);
            return governStream(call, source(), hooks);
          };
          return value;
        }
        if (!isObject(value)) {
          call.succeeded({ usage: null, finishReason: null });
          return value;
        }
        let finished: Awaited<ReturnType<Operation["finish"]>>;
        try {
          finished = await operation.finish(call, value);
        } catch (error) {
          // A refused tool call (or a halt meanwhile): the usage is still settled.
          call.succeeded({ usage: chatOrResponseUsage(value), finishReason: null }, "refused");
          throw error;
        }
        call.succeeded({
          usage: finished.usage,
          finishReason: finished.finish,
          removedToolCalls: finished.removed,
          output: finished.output,
        });
        return value;
      },
      response: async (valueRead) => {
        const { call, inner, hooks, requestOptions } = await sent;
        let response: Response;
        try {
          response = await inner.asResponse();
        } catch (error) {
          call.failed(error);
          throw haltBehind(error);
        }
        if (valueRead) return response;
        if (hooks !== null)
          return governedEventStream(
            call,
            response,
            isObject(requestOptions) ? (requestOptions.signal as AbortSignal | undefined) : null,
            new HookedEvents(hooks),
          );
        return governedResponse(call, response, operation);
      },
    });
  } as Create;
}

function chatOrResponseUsage(value: Json): Json | null {
  return isObject(value.usage) ? value.usage : null;
}

/**
 * `responses.retrieve`, which reads a stored (e.g. `background: true`) response: the calls the
 * host runs in its output are checked as those of `responses.create` (removed or refused, and
 * audited). It is not a model call: no halt check, reservation or `llm.call` (its usage was
 * charged when the response was created). A streamed retrieve is passed on as it is.
 */
function governedRetrieve(governor: Governor, original: Create): Create {
  return function retrieve(this: unknown, ...args: unknown[]) {
    const inner = (original as (...args: unknown[]) => ApiPromiseLike<unknown>).apply(this, args);
    const query = args[1];
    if (isObject(query) && query.stream === true) return inner;
    return new GovernedPromise<unknown>({
      value: async () => {
        const value = await inner;
        if (!isObject(value)) return value;
        const call = new GovernedCall(
          governor,
          {
            operation: "responses.retrieve",
            model: typeof value.model === "string" ? value.model : "",
            stream: false,
          },
          null,
        );
        await filterResponse(call, value);
        return value;
      },
      response: () => inner.asResponse(),
    });
  } as Create;
}

/**
 * A stream read raw (`asResponse()`), as the stream hooks read it when the client iterates:
 * each `data:` event parsed and handed to the hooks (usage, finish reason, tool calls checked),
 * passed on as the hooks return it, or dropped. `[DONE]` and what does not parse pass as they are.
 */
class HookedEvents implements EventState {
  events = 0;
  error: Error | null = null;

  constructor(readonly hooks: StreamHooks<Json>) {}

  async pass(block: string): Promise<string | null> {
    const { name, data } = readEvent(block);
    if (data === "" || data === "[DONE]") return block;
    const chunk = parseEventData(data);
    if (chunk === null) return block;
    this.events++;
    if (isObject(chunk.error)) {
      // the client throws an APIError for such an event: the call ends as failed
      const type = typeof chunk.error.type === "string" ? chunk.error.type : "error";
      this.error = Object.assign(new Error(`The stream carried an error event (${type}).`), {
        name: "APIError",
      });
      return block;
    }
    const out = await this.hooks.onChunk(chunk);
    if (out === null) return null;
    return `${name === "" ? "" : `event: ${name}\n`}data: ${JSON.stringify(out)}`;
  }

  outcome() {
    return {
      usage: this.hooks.usage(),
      finishReason: this.hooks.finishReason(),
      removedToolCalls: this.hooks.removedToolCalls(),
      ...(this.hooks.output ? { output: this.hooks.output() } : {}),
    };
  }
}

/**
 * `asResponse()` on a whole response: the host reads the body, so the body is read here, its
 * tool calls checked as for the parsed value, the usage settled, and a response with the
 * governed body handed on (status and headers kept).
 */
async function governedResponse(
  call: GovernedCall,
  response: Response,
  operation: Operation,
): Promise<Response> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    call.failed(error);
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (!isObject(value)) {
    call.succeeded({ usage: null, finishReason: null });
    return withBody(response, text);
  }
  let finished: Awaited<ReturnType<Operation["finish"]>>;
  try {
    finished = await operation.finish(call, value);
  } catch (error) {
    call.succeeded({ usage: chatOrResponseUsage(value), finishReason: null }, "refused");
    throw error;
  }
  call.succeeded({
    usage: finished.usage,
    finishReason: finished.finish,
    removedToolCalls: finished.removed,
    output: finished.output,
  });
  return withBody(response, finished.removed.length > 0 ? JSON.stringify(value) : text);
}

/**
 * Govern an `OpenAI` client in place: every `chat.completions.create` and `responses.create`
 * (and so `.stream()`, `.parse()` and the runners built on them) is halt-checked, scoped,
 * budgeted and audited. Copies made with `withOptions()` (openai 5 and later) are governed
 * for the same agent. Returns the same client; existing references keep working. Wrapping a
 * client again for the same agent changes nothing (a warning is logged).
 *
 * @example
 * ```ts
 * const openai = wrapOpenAI(new OpenAI(), { governance: sdk, agentId: "billing-agent" });
 * ```
 * @throws {InvalidWrapperOptionsError} a client that is not an OpenAI client, one already
 *   wrapped for another agent, or bad options; nothing was wrapped.
 */
export function wrapOpenAI<Client extends object>(
  client: Client,
  options: WrapOpenAIOptions,
): Client {
  const target = client as OpenAIClientLike & { [WRAPPED]?: string };
  const { chatCreate, responsesCreate } = createsOf(target);
  if (chatCreate === null && responsesCreate === null)
    throw new InvalidWrapperOptionsError(
      "client",
      "is not an OpenAI client: it has neither chat.completions.create nor responses.create.",
      "Pass the client of the openai package: wrapOpenAI(new OpenAI(), { governance, agentId }).",
    );
  const resolved = resolveWrapOptions(options);
  if (target[WRAPPED] !== undefined) {
    if (target[WRAPPED] !== resolved.agentId)
      throw new InvalidWrapperOptionsError(
        "client",
        `is already wrapped for agent ${JSON.stringify(target[WRAPPED])}; its calls cannot be governed as ${JSON.stringify(resolved.agentId)} too.`,
        "Create one client per agent: wrapOpenAI(new OpenAI(), { governance, agentId }).",
      );
    resolved.ports.logger.warn(
      "@gov/wrappers: this OpenAI client is already wrapped; the second wrapOpenAI() changed nothing.",
      { agentId: resolved.agentId, wrappedFor: target[WRAPPED] },
    );
    return client;
  }
  const governor = new Governor(resolved, "openai");
  govern(target, governor);
  governor.registered({
    operations: [
      ...(chatCreate === null ? [] : [CHAT.name]),
      ...(responsesCreate === null ? [] : [RESPONSES.name]),
    ],
  });
  return client;
}

/** The client's `create` methods, or null where it has none. */
function createsOf(target: OpenAIClientLike): {
  chatCreate: Create | null;
  responsesCreate: Create | null;
} {
  const chat = isObject(target) && isObject(target.chat) ? target.chat.completions : undefined;
  const responses = isObject(target) ? target.responses : undefined;
  return {
    chatCreate:
      isObject(chat) && typeof chat.create === "function" ? (chat.create as Create) : null,
    responsesCreate:
      isObject(responses) && typeof responses.create === "function"
        ? (responses.create as Create)
        : null,
  };
}

/**
 * Replace a client's `create` methods with governed ones, its `fetch` with one that checks the
 * halt before every HTTP attempt (a retry after a back-off included, and the calls the wrapper
 * does not govern otherwise), and its `withOptions` with one whose copy is governed by the
 * same governor (the copy's resources are new objects).
 */
function govern(target: OpenAIClientLike & { [WRAPPED]?: string }, governor: Governor): void {
  const client = target as { fetch?: unknown };
  const fetch = client.fetch;
  if (typeof fetch === "function" && !(HALT_CHECKED in fetch)) {
    const { ports, agentId } = governor.options;
    const checked = async function haltCheckedFetch(this: unknown, ...args: unknown[]) {
      await ports.halt.assertAlive(agentId, { path: "openai.fetch" });
      return (fetch as (...args: unknown[]) => unknown).apply(this, args);
    };
    Object.defineProperty(checked, HALT_CHECKED, { value: true });
    client.fetch = checked;
  }
  const { chatCreate, responsesCreate } = createsOf(target);
  if (chatCreate !== null && target.chat?.completions)
    (target.chat.completions as { create: unknown }).create = governedCreate(
      governor,
      chatCreate,
      CHAT,
    );
  if (responsesCreate !== null && target.responses)
    (target.responses as { create: unknown }).create = governedCreate(
      governor,
      responsesCreate,
      RESPONSES,
    );
  const responses = target.responses as { retrieve?: unknown } | undefined;
  if (isObject(responses) && typeof responses.retrieve === "function")
    responses.retrieve = governedRetrieve(governor, responses.retrieve as Create);
  const withOptions = target.withOptions;
  if (typeof withOptions === "function")
    Object.defineProperty(target, "withOptions", {
      value: function governedWithOptions(this: unknown, ...args: unknown[]) {
        const copy = (withOptions as (...args: unknown[]) => unknown).apply(this, args);
        if (isObject(copy) && (copy as { [WRAPPED]?: string })[WRAPPED] === undefined)
          govern(copy as OpenAIClientLike, governor);
        return copy;
      },
      configurable: true,
      writable: true,
      enumerable: false,
    });
  Object.defineProperty(target, WRAPPED, {
    value: governor.options.agentId,
    enumerable: false,
  });
}
