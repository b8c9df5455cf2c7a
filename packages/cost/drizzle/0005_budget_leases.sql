-- Budget leases: a process that admits many calls of one session holds the budget of several
-- of them at once (a reservation marked `lease`) and admits them locally, without a round
-- trip each. packages/cost/src/leases.ts keeps the process's side.
--
-- record_usage(items), revised: an item may name a lease (`leaseId`) and the call's part of it
-- (`shareUsd`, `shareTokens`) beside its own id (`reservationId`, the unique slot that makes
-- the usage count once): the usage is recorded and the call's part released from the lease,
-- which stays (what is left of it is released when it ends). A lease is never matched to a
-- usage that names no reservation, nor settled as a named reservation.
ALTER TABLE "gov_cost"."reservations" ADD COLUMN "lease" boolean DEFAULT false NOT NULL;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "gov_cost"."record_usage"(items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
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
  lid uuid[] := '{}';
  held "gov_cost"."reservations"%ROWTYPE;
  u numeric;
  t bigint;
  alert jsonb;
  p numeric;
  alerts jsonb;
  results jsonb := '[]'::jsonb;
BEGIN
  claimed := ARRAY(SELECT coalesce(e->>'leaseId', e->>'reservationId')::uuid FROM jsonb_array_elements(items) AS e
                   WHERE e ? 'reservationId' OR e ? 'leaseId');
  PERFORM 1 FROM "gov_cost"."reservations" WHERE id = ANY(claimed) ORDER BY id FOR UPDATE;
  FOR i IN 1..n LOOP
    x := items->(i - 1);
    res := NULL;
    note := note || NULL::text;
    IF x ? 'leaseId' THEN
      SELECT * INTO res FROM "gov_cost"."reservations" WHERE id = (x->>'leaseId')::uuid AND lease;
      IF res.id IS NOT NULL AND (res.agent_id <> x->>'agentId' OR res.session_id <> x->>'sessionId') THEN
        res := NULL;
        note[i] := 'lease of another session';
      END IF;
    ELSIF x ? 'reservationId' THEN
      SELECT * INTO res FROM "gov_cost"."reservations" WHERE id = (x->>'reservationId')::uuid AND NOT lease;
      IF res.id IS NOT NULL AND (res.agent_id <> x->>'agentId' OR res.session_id <> x->>'sessionId') THEN
        res := NULL;
        note[i] := 'reservation of another session';
      END IF;
    ELSIF (x->>'oldestReservation')::boolean THEN
      SELECT * INTO res FROM "gov_cost"."reservations"
        WHERE agent_id = x->>'agentId' AND session_id = x->>'sessionId' AND NOT lease AND id <> ALL(claimed)
        ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED;
      IF res.id IS NOT NULL THEN claimed := claimed || res.id; END IF;
    END IF;
    ag := ag || (x->>'agentId');
    se := se || (x->>'sessionId');
    cday := cday || coalesce(res.day, (x->>'day')::date);
    rid := rid || CASE WHEN x ? 'leaseId' THEN NULL ELSE res.id END;
    lid := lid || CASE WHEN x ? 'leaseId' THEN res.id END;
    ures := ures || CASE WHEN x ? 'reservationId' AND note[i] IS NULL THEN (x->>'reservationId')::uuid END;
    mres := mres || CASE WHEN x ? 'leaseId' OR NOT (x ? 'reservationId') THEN res.id END;
    rusd := rusd || CASE WHEN x ? 'leaseId' THEN 0 ELSE coalesce(res.usd, 0) END;
    rtok := rtok || CASE WHEN x ? 'leaseId' THEN 0 ELSE coalesce(res.tokens, 0) END;
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
    IF lid[i] IS NOT NULL THEN
      -- The call's part of its lease, as the lease stands now (an earlier item of this batch
      -- may have released from it): never more than it still holds.
      SELECT * INTO held FROM "gov_cost"."reservations" WHERE id = lid[i];
      rusd[i] := least(coalesce(held.usd, 0), (x->>'shareUsd')::numeric);
      rtok[i] := least(coalesce(held.tokens, 0), (x->>'shareTokens')::bigint);
      UPDATE "gov_cost"."reservations" SET usd = usd - rusd[i], tokens = tokens - rtok[i] WHERE id = lid[i];
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
      'recorded', true, 'released', rid[i] IS NOT NULL OR lid[i] IS NOT NULL, 'reservationId', coalesce(rid[i], ures[i]), 'note', note[i],
      'day', cday[i], 'alerts', alerts)));
  END LOOP;
  RETURN results;
