CREATE SCHEMA "gov_notes";
--> statement-breakpoint
CREATE TABLE "gov_notes"."notes" (
	"id" serial PRIMARY KEY NOT NULL,
	"agent_id" text NOT NULL,
	"body" text NOT NULL
);
