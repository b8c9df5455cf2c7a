import { pgSchema, text } from "drizzle-orm/pg-core";

/** A second fixture module: schema gov_gadgets. */
export const gadgetsSchema = pgSchema("gov_gadgets");

export const gadgets = gadgetsSchema.table("gadgets", {
  id: text("id").primaryKey(),
});
