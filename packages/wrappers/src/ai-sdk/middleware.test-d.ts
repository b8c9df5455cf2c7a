/**
 * Type tests: the middleware fits the `wrapLanguageModel` of AI SDK 5 and 6 as they declare
 * it (checked by `tsc`; nothing runs).
 */
import { createOpenAI } from "@ai-sdk/openai";
import { wrapLanguageModel } from "ai";
import { createOpenAI as createOpenAIV2 } from "ai-sdk-openai-v2";
import { wrapLanguageModel as wrapLanguageModelV5 } from "ai-v5";
import { governanceMiddleware } from "./middleware";

const middleware = governanceMiddleware({ governance: {}, agentId: "type-test" });

export const checked: unknown[] = [
  wrapLanguageModel({ model: createOpenAI({ apiKey: "sk-test" }).chat("gpt-4o"), middleware }),
  wrapLanguageModel({
    model: createOpenAI({ apiKey: "sk-test" }).chat("gpt-4o"),
    middleware: [middleware],
  }),
  wrapLanguageModelV5({ model: createOpenAIV2({ apiKey: "sk-test" }).chat("gpt-4o"), middleware }),
];
