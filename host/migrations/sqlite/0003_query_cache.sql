-- Real-time query (/poll/query.do) answers fetched from a carrier, so a restart still
-- answers within the freshness window instead of asking the carrier again (kuaidi100 locks
-- a waybill queried more often than every 30 minutes). One row per company and waybill
-- key (number plus phone); the newest answer replaces the older one.
CREATE TABLE query_cache (
    company     TEXT    NOT NULL,
    waybill_key TEXT    NOT NULL,
    trace       TEXT    NOT NULL, -- the Trace as JSON
    fetched_at  INTEGER NOT NULL,
    PRIMARY KEY (company, waybill_key)
) WITHOUT ROWID;
