/**
 * A loopback HTTP server that speaks the Anthropic Messages API wire format — JSON messages,
 * server-sent events (`message_start`, `content_block_*`, `message_delta`, `message_stop`,
 * `ping`, `error`) and error bodies — for the real `@anthropic-ai/sdk` client to talk to. It
 * records every request it receives.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

type Json = Record<string, unknown>;

/** What the server answers one request with. */
export type AnthropicReply =
  | { json: unknown; status?: number }
  /**
   * Server-sent events, each written as `event: <type>` and `data: <json>`. `cut` drops the
   * connection after the events (no clean end); `hang` keeps it open after them.
   */
  | { sse: Json[]; cut?: boolean; hang?: boolean }
  /** Drop the connection before answering (a connection error for the client). */
  | { drop: true };

/** A request the server received. */
export interface AnthropicRequest {
  method: string;
  /** The path with its query, e.g. `/v1/messages` or `/v1/messages?beta=true`. */
  path: string;
  body: Json;
  headers: Record<string, string | string[] | undefined>;
}

/** The running server: where it listens, what it received, how it answers. */
export interface AnthropicServer {
  /** The client's `baseURL` (the client adds `/v1/messages`). */
  readonly baseURL: string;
  readonly received: AnthropicRequest[];
  /** How the next requests are answered (a function of the request). */
  reply: (request: AnthropicRequest) => AnthropicReply;
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<Json> {
  const parts: Buffer[] = [];
  for await (const part of request) parts.push(part as Buffer);
  const text = Buffer.concat(parts).toString("utf8");
  return text === "" ? {} : (JSON.parse(text) as Json);
}

/** Start a server on a free loopback port; it answers 500 until `reply` is set. */
export async function startAnthropicServer(): Promise<AnthropicServer> {
  const received: AnthropicRequest[] = [];
  const sockets = new Set<Socket>();
  const state: AnthropicServer = {
    baseURL: "",
    received,
    reply: () => ({ json: errorBody("api_error", "no reply scripted"), status: 500 }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer(async (request, response) => {
    const body = await readBody(request);
    const entry: AnthropicRequest = {
      method: request.method ?? "",
      path: request.url ?? "",
      body,
      headers: request.headers,
    };
    received.push(entry);
    const reply = state.reply(entry);
    const requestId = `req_${received.length}`;
    if ("drop" in reply) {
      request.socket.destroy();
      return;
    }
    if ("json" in reply) {
      response.writeHead(reply.status ?? 200, {
        "content-type": "application/json",
        "request-id": requestId,
      });
      response.end(JSON.stringify(reply.json));
      return;
    }
    response.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "request-id": requestId,
    });
    for (const event of reply.sse)
      response.write(`event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`);
    if (reply.cut) {
      // let the events reach the client first, then drop the connection mid-stream
      setTimeout(() => response.socket?.destroy(), 50);
      return;
    }
    if (reply.hang) return;
    response.end();
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, { baseURL: `http://127.0.0.1:${port}` });
}

/** The model the tests call. */
export const MODEL = "claude-sonnet-4-6";

/**
 * A Messages `usage` as the API reports it: 200 uncached input tokens, 1000 written to the
 * cache, 4000 read from it, 300 output tokens (of which 120 thinking, a breakdown only: all
 * 300 are billed as output), with the other fields the API sends beside the counts.
 */
export const USAGE = {
  input_tokens: 200,
  cache_creation_input_tokens: 1000,
  cache_read_input_tokens: 4000,
  cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 0 },
  output_tokens: 300,
  output_tokens_details: { thinking_tokens: 120 },
  server_tool_use: null,
  service_tier: "standard",
  inference_geo: null,
  speed: null,
};

/** An Anthropic error body (`{ type: "error", error: { type, message } }`). */
export function errorBody(type: string, message: string): Json {
  return { type: "error", error: { type, message }, request_id: "req_error" };
}

export interface MessageOptions {
  text?: string;
  /** The tools the model asks to call, in order, after the text. */
  toolUses?: string[];
  stopReason?: string;
  usage?: Json;
}

function toolUse(name: string, index: number): Json {
  return { type: "tool_use", id: `toolu_${index}`, name, input: { id: index } };
}

/** A whole Message (`messages.create` without `stream`). */
export function message(options: MessageOptions = {}): Json {
  const toolUses = options.toolUses ?? [];
  return {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: MODEL,
    content: [
      { type: "text", text: options.text ?? "Hello.", citations: null },
      ...toolUses.map(toolUse),
    ],
    stop_reason: options.stopReason ?? (toolUses.length > 0 ? "tool_use" : "end_turn"),
    stop_sequence: null,
    stop_details: null,
    container: null,
    usage: options.usage ?? USAGE,
  };
}

/**
 * The events of a streamed Message: `message_start` (input usage, 1 output token), a text
 * block, the tool_use blocks (their input as `input_json_delta`), `message_delta` (the
 * cumulative output usage and the stop reason), `message_stop`; a `ping` after the start.
 */
export function messageEvents(options: { text?: string[]; toolUses?: string[] } = {}): Json[] {
  const toolUses = options.toolUses ?? [];
  const { output_tokens: _output, output_tokens_details: _details, ...input } = USAGE;
  const events: Json[] = [
    {
      type: "message_start",
      message: {
        ...message({ toolUses: [] }),
        content: [],
        stop_reason: null,
        usage: { ...input, output_tokens: 1, output_tokens_details: null },
      },
    },
    { type: "ping" },
    { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
  ];
  for (const text of options.text ?? ["Hel", "lo."])
    events.push({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } });
  events.push({ type: "content_block_stop", index: 0 });
  toolUses.forEach((name, position) => {
    const index = position + 1;
    events.push(
      {
        type: "content_block_start",
        index,
        content_block: { ...toolUse(name, position), input: {} },
      },
      {
        type: "content_block_delta",
        index,
        delta: { type: "input_json_delta", partial_json: `{"id": ${position}}` },
      },
      { type: "content_block_stop", index },
    );
  });
  events.push(
    {
      type: "message_delta",
      delta: {
        stop_reason: toolUses.length > 0 ? "tool_use" : "end_turn",
        stop_sequence: null,
      },
      usage: {
        output_tokens: USAGE.output_tokens,
        output_tokens_details: USAGE.output_tokens_details,
      },
    },
    { type: "message_stop" },
  );
  return events;
}

/** An `error` event, as the API sends one mid-stream (e.g. `overloaded_error`). */
export function errorEvent(type = "overloaded_error"): Json {
  return { type: "error", error: { type, message: "Overloaded" } };
}
