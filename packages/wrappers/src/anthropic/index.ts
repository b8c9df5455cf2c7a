/**
 * `@gov/wrappers/anthropic`: govern the official `@anthropic-ai/sdk` client (0.50.0 and later,
 * 1.x included) through its own `middleware` option, or (before 0.101.0) around its `fetch`.
 * @module
 */
export { type AnthropicClientLike, type WrapAnthropicOptions, wrapAnthropic } from "./wrap";