END
$$;

--> statement-breakpoint
-- lease(request): { lease, single } — two check_and_reserve requests of one session: the
-- lease (the budget of several calls, held for this process) when every cap has room for it,
-- else the single call's reservation, checked as usual. One round trip either way; the
-- answer is check_and_reserve's, with `leased`.
CREATE FUNCTION "gov_cost"."lease"(request jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  r jsonb;
BEGIN
  IF (request->'lease'->>'agentId') IS DISTINCT FROM (request->'single'->>'agentId')
     OR (request->'lease'->>'sessionId') IS DISTINCT FROM (request->'single'->>'sessionId') THEN
    RAISE EXCEPTION 'a lease and its single request must be of one session';
  END IF;
  r := "gov_cost"."check_and_reserve"(jsonb_build_array(request->'lease'))->0;
  IF (r->>'ok')::boolean AND (r->>'reserved')::boolean THEN
    UPDATE "gov_cost"."reservations" SET lease = true WHERE id = (request->'lease'->>'reservationId')::uuid;
    RETURN r || jsonb_build_object('leased', true);
  END IF;
  r := "gov_cost"."check_and_reserve"(jsonb_build_array(request->'single'))->0;
  RETURN r || jsonb_build_object('leased', false);
END
$$;

--> statement-breakpoint
-- release_leases(items): per item { id, usd?, tokens? }: release that much of a lease (never
-- more than it holds; the lease stays, holding the part of its calls still running), or —
-- without amounts — all that is left of it, and the lease is deleted. Only leases: the ids of
-- one-call reservations are ignored. Returns how many leases it found.
CREATE FUNCTION "gov_cost"."release_leases"(items jsonb) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  x jsonb;
  ids uuid[];
  held "gov_cost"."reservations"%ROWTYPE;
  u numeric;
  t bigint;
  n integer := 0;
BEGIN
  ids := ARRAY(SELECT (e->>'id')::uuid FROM jsonb_array_elements(items) AS e);
  PERFORM 1 FROM "gov_cost"."reservations" WHERE id = ANY(ids) AND lease ORDER BY id FOR UPDATE;
  PERFORM 1 FROM "gov_cost"."agent_days"
    WHERE (agent_id, day) IN (SELECT agent_id, day FROM "gov_cost"."reservations" WHERE id = ANY(ids) AND lease)
    ORDER BY agent_id, day FOR UPDATE;
  PERFORM 1 FROM "gov_cost"."sessions"
    WHERE (agent_id, session_id) IN (SELECT agent_id, session_id FROM "gov_cost"."reservations" WHERE id = ANY(ids) AND lease)
    ORDER BY agent_id, session_id FOR UPDATE;
  FOR x IN SELECT value FROM jsonb_array_elements(items) LOOP
    SELECT * INTO held FROM "gov_cost"."reservations" WHERE id = (x->>'id')::uuid AND lease;
    CONTINUE WHEN held.id IS NULL;
    u := least(held.usd, coalesce((x->>'usd')::numeric, held.usd));
    t := least(held.tokens, coalesce((x->>'tokens')::bigint, held.tokens));
    UPDATE "gov_cost"."agent_days"
      SET reserved_usd = reserved_usd - u, reserved_tokens = reserved_tokens - t, updated_at = now()
      WHERE agent_id = held.agent_id AND day = held.day;
    UPDATE "gov_cost"."sessions"
      SET reserved_usd = reserved_usd - u, reserved_tokens = reserved_tokens - t, updated_at = now()
      WHERE agent_id = held.agent_id AND session_id = held.session_id;
    IF x ? 'usd' OR x ? 'tokens' THEN
      UPDATE "gov_cost"."reservations" SET usd = usd - u, tokens = tokens - t WHERE id = held.id;
    ELSE
      DELETE FROM "gov_cost"."reservations" WHERE id = held.id;
    END IF;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

--> statement-breakpoint
-- release(ids), revised: a lease is released only by its process (release_leases) or by the
-- sweep when it expires, never by the id of a call: its process admits calls in it.
CREATE OR REPLACE FUNCTION "gov_cost"."release"(ids uuid[]) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  locked uuid[];
BEGIN
  locked := ARRAY(SELECT id FROM "gov_cost"."reservations" WHERE id = ANY(ids) AND NOT lease ORDER BY id FOR UPDATE);
  RETURN "gov_cost"."release_locked"(locked);
END
$$;
