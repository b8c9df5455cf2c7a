-- Revisions come from gov_scope.policy_revision from now on. Start it past every revision
-- already stored, so that the next registration of any agent is newer than the row (and than
-- what running processes hold) even if the row is deleted and written again. (Clamped to the
-- sequence's range: a revision edited out of it in the table cannot make the migration fail.)
SELECT setval(
  '"gov_scope"."policy_revision"',
  greatest(least(coalesce(max("revision"), 0), 9223372036854775806), 0) + 1,
  false
) FROM "gov_scope"."policies";
