-- One call appends a signed batch to its chains: take the chains' advisory locks (the
-- caller sorts the keys, so that writers never deadlock), insert the rows — their columns
-- read from the signed payloads themselves, so they cannot disagree with what was signed —
-- and move each chain's head to its last row. A function, so that its plans are made once
-- per connection; its statements each see what was committed before the locks were taken.
-- A row at a (chain, seq) that is taken already fails the whole call: nothing is written.
CREATE FUNCTION "gov_audit"."append"(lock_keys bigint[], batch json) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  lock_key bigint;
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
    RETURNING chain, seq, hmac, event_id
  )
  INSERT INTO "gov_audit"."heads" (chain, seq, hmac, event_id)
  SELECT DISTINCT ON (chain) chain, seq, hmac, event_id FROM appended ORDER BY chain, seq DESC
  ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hmac = excluded.hmac, event_id = excluded.event_id;
END
$$;
