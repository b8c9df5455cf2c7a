import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/notes/schema.ts",
  out: "./src/notes/drizzle",
  schemaFilter: ["gov_notes"],
});
