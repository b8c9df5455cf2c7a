/**
 * The governance middleware: the `@anthropic-ai/sdk` client runs it around every HTTP attempt
 * it makes (its own `middleware` option), and it governs the Messages calls among them —
 * `POST /v1/messages`, beta included — whichever method made them (`create`, `stream`,
 * `parse`, the tool runner, `withOptions()` copies).
 */
import { InvalidWrapperOptionsError } from "../errors";
import type { GovernedCall, Governor } from "../governed-call";
import { isObject, type Json, withoutUnscopedProviderTools } from "../shapes";
import { governedMessageStream, withBody } from "./event-stream";
import {
  AnthropicApiError,
  errorTypeOf,
  filterMessage,
  maxTokensOf,
  namedTools,
  runsAtProvider,
  usageOf,
  withTools,
} from "./messages";

/** An HTTP request as the client's middleware sees it (`APIRequest`: `RequestInit` and `url`). */
export interface AnthropicHttpRequest extends RequestInit {
  url: string;
  headers: Headers;
}

/** The client's `Middleware` type, structurally (the client package is an optional peer). */
export type AnthropicMiddleware = ((
  request: AnthropicHttpRequest,
  next: (request: AnthropicHttpRequest) => Promise<Response>,
  context?: {
    readonly options?: { readonly body?: unknown; readonly middleware?: unknown } | undefined;
  },
) => Promise<Response>) & { readonly [GOVERNED]?: string };

/**
 * A request to send, copied from the client's: its own `Headers` (so that changing them does
 * not change the client's), the URL, and the changes given.
 */
export function copyRequest(
  init: RequestInit,
  url: string,
  changes: Partial<AnthropicHttpRequest> = {},
): AnthropicHttpRequest {
  return { ...init, url, headers: new Headers(init.headers), ...changes };
}

/** Marks the governance middleware (its value: the agent id), across copies of this package. */
export const GOVERNED = Symbol.for("@gov/wrappers.anthropic.governed");

/** True for the governance middleware of this package (any copy). */
export function isGovernanceMiddleware(middleware: unknown): boolean {
  return typeof middleware === "function" && GOVERNED in middleware;
}

/** `POST …/v1/messages` (and `?beta=true`); not `count_tokens`, not `batches`. */
function isMessagesCall(request: AnthropicHttpRequest): boolean {
  if ((request.method ?? "GET").toUpperCase() !== "POST") return false;
  try {
    return new URL(request.url).pathname.endsWith("/v1/messages");
  } catch {
    return false;
  }
}

/** The operation the audit names: `messages.create`, `beta.messages.stream`, … */
function operationOf(request: AnthropicHttpRequest): string {
  const beta = new URL(request.url).searchParams.get("beta") === "true";
  const helper = request.headers.get("x-stainless-helper-method");
  return `${beta ? "beta.messages" : "messages"}.${helper === "stream" ? "stream" : "create"}`;
}

function bodyOf(request: AnthropicHttpRequest, context: { options?: { body?: unknown } }): Json {
  let body: unknown = request.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  } else body = context.options?.body;
  if (!isObject(body) || typeof body.model !== "string")
    throw new InvalidWrapperOptionsError(
      "body",
      "must be the JSON parameters of a Messages call, with a model.",
      "Call messages.create({ model, max_tokens, messages }) as the client expects.",
    );
  return body;
}

/**
 * The MCP connector's servers (`mcp_servers`, beta) run at Anthropic: each is checked when
 * offered, as `mcp:<name>` (the scope name of its `mcp_toolset` tools too), and one scope
 * refuses is not sent. The body is not changed; a copy is returned when a server was removed.
 */
async function withScopedMcpServers(governor: Governor, body: Json): Promise<Json> {
  if (!Array.isArray(body.mcp_servers)) return body;
  const servers = body.mcp_servers.map((server) => ({
    name: `mcp:${isObject(server) ? String(server.name ?? "") : ""}`,
    tool: server as unknown,
  }));
  const kept = await withoutUnscopedProviderTools(governor, servers, () => true);
  if (kept === null || kept.length === servers.length) return body;
  return { ...body, mcp_servers: kept.map((named) => named.tool) };
}

/** Step 3 on an HTTP error status: `llm.error` with the API's error type, then released. */
async function failedWithStatus(call: GovernedCall, response: Response): Promise<void> {
  let type: string | undefined;
  try {
    type = errorTypeOf(JSON.parse(await response.clone().text()));
  } catch {
    type = undefined;
  }
  call.failed(new AnthropicApiError(response.status, type));
}

/**
 * What to do with a refusal found in a whole Message (a tool call outside scope with
 * `onToolOutOfScope: "throw"`, or a halt meanwhile): the middleware throws it; the `fetch`
 * path returns it as the response body's error, so that the client does not take it for a
 * connection failure (and retry the call).
 */
export type RefusalInResponse = (error: unknown) => Response;

