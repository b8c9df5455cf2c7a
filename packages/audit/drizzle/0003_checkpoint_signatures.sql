-- Ed25519 signatures of checkpoints (FORMAT.md, "Checkpoints"). Checkpoints written before this
-- migration keep null in both columns: verification reports them as HMAC-only, not as failures.
ALTER TABLE "gov_audit"."checkpoints" ADD COLUMN "signature" text;--> statement-breakpoint
ALTER TABLE "gov_audit"."checkpoints" ADD COLUMN "signing_key_id" text;