/**
 * The harness of the Anthropic tests: the modules on a fresh store, the loopback Anthropic
 * server, an agent with a scope (one allowed tool, one hidden tool, one model) and a $1 session
 * budget, and the real client of one major wrapped for it.
 */
import type { TestEngine } from "@gov/core/testing";
import { wrapAnthropic } from "../anthropic/wrap";
import { settled } from "../governed-call";
import { type AnthropicServer, MODEL, startAnthropicServer } from "./anthropic-server";
import { type ANTHROPIC_CLIENTS, type Harness, harness } from "./harness";

export const AGENT = "billing-agent";
export const SESSION = "s-1";

/** The smallest Messages request: one user turn, 500 output tokens at most. */
export const ask = { max_tokens: 500, messages: [{ role: "user" as const, content: "hi" }] };

type Client = ReturnType<(typeof ANTHROPIC_CLIENTS)[number]["create"]>;

export interface AnthropicHarness extends Harness<AnthropicServer> {
  /** A new client of the major under test, pointed at the server and wrapped for {@link AGENT}. */
  wrapped(options?: Record<string, unknown>): Client;
  /** The agent's session budget as the cost module reads it. */
  snapshot(): ReturnType<Harness["cost"]["snapshot"]>;
  /** The kinds of the audit events written so far, in order. */
  kinds(): string[];
  /** The first audit event of a kind. */
  event(kind: string): Harness["audit"]["events"][number] | undefined;
  /** The error lines logged so far. */
  errors(): Harness["logger"]["lines"];
}

export async function anthropicHarness(
  engine: TestEngine,
  client: (typeof ANTHROPIC_CLIENTS)[number],
): Promise<AnthropicHarness> {
  const h = await harness(engine, startAnthropicServer);
  h.scope.register({
    agentId: AGENT,
    allowedTools: ["lookup_invoice"],
    hiddenTools: ["delete_all"],
    allowedModels: [MODEL],
  });
  h.cost.register({ agentId: AGENT, perSessionUsd: 1 });
  return Object.assign(h, {
    wrapped: (options: Record<string, unknown> = {}) =>
      wrapAnthropic(client.create(h.server.baseURL), {
        governance: h.governance,
        agentId: AGENT,
        sessionId: SESSION,
        ...options,
      }),
    snapshot: async () => {
      await settled();
      return h.cost.snapshot(AGENT, SESSION);
    },
    kinds: () => h.audit.events.map((event) => event.kind),
    event: (kind: string) => h.audit.events.find((entry) => entry.kind === kind),
    errors: () => h.logger.lines.filter((line) => line.level === "error"),
  });
}