/** A whole Message: tool calls checked, usage settled, the body passed on (changed if need be). */
async function governedMessage(
  call: GovernedCall,
  response: Response,
  refused: RefusalInResponse,
): Promise<Response> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    call.failed(error);
    throw error;
  }
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    message = null;
  }
  if (!isObject(message)) {
    call.succeeded({ usage: null, finishReason: null });
    return withBody(response, text);
  }
  let removed: string[];
  try {
    removed = await filterMessage(call, message);
  } catch (error) {
    // A refused tool call (or a halt meanwhile): the usage is still settled.
    call.succeeded({ usage: usageOf(message.usage), finishReason: null }, "refused");
    return refused(error);
  }
  call.succeeded({
    usage: usageOf(message.usage),
    finishReason: typeof message.stop_reason === "string" ? message.stop_reason : null,
    removedToolCalls: removed,
    output: message.content,
  });
  return withBody(response, removed.length > 0 ? JSON.stringify(message) : text);
}

/** A request admitted (step 1 done, `llm.call` handed over), or one that is not governed. */
export interface AdmittedRequest {
  /** The Messages call; null for other requests (batches, count_tokens, …), sent as they are. */
  call: GovernedCall | null;
  /** The request to send: the hidden tools taken out, when there were any. */
  sent: AnthropicHttpRequest;
  stream: boolean;
}

/**
 * Step 1 for one HTTP attempt: a Messages call admitted (halt, scope, tools, budget), any
 * other request halt-checked only. Nothing is sent.
 *
 * @throws {AgentHaltedError} · the scope module's refusals · `BudgetExceeded` ·
 *   {@link InvalidWrapperOptionsError}; nothing was reserved.
 */
export async function admitRequest(
  governor: Governor,
  request: AnthropicHttpRequest,
  context: { options?: { body?: unknown; middleware?: unknown } | undefined } = {},
): Promise<AdmittedRequest> {
  if (!isMessagesCall(request)) {
    // batches, count_tokens, files, models: not governed, but never sent for a halted agent
    await governor.options.ports.halt.assertAlive(governor.options.agentId, {
      path: "anthropic.http",
    });
    return { call: null, sent: request, stream: false };
  }
  const perRequest = context.options?.middleware;
  if (Array.isArray(perRequest) && perRequest.length > 0)
    throw new InvalidWrapperOptionsError(
      "options.middleware",
      "runs after governance, so it could change a request governance already admitted; a governed client does not accept per-request middleware on a Messages call.",
      "Add it to a copy instead: client.withOptions({ middleware: [yours] }) keeps governance last.",
    );
  const read = bodyOf(request, context);
  const body = await withScopedMcpServers(governor, read);
  const stream = body.stream === true;
  const maxTokens = maxTokensOf(body);
  const offered = await withoutUnscopedProviderTools(
    governor,
    namedTools(body.tools),
    runsAtProvider,
  );
  const { call, tools } = await governor.admit(
    {
      operation: operationOf(request),
      model: body.model as string,
      ...(maxTokens === undefined ? {} : { maxTokens }),
      stream,
      input: { system: body.system, messages: body.messages },
    },
    offered,
  );
  let sent = request;
  const sentBody = withTools(body, tools);
  if (sentBody !== read) {
    sent = copyRequest(request, request.url, { body: JSON.stringify(sentBody) });
    sent.headers.delete("content-length");
  }
  return { call, sent, stream };
}

/**
 * Steps 3 to 5 for an admitted request: send it, and govern what comes back (an error
 * status, a whole Message, or an event stream).
 */
export async function governedResponse(
  admitted: AdmittedRequest,
  send: (request: AnthropicHttpRequest) => Promise<Response>,
  refused: RefusalInResponse,
): Promise<Response> {
  const { call, sent, stream } = admitted;
  if (call === null) return send(sent);
  let response: Response;
  try {
    response = await send(sent);
  } catch (error) {
    call.failed(error);
    throw error;
  }
  if (!response.ok) {
    await failedWithStatus(call, response);
    return response;
  }
  const type = response.headers.get("content-type") ?? "";
  if (stream && type.includes("text/event-stream"))
    return governedMessageStream(call, response, sent.signal);
  return governedMessage(call, response, refused);
}

/** The middleware's way with a refusal in a whole Message: thrown to the caller as it is. */
const rethrow: RefusalInResponse = (error) => {
  throw error;
};

/**
 * The middleware that governs one wrapped client's Messages calls, each HTTP attempt on its own
 * (a retry is admitted again: a halt between attempts stops it).
 */
export function governanceMiddleware(governor: Governor): AnthropicMiddleware {
  const middleware: AnthropicMiddleware = async (request, next, context = {}) =>
    governedResponse(await admitRequest(governor, request, context), next, rethrow);
  Object.defineProperty(middleware, GOVERNED, {
    value: governor.options.agentId,
    enumerable: false,
  });
  return middleware;
}
