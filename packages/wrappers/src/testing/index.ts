/**
 * `@gov/wrappers/testing`: loopback HTTP servers that speak the providers' wire formats
 * (OpenAI Chat Completions and Responses, Anthropic Messages; JSON and server-sent events),
 * so that an agent and its wrapped client can be tested — and the docs' examples run — with
 * the real client packages and no network. Each answers 500 until its `reply` is set.
 *
 * @example
 * ```ts
 * const server = await startOpenAIServer();
 * server.reply = (request) => ({ json: chatCompletion({ model: String(request.body.model) }) });
 * const openai = new OpenAI({ apiKey: "sk-test", baseURL: server.baseURL });
 * ```
 * @module
 */
export {
  type AnthropicReply,
  type AnthropicRequest,
  type AnthropicServer,
  errorBody,
  errorEvent,
  type MessageOptions,
  MODEL as ANTHROPIC_MODEL,
  message,
  messageEvents,
  startAnthropicServer,
  USAGE as ANTHROPIC_USAGE,
} from "./anthropic-server";
export {
  CHAT_USAGE,
  chatChunks,
  chatCompletion,
  type OpenAIServer,
  RESPONSES_USAGE,
  type ReceivedRequest,
  type Reply,
  response,
  responseEvents,
  startOpenAIServer,
} from "./openai-server";
