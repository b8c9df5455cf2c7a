-- Record in the ledger what is already published: the content hash of every stored version,
-- so that publish refuses other content for it even if its row is deleted later. SQL cannot
-- sign (the chain key is not in the database): these entries are unsigned, and are signed in
-- place when the same content is published again from a process that holds the key.
INSERT INTO "gov_steward"."blueprint_ledger" ("id", "content_hash")
SELECT "id", "content_hash" FROM "gov_steward"."blueprints"
ON CONFLICT ("id") DO NOTHING;
