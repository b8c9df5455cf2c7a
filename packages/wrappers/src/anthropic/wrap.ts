import { AsyncLocalStorage } from "node:async_hooks";
import { InvalidWrapperOptionsError } from "../errors";
import { Governor, trackSettlement } from "../governed-call";
import { resolveWrapOptions, type WrapOptions } from "../options";
import { isObject } from "../shapes";
import {
  type AdmittedRequest,
  type AnthropicMiddleware,
  admitRequest,
  copyRequest,
  GOVERNED,
  governanceMiddleware,
  governedResponse,
  isGovernanceMiddleware,
  type RefusalInResponse,
} from "./middleware";

/** What `llm.call` names the calls the middleware governs (beta: 0.x marks them on the wire). */
const OPERATIONS = [
  "messages.create",
  "messages.stream",
  "beta.messages.create",
  "beta.messages.stream",
];

/** The options of {@link wrapAnthropic}. */
export type WrapAnthropicOptions = WrapOptions;

/**
 * The part of an `Anthropic` client the wrapper uses: `messages.create`, and the `middleware`
 * list the client runs around every HTTP request (`@anthropic-ai/sdk` 0.101.0 and later) or,
 * before that, the `fetch` it sends them through.
 */
export interface AnthropicClientLike {
  messages?: { create: (...args: never[]) => unknown };
  middleware?: readonly unknown[];
  /** The `fetch` the client sends every HTTP attempt through (governed on 0.50 – 0.100). */
  fetch?: (url: string | URL, init?: RequestInit) => Promise<Response>;
  /** The hook the client runs before each HTTP attempt (where 0.50 – 0.100 are admitted). */
  prepareRequest?: (request: never, context: never) => Promise<void>;
  /** A copy of the client with other options (governed too, governance last). */
  withOptions?: (options: never) => unknown;
}

/**
 * Govern an `Anthropic` client (`@anthropic-ai/sdk` 0.50.0 and later, 1.x included) in place:
 * every Messages call it makes — `messages.create` (plain and `stream: true`),
 * `messages.stream`, `messages.parse`, `beta.messages.*`, the tool runner — is halt-checked,
 * scoped, budgeted and audited. From 0.101.0 on, governance is added to the client's own
 * `middleware` (last, so that it sees the request as it leaves); copies made with
 * `withOptions()` afterwards are governed too, also when they bring their own `middleware`
 * (governance stays last), and a Messages call with per-request `middleware` is refused (it
 * would run after governance). Before 0.101.0 (no `middleware` option) the same governance
 * runs around the client's `fetch`, through which it sends every HTTP attempt; copies made
 * with `withOptions()` are governed too, also when they bring their own `fetch`. Returns the
 * same client; existing references keep working. Wrapping a client again for the same agent
 * changes nothing (a warning is logged).
 *
 * @example
 * ```ts
 * const anthropic = wrapAnthropic(new Anthropic(), { governance: sdk, agentId: "billing-agent" });
 * ```
 * @throws {InvalidWrapperOptionsError} a client that is not an Anthropic client (or one older
 *   than 0.50.0, which has neither `middleware` nor a `fetch` of its own), one already wrapped
 *   for another agent, or bad options; nothing was wrapped.
 */
