-- One index instead of two for finding a tenant's waybill: subscribing a scattered number
-- wrote a random leaf page of each, and those page writes bound subscribe throughput.
--
-- `live` is 1 while the subscription is polling and NULL after it ends. SQLite counts
-- NULLs as distinct in a UNIQUE index, so any number of ended subscriptions of a waybill
-- may sit beside at most one live one (kuaidi100 returnCode 501 otherwise), and the same
-- index, number first, serves lookups by number alone.
ALTER TABLE subscriptions ADD COLUMN live INTEGER
    GENERATED ALWAYS AS (CASE WHEN status = 'polling' THEN 1 END) VIRTUAL;
DROP INDEX subscriptions_live;
DROP INDEX subscriptions_number;
CREATE UNIQUE INDEX subscriptions_waybill ON subscriptions(number, company, tenant_id, live);
