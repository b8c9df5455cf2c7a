/**
 * A streamed Message, governed on its way to the client: the server-sent events are read as
 * they arrive — usage from `message_start` and `message_delta`, tool_use blocks checked when
 * they start — and passed on unchanged, except a tool_use block outside scope, which is dropped
 * with its deltas (later blocks renumbered). The call is settled when the stream ends, and
 * reconciled from what was received when it is aborted, cut, errored or abandoned.
 */
import type { CallOutcome, GovernedCall } from "../governed-call";
import { isObject, type Json } from "../shapes";
import { type EventState, governedEventStream, parseEventData, readEvent, withBody } from "../sse";
import { AnthropicApiError, errorTypeOf, isToolUse, mergeUsage, usageOf } from "./messages";

/**
 * Output tokens assumed per content delta of a stream that ended before it reported its output
 * (`@gov/cost` estimates a chunk at 8 tokens too): a conservative estimate, never 0.
 */
const TOKENS_PER_DELTA = 8;

const serialize = (name: string, data: Json) => `event: ${name}\ndata: ${JSON.stringify(data)}`;

/** What one stream has shown so far, and the events it passes on. */
class StreamState implements EventState {
  events = 0;
  #deltas = 0;
  #usage: Json | null = null;
  #outputReported = false;
  #finish: string | null = null;
  #removed: string[] = [];
  #keptCalls = 0;
  /** Original indexes of the dropped tool_use blocks. */
  readonly #dropped: number[] = [];
  error: AnthropicApiError | null = null;

  constructor(readonly call: GovernedCall) {}

  /** The event as the client sees it, or null to drop it. May throw a governance refusal. */
  async pass(block: string): Promise<string | null> {
    this.events++;
    const { name, data } = readEvent(block);
    switch (name) {
      case "message_start": {
        const event = parseEventData(data);
        const message = event?.message;
        if (isObject(message) && isObject(message.usage)) this.#usage = { ...message.usage };
        return block;
      }
      case "content_block_start": {
        const event = parseEventData(data);
        if (event === null) return block;
        const index = typeof event.index === "number" ? event.index : -1;
        if (isToolUse(event.content_block)) {
          if (!(await this.call.allowToolCall(event.content_block.name))) {
            this.#removed.push(event.content_block.name);
            this.#dropped.push(index);
            return null;
          }
          this.#keptCalls++;
        }
        return this.#renumbered(name, event, index, block);
      }
      case "content_block_delta":
      case "content_block_stop": {
        if (name === "content_block_delta") this.#deltas++;
        if (this.#dropped.length === 0) return block;
        const event = parseEventData(data);
        if (event === null) return block;
        const index = typeof event.index === "number" ? event.index : -1;
        if (this.#dropped.includes(index)) return null;
        return this.#renumbered(name, event, index, block);
      }
      case "message_delta": {
        const event = parseEventData(data);
        if (event === null) return block;
        if (isObject(event.usage)) {
          this.#usage = mergeUsage(this.#usage, event.usage);
          this.#outputReported = true;
        }
        const delta = isObject(event.delta) ? event.delta : null;
        if (delta !== null && typeof delta.stop_reason === "string") {
          this.#finish = delta.stop_reason;
          if (this.#finish === "tool_use" && this.#removed.length > 0 && this.#keptCalls === 0) {
            // every tool call was removed: the host must not wait for tool results
            delta.stop_reason = "end_turn";
            this.#finish = "end_turn";
            return serialize(name, event);
          }
        }
        return block;
      }
      case "error": {
        const event = parseEventData(data);
        this.error = new AnthropicApiError(undefined, errorTypeOf(event) ?? "error");
        return block;
      }
      default:
        return block;
    }
  }

  #renumbered(name: string, event: Json, index: number, block: string): string {
    const shift = this.#dropped.filter((dropped) => dropped < index).length;
    if (shift === 0) return block;
    event.index = index - shift;
    return serialize(name, event);
  }

  /** What was received: the usage (the output estimated when it was never reported). */
  outcome(): CallOutcome {
    let usage = usageOf(this.#usage);
    if (usage !== null && !this.#outputReported)
      usage = {
        ...usage,
        output_tokens: Math.max(usage.output_tokens, this.#deltas * TOKENS_PER_DELTA),
      };
    return { usage, finishReason: this.#finish, removedToolCalls: this.#removed };
  }
}

/** The response the client reads instead of `response`: the governed Message events. */
export function governedMessageStream(
  call: GovernedCall,
  response: Response,
  signal: AbortSignal | null | undefined,
): Response {
  return governedEventStream(call, response, signal, new StreamState(call));
}

export { withBody };
