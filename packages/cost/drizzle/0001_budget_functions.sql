-- Budget enforcement in one statement per batch. Every function takes its row locks in one
-- global order — reservations (by id), then agent days (by agent, day), then sessions (by
-- agent, session) — so that concurrent callers in any number of processes never deadlock.
--
-- reserve(): for each request, in order, check every cap against committed + reserved +
-- projected spend (a breach is strict: used + projected > limit) and, when all pass, add the
-- projection to the reserved counters and record the reservation — under the row locks, so
-- that no two checks can jointly pass a cap.
CREATE FUNCTION "gov_cost"."reserve"(requests jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
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
    SELECT DISTINCT x->>'a', (x->>'d')::date FROM jsonb_array_elements(requests) AS x ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
  INSERT INTO "gov_cost"."sessions" (agent_id, session_id)
    SELECT DISTINCT x->>'a', x->>'s' FROM jsonb_array_elements(requests) AS x ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
  PERFORM 1 FROM "gov_cost"."agent_days"
    WHERE (agent_id, day) IN (SELECT x->>'a', (x->>'d')::date FROM jsonb_array_elements(requests) AS x)
    ORDER BY agent_id, day FOR UPDATE;
  PERFORM 1 FROM "gov_cost"."sessions"
    WHERE (agent_id, session_id) IN (SELECT x->>'a', x->>'s' FROM jsonb_array_elements(requests) AS x)
    ORDER BY agent_id, session_id FOR UPDATE;

  FOR r IN SELECT value FROM jsonb_array_elements(requests) LOOP
    t := (r->>'t')::bigint;
    u := (r->>'u')::numeric;
    SELECT * INTO s FROM "gov_cost"."sessions" WHERE agent_id = r->>'a' AND session_id = r->>'s';
    SELECT * INTO d FROM "gov_cost"."agent_days" WHERE agent_id = r->>'a' AND day = (r->>'d')::date;
    elapsed := extract(epoch FROM now() - s.started_at);
    breach := CASE
      WHEN r ? 'ss' AND elapsed > (r->>'ss')::numeric THEN jsonb_build_object(
        'cap', 'perSessionSeconds', 'used', elapsed::text, 'committed', elapsed::text,
        'projected', '0', 'limit', r->>'ss')
      WHEN r ? 'su' AND s.usd + s.reserved_usd + u > (r->>'su')::numeric THEN jsonb_build_object(
        'cap', 'perSessionUsd', 'used', (s.usd + s.reserved_usd)::text, 'committed', s.usd::text,
        'projected', u::text, 'limit', r->>'su')
      WHEN r ? 'st' AND s.tokens + s.reserved_tokens + t > (r->>'st')::bigint THEN jsonb_build_object(
        'cap', 'perSessionTokens', 'used', (s.tokens + s.reserved_tokens)::text,
        'committed', s.tokens::text, 'projected', t::text, 'limit', r->>'st')
      WHEN r ? 'du' AND d.usd + d.reserved_usd + u > (r->>'du')::numeric THEN jsonb_build_object(
        'cap', 'perAgentUsdDaily', 'used', (d.usd + d.reserved_usd)::text, 'committed', d.usd::text,
        'projected', u::text, 'limit', r->>'du')
      WHEN r ? 'dt' AND d.tokens + d.reserved_tokens + t > (r->>'dt')::bigint THEN jsonb_build_object(
        'cap', 'perAgentTokensDaily', 'used', (d.tokens + d.reserved_tokens)::text,
        'committed', d.tokens::text, 'projected', t::text, 'limit', r->>'dt')
    END;
    IF breach IS NULL THEN
      IF t > 0 OR u > 0 THEN
        UPDATE "gov_cost"."sessions"
          SET reserved_usd = reserved_usd + u, reserved_tokens = reserved_tokens + t, updated_at = now()
          WHERE agent_id = r->>'a' AND session_id = r->>'s';
        UPDATE "gov_cost"."agent_days"
          SET reserved_usd = reserved_usd + u, reserved_tokens = reserved_tokens + t, updated_at = now()
          WHERE agent_id = r->>'a' AND day = (r->>'d')::date;
        INSERT INTO "gov_cost"."reservations" (id, agent_id, session_id, day, model, usd, tokens, expires_at)
          VALUES ((r->>'i')::uuid, r->>'a', r->>'s', (r->>'d')::date, r->>'m', u, t,
                  now() + make_interval(secs => (r->>'ttl')::int));
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
-- Release reservations the caller has locked: their projections leave the reserved counters
-- (days, then sessions, each in key order) and the reservations are deleted. Returns what
-- was released.
CREATE FUNCTION "gov_cost"."release_locked"(ids uuid[]) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  released jsonb;
BEGIN
  SELECT coalesce(jsonb_agg(jsonb_build_object(
      'id', id, 'agentId', agent_id, 'sessionId', session_id, 'day', day, 'model', model,
      'usd', usd::text, 'tokens', tokens::text, 'createdAt', created_at) ORDER BY id), '[]'::jsonb)
    INTO released FROM "gov_cost"."reservations" WHERE id = ANY(ids);
  PERFORM 1 FROM "gov_cost"."agent_days"
    WHERE (agent_id, day) IN (SELECT agent_id, day FROM "gov_cost"."reservations" WHERE id = ANY(ids))
    ORDER BY agent_id, day FOR UPDATE;
  PERFORM 1 FROM "gov_cost"."sessions"
    WHERE (agent_id, session_id) IN (SELECT agent_id, session_id FROM "gov_cost"."reservations" WHERE id = ANY(ids))
    ORDER BY agent_id, session_id FOR UPDATE;
  UPDATE "gov_cost"."agent_days" AS t
    SET reserved_usd = t.reserved_usd - e.usd, reserved_tokens = t.reserved_tokens - e.tokens, updated_at = now()
    FROM (SELECT agent_id, day, sum(usd) AS usd, sum(tokens) AS tokens
          FROM "gov_cost"."reservations" WHERE id = ANY(ids) GROUP BY agent_id, day) AS e
    WHERE t.agent_id = e.agent_id AND t.day = e.day;
  UPDATE "gov_cost"."sessions" AS t
    SET reserved_usd = t.reserved_usd - e.usd, reserved_tokens = t.reserved_tokens - e.tokens, updated_at = now()
    FROM (SELECT agent_id, session_id, sum(usd) AS usd, sum(tokens) AS tokens
          FROM "gov_cost"."reservations" WHERE id = ANY(ids) GROUP BY agent_id, session_id) AS e
    WHERE t.agent_id = e.agent_id AND t.session_id = e.session_id;
  DELETE FROM "gov_cost"."reservations" WHERE id = ANY(ids);
  RETURN released;
END
$$;
--> statement-breakpoint
-- Release the given reservations (a call that was never made). Unknown or already settled
-- ids are ignored.
CREATE FUNCTION "gov_cost"."release"(ids uuid[]) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  locked uuid[];
BEGIN
  locked := ARRAY(SELECT id FROM "gov_cost"."reservations" WHERE id = ANY(ids) ORDER BY id FOR UPDATE);
  RETURN "gov_cost"."release_locked"(locked);
END
$$;
--> statement-breakpoint
-- Release up to `max_count` reservations whose time ran out (on the database's clock); those
-- another transaction is settling are left to it.
CREATE FUNCTION "gov_cost"."release_expired"(max_count integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  locked uuid[];
BEGIN
  locked := ARRAY(SELECT id FROM "gov_cost"."reservations" WHERE expires_at <= now()
                  ORDER BY id LIMIT max_count FOR UPDATE SKIP LOCKED);
  RETURN "gov_cost"."release_locked"(locked);
END
$$;
--> statement-breakpoint
-- settle(): record usage, once per usage id and at most once per reservation. The usage is
-- added to the session's and the day's committed counters (which therefore never go
-- backwards) and its reservation, if any, is released. An item names its reservation (`r`),
-- or asks for the session's oldest open one (`fifo`), or neither. Alert thresholds that the
-- new totals reach for the first time are marked and returned, so that each fires once.
CREATE FUNCTION "gov_cost"."settle"(items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
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
    ures := ures || CASE WHEN note[i] IS NULL THEN coalesce(res.id, (x->>'r')::uuid) END;
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
    INSERT INTO "gov_cost"."usage" (id, reservation_id, agent_id, session_id, day, model, kind, usd, tokens, detail, reason)
      VALUES ((x->>'id')::uuid, ures[i], ag[i], se[i], cday[i], x->>'m', x->>'k', u, t, x->'detail', x->>'why')
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
