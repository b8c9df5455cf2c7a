-- A request's key (request_key, migration 0006) is part of what its request MAC signs, so that a
-- row moved to another key is refused (a run resumed elsewhere finds its request by that key).
-- As defence in depth, the trigger now also keeps it immutable once the request is made (GG004),
-- like every other field the request MAC signs. Everything else is as in 0005 (GG001 to GG008).
-- A table owner can drop this trigger: against them the request and decision MACs hold.
CREATE OR REPLACE FUNCTION "gov_gates"."guard_requests"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed text;
  published boolean;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'pending' OR NEW.executed_at IS NOT NULL OR NEW.reviewer_id IS NOT NULL
      OR NEW.resolved_at IS NOT NULL OR NEW.decision_key_id IS NOT NULL OR NEW.decision_mac IS NOT NULL THEN
      RAISE EXCEPTION 'gov_gates.requests: request % must be inserted pending, undecided and not executed', NEW.request_id
        USING ERRCODE = 'GG001', HINT = 'Requests are opened by request(); decisions are made by grant() and deny().';
    END IF;
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' THEN
    IF OLD.expires_at > now() THEN
      RAISE EXCEPTION 'gov_gates.requests: request % cannot be deleted before it expires (at %)', OLD.request_id, OLD.expires_at
        USING ERRCODE = 'GG007', HINT = 'Delete requests once they have expired. To stop a request, deny it.';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.executed_at IS NOT NULL THEN
    RAISE EXCEPTION 'gov_gates.requests: request % was executed at %; an executed request is final', OLD.request_id, OLD.executed_at
      USING ERRCODE = 'GG002', HINT = 'An approved action runs once. Open a new request to run it again.';
  END IF;
  IF NEW.executed_at IS NOT NULL AND (NEW.status <> 'granted' OR OLD.status <> 'granted') THEN
    RAISE EXCEPTION 'gov_gates.requests: request % cannot be executed unless it is granted', OLD.request_id
      USING ERRCODE = 'GG003';
  END IF;
  changed := concat_ws(', ',
    CASE WHEN NEW.request_id IS DISTINCT FROM OLD.request_id THEN 'request_id' END,
    CASE WHEN NEW.kind IS DISTINCT FROM OLD.kind THEN 'kind' END,
    CASE WHEN NEW.agent_id IS DISTINCT FROM OLD.agent_id THEN 'agent_id' END,
    CASE WHEN NEW.action_hash IS DISTINCT FROM OLD.action_hash THEN 'action_hash' END,
    CASE WHEN NEW.payload IS DISTINCT FROM OLD.payload THEN 'payload' END,
    CASE WHEN NEW.token_version IS DISTINCT FROM OLD.token_version THEN 'token_version' END,
    CASE WHEN NEW.key_id IS DISTINCT FROM OLD.key_id THEN 'key_id' END,
    CASE WHEN NEW.token_digest IS DISTINCT FROM OLD.token_digest THEN 'token_digest' END,
    CASE WHEN NEW.created_at IS DISTINCT FROM OLD.created_at THEN 'created_at' END,
    CASE WHEN NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN 'expires_at' END,
    CASE WHEN NEW.operator_id IS DISTINCT FROM OLD.operator_id THEN 'operator_id' END,
    CASE WHEN NEW.operator_lookup IS DISTINCT FROM OLD.operator_lookup THEN 'operator_lookup' END,
    CASE WHEN NEW.request_mac IS DISTINCT FROM OLD.request_mac THEN 'request_mac' END,
    CASE WHEN NEW.request_key IS DISTINCT FROM OLD.request_key THEN 'request_key' END);
  IF changed <> '' THEN
    RAISE EXCEPTION 'gov_gates.requests: request %: % cannot change once the request is made', OLD.request_id, changed
      USING ERRCODE = 'GG004', HINT = 'What a request is (kind, agent, action, token, times, operator, key) is signed when it is made. Open a new request instead.';
  END IF;
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
       (OLD.status = 'pending' AND NEW.status IN ('granting', 'denying', 'expired'))
    OR (OLD.status = 'granting' AND NEW.status IN ('granted', 'pending', 'expired'))
    OR (OLD.status = 'denying' AND NEW.status IN ('denied', 'pending', 'expired'))) THEN
    RAISE EXCEPTION 'gov_gates.requests: request % cannot go from % to %', OLD.request_id, OLD.status, NEW.status
      USING ERRCODE = 'GG005', HINT = 'A request is claimed, then granted or denied (or released), or it expires; a decision and an expiry are final.';
  END IF;
  published := (OLD.status = 'granting' AND NEW.status = 'granted')
    OR (OLD.status = 'denying' AND NEW.status = 'denied');
  IF (ROW(NEW.reviewer_id, NEW.reason, NEW.resolved_at, NEW.decision_key_id)
       IS DISTINCT FROM ROW(OLD.reviewer_id, OLD.reason, OLD.resolved_at, OLD.decision_key_id)
      OR (NEW.decision_mac IS DISTINCT FROM OLD.decision_mac AND NOT published))
    AND NOT (
       (OLD.status = 'pending' AND NEW.status IN ('granting', 'denying', 'expired'))
    OR (OLD.status IN ('granting', 'denying') AND NEW.status IN ('pending', 'expired'))) THEN
    RAISE EXCEPTION 'gov_gates.requests: the decision of request % cannot change once it is made', OLD.request_id
      USING ERRCODE = 'GG006', HINT = 'Decisions are made by grant() and deny(), once.';
  END IF;
  IF published AND (NEW.decision_mac IS NULL OR NEW.decision_mac = OLD.decision_mac) THEN
    RAISE EXCEPTION 'gov_gates.requests: request % cannot be published as % without its decision MAC (the claim''s MAC is not one)', OLD.request_id, NEW.status
      USING ERRCODE = 'GG008', HINT = 'A decision is published by grant() and deny() once its audit event is written, with the MAC that signs it.';
  END IF;
  RETURN NEW;
END
$$;
