/**
 * `@gov/wrappers/anthropic`: govern the official `@anthropic-ai/sdk` client (0.101.0 and
 * later, 1.x included) through its own `middleware` option.
 * @module
 */
export { type AnthropicClientLike, type WrapAnthropicOptions, wrapAnthropic } from "./wrap";
