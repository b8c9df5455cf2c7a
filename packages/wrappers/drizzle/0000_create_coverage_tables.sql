CREATE SCHEMA "gov_coverage";
--> statement-breakpoint
CREATE TABLE "gov_coverage"."clients" (
	"agent_id" text NOT NULL,
	"client" text NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"calls" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "clients_agent_id_client_pk" PRIMARY KEY("agent_id","client")
);
