-- The SQL call format, with named fields. check_and_reserve() and record_usage() are reserve()
-- and settle() reading named fields instead of single letters (each request or item is
-- described in packages/cost/src/sql.ts, the one place that writes them). reserve() and
-- settle() stay, as translations of the letters onto the names, for the processes of the
-- previous version that still run while a deployment is upgraded; the next release drops them.
--
-- check_and_reserve(requests): per request { reservationId, agentId, sessionId, day, tokens,
-- usd, model, ttlMs, perSessionSeconds?, perSessionUsd?, perSessionTokens?, perAgentUsdDaily?,
-- perAgentTokensDaily? }: check every cap given and, when all pass, reserve the projection.
CREATE FUNCTION "gov_cost"."check_and_reserve"(requests jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  r jsonb;
  results jsonb := '[]'::jsonb;
  s "gov_cost"."sessions"%ROWTYPE;
  d "gov_cost"."agent_days"%ROWTYPE;
  elapsed numeric;
  t bigint;
  u numeric;
  breach jsonb;
BEGIN
  INSERT INTO "gov_cost"."agent_days" (agent_id, day)
    SELECT DISTINCT x->>'agentId', (x->>'day')::date FROM jsonb_array_elements(requests) AS x ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
  INSERT INTO "gov_cost"."sessions" (agent_id, session_id)
    SELECT DISTINCT x->>'agentId', x->>'sessionId' FROM jsonb_array_elements(requests) AS x ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
  PERFORM 1 FROM "gov_cost"."agent_days"
    WHERE (agent_id, day) IN (SELECT x->>'agentId', (x->>'day')::date FROM jsonb_array_elements(requests) AS x)
    ORDER BY agent_id, day FOR UPDATE;
  PERFORM 1 FROM "gov_cost"."sessions"
    WHERE (agent_id, session_id) IN (SELECT x->>'agentId', x->>'sessionId' FROM jsonb_array_elements(requests) AS x)
    ORDER BY agent_id, session_id FOR UPDATE;

  FOR r IN SELECT value FROM jsonb_array_elements(requests) LOOP
    t := (r->>'tokens')::bigint;
    u := (r->>'usd')::numeric;
    SELECT * INTO s FROM "gov_cost"."sessions" WHERE agent_id = r->>'agentId' AND session_id = r->>'sessionId';
    SELECT * INTO d FROM "gov_cost"."agent_days" WHERE agent_id = r->>'agentId' AND day = (r->>'day')::date;
    elapsed := extract(epoch FROM now() - s.started_at);
    breach := CASE
      WHEN r ? 'perSessionSeconds' AND elapsed > (r->>'perSessionSeconds')::numeric THEN jsonb_build_object(
        'cap', 'perSessionSeconds', 'used', elapsed::text, 'committed', elapsed::text,
        'projected', '0', 'limit', r->>'perSessionSeconds')
      WHEN r ? 'perSessionUsd' AND s.usd + s.reserved_usd + u > (r->>'perSessionUsd')::numeric THEN jsonb_build_object(
        'cap', 'perSessionUsd', 'used', (s.usd + s.reserved_usd)::text, 'committed', s.usd::text,
        'projected', u::text, 'limit', r->>'perSessionUsd')
      WHEN r ? 'perSessionTokens' AND s.tokens + s.reserved_tokens + t > (r->>'perSessionTokens')::bigint THEN jsonb_build_object(
        'cap', 'perSessionTokens', 'used', (s.tokens + s.reserved_tokens)::text,
        'committed', s.tokens::text, 'projected', t::text, 'limit', r->>'perSessionTokens')
      WHEN r ? 'perAgentUsdDaily' AND d.usd + d.reserved_usd + u > (r->>'perAgentUsdDaily')::numeric THEN jsonb_build_object(
        'cap', 'perAgentUsdDaily', 'used', (d.usd + d.reserved_usd)::text, 'committed', d.usd::text,
        'projected', u::text, 'limit', r->>'perAgentUsdDaily')
      WHEN r ? 'perAgentTokensDaily' AND d.tokens + d.reserved_tokens + t > (r->>'perAgentTokensDaily')::bigint THEN jsonb_build_object(
        'cap', 'perAgentTokensDaily', 'used', (d.tokens + d.reserved_tokens)::text,
        'committed', d.tokens::text, 'projected', t::text, 'limit', r->>'perAgentTokensDaily')
    END;
    IF breach IS NULL THEN
      IF t > 0 OR u > 0 THEN
        UPDATE "gov_cost"."sessions"
          SET reserved_usd = reserved_usd + u, reserved_tokens = reserved_tokens + t, updated_at = now()
          WHERE agent_id = r->>'agentId' AND session_id = r->>'sessionId';
        UPDATE "gov_cost"."agent_days"
          SET reserved_usd = reserved_usd + u, reserved_tokens = reserved_tokens + t, updated_at = now()
          WHERE agent_id = r->>'agentId' AND day = (r->>'day')::date;
        INSERT INTO "gov_cost"."reservations" (id, agent_id, session_id, day, model, usd, tokens, expires_at)
          VALUES ((r->>'reservationId')::uuid, r->>'agentId', r->>'sessionId', (r->>'day')::date, r->>'model', u, t,
                  now() + make_interval(secs => (r->>'ttlMs')::numeric / 1000));
      END IF;
      results := results || jsonb_build_array(jsonb_build_object(
        'ok', true, 'reserved', t > 0 OR u > 0, 'elapsed', elapsed::text));
    ELSE
      results := results || jsonb_build_array(breach || jsonb_build_object('ok', false, 'elapsed', elapsed::text));
    END IF;
  END LOOP;
  RETURN results;
END
$$;

--> statement-breakpoint
-- record_usage(items): per item { usageId, agentId, sessionId, day, model, kind, tokens, usd,
-- reservationId? | oldestReservation?, reason?, detail?, alert?: { thresholdPercent,
-- perSessionUsd?, perSessionTokens?, perAgentUsdDaily?, perAgentTokensDaily? } }: record the
-- usage once per usage id, settle its reservation, and return the alert thresholds crossed.
CREATE FUNCTION "gov_cost"."record_usage"(items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
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
  claimed := ARRAY(SELECT (e->>'reservationId')::uuid FROM jsonb_array_elements(items) AS e WHERE e ? 'reservationId');
  PERFORM 1 FROM "gov_cost"."reservations" WHERE id = ANY(claimed) ORDER BY id FOR UPDATE;
  FOR i IN 1..n LOOP
    x := items->(i - 1);
    res := NULL;
    note := note || NULL::text;
    IF x ? 'reservationId' THEN
      SELECT * INTO res FROM "gov_cost"."reservations" WHERE id = (x->>'reservationId')::uuid;
      IF res.id IS NOT NULL AND (res.agent_id <> x->>'agentId' OR res.session_id <> x->>'sessionId') THEN
        res := NULL;
        note[i] := 'reservation of another session';
      END IF;
    ELSIF (x->>'oldestReservation')::boolean THEN
      SELECT * INTO res FROM "gov_cost"."reservations"
        WHERE agent_id = x->>'agentId' AND session_id = x->>'sessionId' AND id <> ALL(claimed)
        ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED;
      IF res.id IS NOT NULL THEN claimed := claimed || res.id; END IF;
    END IF;
    ag := ag || (x->>'agentId');
    se := se || (x->>'sessionId');
    cday := cday || coalesce(res.day, (x->>'day')::date);
    rid := rid || res.id;
    ures := ures || CASE WHEN x ? 'reservationId' AND note[i] IS NULL THEN (x->>'reservationId')::uuid END;
    mres := mres || CASE WHEN NOT (x ? 'reservationId') THEN res.id END;
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
    u := (x->>'usd')::numeric;
    t := (x->>'tokens')::bigint;
    INSERT INTO "gov_cost"."usage" (id, reservation_id, matched_reservation_id, agent_id, session_id, day, model, kind, usd, tokens, detail, reason)
      VALUES ((x->>'usageId')::uuid, ures[i], mres[i], ag[i], se[i], cday[i], x->>'model', x->>'kind', u, t, x->'detail', x->>'reason')
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
      p := (alert->>'thresholdPercent')::numeric / 100;
      IF alert ? 'perSessionUsd' AND NOT s.alerted_usd AND s.usd > 0 AND s.usd >= (alert->>'perSessionUsd')::numeric * p THEN
        UPDATE "gov_cost"."sessions" SET alerted_usd = true WHERE agent_id = ag[i] AND session_id = se[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perSessionUsd', 'used', s.usd::text, 'limit', alert->>'perSessionUsd'));
      END IF;
      IF alert ? 'perSessionTokens' AND NOT s.alerted_tokens AND s.tokens > 0 AND s.tokens >= (alert->>'perSessionTokens')::numeric * p THEN
        UPDATE "gov_cost"."sessions" SET alerted_tokens = true WHERE agent_id = ag[i] AND session_id = se[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perSessionTokens', 'used', s.tokens::text, 'limit', alert->>'perSessionTokens'));
      END IF;
      IF alert ? 'perAgentUsdDaily' AND NOT d.alerted_usd AND d.usd > 0 AND d.usd >= (alert->>'perAgentUsdDaily')::numeric * p THEN
        UPDATE "gov_cost"."agent_days" SET alerted_usd = true WHERE agent_id = ag[i] AND day = cday[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perAgentUsdDaily', 'used', d.usd::text, 'limit', alert->>'perAgentUsdDaily'));
      END IF;
      IF alert ? 'perAgentTokensDaily' AND NOT d.alerted_tokens AND d.tokens > 0 AND d.tokens >= (alert->>'perAgentTokensDaily')::numeric * p THEN
        UPDATE "gov_cost"."agent_days" SET alerted_tokens = true WHERE agent_id = ag[i] AND day = cday[i];
        alerts := alerts || jsonb_build_array(jsonb_build_object('cap', 'perAgentTokensDaily', 'used', d.tokens::text, 'limit', alert->>'perAgentTokensDaily'));
      END IF;
    END IF;
    results := results || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
      'recorded', true, 'released', rid[i] IS NOT NULL, 'reservationId', rid[i], 'note', note[i],
      'day', cday[i], 'alerts', alerts)));
  END LOOP;
  RETURN results;
END
$$;

--> statement-breakpoint
-- reserve(), in the letters of the previous version: i a s d t u m ttl (seconds) ss su st du dt.
CREATE OR REPLACE FUNCTION "gov_cost"."reserve"(requests jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT "gov_cost"."check_and_reserve"(coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
      'reservationId', x->'i', 'agentId', x->'a', 'sessionId', x->'s', 'day', x->'d',
      'tokens', x->'t', 'usd', x->'u', 'model', x->'m', 'ttlMs', (x->>'ttl')::bigint * 1000,
      'perSessionSeconds', x->'ss', 'perSessionUsd', x->'su', 'perSessionTokens', x->'st',
      'perAgentUsdDaily', x->'du', 'perAgentTokensDaily', x->'dt')) ORDER BY n), '[]'::jsonb))
  FROM jsonb_array_elements(requests) WITH ORDINALITY AS e(x, n)
$$;
--> statement-breakpoint
-- settle(), in the letters of the previous version: id a s d m k t u r fifo why detail
-- alert { p su st du dt }.
CREATE OR REPLACE FUNCTION "gov_cost"."settle"(items jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT "gov_cost"."record_usage"(coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
      'usageId', x->'id', 'agentId', x->'a', 'sessionId', x->'s', 'day', x->'d', 'model', x->'m',
      'kind', x->'k', 'tokens', x->'t', 'usd', x->'u', 'reservationId', x->'r',
      'oldestReservation', x->'fifo', 'reason', x->'why',
      'alert', CASE WHEN x ? 'alert' THEN jsonb_build_object(
        'thresholdPercent', x->'alert'->'p', 'perSessionUsd', x->'alert'->'su',
        'perSessionTokens', x->'alert'->'st', 'perAgentUsdDaily', x->'alert'->'du',
        'perAgentTokensDaily', x->'alert'->'dt') END))
    || CASE WHEN x ? 'detail' THEN jsonb_build_object('detail', x->'detail') ELSE '{}'::jsonb END
    ORDER BY n), '[]'::jsonb))
  FROM jsonb_array_elements(items) WITH ORDINALITY AS e(x, n)
$$;
