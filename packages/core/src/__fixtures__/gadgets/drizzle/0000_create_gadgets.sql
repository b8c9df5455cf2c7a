CREATE SCHEMA "gov_gadgets";
--> statement-breakpoint
CREATE TABLE "gov_gadgets"."gadgets" (
	"id" text PRIMARY KEY NOT NULL
);
