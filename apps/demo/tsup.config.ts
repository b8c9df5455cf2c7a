import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/main.ts", "src/reviewer.ts"],
  format: ["esm"],
  sourcemap: true,
  clean: true,
  target: "node20",
});
