CREATE TABLE "gov_steward"."blueprint_ledger" (
	"id" text PRIMARY KEY NOT NULL,
	"content_hash" text NOT NULL,
	"key_id" text,
	"signature" text,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
);
