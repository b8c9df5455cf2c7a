/**
 * A loopback HTTP server that speaks the OpenAI Chat Completions and Responses wire formats,
 * server-sent events included, for the real `openai` client to talk to.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the server answers one request with. */
export type Reply =
  | { json: unknown; status?: number }
  /** SSE: each event's data (objects as JSON); `cut` ends the connection without `[DONE]`; `hang` keeps it open after the events. */
  | { sse: unknown[]; cut?: boolean; hang?: boolean; done?: boolean };

export interface ReceivedRequest {
  path: string;
  body: Record<string, unknown>;
}

export interface OpenAIServer {
  readonly baseURL: string;
  readonly received: ReceivedRequest[];
  /** How the next requests are answered (a function of the request). */
  reply: (request: ReceivedRequest) => Reply;
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  for await (const part of request) parts.push(part as Buffer);
  const text = Buffer.concat(parts).toString("utf8");
  return text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
}

/** Start a server on a free loopback port; it answers 500 until `reply` is set. */
export async function startOpenAIServer(): Promise<OpenAIServer> {
  const received: ReceivedRequest[] = [];
  const sockets = new Set<import("node:net").Socket>();
  const state: OpenAIServer = {
    baseURL: "",
    received,
    reply: () => ({ json: { error: { message: "no reply scripted" } }, status: 500 }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer(async (request, response) => {
    const body = await readBody(request);
    const entry = { path: (request.url ?? "").replace(/^\/v1/, ""), body };
    received.push(entry);
    const reply = state.reply(entry);
    if ("json" in reply) {
      response.writeHead(reply.status ?? 200, {
        "content-type": "application/json",
        "x-request-id": `req_${received.length}`,
      });
      response.end(JSON.stringify(reply.json));
      return;
    }
    response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    for (const event of reply.sse) {
      const data = typeof event === "string" ? event : JSON.stringify(event);
      const type =
        typeof event === "object" && event !== null && "type" in event
          ? `event: ${(event as { type: string }).type}\n`
          : "";
      response.write(`${type}data: ${data}\n\n`);
    }
    if (reply.cut) {
      // let the events reach the client first, then drop the connection mid-stream
      setTimeout(() => response.socket?.destroy(), 50);
      return;
    }
    if (reply.hang) return;
    if (reply.done !== false) response.write("data: [DONE]\n\n");
    response.end();
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, { baseURL: `http://127.0.0.1:${port}/v1` });
}

/** A chat completion with `usage` (cached and reasoning tokens) and optional tool calls. */
export function chatCompletion(
  options: {
    model?: string;
    content?: string | null;
    toolCalls?: string[];
    usage?: Record<string, unknown>;
  } = {},
): Record<string, unknown> {
  const toolCalls = options.toolCalls ?? [];
  return {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1_700_000_000,
    model: options.model ?? "gpt-4o",
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: options.content === undefined ? "Hello." : options.content,
          refusal: null,
          ...(toolCalls.length > 0
            ? {
                tool_calls: toolCalls.map((name, index) => ({
                  id: `call_${index}`,
                  type: "function",
                  function: { name, arguments: "{}" },
                })),
              }
            : {}),
        },
        logprobs: null,
        finish_reason: toolCalls.length > 0 ? "tool_calls" : "stop",
      },
    ],
    usage: options.usage ?? CHAT_USAGE,
  };
}

/** 1200 prompt tokens of which 1000 cached; 300 completion tokens of which 200 reasoning. */
export const CHAT_USAGE = {
  prompt_tokens: 1200,
  completion_tokens: 300,
  total_tokens: 1500,
  prompt_tokens_details: { cached_tokens: 1000 },
  completion_tokens_details: { reasoning_tokens: 200 },
};

export const RESPONSES_USAGE = {
  input_tokens: 1200,
  input_tokens_details: { cached_tokens: 1000 },
  output_tokens: 300,
  output_tokens_details: { reasoning_tokens: 200 },
  total_tokens: 1500,
};

