CREATE SCHEMA "gov_gates";
--> statement-breakpoint
CREATE TABLE "gov_gates"."requests" (
	"request_id" uuid PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"agent_id" text NOT NULL,
	"action_hash" text NOT NULL,
	"payload" jsonb NOT NULL,
	"token_version" smallint NOT NULL,
	"key_id" text NOT NULL,
	"token_digest" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"reviewer_id" text,
	"reason" text,
	"resolved_at" timestamp with time zone,
	"decision_key_id" text,
	"decision_mac" text,
	"executed_at" timestamp with time zone,
	CONSTRAINT "requests_status" CHECK ("gov_gates"."requests"."status" in ('pending', 'granting', 'denying', 'granted', 'denied', 'expired')),
	CONSTRAINT "requests_action_hash" CHECK ("gov_gates"."requests"."action_hash" ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "requests_token_digest" CHECK ("gov_gates"."requests"."token_digest" ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "requests_token_version" CHECK ("gov_gates"."requests"."token_version" in (1, 2)),
	CONSTRAINT "requests_decision_complete" CHECK (("gov_gates"."requests"."status" in ('pending', 'expired')) = ("gov_gates"."requests"."decision_mac" is null))
);
--> statement-breakpoint
CREATE INDEX "requests_pending_expiry" ON "gov_gates"."requests" USING btree ("expires_at") WHERE "gov_gates"."requests"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "requests_agent_created" ON "gov_gates"."requests" USING btree ("agent_id","created_at");