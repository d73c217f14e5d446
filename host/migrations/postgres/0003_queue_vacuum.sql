-- The outbox is a queue: every push is inserted, leased and finished within seconds, and
-- every check rewrites its subscription's next due time. PostgreSQL's defaults vacuum and
-- analyze a table only after a fifth of it has changed, which on a queue means index scans
-- wading through dead entries and plans made from statistics of an emptier table. Vacuum
-- and analyze these two after a fixed number of changes instead, without throttling.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE subscriptions SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
