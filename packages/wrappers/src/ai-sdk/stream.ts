/**
 * A governed language-model stream: the stream parts of `doStream` read as they pass, the
 * out-of-scope tool calls dropped (or refused), and the call's reservation settled exactly
 * once — at the `finish` part, or when the stream errors, is cut, or is cancelled.
 * @module
 */
import { type CallEnd, describe, type GovernedCall, isAbort } from "../governed-call";
import { endOf } from "../shapes";
import { finishReasonOf, hostToolCall, isObject, usageOf } from "./shapes";

/**
 * Streams dropped unread and never cancelled (a consumer of `doStream` that lets go of the
 * stream half-way): once such a stream is garbage collected, its call is reconciled from the
 * parts received and its source cancelled (which closes the connection). A stream with a
 * read pending on a server that sends nothing more is not collected: the cost module's
 * reservation TTL is the last resort there.
 */
const unreachable = new FinalizationRegistry<{ abandon: () => void }>((held) => held.abandon());

/**
 * Govern a stream of language-model parts (V2, V3 and V4 alike).
 *
 * - `tool-input-start` / `tool-call` parts of a tool the agent may not use are checked once
 *   per call id and name (`GovernedCall.allowToolCall`): removed with the call's `tool-input-*` parts,
 *   or the stream errors with `ToolCallOutOfScopeError` (`onToolOutOfScope: "throw"`).
 * - `finish`: the usage is settled before the part is passed on (so that the next step's
 *   budget check sees it); a stream that sent an `error` part before it is recorded as failed.
 * - A read that fails (the server cut the stream, the caller's `abortSignal`), a stream that
 *   ends without `finish`, and a consumer that cancels (stops reading; `aborted` when the
 *   call's `abortSignal` fired, else `abandoned`) are reconciled from the parts received.
 *   Nothing is left reserved.
 *
 * Pulls from the source only when the consumer reads: the source's back-pressure is kept.
 */
export function governPartStream(
  call: GovernedCall,
  source: ReadableStream<unknown>,
  provider: string,
  abortSignal?: AbortSignal,
): ReadableStream<unknown> {
  const reader = source.getReader();
  const { recordContent, ports } = call.governor.options;
  // per call id: the name checked, and whether the call may be shown
  const decisions = new Map<string, { name: string; allowed: boolean }>();
  const removed: string[] = [];
  let chunks = 0;
  let usage: ReturnType<typeof usageOf> = null;
  let finishReason: string | null = null;
  let streamError: { error: unknown } | null = null;
  let text = "";
  let ended = false;
  // Set when the consumer cancelled: the controller then takes no more parts.
  let cancelled = false;

  const token = {};
  async function end(how: CallEnd, error?: unknown): Promise<void> {
    if (ended) return;
    ended = true;
    unreachable.unregister(token);
    try {
      call.reconciled(
        {
          usage,
          finishReason,
          removedToolCalls: removed,
          ...(recordContent ? { output: { text, removedToolCalls: removed } } : {}),
        },
        how,
        chunks,
        error,
      );
    } catch (failure) {
      ports.logger.error("@gov/wrappers: could not settle an AI SDK stream.", {
        error: describe(failure),
      });
    }
  }

  /**
   * Check a call once per id and name: a `tool-call` that names its call otherwise than its
   * `tool-input-start` did (the AI SDK runs the `tool-call`'s) is checked again; a refused
   * call stays refused.
   */
  async function allowed(id: string, name: string): Promise<boolean> {
    const known = decisions.get(id);
    if (known !== undefined && (known.name === name || !known.allowed)) return known.allowed;
    const allow = await call.allowToolCall(name);
    decisions.set(id, { name, allowed: allow });
    if (!allow) removed.push(name);
    return allow;
  }

  /** The part as the host sees it, or null to drop it. May throw a governance refusal. */
  async function onPart(part: unknown): Promise<unknown> {
    if (!isObject(part)) return part;
    const type = part.type;
    // What the model generated, for a reconcile without usage (cost estimates per chunk).
    if (type === "tool-input-start" || (typeof type === "string" && type.endsWith("-delta")))
      chunks++;
    switch (type) {
      case "text-delta":
        if (recordContent && typeof part.delta === "string") text += part.delta;
        return part;
      case "tool-input-start":
        if (part.providerExecuted === true || typeof part.id !== "string") return part;
        return (await allowed(part.id, typeof part.toolName === "string" ? part.toolName : ""))
          ? part
          : null;
      case "tool-input-delta":
      case "tool-input-end":
        return typeof part.id === "string" && decisions.get(part.id)?.allowed === false
          ? null
          : part;
      case "tool-call": {
        const toolCall = hostToolCall(part);
        if (toolCall === null) return part;
        return (await allowed(toolCall.toolCallId, toolCall.toolName)) ? part : null;
      }
      case "error":
        streamError ??= { error: part.error };
        return part;
      case "finish":
        usage = usageOf(part.usage, provider, part.providerMetadata);
        finishReason = finishReasonOf(part.finishReason);
        if (streamError === null) await end("completed");
        else await end("failed", streamError.error);
        return part;
      default:
        return part;
    }
  }

  const governed = new ReadableStream<unknown>({
    async pull(controller) {
      for (;;) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          await end(endOf(error), error);
          if (!cancelled) controller.error(error);
          return;
        }
        if (next.done) {
          // Ended without a finish part: reconciled from the parts received.
          if (streamError === null) await end("completed");
          else await end("failed", streamError.error);
          if (!cancelled) controller.close();
          return;
        }
        let out: unknown;
        try {
          out = await onPart(next.value);
        } catch (error) {
          // A refused tool call (or a halt meanwhile): stop reading, settle, and report it.
          reader.cancel(error).catch(() => undefined);
          await end(endOf(error), error);
          if (!cancelled) controller.error(error);
          return;
        }
        if (cancelled) return;
        if (out !== null) {
          controller.enqueue(out);
          return;
        }
      }
    },
    async cancel(reason) {
      // The consumer stopped reading: stop the source, and settle from what was received. AI
      // SDK 7 cancels the stream (without a reason) when the caller's abortSignal fires.
      cancelled = true;
      const stopped = reader.cancel(reason).catch(() => undefined);
      await end(isAbort(reason) || abortSignal?.aborted === true ? "aborted" : "abandoned");
      await stopped;
    },
  });
  // The held value must not reach `governed`: it reaches the source (upstream) only.
  unreachable.register(
    governed,
    {
      abandon: () => {
        reader.cancel().catch(() => undefined);
        void end("abandoned");
      },
    },
    token,
  );
  return governed;
}
