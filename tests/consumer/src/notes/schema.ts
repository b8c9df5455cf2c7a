import { pgSchema, serial, text } from "drizzle-orm/pg-core";

/** A minimal module of the consumer's own, keeping its data in schema gov_notes. */
export const notesSchema = pgSchema("gov_notes");

export const notes = notesSchema.table("notes", {
  id: serial("id").primaryKey(),
  agentId: text("agent_id").notNull(),
  body: text("body").notNull(),
});
