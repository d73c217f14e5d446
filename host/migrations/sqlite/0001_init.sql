-- waybill store, SQLite dialect. Times are Unix milliseconds (UTC) unless named *_text.

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    api_key     TEXT    NOT NULL UNIQUE,
    customer    TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
    company         TEXT    NOT NULL,
    number          TEXT    NOT NULL,
    phone           TEXT,
    from_area       TEXT,
    to_area         TEXT,
    callback_url    TEXT    NOT NULL,
    salt            TEXT,
    options         TEXT    NOT NULL DEFAULT '{}',
    status          TEXT    NOT NULL DEFAULT 'polling',
    state           TEXT    NOT NULL DEFAULT 'no_trace',
    message         TEXT    NOT NULL DEFAULT '',
    com_old         TEXT,
    com_new         TEXT,
    next_check_at   INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    checks          INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    changes         INTEGER NOT NULL DEFAULT 0,
    push_seq        INTEGER NOT NULL DEFAULT 0,
    trace_hash      TEXT,
    event_count     INTEGER NOT NULL DEFAULT 0,
    last_event_at   INTEGER,
    last_check_at   INTEGER,
    last_change_at  INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- The scheduler's one hot query: due polling rows, oldest first.
CREATE INDEX subscriptions_due ON subscriptions(next_check_at) WHERE status = 'polling';
-- One live subscription per tenant and waybill (kuaidi100 returnCode 501 otherwise).
CREATE UNIQUE INDEX subscriptions_live ON subscriptions(tenant_id, company, number)
    WHERE status = 'polling';
CREATE INDEX subscriptions_number ON subscriptions(number);

CREATE TABLE events (
    subscription_id INTEGER NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL, -- 0 = newest
    at_ms           INTEGER NOT NULL,
    time_text       TEXT    NOT NULL, -- RFC 3339 with the carrier's offset
    context         TEXT    NOT NULL,
    location        TEXT,
    area_code       TEXT,
    area_name       TEXT,
    state           TEXT    NOT NULL,
    raw_code        TEXT,
    rule            TEXT,
    PRIMARY KEY (subscription_id, seq)
) WITHOUT ROWID;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    push_id         TEXT    NOT NULL UNIQUE,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    url             TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    headers         TEXT    NOT NULL DEFAULT '[]',
    attempt         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    UNIQUE (subscription_id, seq)
);

CREATE INDEX outbox_pending ON outbox(subscription_id, seq) WHERE state = 'pending';
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox(finished_at) WHERE state = 'dead';

CREATE TABLE usage (
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    month       TEXT    NOT NULL, -- YYYY-MM at UTC+8, kuaidi100's billing month
    company     TEXT    NOT NULL,
    number      TEXT    NOT NULL,
    subscribes  INTEGER NOT NULL DEFAULT 1,
    first_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, month, company, number)
);
