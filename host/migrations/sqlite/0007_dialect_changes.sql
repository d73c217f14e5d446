-- A subscription belongs to the API dialect it was made in, and its pushes are queued as
-- dialect-free changes (monitor header and trace, JSON) that the delivery worker renders,
-- signs and judges in that dialect at each attempt: a signature with a timestamp is then
-- never stale on a retry. Rows queued before keep their rendered body (change IS NULL)
-- and are sent as stored; they were all kuaidi100 pushes.
ALTER TABLE subscriptions ADD COLUMN dialect TEXT NOT NULL DEFAULT 'kuaidi100';
ALTER TABLE outbox ADD COLUMN change TEXT;
-- The dialect's own parameters of a subscription (JSON object), e.g. the Kdniao push type
-- and the CallBack value its pushes echo.
ALTER TABLE subscriptions ADD COLUMN dialect_params TEXT NOT NULL DEFAULT '{}';
-- Kdniao sets the push address per account, not per subscription.
ALTER TABLE tenants ADD COLUMN kdniao_push_url TEXT;
