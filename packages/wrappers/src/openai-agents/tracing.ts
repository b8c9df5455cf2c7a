/**
 * `GovernanceTracingProcessor`: the spans of an OpenAI Agents SDK run written into the audit
 * chain (`addTraceProcessor(new GovernanceTracingProcessor(options))`).
 * @module
 */
import type { Span, Trace, TracingProcessor } from "@openai/agents";
import { describe, Governor, trackSettlement } from "../governed-call";
import { resolveWrapOptions, type WrapOptions } from "../options";

/** The options of {@link GovernanceTracingProcessor}: those of every wrapper but `onToolOutOfScope`. */
export type GovernanceTracingOptions = Omit<WrapOptions, "onToolOutOfScope">;

/** Span fields recorded per span type (never inputs or outputs: those are `recordContent`'s). */
const RECORDED_FIELDS: Readonly<Record<string, readonly string[]>> = {
  agent: ["name", "tools", "handoffs", "output_type"],
  function: ["name"],
  generation: ["model", "usage"],
  response: ["response_id"],
  handoff: ["from_agent", "to_agent"],
  guardrail: ["name", "triggered"],
  custom: ["name"],
  task: ["name", "usage"],
  turn: ["turn", "agent_name", "usage"],
  mcp_tools: ["server", "result"],
};

/**
 * A `TracingProcessor` of the Agents SDK that writes each ended span of the process's runs into
 * the audit chain as `agent.span` (and each trace as `agent.trace` when it starts and ends),
 * under the agent and session of its options: the span's type, name, ids, times and error,
 * the usage of model and turn spans, and — with `recordContent` — the function span's input and
 * output (through `redact`). Observation only: a span that cannot be audited is logged, never
 * thrown, and the run is never slowed by the database (events are handed to the sink, not awaited).
 *
 * The SDK's trace processors are global to the process: add one processor per session
 * (`sessionId`, the audit chain's session), and remove it (`setTraceProcessors`) when the
 * session ends. Tracing is off when `NODE_ENV` is `test` or `OPENAI_AGENTS_DISABLE_TRACING` is
 * set: `setTracingDisabled(false)` turns it on.
 *
 * @example
 * ```ts
 * addTraceProcessor(new GovernanceTracingProcessor({ governance: sdk, agentId, sessionId }));
 * ```
 * @throws {InvalidWrapperOptionsError} bad options.
 */
export class GovernanceTracingProcessor implements TracingProcessor {
  readonly #governor: Governor;

  constructor(options: GovernanceTracingOptions) {
    this.#governor = new Governor(resolveWrapOptions(options), "openai-agents");
  }

  #log(kind: string, metadata: Record<string, unknown>): void {
    const { agentId, sessionId } = this.#governor.options;
    const logged = this.#governor.log({
      agentId,
      kind,
      sessionId,
      metadata: { provider: this.#governor.provider, ...metadata },
    });
    trackSettlement(logged.then(() => undefined));
  }

  /** The trace began: `agent.trace` with `phase: "start"`. */
  async onTraceStart(trace: Trace): Promise<void> {
    this.#log("agent.trace", {
      phase: "start",
      traceId: trace.traceId,
      name: trace.name,
      groupId: trace.groupId ?? null,
    });
  }

  /** The trace ended: `agent.trace` with `phase: "end"`. */
  async onTraceEnd(trace: Trace): Promise<void> {
    this.#log("agent.trace", { phase: "end", traceId: trace.traceId, name: trace.name });
  }

  /** Spans are recorded when they end (with their times and error). */
  async onSpanStart(_span: Span<never>): Promise<void> {}

  /** A span ended: `agent.span`. */
  async onSpanEnd(span: Span<never>): Promise<void> {
    try {
      const data = span.spanData as Record<string, unknown>;
      const type = String(data.type);
      const fields: Record<string, unknown> = {};
      for (const field of RECORDED_FIELDS[type] ?? [])
        if (data[field] !== undefined) fields[field] = data[field];
      if (type === "function") {
        const input = this.#governor.recordable("input", `tools.${String(data.name)}`, data.input);
        const output = this.#governor.recordable(
          "output",
          `tools.${String(data.name)}`,
          data.output,
        );
        if (input !== undefined) fields.input = input;
        if (output !== undefined) fields.output = output;
      }
      this.#log("agent.span", {
        type,
        traceId: span.traceId,
        spanId: span.spanId,
        parentId: span.parentId,
        startedAt: span.startedAt,
        endedAt: span.endedAt,
        error: span.error === null ? null : { message: span.error.message },
        ...fields,
      });
    } catch (error) {
      this.#governor.report("could not audit a span.", error, { error: describe(error) });
    }
  }

  /** Nothing is buffered: events are handed to the audit sink as spans end. */
  async shutdown(): Promise<void> {}

  /** Nothing is buffered here; `settled()` waits for the events handed to the sink. */
  async forceFlush(): Promise<void> {}
}