export function wrapAnthropic<Client extends object>(
  client: Client,
  options: WrapAnthropicOptions,
): Client {
  const target = client as AnthropicClientLike;
  const messages = isObject(target) ? target.messages : undefined;
  if (!isObject(messages) || typeof messages.create !== "function")
    throw new InvalidWrapperOptionsError(
      "client",
      "is not an Anthropic client: it has no messages.create.",
      "Pass the client of the @anthropic-ai/sdk package: wrapAnthropic(new Anthropic(), { governance, agentId }).",
    );
  const viaMiddleware = Array.isArray(target.middleware);
  if (!viaMiddleware && typeof target.fetch !== "function")
    throw new InvalidWrapperOptionsError(
      "client",
      "is an @anthropic-ai/sdk client with neither the middleware option nor a fetch of its own (a version before 0.50.0), through which the wrapper governs its calls.",
      "Upgrade @anthropic-ai/sdk to 0.50.0 or later (0.101.0 or any 1.x governs through its middleware).",
    );
  const resolved = resolveWrapOptions(options);
  const existing = (
    viaMiddleware ? target.middleware?.find(isGovernanceMiddleware) : governedFetchOf(target)
  ) as { [GOVERNED]?: string } | undefined;
  if (existing !== undefined) {
    if (existing[GOVERNED] !== resolved.agentId)
      throw new InvalidWrapperOptionsError(
        "client",
        `is already wrapped for agent ${JSON.stringify(existing[GOVERNED])}; its calls cannot be governed as ${JSON.stringify(resolved.agentId)} too.`,
        "Create one client per agent: wrapAnthropic(new Anthropic(), { governance, agentId }).",
      );
    resolved.ports.logger.warn(
      "@gov/wrappers: this Anthropic client is already wrapped; the second wrapAnthropic() changed nothing.",
      {
        agentId: resolved.agentId,
        wrappedFor: existing[GOVERNED],
      },
    );
    return client;
  }
  const governor = new Governor(resolved, "anthropic");
  const middleware = governanceMiddleware(governor);
  if (viaMiddleware) govern(target, middleware);
  else governFetch(target as AnthropicClientLike & Record<string, unknown>, governor);
  governor.registered({ via: viaMiddleware ? "middleware" : "fetch", operations: OPERATIONS });
  return client;
}

/** The client's `fetch` when it is already governed (by any copy of this package), else undefined. */
function governedFetchOf(target: AnthropicClientLike): unknown {
  return isGovernanceMiddleware(target.fetch) ? target.fetch : undefined;
}

/** Where `prepareRequest` leaves the admitted request for `fetch` (copied with the init). */
const ADMITTED = Symbol("@gov/wrappers.anthropic.admitted");

/** An admitted request on its way from `prepareRequest` to `fetch`. */
interface Prepared {
  admitted: AdmittedRequest;
  /**
   * `prepared` until `fetch` takes it (`sent`); `released` when it did not come in time
   * (the client aborted, or something between the two threw): its reservation was released,
   * and a `fetch` that still comes admits the request anew.
   */
  state: "prepared" | "sent" | "released";
  /** Called once it is sent or released ({@link settled} waits for it). */
  decided(): void;
}

/**
 * A governed `fetch` is sending: a governed `fetch` called from inside it (a `fetch` of the
 * host's that calls another governed client's) passes the request on as it is, so that one
 * request is governed once.
 */
const sending = new AsyncLocalStorage<true>();

/**
 * In the `fetch` path, a refusal found in a whole Message is the response body's error: the
 * client reads the body and throws it to the caller as it is (thrown from `fetch`, it would be
 * taken for a connection failure and the call retried).
 */
const refusedInBody: RefusalInResponse = (error) =>
  new Response(
    new ReadableStream({
      start(controller) {
        controller.error(error);
      },
    }),
    { status: 200, headers: { "content-type": "application/json" } },
  );

/** Mark a function as this package's governance for an agent (as the middleware is). */
function marked<F extends object>(fn: F, agentId: string): F {
  Object.defineProperty(fn, GOVERNED, { value: agentId, enumerable: false });
  return fn;
}

/** The error a prepared request that never reached `fetch` is released with. */
function notSent(signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) return signal.reason;
  const error = new Error("The client did not send the request it had prepared.");
  error.name = "AbortError";
  return error;
}

/**
 * Clients before 0.101.0 (no `middleware` option). Each HTTP attempt is admitted in the
 * client's `prepareRequest` hook — before its `fetch`, whose errors the client takes for
 * connection failures and retries, so that a refusal reaches the caller as it is — and sent
 * and governed in its `fetch`, which the client calls right after the hook (a prepared request
 * that is not sent by then, e.g. aborted, is released). `fetch` becomes an accessor: a `fetch`
 * assigned later (by instrumentation) is what the governed one calls. A `withOptions` copy is
 * governed the same way: it gets the `fetch` its options name (the client's, or one passed),
 * and the class's `prepareRequest`.
 */
