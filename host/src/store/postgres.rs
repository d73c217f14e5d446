//! PostgreSQL implementation of [`Store`], for several daemons sharing one database.
//!
//! Nothing here relies on a single writer: every read-then-write either locks what it
//! read (`FOR UPDATE`) or is one statement that re-checks its condition on the newest row
//! version (PostgreSQL re-evaluates an `UPDATE`'s `WHERE` on a row another transaction
//! changed meanwhile). In particular:
//!
//! - claims pick rows with `FOR UPDATE SKIP LOCKED`, so two daemons claiming at once take
//!   disjoint rows without waiting for each other; an expired lease is free to the next
//!   claim, which is how a killed daemon's rows are rescued;
//! - completing checks locks the batch's rows (in id order, so two batches cannot
//!   deadlock) and writes only those whose lease is still the caller's;
//! - the monthly subscribe limit is taken as a slot on the usage row first (an upsert that
//!   only counts up while under the limit), so racing subscribes cannot pass it;
//! - a batch of checks or of push verdicts is written with a fixed handful of statements
//!   whatever its size (arrays bound with `UNNEST`), not a statement per row.
//!
//! Times are Unix milliseconds in `BIGINT` columns and structured values JSON text, as in
//! SQLite, so rows decode with the same code ([`super::rows`]) and move between backends
//! unchanged.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Row};
use waybill_core::model::Trace;

use super::rows::*;
use super::secrets::SecretKey;
use super::*;

/// Connections per daemon unless the URL or the config says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// The text whose lookup hash records which secret key sealed the database.
const KEY_CHECK: &str = "waybill secret key check";

