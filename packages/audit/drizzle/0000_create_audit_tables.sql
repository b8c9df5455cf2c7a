CREATE SCHEMA "gov_audit";
--> statement-breakpoint
CREATE TABLE "gov_audit"."checkpoints" (
	"checkpoint_id" uuid PRIMARY KEY NOT NULL,
	"chain" text NOT NULL,
	"seq" bigint NOT NULL,
	"hash" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"key_id" text NOT NULL,
	"hmac" text NOT NULL,
	"payload" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gov_audit"."events" (
	"event_id" uuid PRIMARY KEY NOT NULL,
	"chain" text NOT NULL,
	"seq" bigint NOT NULL,
	"prev_hash" text,
	"hmac" text NOT NULL,
	"key_id" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"agent_id" text NOT NULL,
	"kind" text NOT NULL,
	"session_id" text,
	"parent_event_id" uuid,
	"payload" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gov_audit"."heads" (
	"chain" text PRIMARY KEY NOT NULL,
	"seq" bigint NOT NULL,
	"hmac" text NOT NULL,
	"event_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gov_audit"."key_rotations" (
	"rotation_id" uuid PRIMARY KEY NOT NULL,
	"old_key_id" text NOT NULL,
	"new_key_id" text NOT NULL,
	"rotated_at" timestamp with time zone NOT NULL,
	"payload" text NOT NULL,
	"hmac_old" text NOT NULL,
	"hmac_new" text NOT NULL
);
--> statement-breakpoint
CREATE INDEX "checkpoints_chain_seq" ON "gov_audit"."checkpoints" USING btree ("chain","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "events_chain_seq" ON "gov_audit"."events" USING btree ("chain","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "events_chain_prev_hash" ON "gov_audit"."events" USING btree ("chain","prev_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "events_chain_root" ON "gov_audit"."events" USING btree ("chain") WHERE prev_hash is null;--> statement-breakpoint
CREATE INDEX "events_agent_created" ON "gov_audit"."events" USING btree ("agent_id","created_at");--> statement-breakpoint
CREATE INDEX "events_kind_created" ON "gov_audit"."events" USING btree ("kind","created_at");--> statement-breakpoint
CREATE INDEX "events_created" ON "gov_audit"."events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "events_parent" ON "gov_audit"."events" USING btree ("parent_event_id");