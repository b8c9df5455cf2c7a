ALTER TABLE "gov_gates"."requests" ADD COLUMN "operator_id" text;--> statement-breakpoint
ALTER TABLE "gov_gates"."requests" ADD COLUMN "operator_lookup" text;--> statement-breakpoint
ALTER TABLE "gov_gates"."requests" ADD CONSTRAINT "requests_operator_lookup" CHECK ("gov_gates"."requests"."operator_lookup" in ('ok', 'failed'));