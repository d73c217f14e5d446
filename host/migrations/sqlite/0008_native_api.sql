-- The native /v1 API. A tenant's Standard Webhooks signing secrets (sealed, like its key:
-- a JSON list of {secret, expires_at}); during a rotation two are valid at once. Each
-- native subscription keeps a copy in its salt, which a rotation rewrites.
ALTER TABLE tenants ADD COLUMN webhook_secrets TEXT;
-- The first answer to a POST carrying an Idempotency-Key, replayed for every repeat of
-- that key; the fingerprint is a hash of the method, path and body, so a key reused for
-- another request is refused rather than answered with the wrong thing.
CREATE TABLE idempotency (
    tenant_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);
