-- Webhook URLs a receiver asked to stop pushing to (Standard Webhooks: 410 Gone), per
-- tenant. Pushes to a disabled URL are dead-lettered without being sent, with the reason,
-- so re-enabling the URL and re-driving the dead letters (`waybill redeliver --since`)
-- loses nothing.
CREATE TABLE disabled_endpoints (
    tenant_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    reason TEXT NOT NULL,
    disabled_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, url)
);
-- Since when pushes to a URL have failed without one getting through (the row goes at
-- the first delivery); a URL failing longer than `[engine.push] disable_failing_after`
-- is disabled.
CREATE TABLE endpoint_failures (
    tenant_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    failing_since INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, url)
);
