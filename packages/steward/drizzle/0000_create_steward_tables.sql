CREATE SCHEMA "gov_steward";
--> statement-breakpoint
CREATE TABLE "gov_steward"."agent_state" (
	"agent_id" text PRIMARY KEY NOT NULL,
	"hour_start_ms" bigint NOT NULL,
	"hour_count" integer DEFAULT 0 NOT NULL,
	"previous_hour_count" integer DEFAULT 0 NOT NULL,
	"day_start_ms" bigint NOT NULL,
	"day_count" integer DEFAULT 0 NOT NULL,
	"day_amount" double precision DEFAULT 0 NOT NULL,
	"total" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gov_steward"."blueprints" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"version" text NOT NULL,
	"content" jsonb NOT NULL,
	"content_hash" text NOT NULL,
	"published_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gov_steward"."trust_debt" (
	"agent_id" text PRIMARY KEY NOT NULL,
	"debt" double precision NOT NULL,
	"updated_at_ms" bigint NOT NULL
);
