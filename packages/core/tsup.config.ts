import { defineConfig } from "tsup";
import { govTsupConfig } from "../../tooling/tsup-preset";

export default defineConfig(
  govTsupConfig({ entries: ["src/testing/index.ts"], untypedEntries: ["src/pglite-worker.js"] }),
);
