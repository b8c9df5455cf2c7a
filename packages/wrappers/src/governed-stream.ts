import type { ProviderUsageLike } from "@gov/core";
import { ToolCallOutOfScopeError } from "./errors";
import { type GovernedCall, isAbort } from "./governed-call";

/** What a provider adapter does with each chunk of a governed stream. */
export interface StreamHooks<Chunk> {
  /**
   * Read the chunk (usage, finish reason, tool calls) and return what the host sees: the
   * chunk (possibly changed), or null to drop it. May throw a governance refusal.
   */
  onChunk(chunk: Chunk): Chunk | null | Promise<Chunk | null>;
  /** The usage seen so far (the final usage chunk / the completed event), or null. */
  usage(): ProviderUsageLike | null;
  finishReason(): string | null;
  removedToolCalls(): readonly string[];
  output?(): unknown;
}

/**
 * Govern an async iterator of chunks: the hooks see each chunk, and when the stream ends —
 * completed, broken off by the consumer, aborted, cut by the server, or refused — the call's
 * reservation is settled exactly once (usage when the stream completed with it, otherwise
 * reconciled from the chunks received), before the consumer's loop goes on.
 */
export async function* governStream<Chunk>(
  call: GovernedCall,
  source: AsyncIterator<Chunk>,
  hooks: StreamHooks<Chunk>,
): AsyncGenerator<Chunk, void, undefined> {
  let chunks = 0;
  let end: "completed" | "abandoned" | "aborted" | "failed" | "refused" = "abandoned";
  let failure: unknown;
  const iterable: AsyncIterable<Chunk> = { [Symbol.asyncIterator]: () => source };
  try {
    for await (const chunk of iterable) {
      chunks++;
      const out = await hooks.onChunk(chunk);
      if (out !== null) yield out;
    }
    end = "completed";
  } catch (error) {
    end = ToolCallOutOfScopeError.isInstance(error)
      ? "refused"
      : isAbort(error)
        ? "aborted"
        : "failed";
    failure = error;
    throw error;
  } finally {
    try {
      call.reconciled(
        {
          usage: hooks.usage(),
          finishReason: hooks.finishReason(),
          removedToolCalls: hooks.removedToolCalls(),
          ...(hooks.output ? { output: hooks.output() } : {}),
        },
        end,
        chunks,
        failure,
      );
    } catch (error) {
      call.governor.report("could not settle a stream.", error);
    }
  }
}
