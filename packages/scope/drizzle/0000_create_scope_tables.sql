CREATE SCHEMA "gov_scope";
--> statement-breakpoint
CREATE TABLE "gov_scope"."policies" (
	"agent_id" text PRIMARY KEY NOT NULL,
	"allowed_tools" jsonb NOT NULL,
	"allowed_apis" jsonb NOT NULL,
	"hidden_tools" jsonb NOT NULL,
	"allowed_models" jsonb NOT NULL,
	"revision" bigint DEFAULT 1 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
