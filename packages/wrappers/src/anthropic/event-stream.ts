/**
 * A streamed Message, governed on its way to the client: the server-sent events are read as
 * they arrive — usage from `message_start` and `message_delta`, tool_use blocks checked when
 * they start — and passed on unchanged, except a tool_use block outside scope, which is dropped
 * with its deltas (later blocks renumbered). The call is settled when the stream ends, and
 * reconciled from what was received when it is aborted, cut, errored or abandoned.
 */
import { type CallEnd, type CallOutcome, type GovernedCall, isAbort } from "../governed-call";
import { endOf, isObject, type Json } from "../shapes";
import { AnthropicApiError, errorTypeOf, isToolUse, mergeUsage, usageOf } from "./messages";

/**
 * Output tokens assumed per content delta of a stream that ended before it reported its output
 * (`@gov/cost` estimates a chunk at 8 tokens too): a conservative estimate, never 0.
 */
const TOKENS_PER_DELTA = 8;

/** Splits decoded text into server-sent events (blocks separated by a blank line). */
class EventSplitter {
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  #text = "";

  push(bytes: Uint8Array): string[] {
    return this.#split(this.#decoder.decode(bytes, { stream: true }), false);
  }

  flush(): string[] {
    return this.#split(this.#decoder.decode(), true);
  }

  #split(decoded: string, end: boolean): string[] {
    let text = this.#text + decoded;
    // a CR at the end may be the first half of a CRLF: keep it for the next chunk
    let pending = "";
    if (!end && text.endsWith("\r")) {
      pending = "\r";
      text = text.slice(0, -1);
    }
    if (text.includes("\r")) text = text.replace(/\r\n?/g, "\n");
    const blocks = text.split("\n\n");
    this.#text = end ? "" : (blocks.pop() ?? "") + pending;
    return blocks.filter((block) => block.trim() !== "");
  }
}

/** One event: its name (the `event:` field, else the data's `type`) and its data. */
function readEvent(block: string): { name: string; data: string } {
  let name = "";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const field = line.slice(0, colon);
    const value = line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  return { name, data: data.join("\n") };
}

function parse(data: string): Json | null {
  try {
    const value: unknown = JSON.parse(data);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

const serialize = (name: string, data: Json) => `event: ${name}\ndata: ${JSON.stringify(data)}`;

/** What one stream has shown so far, and the events it passes on. */
class StreamState {
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
        const event = parse(data);
        const message = event?.message;
        if (isObject(message) && isObject(message.usage)) this.#usage = { ...message.usage };
        return block;
      }
      case "content_block_start": {
        const event = parse(data);
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
        const event = parse(data);
        if (event === null) return block;
        const index = typeof event.index === "number" ? event.index : -1;
        if (this.#dropped.includes(index)) return null;
        return this.#renumbered(name, event, index, block);
      }
      case "message_delta": {
        const event = parse(data);
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
        const event = parse(data);
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

/**
 * The response the client reads instead of `response`: the same status and headers, its body
 * the governed events.
 */
export function governedEventStream(
  call: GovernedCall,
  response: Response,
  signal: AbortSignal | null | undefined,
): Response {
  const body = response.body;
  if (body === null) {
    void call.reconciled({ usage: null, finishReason: null }, "completed", 0);
    return response;
  }
  const reader = body.getReader();
  const splitter = new EventSplitter();
  const state = new StreamState(call);
  const encoder = new TextEncoder();
  let settled: Promise<void> | null = null;
  const onAbort = () => void settle("aborted");
  /** Settles the call once, whoever ends the stream first (the end, the consumer, an abort). */
  function settle(end: CallEnd, error?: unknown): Promise<void> {
    if (settled === null) {
      signal?.removeEventListener("abort", onAbort);
      // an `error` event ends the stream as failed, however the stream then stops
      const failure = state.error ?? error;
      settled = call.reconciled(
        state.outcome(),
        state.error === null ? end : "failed",
        state.events,
        failure,
      );
    }
    return settled;
  }
  signal?.addEventListener("abort", onAbort, { once: true });
  const passAll = async (blocks: string[]): Promise<string> => {
    let out = "";
    for (const block of blocks) {
      const passed = await state.pass(block);
      if (passed !== null) out += `${passed}\n\n`;
    }
    return out;
  };
  let cancelled = false;
  const governed = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        // read until there is something to pass on: a pull that enqueues nothing is not repeated
        for (;;) {
          const { done, value } = await reader.read();
          if (cancelled) return;
          if (done) {
            const tail = await passAll(splitter.flush());
            await settle("completed");
            if (tail !== "") controller.enqueue(encoder.encode(tail));
            controller.close();
            return;
          }
          const out = await passAll(splitter.push(value));
          if (out !== "") {
            controller.enqueue(encoder.encode(out));
            return;
          }
        }
      } catch (error) {
        await settle(endOf(error), error);
        if (cancelled) return;
        reader.cancel(error).catch(() => undefined);
        controller.error(error);
      }
    },
    async cancel(reason) {
      // the consumer stopped reading (a `break`, or the client aborting)
      cancelled = true;
      await settle(isAbort(reason) ? "aborted" : "abandoned");
      await reader.cancel(reason).catch(() => undefined);
    },
  });
  return withBody(response, governed);
}

/**
 * `response` with another body: the same status and headers, less the length and encoding of
 * the body it replaces (the new body is sent as it is, uncompressed).
 */
export function withBody(
  response: Response,
  body: ConstructorParameters<typeof Response>[0],
): Response {
  const headers = new Headers(response.headers);
  headers.delete("content-length");
  headers.delete("content-encoding");
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}
