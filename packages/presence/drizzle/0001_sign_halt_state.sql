ALTER TABLE "gov_presence"."agents" ADD COLUMN "halt_mac" text;--> statement-breakpoint
ALTER TABLE "gov_presence"."agents" ADD COLUMN "halt_key_id" text;