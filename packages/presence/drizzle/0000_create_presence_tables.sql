CREATE SCHEMA "gov_presence";
--> statement-breakpoint
CREATE SEQUENCE "gov_presence"."halt_version" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
CREATE TABLE "gov_presence"."agents" (
	"agent_id" text PRIMARY KEY NOT NULL,
	"status" text NOT NULL,
	"last_seen" timestamp with time zone,
	"first_seen" timestamp with time zone NOT NULL,
	"operator_id" text,
	"metadata" jsonb,
	"halted_at" timestamp with time zone,
	"halted_by" text,
	"halt_reason" text,
	"halt_version" bigint,
	"resumed_at" timestamp with time zone,
	"resumed_by" text,
	"resume_reason" text,
	CONSTRAINT "agents_status" CHECK ("gov_presence"."agents"."status" in ('live', 'idle', 'unresponsive')),
	CONSTRAINT "agents_halt_complete" CHECK (("gov_presence"."agents"."halted_at" is null) = ("gov_presence"."agents"."halted_by" is null) and ("gov_presence"."agents"."halted_at" is null) = ("gov_presence"."agents"."halt_reason" is null))
);
--> statement-breakpoint
CREATE INDEX "agents_halt_version" ON "gov_presence"."agents" USING btree ("halt_version") WHERE "gov_presence"."agents"."halt_version" is not null;