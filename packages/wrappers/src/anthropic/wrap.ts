import { InvalidWrapperOptionsError } from "../errors";
import { Governor } from "../governed-call";
import { resolveWrapOptions, type WrapOptions } from "../options";
import { isObject } from "../shapes";
import {
  type AnthropicMiddleware,
  GOVERNED,
  governanceMiddleware,
  isGovernanceMiddleware,
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
 * list the client runs around every HTTP request (`@anthropic-ai/sdk` 0.101.0 and later).
 */
export interface AnthropicClientLike {
  messages?: { create: (...args: never[]) => unknown };
  middleware?: readonly unknown[];
  /** A copy of the client with other options (governed too, governance last). */
  withOptions?: (options: never) => unknown;
}

/**
 * Govern an `Anthropic` client (`@anthropic-ai/sdk` 0.101.0 and later, 1.x included) in place:
 * every Messages call it makes — `messages.create` (plain and `stream: true`),
 * `messages.stream`, `messages.parse`, `beta.messages.*`, the tool runner — is halt-checked,
 * scoped, budgeted and audited. Governance is added to the client's own `middleware` (last,
 * so that it sees the request as it leaves); copies made with `withOptions()` afterwards are
 * governed too, also when they bring their own `middleware` (governance stays last). A
 * Messages call with per-request `middleware` is refused (it would run after governance).
 * Returns the same client; existing references keep working. Wrapping a client again for the
 * same agent changes nothing (a warning is logged).
 *
 * @example
 * ```ts
 * const anthropic = wrapAnthropic(new Anthropic(), { governance: sdk, agentId: "billing-agent" });
 * ```
 * @throws {InvalidWrapperOptionsError} a client that is not an Anthropic client, one older than
 *   0.101.0 (no middleware), one already wrapped for another agent, or bad options; nothing
 *   was wrapped.
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
  if (!Array.isArray(target.middleware))
    throw new InvalidWrapperOptionsError(
      "client",
      "is an @anthropic-ai/sdk client without the middleware option (a version before 0.101.0), through which the wrapper governs its calls.",
      "Upgrade @anthropic-ai/sdk to 0.101.0 or later (any 1.x).",
    );
  const resolved = resolveWrapOptions(options);
  const existing = target.middleware.find(isGovernanceMiddleware) as
    | { [GOVERNED]?: string }
    | undefined;
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
  govern(target, governanceMiddleware(governor));
  governor.registered({ via: "middleware", operations: OPERATIONS });
  return client;
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
