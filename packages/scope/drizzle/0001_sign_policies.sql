ALTER TABLE "gov_scope"."policies" ADD COLUMN "mac" text;--> statement-breakpoint
ALTER TABLE "gov_scope"."policies" ADD COLUMN "key_id" text;