import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/__fixtures__/gadgets/schema.ts",
  out: "./src/__fixtures__/gadgets/drizzle",
  schemaFilter: ["gov_gadgets"],
});
