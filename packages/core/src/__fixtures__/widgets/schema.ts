import { integer, pgSchema, text, timestamp } from "drizzle-orm/pg-core";

/** A fixture module for the migrations runner's tests: schema gov_widgets. */
export const widgetsSchema = pgSchema("gov_widgets");

export const widgets = widgetsSchema.table("widgets", {
  id: integer("id").primaryKey(),
  name: text("name").notNull(),
  color: text("color").notNull().default("blue"),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});