/// A [`Store`] in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    secrets: std::sync::Arc<SecretKey>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Makes the transaction's scans of the outbox's pending queue walk `outbox_due` in order.
///
/// Every delivered push leaves a dead entry in the queue's partial indexes until vacuum
/// runs. An index scan marks each dead entry it meets as such (so the next scan skips it
/// without visiting the table); a bitmap scan visits every one, every time. The planner
/// picks the bitmap scan whenever its statistics lag behind a queue that grows fast (a
/// fresh database, a burst), and then each claim reads thousands of dead rows: measured,
/// 8 ms instead of 1 ms per claim with 10 k pushes delivered, and delivery stalled at
/// ~260 pushes/s.
async fn queue_scan(c: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SET LOCAL enable_bitmapscan = off")
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// A unique-index violation on `constraint`.
fn violates(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if d.is_unique_violation() && d.constraint() == Some(constraint))
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) with up to `pool_size` connections, applies
    /// pending migrations (several daemons starting at once take turns: sqlx holds an
    /// advisory lock while migrating) and checks that `secrets` is the key the database's
    /// secrets were sealed with.
    pub async fn open(url: &str, secrets: SecretKey, pool_size: u32) -> StoreResult<Self> {
        Self::open_with(url.parse()?, secrets, pool_size).await
    }

    /// [`PgStore::open`] with connection options already read.
    pub async fn open_with(
        options: PgConnectOptions,
        secrets: SecretKey,
        pool_size: u32,
    ) -> StoreResult<Self> {
        Self::on_pool(Self::connect(options, pool_size).await?, secrets).await
    }

    /// Connects a pool of up to `pool_size` connections without touching the schema, so
    /// that a caller can fail on an unreachable server before it creates anything of its own
    /// (the secret key file); [`PgStore::on_pool`] finishes the opening.
    pub async fn connect(options: PgConnectOptions, pool_size: u32) -> StoreResult<PgPool> {
        // One direct connection first: the pool retries a refused connection until its
        // acquire timeout and then reports only that it timed out; this fails at once with
        // the server's own answer (refused, unknown database, bad password).
        PgConnection::connect_with(&options).await?.close().await?;
        Ok(PgPoolOptions::new()
            .max_connections(pool_size.max(2))
            .connect_with(options)
            .await?)
    }

    /// Applies pending migrations on `pool` and checks `secrets` against the database;
    /// the pool is closed when either fails.
    pub async fn on_pool(pool: PgPool, secrets: SecretKey) -> StoreResult<Self> {
        match Self::prepare(&pool, &secrets).await {
            Ok(()) => Ok(Self {
                pool,
                secrets: std::sync::Arc::new(secrets),
            }),
            Err(e) => {
                pool.close().await;
                Err(e)
            }
        }
    }

    async fn prepare(pool: &PgPool, secrets: &SecretKey) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres").run(pool).await?;
        let check = secrets.lookup(KEY_CHECK);
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ('key_check', $1) ON CONFLICT DO NOTHING",
        )
        .bind(&check)
        .execute(pool)
        .await?;
        let stored: String = sqlx::query_scalar("SELECT value FROM meta WHERE name = 'key_check'")
            .fetch_one(pool)
            .await?;
        if stored != check {
            return Err(secrets::SecretError::Open(
                "the database's secrets were sealed with another secret key",
            )
            .into());
        }
        Ok(())
    }

    /// The pool, for tools that copy rows in bulk (`waybill migrate`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `body` in one transaction and commits it; a failed body is rolled back.
    async fn tx<T>(
        &self,
        body: impl AsyncFnOnce(&mut PgConnection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        match body(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // A failed rollback leaves the connection broken; sqlx then discards it.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// One subscription of a batch as bound arrays take it.
struct SubscribeRows<'a> {
    subs: Vec<&'a NewSubscription>,
    months: Vec<String>,
}

impl<'a> SubscribeRows<'a> {
    fn push(&mut self, s: &'a NewSubscription) {
        self.subs.push(s);
        self.months.push(billing_month(s.created_at));
    }
}

/// Gives each (tenant, company, number) of `rows` a slot in its billing month's usage row
/// if it is under `limit`: the row is created at 1 or counted up, and locked until the
/// transaction ends. Returns, per waybill that got a slot, the new count and whether the
/// usage row was created by this call.
async fn take_usage_slots(
    tx: &mut PgConnection,
    rows: &SubscribeRows<'_>,
    limit: i64,
) -> StoreResult<HashMap<(i64, String, String), (i64, bool)>> {
    let tenants: Vec<i64> = rows.subs.iter().map(|s| s.tenant_id).collect();
    let companies: Vec<&str> = rows.subs.iter().map(|s| s.company.as_str()).collect();
    let numbers: Vec<&str> = rows.subs.iter().map(|s| s.number.as_str()).collect();
    let firsts: Vec<i64> = rows.subs.iter().map(|s| ms(s.created_at)).collect();
    let got = sqlx::query(
        "INSERT INTO usage AS u (tenant_id, month, company, number, first_at) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
         ORDER BY 1, 3, 4, 2 \
         ON CONFLICT (tenant_id, month, company, number) DO UPDATE \
         SET subscribes = u.subscribes + 1 WHERE u.subscribes < $6 \
         RETURNING tenant_id, company, number, subscribes, (xmax = 0) AS created",
    )
    .bind(&tenants)
    .bind(&rows.months)
    .bind(&companies)
    .bind(&numbers)
    .bind(&firsts)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut slots = HashMap::with_capacity(got.len());
    for r in got {
        slots.insert(
            (
                r.try_get("tenant_id")?,
                r.try_get("company")?,
                r.try_get("number")?,
            ),
            (r.try_get("subscribes")?, r.try_get("created")?),
        );
    }
    Ok(slots)
}

/// Why `s` was not inserted: a live subscription of the waybill (duplicate), or else its
/// count in billing month `month` at `limit`.
async fn refused(
    tx: &mut PgConnection,
    s: &NewSubscription,
    month: &str,
    limit: i64,
    conflicted: bool,
) -> StoreResult<SubscribeOutcome> {
    // A waybill whose insert met a live subscription is a duplicate of it even if that one
    // ended a moment later (another daemon's check): it was live when this request came.
    let existing: Option<i64> = sqlx::query_scalar(if conflicted {
        "SELECT id FROM subscriptions WHERE tenant_id = $1 AND company = $2 AND number = $3 \
         ORDER BY (status = 'polling') DESC, id DESC LIMIT 1"
    } else {
        "SELECT id FROM subscriptions WHERE tenant_id = $1 AND company = $2 AND number = $3 \
         AND status = 'polling'"
    })
    .bind(s.tenant_id)
    .bind(&s.company)
    .bind(&s.number)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(existing) = existing {
        return Ok(SubscribeOutcome::Duplicate { existing });
    }
    let subscribes: Option<i64> = sqlx::query_scalar(
        "SELECT subscribes FROM usage WHERE tenant_id = $1 AND month = $2 AND company = $3 \
         AND number = $4",
    )
    .bind(s.tenant_id)
    .bind(month)
    .bind(&s.company)
    .bind(&s.number)
    .fetch_optional(&mut *tx)
    .await?;
    match subscribes {
        Some(n) if n >= limit => Ok(SubscribeOutcome::MonthlyLimit {
            subscribes: u32::try_from(n).unwrap_or(u32::MAX),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        }),
        _ => Err(StoreError::Corrupt {
            table: "subscriptions",
            detail: format!(
                "insert of {}/{} refused but no live row or monthly limit found",
                s.company, s.number
            ),
        }),
    }
}

/// Writes a batch of checks inside `tx`: which outcomes were written (`false` where the
/// lease had moved on). A fixed number of statements whatever the batch's size.
async fn write_checks(
    tx: &mut PgConnection,
    outcomes: &[CheckOutcome],
    secrets: &SecretKey,
) -> StoreResult<Vec<bool>> {
    let ids: Vec<i64> = outcomes.iter().map(|o| o.subscription_id).collect();
    // Locked in id order, so two batches sharing a row (a lease taken over) wait for each
    // other instead of deadlocking.
    let mut held: HashMap<i64, (Option<String>, i64)> = HashMap::new();
    for r in sqlx::query(
        "SELECT id, lease_owner, push_seq FROM subscriptions WHERE id = ANY($1) \
         ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    {
        held.insert(
            r.try_get("id")?,
            (r.try_get("lease_owner")?, r.try_get("push_seq")?),
        );
    }
    let mut written = Vec::with_capacity(outcomes.len());
    let mut done: HashSet<i64> = HashSet::new();
    let mut u = CheckColumns::default();
    let mut events = EventColumns::default();
    let mut pushes = PushColumns::default();
    let mut lanes: BTreeMap<(String, String), LaneStats> = BTreeMap::new();
    for o in outcomes {
        let ours = matches!(held.get(&o.subscription_id),
            Some((Some(owner), _)) if *owner == o.lease_owner);
        // The first outcome of a row releases its lease; a second one in the same batch
        // would find it released, as it would one statement later.
        if !ours || !done.insert(o.subscription_id) {
            written.push(false);
            continue;
        }
        written.push(true);
        let mut push_seq = held[&o.subscription_id].1;
        let now = ms(o.checked_at);
        if let Some((trace, _)) = &o.new_trace {
            events.replaced.push(o.subscription_id);
            for (seq, e) in trace.data.iter().enumerate() {
                events.push(o.subscription_id, seq, e);
            }
        }
        for p in &o.pushes {
            push_seq += 1;
            pushes.sub.push(o.subscription_id);
            pushes.seq.push(push_seq);
            pushes
                .push_id
                .push(push_id(secrets, o.subscription_id, push_seq));
            pushes.url.push(p.url.clone());
            pushes.endpoint.push(push_endpoint(&p.url));
            pushes.change.push(to_json("outbox", "change", &p.change)?);
            pushes.at.push(now);
        }
        u.push(o, push_seq)?;
        if let Some((carrier, lesson)) = &o.lesson {
            for scope in &lesson.scopes {
                lanes
                    .entry((carrier.clone(), scope.key()))
                    .or_default()
                    .merge(&lesson.stats);
            }
        }
    }
    if !events.replaced.is_empty() {
        sqlx::query("DELETE FROM events WHERE subscription_id = ANY($1)")
            .bind(&events.replaced)
            .execute(&mut *tx)
            .await?;
        events.insert(tx).await?;
    }
    u.update(tx).await?;
    pushes.insert(tx).await?;
    let now = outcomes.iter().map(|o| ms(o.checked_at)).max().unwrap_or(0);
    learn_lanes(tx, lanes, now).await?;
    Ok(written)
}

/// The subscription columns a batch of checks writes, one array per column.
#[derive(Default)]
struct CheckColumns {
    id: Vec<i64>,
    new_trace: Vec<bool>,
    state: Vec<Option<&'static str>>,
    hash: Vec<Option<String>>,
    event_count: Vec<i64>,
    last_event_at: Vec<Option<i64>>,
    com_old: Vec<Option<String>>,
    com_new: Vec<Option<String>>,
    status: Vec<&'static str>,
    message: Vec<String>,
    next_check_at: Vec<i64>,
    error: Vec<Option<String>>,
    push_seq: Vec<i64>,
    now: Vec<i64>,
    set_eta: Vec<bool>,
    eta: Vec<Option<String>>,
    set_problems: Vec<bool>,
    problems: Vec<String>,
    problems_due_at: Vec<Option<i64>>,
}

impl CheckColumns {
    fn push(&mut self, o: &CheckOutcome, push_seq: i64) -> StoreResult<()> {
        let trace = o.new_trace.as_ref();
        self.id.push(o.subscription_id);
        self.new_trace.push(trace.is_some());
        self.state.push(trace.map(|(t, _)| t.state.name()));
        self.hash.push(trace.map(|(_, h)| h.clone()));
        self.event_count
            .push(trace.map_or(0, |(t, _)| i64::try_from(t.data.len()).unwrap_or(i64::MAX)));
        self.last_event_at.push(
            trace
                .and_then(|(t, _)| t.data.first())
                .map(|e| ms(e.time.at)),
        );
        self.com_old
            .push(o.correction.as_ref().map(|c| c.com_old.clone()));
        self.com_new
            .push(o.correction.as_ref().map(|c| c.com_new.clone()));
        self.status.push(o.status.as_str());
        self.message.push(o.message.clone());
        self.next_check_at.push(ms(o.next_check_at));
        self.error.push(o.error.clone());
        self.push_seq.push(push_seq);
        self.now.push(ms(o.checked_at));
        self.set_eta.push(o.eta.is_some());
        self.eta.push(match &o.eta {
            Some(Some(eta)) => Some(to_json("subscriptions", "eta", eta)?),
            _ => None,
        });
        self.set_problems.push(o.problems.is_some());
        self.problems.push(
            o.problems
                .as_ref()
                .map(ProblemState::codes_text)
                .unwrap_or_default(),
        );
        self.problems_due_at
            .push(o.problems.as_ref().and_then(|p| p.due_at).map(ms));
        Ok(())
    }

    async fn update(&self, tx: &mut PgConnection) -> StoreResult<()> {
        if self.id.is_empty() {
            return Ok(());
        }
        // Each optional part keeps the stored value unless the check set it: a trace
        // only when it changed, the company only when corrected, eta and problems only
        // when evaluated.
        sqlx::query(
            "UPDATE subscriptions s SET \
               state = CASE WHEN v.new_trace THEN v.state ELSE s.state END, \
               trace_hash = CASE WHEN v.new_trace THEN v.hash ELSE s.trace_hash END, \
               event_count = CASE WHEN v.new_trace THEN v.event_count ELSE s.event_count END, \
               last_event_at = CASE WHEN v.new_trace THEN v.last_event_at ELSE s.last_event_at END, \
               last_change_at = CASE WHEN v.new_trace THEN v.now ELSE s.last_change_at END, \
               changes = s.changes + CASE WHEN v.new_trace THEN 1 ELSE 0 END, \
               company = COALESCE(v.com_new, s.company), \
               com_old = COALESCE(v.com_old, s.com_old), \
               com_new = COALESCE(v.com_new, s.com_new), \
               status = v.status, message = v.message, next_check_at = v.next_check_at, \
               lease_owner = NULL, lease_until = NULL, checks = s.checks + 1, \
               failures = CASE WHEN v.error IS NULL THEN 0 ELSE s.failures + 1 END, \
               last_error = v.error, push_seq = v.push_seq, last_check_at = v.now, \
               updated_at = v.now, \
               eta = CASE WHEN v.set_eta THEN v.eta ELSE s.eta END, \
               problems = CASE WHEN v.set_problems THEN v.problems ELSE s.problems END, \
               problems_due_at = CASE WHEN v.set_problems THEN v.problems_due_at \
                                 ELSE s.problems_due_at END \
             FROM UNNEST($1::bigint[], $2::bool[], $3::text[], $4::text[], $5::bigint[], \
                         $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], \
                         $11::bigint[], $12::text[], $13::bigint[], $14::bigint[], \
                         $15::bool[], $16::text[], $17::bool[], $18::text[], $19::bigint[]) \
               AS v(id, new_trace, state, hash, event_count, last_event_at, com_old, com_new, \
                    status, message, next_check_at, error, push_seq, now, set_eta, eta, \
                    set_problems, problems, problems_due_at) \
             WHERE s.id = v.id",
        )
        .bind(&self.id)
        .bind(&self.new_trace)
        .bind(&self.state)
        .bind(&self.hash)
        .bind(&self.event_count)
        .bind(&self.last_event_at)
        .bind(&self.com_old)
        .bind(&self.com_new)
        .bind(&self.status)
        .bind(&self.message)
        .bind(&self.next_check_at)
        .bind(&self.error)
        .bind(&self.push_seq)
        .bind(&self.now)
        .bind(&self.set_eta)
        .bind(&self.eta)
        .bind(&self.set_problems)
        .bind(&self.problems)
        .bind(&self.problems_due_at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Trace lines to insert, one array per column.
#[derive(Default)]
struct EventColumns {
    replaced: Vec<i64>,
    sub: Vec<i64>,
    seq: Vec<i64>,
    at: Vec<i64>,
    time_text: Vec<String>,
    context: Vec<String>,
    location: Vec<Option<String>>,
    area_code: Vec<Option<String>>,
    area_name: Vec<Option<String>>,
    state: Vec<&'static str>,
    raw_code: Vec<Option<String>>,
    rule: Vec<Option<String>>,
}

impl EventColumns {
    fn push(&mut self, sub: i64, seq: usize, e: &waybill_core::model::TrackEvent) {
        self.sub.push(sub);
        self.seq.push(i64::try_from(seq).unwrap_or(i64::MAX));
        self.at.push(ms(e.time.at));
        self.time_text.push(e.time.to_string());
        self.context.push(e.context.clone());
        self.location.push(e.location.clone());
        self.area_code.push(e.area_code.clone());
        self.area_name.push(e.area_name.clone());
        self.state.push(e.state.name());
        self.raw_code.push(e.raw_code.clone());
        self.rule.push(e.rule.clone());
    }

    async fn insert(&self, tx: &mut PgConnection) -> StoreResult<()> {
        if self.sub.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO events (subscription_id, seq, at_ms, time_text, context, location, \
             area_code, area_name, state, raw_code, rule) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
             $11::text[])",
        )
        .bind(&self.sub)
        .bind(&self.seq)
        .bind(&self.at)
        .bind(&self.time_text)
        .bind(&self.context)
        .bind(&self.location)
        .bind(&self.area_code)
        .bind(&self.area_name)
        .bind(&self.state)
        .bind(&self.raw_code)
        .bind(&self.rule)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Pushes to queue, one array per column.
#[derive(Default)]
struct PushColumns {
    sub: Vec<i64>,
    seq: Vec<i64>,
    push_id: Vec<String>,
    url: Vec<String>,
    endpoint: Vec<String>,
    change: Vec<String>,
    at: Vec<i64>,
}

impl PushColumns {
    async fn insert(&self, tx: &mut PgConnection) -> StoreResult<()> {
        if self.sub.is_empty() {
            return Ok(());
        }
        // content_type and body stay empty: the dialect renders the change at send time.
        sqlx::query(
            "INSERT INTO outbox (push_id, subscription_id, seq, url, endpoint, content_type, \
             body, change, next_attempt_at, created_at) \
             SELECT v.push_id, v.sub, v.seq, v.url, v.endpoint, '', '\\x'::bytea, v.change, \
                    v.at, v.at \
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
                         $6::text[], $7::bigint[]) \
               AS v(push_id, sub, seq, url, endpoint, change, at)",
        )
        .bind(&self.push_id)
        .bind(&self.sub)
        .bind(&self.seq)
        .bind(&self.url)
        .bind(&self.endpoint)
        .bind(&self.change)
        .bind(&self.at)
        .execute(&mut *tx)
        .await?;
        notify_pushes(tx).await
    }
}

/// The channel daemons LISTEN on for pushes queued by another process.
const PUSH_CHANNEL: &str = "waybill_pushes";

/// Tells every listening daemon, once this transaction commits, that pushes were queued.
/// One notification per batch, not per row: PostgreSQL delivers equal notifications of one
/// transaction once, and nothing at all if it rolls back.
async fn notify_pushes(tx: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(PUSH_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Merges a batch's lessons (already added up per carrier and scope) into the stored
/// lanes, locking each row it reads: daemons sharing the database add up instead of
/// overwriting one another. Rows are visited in key order, so two batches cannot
/// deadlock on them.
async fn learn_lanes(
    tx: &mut PgConnection,
    lanes: BTreeMap<(String, String), LaneStats>,
    now: i64,
) -> StoreResult<()> {
    for ((carrier, key), lesson) in lanes {
        let fresh = merged_lane(&carrier, &key, None, &lesson)?;
        let created = sqlx::query(
            "INSERT INTO lanes (carrier, scope, stats, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&carrier)
        .bind(&key)
        .bind(&fresh)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if created {
            continue;
        }
        let stored: String = sqlx::query_scalar(
            "SELECT stats FROM lanes WHERE carrier = $1 AND scope = $2 FOR UPDATE",
        )
        .bind(&carrier)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await?;
        let text = merged_lane(&carrier, &key, Some(&stored), &lesson)?;
        sqlx::query(
            "UPDATE lanes SET stats = $3, updated_at = $4 WHERE carrier = $1 AND scope = $2",
        )
        .bind(&carrier)
        .bind(&key)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn create_tenant(&self, t: &NewTenant, now: Timestamp) -> StoreResult<Tenant> {
        let row = sqlx::query(&format!(
            "INSERT INTO tenants (name, api_key, api_key_sealed, customer, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {TENANT_COLS}"
        ))
        .bind(&t.name)
        .bind(self.secrets.lookup(&t.key))
        .bind(self.secrets.seal(&t.key)?)
        .bind(&t.customer)
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => tenant_from_row(&row, &self.secrets),
            Err(e) if violates(&e, "tenants_customer") => Err(StoreError::DuplicateCustomer),
            Err(e) if violates(&e, "tenants_api_key_key") => Err(StoreError::DuplicateTenantKey),
            Err(e) => Err(e.into()),
        }
    }

    async fn tenant_by_key(&self, key: &str) -> StoreResult<Option<Tenant>> {
        sqlx::query(&format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE api_key = $1"
        ))
        .bind(self.secrets.lookup(key))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(|r| tenant_from_row(r, &self.secrets))
        .transpose()
    }

    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>> {
        sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(|r| tenant_from_row(r, &self.secrets))
            .transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| tenant_from_row(r, &self.secrets))
            .collect()
    }

    async fn set_tenant_access(
        &self,
        id: TenantId,
        disabled: bool,
        expires_at: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tenants SET disabled = $1, expires_at = $2 WHERE id = $3")
            .bind(i64::from(disabled))
            .bind(expires_at.map(ms))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn subscribe_many(
        &self,
        subs: &[NewSubscription],
        monthly_limit: u32,
    ) -> StoreResult<Vec<SubscribeOutcome>> {
        let limit = if monthly_limit == 0 {
            i64::MAX
        } else {
            i64::from(monthly_limit)
        };
        // The first request of each waybill in the batch competes; a repeat of it in the
        // same batch is answered afterwards, like a request that came a moment later.
        let mut first: HashMap<(i64, &str, &str), usize> = HashMap::new();
        let mut rows = SubscribeRows {
            subs: Vec::new(),
            months: Vec::new(),
        };
        for (i, s) in subs.iter().enumerate() {
            if let std::collections::hash_map::Entry::Vacant(e) =
                first.entry((s.tenant_id, s.company.as_str(), s.number.as_str()))
            {
                e.insert(i);
                rows.push(s);
            }
        }
        let salts = rows
            .subs
            .iter()
            .map(|s| s.salt.as_deref().map(|x| self.secrets.seal(x)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let options = rows
            .subs
            .iter()
            .map(|s| to_json("subscriptions", "options", &s.options))
            .collect::<StoreResult<Vec<_>>>()?;
        self.tx(async |tx| {
            let slots = take_usage_slots(tx, &rows, limit).await?;
            let key = |s: &NewSubscription| (s.tenant_id, s.company.clone(), s.number.clone());
            let mut insert = Vec::new();
            for (i, s) in rows.subs.iter().enumerate() {
                if slots.contains_key(&key(s)) {
                    insert.push(i);
                }
            }
            let pick = |f: &dyn Fn(usize) -> Option<String>| -> Vec<Option<String>> {
                insert.iter().map(|&i| f(i)).collect()
            };
            let text = |f: &dyn Fn(&NewSubscription) -> String| -> Vec<String> {
                insert.iter().map(|&i| f(rows.subs[i])).collect()
            };
            let int = |f: &dyn Fn(&NewSubscription) -> i64| -> Vec<i64> {
                insert.iter().map(|&i| f(rows.subs[i])).collect()
            };
            let mut ids: HashMap<(i64, String, String), i64> = HashMap::new();
            if !insert.is_empty() {
                // In key order, like the usage slots: two batches take index entries in
                // the same order and cannot deadlock.
                for r in sqlx::query(
                    "INSERT INTO subscriptions (tenant_id, company, number, phone, from_area, \
                     to_area, callback_url, salt, options, next_check_at, created_at, \
                     updated_at, dialect, dialect_params) \
                     SELECT v.tenant_id, v.company, v.number, v.phone, v.from_area, v.to_area, \
                            v.callback_url, v.salt, v.options, v.next_check_at, v.created_at, \
                            v.created_at, v.dialect, v.dialect_params \
                     FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                 $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], \
                                 $11::bigint[], $12::text[], $13::text[]) \
                       AS v(tenant_id, company, number, phone, from_area, to_area, \
                            callback_url, salt, options, next_check_at, created_at, dialect, \
                            dialect_params) \
                     ORDER BY v.tenant_id, v.company, v.number \
                     ON CONFLICT (tenant_id, company, number) WHERE status = 'polling' \
                     DO NOTHING RETURNING id, tenant_id, company, number",
                )
                .bind(int(&|s| s.tenant_id))
                .bind(text(&|s| s.company.clone()))
                .bind(text(&|s| s.number.clone()))
                .bind(pick(&|i| rows.subs[i].phone.clone()))
                .bind(pick(&|i| rows.subs[i].from.clone()))
                .bind(pick(&|i| rows.subs[i].to.clone()))
                .bind(text(&|s| s.callback_url.clone()))
                .bind(pick(&|i| salts[i].clone()))
                .bind(pick(&|i| Some(options[i].clone())))
                .bind(int(&|s| ms(s.next_check_at)))
                .bind(int(&|s| ms(s.created_at)))
                .bind(text(&|s| s.dialect.clone()))
                .bind(text(&|s| {
                    serde_json::Value::Object(s.dialect_params.clone()).to_string()
                }))
                .fetch_all(&mut *tx)
                .await?
                {
                    ids.insert(
                        (
                            r.try_get("tenant_id")?,
                            r.try_get("company")?,
                            r.try_get("number")?,
                        ),
                        r.try_get("id")?,
                    );
                }
            }
            // A slot taken by a waybill that turned out to be live is given back; a usage
            // row this batch created for it goes again, so a duplicate counts nothing.
            let (mut back, mut gone) = (Vec::new(), Vec::new());
            for &i in &insert {
                let s = rows.subs[i];
                if !ids.contains_key(&key(s)) {
                    let created = slots.get(&key(s)).is_some_and(|(_, c)| *c);
                    if created { &mut gone } else { &mut back }.push(i);
                }
            }
            for (list, sql) in [
                (
                    &back,
                    "UPDATE usage SET subscribes = subscribes - 1 FROM UNNEST($1::bigint[], \
                     $2::text[], $3::text[], $4::text[]) AS v(t, m, c, n) \
                     WHERE tenant_id = v.t AND month = v.m AND company = v.c AND number = v.n",
                ),
                (
                    &gone,
                    "DELETE FROM usage USING UNNEST($1::bigint[], $2::text[], $3::text[], \
                     $4::text[]) AS v(t, m, c, n) \
                     WHERE tenant_id = v.t AND month = v.m AND company = v.c AND number = v.n",
                ),
            ] {
                if list.is_empty() {
                    continue;
                }
                sqlx::query(sql)
                    .bind(
                        list.iter()
                            .map(|&i| rows.subs[i].tenant_id)
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        list.iter()
                            .map(|&i| rows.months[i].clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        list.iter()
                            .map(|&i| rows.subs[i].company.clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        list.iter()
                            .map(|&i| rows.subs[i].number.clone())
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await?;
            }
            // The first request of each waybill is answered from what happened to it; a
            // repeat in the batch is a duplicate of the one created, or refused alike.
            let mut firsts: HashMap<(i64, String, String), SubscribeOutcome> = HashMap::new();
            for (i, s) in rows.subs.iter().enumerate() {
                let k = key(s);
                let outcome = match ids.get(&k) {
                    Some(&id) => SubscribeOutcome::Created {
                        id,
                        month_subscribes: u32::try_from(slots[&k].0).unwrap_or(u32::MAX),
                    },
                    None => {
                        let conflicted = slots.contains_key(&k);
                        refused(tx, s, &rows.months[i], limit, conflicted).await?
                    }
                };
                firsts.insert(k, outcome);
            }
            let mut answered: HashSet<(i64, String, String)> = HashSet::new();
            Ok(subs
                .iter()
                .map(|s| {
                    let k = key(s);
                    let first = firsts[&k];
                    match first {
                        SubscribeOutcome::Created { id, .. } if !answered.insert(k) => {
                            SubscribeOutcome::Duplicate { existing: id }
                        }
                        _ => first,
                    }
                })
                .collect())
        })
        .await
    }

    async fn subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>> {
        sqlx::query(&format!(
            "SELECT {SUB_COLS} FROM subscriptions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(|r| sub_from_row(r, &self.secrets))
        .transpose()
    }

    async fn set_kdniao_push_url(&self, tenant: TenantId, url: Option<&str>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tenants SET kdniao_push_url = $1 WHERE id = $2")
            .bind(url)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_webhook_secrets(&self, tenant: TenantId, secrets: &str) -> StoreResult<bool> {
        let sealed = self.secrets.seal(secrets)?;
        self.tx(async |tx| {
            let done = sqlx::query("UPDATE tenants SET webhook_secrets = $1 WHERE id = $2")
                .bind(&sealed)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE subscriptions SET salt = $1 WHERE tenant_id = $2 AND dialect = $3")
                .bind(&sealed)
                .bind(tenant)
                .bind(crate::dialect::native::NAME)
                .execute(&mut *tx)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn retrack(&self, id: SubscriptionId, now: Timestamp) -> StoreResult<Retrack> {
        let busy = async |id| -> StoreResult<Option<i64>> {
            Ok(sqlx::query_scalar(
                "SELECT o.id FROM subscriptions s JOIN subscriptions o \
                 ON o.tenant_id = s.tenant_id AND o.company = s.company AND o.number = s.number \
                 AND o.id <> s.id WHERE s.id = $1 AND o.status = 'polling' LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        };
        if let Some(other) = busy(id).await? {
            return Ok(Retrack::Busy(other));
        }
        // The live-waybill index decides a race with a subscribe of the same waybill.
        let done = sqlx::query(
            "UPDATE subscriptions SET status = 'polling', message = '', next_check_at = $1, \
             lease_owner = NULL, lease_until = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(ms(now))
        .bind(id)
        .execute(&self.pool)
        .await;
        match done {
            Ok(done) if done.rows_affected() == 1 => Ok(Retrack::Resumed),
            Ok(_) => Ok(Retrack::Missing),
            Err(e) if violates(&e, "subscriptions_live") => match busy(id).await? {
                Some(other) => Ok(Retrack::Busy(other)),
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    async fn idempotent_answer(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotentAnswer>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT fingerprint, status, body FROM idempotency WHERE tenant_id = $1 AND key = $2",
        )
        .bind(tenant)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(fingerprint, status, body)| {
            Ok(IdempotentAnswer {
                fingerprint,
                status: u16::try_from(status).map_err(|_| StoreError::Corrupt {
                    table: "idempotency",
                    detail: format!("status {status}"),
                })?,
                body,
            })
        })
        .transpose()
    }

    async fn save_idempotent_answer(
        &self,
        tenant: TenantId,
        key: &str,
        answer: &IdempotentAnswer,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> StoreResult<()> {
        self.tx(async |tx| {
            sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
                .bind(ms(forget_before))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO idempotency (tenant_id, key, fingerprint, status, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, key) DO NOTHING",
            )
            .bind(tenant)
            .bind(key)
            .bind(&answer.fingerprint)
            .bind(i64::from(answer.status))
            .bind(&answer.body)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    async fn subscriptions_by_id(&self, ids: &[SubscriptionId]) -> StoreResult<Vec<Subscription>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(&format!(
            "SELECT {SUB_COLS} FROM subscriptions WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| sub_from_row(r, &self.secrets))
        .collect()
    }

    async fn list_subscriptions(&self, f: &SubscriptionFilter) -> StoreResult<Vec<Subscription>> {
        let limit = if f.limit == 0 { 100 } else { f.limit };
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {SUB_COLS} FROM subscriptions WHERE id > "
        ));
        q.push_bind(f.after_id.unwrap_or(0));
        if let Some(t) = f.tenant_id {
            q.push(" AND tenant_id = ").push_bind(t);
        }
        if let Some(st) = f.status {
            q.push(" AND status = ").push_bind(st.as_str());
        }
        if let Some(c) = &f.company {
            q.push(" AND company = ").push_bind(c);
        }
        if let Some(n) = &f.number {
            q.push(" AND number = ").push_bind(n);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| sub_from_row(r, &self.secrets))
            .collect()
    }

    async fn trace(&self, id: SubscriptionId) -> StoreResult<Option<Trace>> {
        let Some(sub) = self.subscription(id).await? else {
            return Ok(None);
        };
        let events = sqlx::query(
            "SELECT time_text, context, location, area_code, area_name, state, raw_code, rule \
             FROM events WHERE subscription_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(Trace {
            com: sub.company,
            nu: sub.number,
            state: sub.state,
            ischeck: sub.state.is_signed(),
            data: events,
        }))
    }

    async fn cancel(&self, id: SubscriptionId, message: &str, now: Timestamp) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE subscriptions SET status = 'abort', message = $1, lease_owner = NULL, \
             lease_until = NULL, updated_at = $2 WHERE id = $3 AND status = 'polling'",
        )
        .bind(message)
        .bind(ms(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: u32,
        lease: &Lease<'_>,
    ) -> StoreResult<Vec<Subscription>> {
        // SKIP LOCKED: rows another daemon is claiming right now are left to it; a row it
        // claimed and committed meanwhile fails the re-checked lease condition.
        let rows = sqlx::query(&format!(
            "UPDATE subscriptions s SET lease_owner = $1, lease_until = $2 FROM ( \
               SELECT id AS claimed FROM subscriptions WHERE status = 'polling' \
               AND next_check_at <= $3 AND (lease_until IS NULL OR lease_until <= $5) \
               ORDER BY next_check_at LIMIT $4 FOR UPDATE SKIP LOCKED) c \
             WHERE s.id = c.claimed AND s.status = 'polling' \
             AND (s.lease_until IS NULL OR s.lease_until <= $5) RETURNING {SUB_COLS}"
        ))
        .bind(lease.owner)
        .bind(ms(lease.until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .bind(ms(lease.now))
        .fetch_all(&self.pool)
        .await?;
        let mut subs = rows
            .iter()
            .map(|r| sub_from_row(r, &self.secrets))
            .collect::<StoreResult<Vec<_>>>()?;
        subs.sort_by_key(|s| (s.next_check_at, s.id));
        Ok(subs)
    }

    async fn complete_check(&self, o: &CheckOutcome) -> StoreResult<()> {
        match self.complete_checks(std::slice::from_ref(o)).await?[..] {
            [true] => Ok(()),
            _ => Err(lease_lost(
                "subscription",
                o.subscription_id,
                &o.lease_owner,
            )),
        }
    }

    async fn complete_checks(&self, outcomes: &[CheckOutcome]) -> StoreResult<Vec<bool>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        self.tx(async |tx| write_checks(tx, outcomes, &self.secrets).await)
            .await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_check_at) FROM subscriptions WHERE status = 'polling'",
        )
        .fetch_one(&self.pool)
        .await?;
        ts_opt("subscriptions", v)
    }

    async fn claim_pushes_shared(
        &self,
        now: Timestamp,
        limit: u32,
        lease: &Lease<'_>,
        room: &EndpointRoom,
    ) -> StoreResult<Vec<OutboxPush>> {
        // The candidates are the head of each subscription's pending queue (a push in
        // flight is still pending, so it is the head itself and nothing behind it moves),
        // oldest first, leaving out receivers with no room and rows another daemon is
        // claiming. Of the first few of those ($8: enough to see past one receiver's
        // backlog), each receiver gets at most its room.
        let (busy, rooms): (Vec<String>, Vec<i64>) = room
            .busy
            .iter()
            .map(|(endpoint, n)| (endpoint.clone(), i64::from(*n)))
            .unzip();
        let full: Vec<&String> = busy
            .iter()
            .zip(&rooms)
            .filter(|(_, n)| **n <= 0)
            .map(|(e, _)| e)
            .collect();
        let candidates = if room.others >= limit && room.busy.is_empty() {
            limit
        } else {
            limit.saturating_mul(4).max(64)
        };
        let sql = format!(
            "WITH c AS ( \
               SELECT o.id, o.next_attempt_at, COALESCE(o.endpoint, o.url) AS ep FROM outbox o \
               WHERE o.state = 'pending' AND o.next_attempt_at <= $3 \
               AND (o.lease_until IS NULL OR o.lease_until <= $5) \
               AND o.seq = (SELECT MIN(p.seq) FROM outbox p \
                            WHERE p.subscription_id = o.subscription_id AND p.state = 'pending') \
               AND COALESCE(o.endpoint, o.url) <> ALL($9::text[]) \
               ORDER BY o.next_attempt_at, o.id LIMIT $8 FOR UPDATE OF o SKIP LOCKED), \
             pick AS ( \
               SELECT id AS claimed FROM ( \
                 SELECT c.id, c.next_attempt_at, ROW_NUMBER() OVER ( \
                          PARTITION BY c.ep ORDER BY c.next_attempt_at, c.id) AS n, \
                        COALESCE(r.room, $7) AS room \
                 FROM c LEFT JOIN UNNEST($6::text[], $10::bigint[]) AS r(ep, room) \
                   ON r.ep = c.ep) x \
               WHERE n <= room ORDER BY next_attempt_at, id LIMIT $4) \
             UPDATE outbox o SET lease_owner = $1, lease_until = $2 FROM pick \
             WHERE o.id = pick.claimed AND o.state = 'pending' \
             AND (o.lease_until IS NULL OR o.lease_until <= $5) RETURNING {PUSH_COLS}"
        );
        let claim = sqlx::query(&sql)
            .bind(lease.owner)
            .bind(ms(lease.until))
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(ms(lease.now))
            .bind(&busy)
            .bind(i64::from(room.others))
            .bind(i64::from(candidates))
            .bind(&full)
            .bind(&rooms);
        let rows = self
            .tx(async |c| {
                queue_scan(c).await?;
                Ok(claim.fetch_all(&mut *c).await?)
            })
            .await?;
        let mut pushes = rows
            .iter()
            .map(push_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        pushes.sort_by_key(|p| (p.next_attempt_at, p.row));
        Ok(pushes)
    }

    async fn push_results(&self, results: &[PushResult]) -> StoreResult<Vec<bool>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        // A push named twice in one batch: the first verdict ends its lease, so the
        // second is not written, as it would not be one statement later.
        let mut seen = HashSet::new();
        let firsts: Vec<&PushResult> = results
            .iter()
            .filter(|r| seen.insert(r.push_id.as_str()))
            .collect();
        let kind = |v: &PushVerdict| match v {
            PushVerdict::Delivered { .. } => "delivered",
            PushVerdict::Retry { .. } => "retry",
            PushVerdict::Dead { .. } | PushVerdict::Gone { .. } => "dead",
        };
        let (at, next): (Vec<i64>, Vec<Option<i64>>) = firsts
            .iter()
            .map(|r| match &r.verdict {
                PushVerdict::Delivered { at }
                | PushVerdict::Dead { at, .. }
                | PushVerdict::Gone { at, .. } => (ms(*at), None),
                PushVerdict::Retry {
                    at,
                    next_attempt_at,
                    ..
                } => (ms(*at), Some(ms(*next_attempt_at))),
            })
            .unzip();
        let error: Vec<Option<&str>> = firsts
            .iter()
            .map(|r| match &r.verdict {
                PushVerdict::Delivered { .. } => None,
                PushVerdict::Retry { error, .. }
                | PushVerdict::Dead { error, .. }
                | PushVerdict::Gone { error, .. } => Some(error.as_str()),
            })
            .collect();
        self.tx(async |tx| {
            let done = sqlx::query(
                "UPDATE outbox o SET \
                   state = CASE v.kind WHEN 'retry' THEN 'pending' ELSE v.kind END, \
                   attempt = o.attempt + 1, \
                   next_attempt_at = COALESCE(v.next_at, o.next_attempt_at), \
                   last_error = v.error, \
                   finished_at = CASE v.kind WHEN 'retry' THEN o.finished_at ELSE v.at END, \
                   lease_owner = NULL, lease_until = NULL \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
                             $6::bigint[]) AS v(push_id, owner, kind, error, at, next_at), \
                      subscriptions s \
                 WHERE o.push_id = v.push_id AND o.lease_owner = v.owner \
                 AND o.state = 'pending' AND s.id = o.subscription_id \
                 RETURNING o.push_id, o.url, s.tenant_id",
            )
            .bind(
                firsts
                    .iter()
                    .map(|r| r.push_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(firsts.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>())
            .bind(firsts.iter().map(|r| kind(&r.verdict)).collect::<Vec<_>>())
            .bind(&error)
            .bind(&at)
            .bind(&next)
            .fetch_all(&mut *tx)
            .await?;
            let mut receiver: HashMap<String, (i64, String)> = HashMap::new();
            for r in done {
                receiver.insert(
                    r.try_get("push_id")?,
                    (r.try_get("tenant_id")?, r.try_get("url")?),
                );
            }
            // Per URL, in the batch's order: a delivery clears its failure record, the
            // first failure after the last delivery starts one (an older one is kept).
            let mut cleared: Vec<(i64, String)> = Vec::new();
            let mut failing: BTreeMap<(i64, String), i64> = BTreeMap::new();
            let mut gone: Vec<(i64, String, String, i64)> = Vec::new();
            for (r, at) in firsts.iter().zip(&at) {
                let Some((tenant, url)) = receiver.get(&r.push_id) else {
                    continue;
                };
                let k = (*tenant, url.clone());
                match &r.verdict {
                    PushVerdict::Delivered { .. } => {
                        failing.remove(&k);
                        cleared.push(k);
                    }
                    PushVerdict::Gone { error, .. } => {
                        gone.push((*tenant, url.clone(), error.clone(), *at));
                        failing.entry(k).or_insert(*at);
                    }
                    _ => {
                        failing.entry(k).or_insert(*at);
                    }
                }
            }
            if !cleared.is_empty() {
                let (t, u): (Vec<i64>, Vec<String>) = cleared.into_iter().unzip();
                sqlx::query(
                    "DELETE FROM endpoint_failures f USING UNNEST($1::bigint[], $2::text[]) \
                     AS v(t, u) WHERE f.tenant_id = v.t AND f.url = v.u",
                )
                .bind(t)
                .bind(u)
                .execute(&mut *tx)
                .await?;
            }
            if !failing.is_empty() {
                let mut t = Vec::new();
                let mut u = Vec::new();
                let mut since = Vec::new();
                for ((tenant, url), at) in failing {
                    t.push(tenant);
                    u.push(url);
                    since.push(at);
                }
                sqlx::query(
                    "INSERT INTO endpoint_failures (tenant_id, url, failing_since) \
                     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) \
                     ON CONFLICT (tenant_id, url) DO NOTHING",
                )
                .bind(t)
                .bind(u)
                .bind(since)
                .execute(&mut *tx)
                .await?;
            }
            for (tenant, url, reason, at) in gone {
                sqlx::query(
                    "INSERT INTO disabled_endpoints (tenant_id, url, reason, disabled_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, url) DO NOTHING",
                )
                .bind(tenant)
                .bind(url)
                .bind(reason)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            let mut first_seen = HashSet::new();
            Ok(results
                .iter()
                .map(|r| first_seen.insert(r.push_id.as_str()) && receiver.contains_key(&r.push_id))
                .collect())
        })
        .await
    }

    async fn disabled_endpoints(
        &self,
        tenant: Option<TenantId>,
    ) -> StoreResult<Vec<DisabledEndpoint>> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT tenant_id, url, reason, disabled_at FROM disabled_endpoints \
             WHERE $1::bigint IS NULL OR tenant_id = $1 ORDER BY tenant_id, url",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(tenant_id, url, reason, at)| {
                Ok(DisabledEndpoint {
                    tenant_id,
                    url,
                    reason,
                    disabled_at: ts("disabled_endpoints", at)?,
                })
            })
            .collect()
    }

    async fn enable_endpoint(&self, tenant: TenantId, url: &str) -> StoreResult<bool> {
        self.tx(async |tx| {
            // Enabled with a clean slate: its failures so far do not count against it.
            sqlx::query("DELETE FROM endpoint_failures WHERE tenant_id = $1 AND url = $2")
                .bind(tenant)
                .bind(url)
                .execute(&mut *tx)
                .await?;
            let done =
                sqlx::query("DELETE FROM disabled_endpoints WHERE tenant_id = $1 AND url = $2")
                    .bind(tenant)
                    .bind(url)
                    .execute(&mut *tx)
                    .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn disable_failing_endpoints(
        &self,
        failing_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<DisabledEndpoint>> {
        self.tx(async |tx| {
            // Taken (deleted) in one statement: a daemon doing the same at the same time
            // finds them gone, so each URL is disabled and reported once.
            let failing: Vec<(i64, String, i64)> = sqlx::query_as(
                "DELETE FROM endpoint_failures WHERE failing_since < $1 \
                 RETURNING tenant_id, url, failing_since",
            )
            .bind(ms(failing_before))
            .fetch_all(&mut *tx)
            .await?;
            let mut disabled = Vec::new();
            for (tenant_id, url, since) in failing {
                let since = ts("endpoint_failures", since)?;
                let reason = format!("no push got through since {since}");
                let done = sqlx::query(
                    "INSERT INTO disabled_endpoints (tenant_id, url, reason, disabled_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, url) DO NOTHING",
                )
                .bind(tenant_id)
                .bind(&url)
                .bind(&reason)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    disabled.push(DisabledEndpoint {
                        tenant_id,
                        url,
                        reason,
                        disabled_at: now,
                    });
                }
            }
            disabled.sort_by(|a, b| (a.tenant_id, &a.url).cmp(&(b.tenant_id, &b.url)));
            Ok(disabled)
        })
        .await
    }

    async fn push(&self, push_id: &str) -> StoreResult<Option<OutboxPush>> {
        sqlx::query(&format!(
            "SELECT {PUSH_COLS} FROM outbox WHERE push_id = $1"
        ))
        .bind(push_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(push_from_row)
        .transpose()
    }

    async fn pushes_of(&self, id: SubscriptionId) -> StoreResult<Vec<OutboxPush>> {
        sqlx::query(&format!(
            "SELECT {PUSH_COLS} FROM outbox WHERE subscription_id = $1 ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(push_from_row)
        .collect()
    }

    async fn dead_letters(&self, limit: u32) -> StoreResult<Vec<OutboxPush>> {
        let limit = if limit == 0 { 100 } else { limit };
        sqlx::query(&format!(
            "SELECT {PUSH_COLS} FROM outbox WHERE state = 'dead' ORDER BY finished_at, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(push_from_row)
        .collect()
    }

    async fn redeliver(
        &self,
        push_ids: &[String],
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<(u64, u64)> {
        self.tx(async |tx| {
            // The dead pushes are locked first: a redeliver running at the same time on
            // another daemon waits, then finds them no longer dead and counts nothing.
            let dead: Vec<(i64, i64, i64)> = if push_ids.is_empty() {
                sqlx::query_as(
                    "SELECT id, subscription_id, seq FROM outbox WHERE state = 'dead' \
                     AND created_at >= $1 ORDER BY id FOR UPDATE",
                )
                .bind(since.map_or(i64::MIN, ms))
                .fetch_all(&mut *tx)
                .await?
            } else {
                sqlx::query_as(
                    "SELECT id, subscription_id, seq FROM outbox WHERE state = 'dead' \
                     AND push_id = ANY($1) ORDER BY id FOR UPDATE",
                )
                .bind(push_ids)
                .fetch_all(&mut *tx)
                .await?
            };
            let (mut redriven, mut superseded) = (0, 0);
            for (row, sub, seq) in dead {
                // A newer push of the same waybill carries the full trace already; re-sending
                // the older one after it would take the receiver backwards.
                let newer: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM outbox WHERE subscription_id = $1 AND seq > $2 \
                     AND state IN ('pending', 'delivered'))",
                )
                .bind(sub)
                .bind(seq)
                .fetch_one(&mut *tx)
                .await?;
                let sql = if newer {
                    "UPDATE outbox SET state = 'superseded' WHERE id = $1 AND state = 'dead'"
                } else {
                    "UPDATE outbox SET state = 'pending', attempt = 0, next_attempt_at = $2, \
                     finished_at = NULL WHERE id = $1 AND state = 'dead'"
                };
                let n = sqlx::query(sql)
                    .bind(row)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if newer {
                    superseded += n;
                } else {
                    redriven += n;
                }
            }
            if redriven > 0 {
                notify_pushes(tx).await?;
            }
            Ok((redriven, superseded))
        })
        .await
    }

    async fn next_push_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        ts_opt("outbox", v)
    }

    async fn waiting_pushes(
        &self,
        now: Timestamp,
        lease_now: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        // The same rows `claim_pushes` could hand out (see the SQLite store's reason).
        let n: i64 = self
            .tx(async |c| {
                queue_scan(c).await?;
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM outbox o WHERE o.state = 'pending' \
                     AND o.next_attempt_at <= $1 \
                     AND (o.lease_until IS NULL OR o.lease_until <= $3) \
                     AND o.seq = (SELECT MIN(p.seq) FROM outbox p \
                                  WHERE p.subscription_id = o.subscription_id \
                                  AND p.state = 'pending') \
                     ORDER BY o.next_attempt_at, o.id LIMIT $2) w",
                )
                .bind(ms(now))
                .bind(i64::from(limit))
                .bind(ms(lease_now))
                .fetch_one(&mut *c)
                .await?)
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn usage(&self, tenant: TenantId, month: &str) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM usage WHERE tenant_id = $1 AND month = $2")
                .bind(tenant)
                .bind(month)
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let mut stats = StoreStats::default();
        for r in sqlx::query("SELECT status, COUNT(*) AS n FROM subscriptions GROUP BY status")
            .fetch_all(&self.pool)
            .await?
        {
            let status: String = r.try_get("status")?;
            let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
            match MonitorStatus::parse(&status) {
                Some(MonitorStatus::Polling) => stats.polling = n,
                Some(MonitorStatus::Shutdown) => stats.shutdown = n,
                Some(MonitorStatus::Abort) => stats.abort = n,
                None => {}
            }
        }
        for r in sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?
        {
            let state: String = r.try_get("state")?;
            let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
            match PushState::parse(&state) {
                Some(PushState::Pending) => stats.pending_pushes = n,
                Some(PushState::Delivered) => stats.delivered_pushes = n,
                Some(PushState::Dead) => stats.dead_pushes = n,
                _ => {}
            }
        }
        Ok(stats)
    }

    async fn cached_query(
        &self,
        company: &str,
        waybill_key: &str,
    ) -> StoreResult<Option<(Trace, Timestamp)>> {
        let Some((text, at)): Option<(String, i64)> = sqlx::query_as(
            "SELECT trace, fetched_at FROM query_cache WHERE company = $1 AND waybill_key = $2",
        )
        .bind(company)
        .bind(waybill_key)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let trace: Trace = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            table: "query_cache",
            detail: format!("trace: {e}"),
        })?;
        Ok(Some((trace, ts("query_cache", at)?)))
    }

    async fn save_query(
        &self,
        company: &str,
        waybill_key: &str,
        trace: &Trace,
        fetched_at: Timestamp,
    ) -> StoreResult<()> {
        // The newer answer wins even when two daemons save out of order.
        sqlx::query(
            "INSERT INTO query_cache AS q (company, waybill_key, trace, fetched_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (company, waybill_key) DO UPDATE \
             SET trace = excluded.trace, fetched_at = excluded.fetched_at \
             WHERE q.fetched_at <= excluded.fetched_at",
        )
        .bind(company)
        .bind(waybill_key)
        .bind(to_json("query_cache", "trace", trace)?)
        .bind(ms(fetched_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_usage(
        &self,
        tenant: TenantId,
        company: &str,
        number: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO usage (tenant_id, month, company, number, subscribes, first_at) \
             VALUES ($1, $2, $3, $4, 0, $5) \
             ON CONFLICT (tenant_id, month, company, number) DO NOTHING",
        )
        .bind(tenant)
        .bind(billing_month(at))
        .bind(company)
        .bind(number)
        .bind(ms(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn confirmed_number_counts(&self) -> StoreResult<Vec<waybill_core::guess::PriorCount>> {
        // `company` is the carrier the trace came from: an autoCheck correction rewrites it.
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT company, length(n)::bigint AS len, substr(n, 1, $1::int) AS prefix, \
             COUNT(DISTINCT n) AS confirmed \
             FROM (SELECT company, upper(replace(replace(number, ' ', ''), '-', '')) AS n \
                   FROM subscriptions WHERE event_count > 0) w \
             GROUP BY company, len, prefix",
        )
        .bind(waybill_core::guess::PREFIX_LEN as i32)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(carrier, len, prefix, n)| waybill_core::guess::PriorCount {
                    carrier,
                    length: usize::try_from(len).unwrap_or(0),
                    prefix,
                    count: u64::try_from(n).unwrap_or(0),
                },
            )
            .collect())
    }

    async fn lanes(&self) -> StoreResult<Vec<(String, Scope, LaneStats)>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT carrier, scope, stats FROM lanes")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(carrier, key, stats)| {
                let corrupt = |detail: String| StoreError::Corrupt {
                    table: "lanes",
                    detail,
                };
                let scope = Scope::parse(&key).ok_or_else(|| corrupt(format!("scope {key:?}")))?;
                let stats = serde_json::from_str(&stats)
                    .map_err(|e| corrupt(format!("{carrier} {key}: {e}")))?;
                Ok((carrier, scope, stats))
            })
            .collect()
    }

    async fn ended_before(
        &self,
        ended_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<SubscriptionId>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM subscriptions s WHERE status <> 'polling' AND updated_at < $1 \
             AND id < (SELECT MAX(id) FROM subscriptions) \
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subscription_id = s.id \
                             AND o.state = 'pending') \
             ORDER BY updated_at, id LIMIT $2",
        )
        .bind(ms(ended_before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_subscriptions(&self, ids: &[SubscriptionId]) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.tx(async |tx| {
            // Locked first: a retrack or a claim racing the delete either wins (and the
            // row stays) or waits and finds it gone.
            let kept: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM subscriptions s WHERE id = ANY($1) AND status <> 'polling' \
                 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subscription_id = s.id \
                                 AND o.state = 'pending') ORDER BY id FOR UPDATE",
            )
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
            for table in ["events", "outbox"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE subscription_id = ANY($1)"
                ))
                .bind(&kept)
                .execute(&mut *tx)
                .await?;
            }
            let done = sqlx::query("DELETE FROM subscriptions WHERE id = ANY($1)")
                .bind(&kept)
                .execute(&mut *tx)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String> {
        // One statement: the insert, or else the row that beat it (ON CONFLICT DO UPDATE
        // with no change returns the existing row, locked, so the answer is never empty).
        Ok(sqlx::query_scalar(
            "INSERT INTO meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = meta.value RETURNING value",
        )
        .bind(name)
        .bind(value)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn push_prefix(&self, id: SubscriptionId) -> String {
        self.secrets.push_prefix(id)
    }

    async fn watch_pushes(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> StoreResult<Option<tokio::task::JoinHandle<()>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(PUSH_CHANNEL).await?;
        Ok(Some(tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => wake.notify_one(),
                    // The listener reconnects by itself on the next call; what was sent
                    // meanwhile is found by the delivery loop's idle poll.
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for queued pushes failed");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        })))
    }

    fn tracking_id(&self, id: SubscriptionId, tenant: TenantId) -> String {
        self.secrets.tracking_id(id, tenant)
    }

    fn tracking_row(&self, public: &str, tenant: TenantId) -> Option<SubscriptionId> {
        self.secrets.tracking_row(public, tenant)
    }
}
