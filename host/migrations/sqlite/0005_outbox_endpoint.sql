-- The receiver a push goes to (scheme, host and port of its URL), so delivery can share
-- its slots between receivers: a receiver that fails or hangs holds at most its share.
-- Rows queued before this column existed keep NULL and are grouped by their whole URL.
ALTER TABLE outbox ADD COLUMN endpoint TEXT;
