/**
 * Server-sent event streams read as they pass to the client: split into events, each handed
 * to a provider's {@link EventState} (which reads usage and tool calls, and may drop or change
 * the event), and the call settled exactly once however the stream ends — completed, cut,
 * errored, aborted or cancelled by its reader.
 * @module
 */
import { type CallEnd, type CallOutcome, type GovernedCall, isAbort } from "./governed-call";
import { endOf, isObject, type Json } from "./shapes";

/** Splits decoded text into server-sent events (blocks separated by a blank line). */
export class EventSplitter {
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
export function readEvent(block: string): { name: string; data: string } {
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

export function parseEventData(data: string): Json | null {
  try {
    const value: unknown = JSON.parse(data);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

/** What the governed stream needs of a body's reader. */
interface BodyReader {
  read(): Promise<{ done: false; value: Uint8Array } | { done: true; value?: undefined }>;
  cancel(reason?: unknown): Promise<void>;
}

/**
 * A reader of a response body: a web stream's own, or one over a Node stream (the responses
 * of clients on `node-fetch`, such as openai 4).
 */
function readerOf(body: unknown): BodyReader {
  const web = body as { getReader?: () => BodyReader };
  if (typeof web.getReader === "function") return web.getReader();
  const iterator = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  return {
    read: async () => {
      const next = await iterator.next();
      return next.done ? { done: true as const } : { done: false as const, value: next.value };
    },
    cancel: async () => {
      await iterator.return?.();
    },
  };
}

/** A provider's reading of one event stream. */
export interface EventState {
  /** Events read so far. */
  readonly events: number;
  /** An error event the stream carried (the call then ends as failed), or null. */
  readonly error: unknown;
  /** The event as the client sees it, or null to drop it. May throw a governance refusal. */
  pass(block: string): Promise<string | null>;
  /** What was received: usage, finish reason, tool calls removed. */
  outcome(): CallOutcome;
}

/**
 * The response the client reads instead of `response`: the same status and headers, its body
 * the governed events.
 */
export function governedEventStream(
  call: GovernedCall,
  response: Response,
  signal: AbortSignal | null | undefined,
  state: EventState,
): Response {
  const body = response.body;
  if (body === null) {
    call.reconciled({ usage: null, finishReason: null }, "completed", 0);
    return response;
  }
  const reader = readerOf(body);
  const splitter = new EventSplitter();
  const encoder = new TextEncoder();
  let settled = false;
  const onAbort = () => settle("aborted");
  /** Settles the call once, whoever ends the stream first (the end, the consumer, an abort). */
  function settle(end: CallEnd, error?: unknown): void {
    if (settled) return;
    settled = true;
    signal?.removeEventListener("abort", onAbort);
    // an `error` event ends the stream as failed, however the stream then stops
    const failure = state.error ?? error;
    call.reconciled(state.outcome(), state.error === null ? end : "failed", state.events, failure);
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
            settle("completed");
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
        settle(endOf(error), error);
        if (cancelled) return;
        reader.cancel(error).catch(() => undefined);
        controller.error(error);
      }
    },
    async cancel(reason) {
      // the consumer stopped reading (a `break`, or the client aborting)
      cancelled = true;
      settle(isAbort(reason) ? "aborted" : "abandoned");
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
