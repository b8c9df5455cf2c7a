-- settle(), revised: a reservation matched for a usage that named none (`fifo`) is recorded
-- in matched_reservation_id, not in the unique reservation_id. Before, such a match took the
-- unique slot, so the usage that did name that reservation — the call that really made it —
-- was refused as a duplicate and its spend was lost.
--
-- Record usage, once per usage id and at most once per named reservation. The usage is added
-- to the session's and the day's committed counters (which therefore never go backwards) and
-- its reservation, if any, is released. An item names its reservation (`r`), or asks for the
-- session's oldest open one (`fifo`), or neither. Alert thresholds that the new totals reach
-- for the first time are marked and returned, so that each fires once.
CREATE OR REPLACE FUNCTION "gov_cost"."settle"(items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  n integer := jsonb_array_length(items);
  x jsonb;
  i integer;
  res "gov_cost"."reservations"%ROWTYPE;
  s "gov_cost"."sessions"%ROWTYPE;
  d "gov_cost"."agent_days"%ROWTYPE;
  claimed uuid[];
  ag text[] := '{}';
  se text[] := '{}';
  cday date[] := '{}';
  rid uuid[] := '{}';
  ures uuid[] := '{}';
  mres uuid[] := '{}';
  rusd numeric[] := '{}';
  rtok bigint[] := '{}';
  note text[] := '{}';
  inserted uuid;
  u numeric;
  t bigint;
  alert jsonb;
  p numeric;
  alerts jsonb;
  results jsonb := '[]'::jsonb;
BEGIN
  claimed := ARRAY(SELECT (e->>'r')::uuid FROM jsonb_array_elements(items) AS e WHERE e ? 'r');
  PERFORM 1 FROM "gov_cost"."reservations" WHERE id = ANY(claimed) ORDER BY id FOR UPDATE;
  FOR i IN 1..n LOOP
    x := items->(i - 1);
    res := NULL;
    note := note || NULL::text;
    IF x ? 'r' THEN
      SELECT * INTO res FROM "gov_cost"."reservations" WHERE id = (x->>'r')::uuid;
      IF res.id IS NOT NULL AND (res.agent_id <> x->>'a' OR res.session_id <> x->>'s') THEN
        res := NULL;
        note[i] := 'reservation of another session';
      END IF;
    ELSIF (x->>'fifo')::boolean THEN
      SELECT * INTO res FROM "gov_cost"."reservations"
        WHERE agent_id = x->>'a' AND session_id = x->>'s' AND id <> ALL(claimed)
        ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED;
      IF res.id IS NOT NULL THEN claimed := claimed || res.id; END IF;
    END IF;
    ag := ag || (x->>'a');
    se := se || (x->>'s');
    cday := cday || coalesce(res.day, (x->>'d')::date);
    rid := rid || res.id;
    ures := ures || CASE WHEN x ? 'r' AND note[i] IS NULL THEN (x->>'r')::uuid END;
    mres := mres || CASE WHEN NOT (x ? 'r') THEN res.id END;
    rusd := rusd || coalesce(res.usd, 0);
    rtok := rtok || coalesce(res.tokens, 0);
  END LOOP;

  INSERT INTO "gov_cost"."agent_days" (agent_id, day)
    SELECT DISTINCT a, dd FROM unnest(ag, cday) AS k(a, dd) ORDER BY 1, 2 ON CONFLICT DO NOTHING;
  INSERT INTO "gov_cost"."sessions" (agent_id, session_id)
    SELECT DISTINCT a, ss FROM unnest(ag, se) AS k(a, ss) ORDER BY 1, 2 ON CONFLICT DO NOTHING;
  PERFORM 1 FROM "gov_cost"."agent_days"
    WHERE (agent_id, day) IN (SELECT a, dd FROM unnest(ag, cday) AS k(a, dd))
    ORDER BY agent_id, day FOR UPDATE;
  PERFORM 1 FROM "gov_cost"."sessions"
    WHERE (agent_id, session_id) IN (SELECT a, ss FROM unnest(ag, se) AS k(a, ss))
    ORDER BY agent_id, session_id FOR UPDATE;

  FOR i IN 1..n LOOP
    x := items->(i - 1);
    u := (x->>'u')::numeric;
    t := (x->>'t')::bigint;
    INSERT INTO "gov_cost"."usage" (id, reservation_id, matched_reservation_id, agent_id, session_id, day, model, kind, usd, tokens, detail, reason)
      VALUES ((x->>'id')::uuid, ures[i], mres[i], ag[i], se[i], cday[i], x->>'m', x->>'k', u, t, x->'detail', x->>'why')
      ON CONFLICT DO NOTHING
      RETURNING id INTO inserted;
    IF inserted IS NULL THEN
      results := results || jsonb_build_array(jsonb_build_object('recorded', false, 'released', false));
      CONTINUE;
    END IF;
    UPDATE "gov_cost"."sessions"
      SET usd = usd + u, tokens = tokens + t,
          reserved_usd = reserved_usd - rusd[i], reserved_tokens = reserved_tokens - rtok[i], updated_at = now()
      WHERE agent_id = ag[i] AND session_id = se[i]
      RETURNING * INTO s;
    UPDATE "gov_cost"."agent_days"
      SET usd = usd + u, tokens = tokens + t,
          reserved_usd = reserved_usd - rusd[i], reserved_tokens = reserved_tokens - rtok[i], updated_at = now()
      WHERE agent_id = ag[i] AND day = cday[i]
      RETURNING * INTO d;
    IF rid[i] IS NOT NULL THEN
      DELETE FROM "gov_cost"."reservations" WHERE id = rid[i];
    END IF;

    alerts := '[]'::jsonb;
    alert := x->'alert';
    IF alert IS NOT NULL THEN
      p := (alert->>'p')::numeric / 100;
      IF alert ? 'su' AND NOT s.alerted_usd AND s.usd > 0 AND s.usd >= (alert->>'su')::numeric * p THEN
        UPDATE "gov_cost"."sessions" SET alerted_usd = true WHERE agent_id = ag[i] AND session_id = se[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perSessionUsd', 'used', s.usd::text, 'limit', alert->>'su'));
      END IF;
      IF alert ? 'st' AND NOT s.alerted_tokens AND s.tokens > 0 AND s.tokens >= (alert->>'st')::numeric * p THEN
        UPDATE "gov_cost"."sessions" SET alerted_tokens = true WHERE agent_id = ag[i] AND session_id = se[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perSessionTokens', 'used', s.tokens::text, 'limit', alert->>'st'));
      END IF;
      IF alert ? 'du' AND NOT d.alerted_usd AND d.usd > 0 AND d.usd >= (alert->>'du')::numeric * p THEN
        UPDATE "gov_cost"."agent_days" SET alerted_usd = true WHERE agent_id = ag[i] AND day = cday[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perAgentUsdDaily', 'used', d.usd::text, 'limit', alert->>'du'));
      END IF;
      IF alert ? 'dt' AND NOT d.alerted_tokens AND d.tokens > 0 AND d.tokens >= (alert->>'dt')::numeric * p THEN
        UPDATE "gov_cost"."agent_days" SET alerted_tokens = true WHERE agent_id = ag[i] AND day = cday[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perAgentTokensDaily', 'used', d.tokens::text, 'limit', alert->>'dt'));
      END IF;
    END IF;
    results := results || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
      'recorded', true, 'released', rid[i] IS NOT NULL, 'reservationId', rid[i], 'note', note[i],
      'day', cday[i], 'alerts', alerts)));
  END LOOP;
  RETURN results;
END
$$;