function governFetch(
  target: AnthropicClientLike & Record<string, unknown>,
  governor: Governor,
): void {
  const agentId = governor.options.agentId;
  let send = target.fetch;
  if (typeof send === "function" && !isGovernanceMiddleware(send)) {
    const governed = marked(async (url: string | URL, init: RequestInit = {}) => {
      const raw = send as NonNullable<typeof send>;
      if (sending.getStore() === true) return raw.call(undefined, String(url), init);
      const { [ADMITTED]: prepared, ...rest } = init as RequestInit & { [ADMITTED]?: Prepared };
      const request = copyRequest(rest, String(url));
      let admitted: AdmittedRequest;
      if (prepared?.state === "prepared") {
        prepared.state = "sent";
        prepared.decided();
        admitted = { ...prepared.admitted, sent: request };
      } else {
        // Not prepared (this fetch called directly, or given to another client), or released
        // before it came: admitted here. A refusal then reaches that caller as the cause of
        // its connection error.
        admitted = await admitRequest(governor, request);
      }
      return governedResponse(
        admitted,
        ({ url: sentUrl, ...sent }) => sending.run(true, () => raw.call(undefined, sentUrl, sent)),
        refusedInBody,
      );
    }, agentId);
    Object.defineProperty(target, "fetch", {
      get: () => governed,
      set: (replacement: unknown) => {
        if (typeof replacement === "function" && !isGovernanceMiddleware(replacement))
          send = replacement as typeof send;
      },
      configurable: true,
      enumerable: true,
    });
  }
  const prepare = target.prepareRequest;
  if (!isGovernanceMiddleware(prepare)) {
    target.prepareRequest = marked(async function governedPrepare(
      this: unknown,
      request: RequestInit & Record<PropertyKey, unknown>,
      context: { url?: string; options?: { signal?: AbortSignal | null } } = {},
    ) {
      if (typeof prepare === "function")
        await (prepare as (request: unknown, context: unknown) => Promise<void>).call(
          this,
          request,
          context,
        );
      const admitted = await admitRequest(
        governor,
        copyRequest(request, String(context.url ?? "")),
      );
      if (admitted.sent.body !== request.body) {
        request.body = admitted.sent.body;
        request.headers = admitted.sent.headers;
      }
      let decided: () => void = () => undefined;
      // settled() waits until the request is sent or released
      trackSettlement(
        new Promise<void>((resolve) => {
          decided = resolve;
        }),
      );
      const prepared: Prepared = { admitted, state: "prepared", decided: () => decided() };
      Object.defineProperty(request, ADMITTED, {
        value: prepared,
        enumerable: true, // the client copies the init it was given into fetch's
        configurable: true,
      });
      // The client calls fetch right after this hook returns, in the same turn: a request not
      // sent by the next turn never will be (the caller aborted, or the client threw).
      setImmediate(() => {
        if (prepared.state === "prepared") {
          prepared.state = "released";
          admitted.call?.failed(notSent(context.options?.signal ?? undefined));
        }
        prepared.decided();
      });
    }, agentId);
  }
  const withOptions = target.withOptions;
  if (typeof withOptions !== "function" || isGovernanceMiddleware(withOptions)) return;
  target.withOptions = marked(function governedWithOptions(this: unknown, ...args: unknown[]) {
    const copy = (withOptions as (...args: unknown[]) => unknown).apply(this, args);
    if (isObject(copy))
      governFetch(copy as AnthropicClientLike & Record<string, unknown>, governor);
    return copy;
  }, agentId) as never;
}

/**
 * Put the governance middleware last in a client's list (any other copy of it taken out), and
 * make its `withOptions` do the same for the copy it returns: the client builds a copy's list
 * from the `middleware` option when one is passed, which would otherwise drop governance.
 */
function govern(target: AnthropicClientLike, middleware: AnthropicMiddleware): void {
  const list = Array.isArray(target.middleware) ? target.middleware : [];
  target.middleware = [...list.filter((entry) => !isGovernanceMiddleware(entry)), middleware];
  const withOptions = target.withOptions;
  if (typeof withOptions !== "function") return;
  Object.defineProperty(target, "withOptions", {
    value: function governedWithOptions(this: unknown, ...args: unknown[]) {
      const copy = (withOptions as (...args: unknown[]) => unknown).apply(this, args);
      if (isObject(copy)) govern(copy as AnthropicClientLike, middleware);
      return copy;
    },
    configurable: true,
    writable: true,
    enumerable: false,
  });
}
