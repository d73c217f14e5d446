-- Retention finds ended subscriptions by their last write without reading the live ones.
CREATE INDEX subscriptions_ended ON subscriptions(updated_at) WHERE status <> 'polling';