/** The chunks of a streamed chat completion: text (and tool calls), then the usage chunk when asked. */
export function chatChunks(
  body: Record<string, unknown>,
  options: { text?: string[]; toolCalls?: string[] } = {},
): unknown[] {
  const base = {
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: body.model,
  };
  const includeUsage =
    (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const usage = includeUsage ? { usage: null } : {};
  const chunks: unknown[] = [
    {
      ...base,
      choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
      ...usage,
    },
  ];
  for (const text of options.text ?? ["Hel", "lo."])
    chunks.push({
      ...base,
      choices: [{ index: 0, delta: { content: text }, finish_reason: null }],
      ...usage,
    });
  (options.toolCalls ?? []).forEach((name, index) => {
    chunks.push({
      ...base,
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [
              { index, id: `call_${index}`, type: "function", function: { name, arguments: "" } },
            ],
          },
          finish_reason: null,
        },
      ],
      ...usage,
    });
    chunks.push({
      ...base,
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ index, function: { arguments: "{}" } }] },
          finish_reason: null,
        },
      ],
      ...usage,
    });
  });
  chunks.push({
    ...base,
    choices: [
      {
        index: 0,
        delta: {},
        finish_reason: (options.toolCalls ?? []).length > 0 ? "tool_calls" : "stop",
      },
    ],
    ...usage,
  });
  if (includeUsage) chunks.push({ ...base, choices: [], usage: CHAT_USAGE });
  return chunks;
}

/** A Responses API response. */
export function response(
  options: { model?: string; toolCalls?: string[]; status?: string } = {},
): Record<string, unknown> {
  return {
    id: "resp_1",
    object: "response",
    created_at: 1_700_000_000,
    status: options.status ?? "completed",
    model: options.model ?? "gpt-4o",
    output: [
      {
        id: "msg_1",
        type: "message",
        role: "assistant",
        status: "completed",
        content: [{ type: "output_text", text: "Hello.", annotations: [] }],
      },
      ...(options.toolCalls ?? []).map((name, index) => ({
        id: `fc_${index}`,
        type: "function_call",
        call_id: `call_${index}`,
        name,
        arguments: "{}",
        status: "completed",
      })),
    ],
    usage: RESPONSES_USAGE,
    incomplete_details: null,
    error: null,
  };
}

/** The events of a streamed response. */
export function responseEvents(options: { toolCalls?: string[] } = {}): unknown[] {
  const full = response(options);
  const partial = { ...full, status: "in_progress", output: [], usage: null };
  const events: unknown[] = [
    { type: "response.created", sequence_number: 0, response: partial },
    {
      type: "response.output_item.added",
      sequence_number: 1,
      output_index: 0,
      item: { id: "msg_1", type: "message", role: "assistant", status: "in_progress", content: [] },
    },
    {
      type: "response.content_part.added",
      sequence_number: 2,
      item_id: "msg_1",
      output_index: 0,
      content_index: 0,
      part: { type: "output_text", text: "", annotations: [] },
    },
    {
      type: "response.output_text.delta",
      sequence_number: 3,
      item_id: "msg_1",
      output_index: 0,
      content_index: 0,
      delta: "Hello.",
    },
    {
      type: "response.output_text.done",
      sequence_number: 4,
      item_id: "msg_1",
      output_index: 0,
      content_index: 0,
      text: "Hello.",
    },
    {
      type: "response.content_part.done",
      sequence_number: 5,
      item_id: "msg_1",
      output_index: 0,
      content_index: 0,
      part: { type: "output_text", text: "Hello.", annotations: [] },
    },
    {
      type: "response.output_item.done",
      sequence_number: 6,
      output_index: 0,
      item: (full.output as unknown[])[0],
    },
  ];
  (options.toolCalls ?? []).forEach((_name, index) => {
    const item = (full.output as Record<string, unknown>[])[index + 1] as Record<string, unknown>;
    const outputIndex = index + 1;
    events.push(
      {
        type: "response.output_item.added",
        sequence_number: events.length,
        output_index: outputIndex,
        item: { ...item, arguments: "", status: "in_progress" },
      },
      {
        type: "response.function_call_arguments.delta",
        sequence_number: events.length + 1,
        item_id: item.id,
        output_index: outputIndex,
        delta: "{}",
      },
      {
        type: "response.function_call_arguments.done",
        sequence_number: events.length + 2,
        item_id: item.id,
        output_index: outputIndex,
        arguments: "{}",
      },
      {
        type: "response.output_item.done",
        sequence_number: events.length + 3,
        output_index: outputIndex,
        item,
      },
    );
  });
  events.push({ type: "response.completed", sequence_number: events.length, response: full });
  return events;
}
