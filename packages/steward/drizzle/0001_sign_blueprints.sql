ALTER TABLE "gov_steward"."blueprints" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "gov_steward"."blueprints" ADD COLUMN "signature" text;