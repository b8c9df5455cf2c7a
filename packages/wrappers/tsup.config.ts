import { defineConfig } from "tsup";
import { govTsupConfig } from "../../tooling/tsup-preset";

export default defineConfig(
  govTsupConfig({
    entries: [
      "src/openai/index.ts",
      "src/anthropic/index.ts",
      "src/ai-sdk/index.ts",
      "src/mcp/index.ts",
      "src/openai-agents/index.ts",
      "src/testing/index.ts",
    ],
  }),
);
