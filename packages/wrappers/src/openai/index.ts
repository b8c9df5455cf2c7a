/**
 * `@gov/wrappers/openai`: govern the official `openai` client (majors 4 to 6).
 * @module
 */
export { type OpenAIClientLike, type WrapOpenAIOptions, wrapOpenAI } from "./wrap";
