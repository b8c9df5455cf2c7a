import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/coverage/schema.ts",
  out: "./drizzle",
  schemaFilter: ["gov_coverage"],
});
