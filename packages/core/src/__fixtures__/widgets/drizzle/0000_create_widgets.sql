CREATE SCHEMA "gov_widgets";
--> statement-breakpoint
CREATE TABLE "gov_widgets"."widgets" (
	"id" integer PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
