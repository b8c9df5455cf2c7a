-- A retired key never signs again (FORMAT.md, "Key rotation"). Once a rotation is recorded in
-- gov_audit.key_rotations, the database refuses rows and checkpoints signed with the key it
-- rotated out: a process that has not learned of the rotation (started before it, with the
-- old secret) cannot go on appending with that key. Its events wait in its spool until it is
-- restarted with the new key.
--
-- The check runs after the chains' advisory locks are taken and after the insert, right
-- before the commit: a row under the old key is in a chain only if it was committed before
-- the rotation was, so it never follows a row under the new key. This is coordination for
-- honest processes; verification, not this check, is what catches a table owner.
CREATE FUNCTION "gov_audit"."refuse_retired_keys"(key_ids text[]) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  retired record;
BEGIN
  SELECT k.old_key_id, k.new_key_id, k.rotation_id, k.rotated_at INTO retired
    FROM "gov_audit"."key_rotations" k WHERE k.old_key_id = ANY(key_ids)
    ORDER BY k.rotated_at LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'gov_audit: the audit chain key % was rotated out at % (rotation %, to key %); a retired key never signs again',
        retired.old_key_id, retired.rotated_at, retired.rotation_id, retired.new_key_id
      USING ERRCODE = 'GA002',
        HINT = 'Restart this process with the newest chain key as GOVERNANCE_AUDIT_SECRET and keep the retired one for verifying only (GOVERNANCE_CHAIN_KEY_<key id>).';
  END IF;
END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "gov_audit"."append"(lock_keys bigint[], batch json) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  lock_key bigint;
  signing_keys text[];
BEGIN
  FOREACH lock_key IN ARRAY lock_keys LOOP
    PERFORM pg_advisory_xact_lock(lock_key);
  END LOOP;
  WITH appended AS (
    INSERT INTO "gov_audit"."events" (event_id, chain, seq, prev_hash, hmac, key_id, created_at,
      agent_id, kind, session_id, parent_event_id, payload)
    SELECT r."eventId", r.chain, r.seq, r."prevHash", x.h, r."keyId", r."createdAt", r."agentId",
      r.kind, r."sessionId", r."parentEventId", x.p
    FROM json_to_recordset(batch) AS x(p text, h text)
    CROSS JOIN LATERAL json_to_record(x.p::json) AS r("eventId" uuid, chain text, seq bigint,
      "prevHash" text, "createdAt" timestamptz, "keyId" text, "agentId" text, kind text,
      "sessionId" text, "parentEventId" uuid)
    RETURNING chain, seq, hmac, event_id, key_id
  ), moved AS (
    INSERT INTO "gov_audit"."heads" (chain, seq, hmac, event_id)
    SELECT DISTINCT ON (chain) chain, seq, hmac, event_id FROM appended ORDER BY chain, seq DESC
    ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hmac = excluded.hmac, event_id = excluded.event_id
  )
  SELECT array_agg(DISTINCT key_id) INTO signing_keys FROM appended;
  PERFORM "gov_audit"."refuse_retired_keys"(signing_keys);
END
$$;
--> statement-breakpoint
CREATE FUNCTION "gov_audit"."refuse_retired_checkpoint"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM "gov_audit"."refuse_retired_keys"(ARRAY[NEW.key_id]);
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "checkpoints_current_key" BEFORE INSERT ON "gov_audit"."checkpoints"
  FOR EACH ROW EXECUTE FUNCTION "gov_audit"."refuse_retired_checkpoint"();
