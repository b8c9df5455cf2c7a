import { defineConfig } from "drizzle-kit";

// Generates the fixture module's migrations: pnpm --filter @gov/core db:generate-fixture
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/__fixtures__/widgets/schema.ts",
  out: "./src/__fixtures__/widgets/drizzle",
  schemaFilter: ["gov_widgets"],
});
