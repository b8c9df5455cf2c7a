-- The chain, its checkpoints and the key rotations are append-only: whoever can write to
-- the database through the application cannot rewrite its history.
CREATE FUNCTION "gov_audit"."refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'gov_audit.% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'GA001', HINT = 'Audit records are never changed or removed.';
END
$$;
--> statement-breakpoint
CREATE TRIGGER "events_append_only" BEFORE UPDATE OR DELETE ON "gov_audit"."events"
  FOR EACH ROW EXECUTE FUNCTION "gov_audit"."refuse_change"();
--> statement-breakpoint
CREATE TRIGGER "events_no_truncate" BEFORE TRUNCATE ON "gov_audit"."events"
  FOR EACH STATEMENT EXECUTE FUNCTION "gov_audit"."refuse_change"();
--> statement-breakpoint
CREATE TRIGGER "checkpoints_append_only" BEFORE UPDATE OR DELETE ON "gov_audit"."checkpoints"
  FOR EACH ROW EXECUTE FUNCTION "gov_audit"."refuse_change"();
--> statement-breakpoint
CREATE TRIGGER "checkpoints_no_truncate" BEFORE TRUNCATE ON "gov_audit"."checkpoints"
  FOR EACH STATEMENT EXECUTE FUNCTION "gov_audit"."refuse_change"();
--> statement-breakpoint
CREATE TRIGGER "key_rotations_append_only" BEFORE UPDATE OR DELETE ON "gov_audit"."key_rotations"
  FOR EACH ROW EXECUTE FUNCTION "gov_audit"."refuse_change"();
--> statement-breakpoint
CREATE TRIGGER "key_rotations_no_truncate" BEFORE TRUNCATE ON "gov_audit"."key_rotations"
  FOR EACH STATEMENT EXECUTE FUNCTION "gov_audit"."refuse_change"();
--> statement-breakpoint
-- One round trip for an append's first step: take the chains' advisory locks in the order
-- given (sorted by the caller, so that writers never deadlock), then read their heads.
CREATE FUNCTION "gov_audit"."lock_heads"(chains text[], lock_keys bigint[])
  RETURNS TABLE(chain text, seq bigint, hmac text) LANGUAGE plpgsql AS $$
DECLARE
  lock_key bigint;
BEGIN
  FOREACH lock_key IN ARRAY lock_keys LOOP
    PERFORM pg_advisory_xact_lock(lock_key);
  END LOOP;
  RETURN QUERY SELECT h.chain, h.seq, h.hmac FROM "gov_audit"."heads" h WHERE h.chain = ANY(chains);
END
$$;
