CREATE SCHEMA "gov_cost";
--> statement-breakpoint
CREATE TABLE "gov_cost"."agent_days" (
	"agent_id" text NOT NULL,
	"day" date NOT NULL,
	"usd" numeric(38, 15) DEFAULT '0' NOT NULL,
	"tokens" bigint DEFAULT 0 NOT NULL,
	"reserved_usd" numeric(38, 15) DEFAULT '0' NOT NULL,
	"reserved_tokens" bigint DEFAULT 0 NOT NULL,
	"alerted_usd" boolean DEFAULT false NOT NULL,
	"alerted_tokens" boolean DEFAULT false NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_days_agent_id_day_pk" PRIMARY KEY("agent_id","day"),
	CONSTRAINT "agent_days_amounts" CHECK ("gov_cost"."agent_days"."usd" >= 0 and "gov_cost"."agent_days"."tokens" >= 0 and "gov_cost"."agent_days"."reserved_usd" >= 0 and "gov_cost"."agent_days"."reserved_tokens" >= 0)
);
--> statement-breakpoint
CREATE TABLE "gov_cost"."reservations" (
	"id" uuid PRIMARY KEY NOT NULL,
	"agent_id" text NOT NULL,
	"session_id" text NOT NULL,
	"day" date NOT NULL,
	"model" text,
	"usd" numeric(38, 15) NOT NULL,
	"tokens" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gov_cost"."sessions" (
	"agent_id" text NOT NULL,
	"session_id" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"usd" numeric(38, 15) DEFAULT '0' NOT NULL,
	"tokens" bigint DEFAULT 0 NOT NULL,
	"reserved_usd" numeric(38, 15) DEFAULT '0' NOT NULL,
	"reserved_tokens" bigint DEFAULT 0 NOT NULL,
	"alerted_usd" boolean DEFAULT false NOT NULL,
	"alerted_tokens" boolean DEFAULT false NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sessions_agent_id_session_id_pk" PRIMARY KEY("agent_id","session_id"),
	CONSTRAINT "sessions_amounts" CHECK ("gov_cost"."sessions"."usd" >= 0 and "gov_cost"."sessions"."tokens" >= 0 and "gov_cost"."sessions"."reserved_usd" >= 0 and "gov_cost"."sessions"."reserved_tokens" >= 0)
);
--> statement-breakpoint
CREATE TABLE "gov_cost"."usage" (
	"id" uuid PRIMARY KEY NOT NULL,
	"reservation_id" uuid,
	"agent_id" text NOT NULL,
	"session_id" text NOT NULL,
	"day" date NOT NULL,
	"model" text,
	"kind" text NOT NULL,
	"usd" numeric(38, 15) NOT NULL,
	"tokens" bigint NOT NULL,
	"detail" jsonb,
	"reason" text,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "usage_reservation" UNIQUE("reservation_id"),
	CONSTRAINT "usage_kind" CHECK ("gov_cost"."usage"."kind" in ('track', 'usage', 'reconcile')),
	CONSTRAINT "usage_amounts" CHECK ("gov_cost"."usage"."usd" >= 0 and "gov_cost"."usage"."tokens" >= 0)
);
--> statement-breakpoint
CREATE INDEX "reservations_session" ON "gov_cost"."reservations" USING btree ("agent_id","session_id","created_at");--> statement-breakpoint
CREATE INDEX "reservations_expiry" ON "gov_cost"."reservations" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "usage_agent_model" ON "gov_cost"."usage" USING btree ("agent_id","model");--> statement-breakpoint
CREATE INDEX "usage_session" ON "gov_cost"."usage" USING btree ("agent_id","session_id");