-- A subscription's active problem flags (Kdniao StateEx codes, ascending, comma-separated;
-- empty: none) as of its last evaluation, and when a timed flag is due to appear next if
-- the trace does not change (the scheduler checks the waybill then): a flag that appears or
-- clears is a change, pushed like a new trace line.
ALTER TABLE subscriptions ADD COLUMN problems TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN problems_due_at INTEGER;
