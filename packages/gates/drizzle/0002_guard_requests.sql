-- Whoever can write to gov_gates.requests through the application's role must not be able to
-- run an approved action twice: a request is born pending and undecided, and once its action
-- has been executed (executed_at set) the row is final — executed_at cannot be cleared, and
-- a deleted row cannot come back decided or executed. (A role that owns the table can drop
-- the trigger; that is outside what a trigger can defend.)
CREATE FUNCTION "gov_gates"."guard_requests"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'pending' OR NEW.executed_at IS NOT NULL OR NEW.reviewer_id IS NOT NULL
      OR NEW.resolved_at IS NOT NULL OR NEW.decision_key_id IS NOT NULL OR NEW.decision_mac IS NOT NULL THEN
      RAISE EXCEPTION 'gov_gates.requests: request % must be inserted pending, undecided and not executed', NEW.request_id
        USING ERRCODE = 'GG001', HINT = 'Requests are opened by request(); decisions are made by grant() and deny().';
    END IF;
    RETURN NEW;
  END IF;
  IF OLD.executed_at IS NOT NULL THEN
    RAISE EXCEPTION 'gov_gates.requests: request % was executed at %; an executed request is final', OLD.request_id, OLD.executed_at
      USING ERRCODE = 'GG002', HINT = 'An approved action runs once. Open a new request to run it again.';
  END IF;
  IF NEW.executed_at IS NOT NULL AND NEW.status <> 'granted' THEN
    RAISE EXCEPTION 'gov_gates.requests: request % cannot be executed unless it is granted', OLD.request_id
      USING ERRCODE = 'GG003';
  END IF;
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "requests_guard" BEFORE INSERT OR UPDATE ON "gov_gates"."requests"
  FOR EACH ROW EXECUTE FUNCTION "gov_gates"."guard_requests"();
