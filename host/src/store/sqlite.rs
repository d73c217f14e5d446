//! SQLite implementation of [`Store`]: one file in WAL mode with `synchronous=FULL`, so a
//! commit that returned survives a power cut.
//!
//! All writes go through a pool of one connection. SQLite has a single writer anyway, and
//! serialising writers in the pool (instead of in SQLite's busy handler) means no write ever
//! fails with `SQLITE_BUSY`; reads use a separate pool and run beside the writer thanks to
//! WAL. Claims are single `UPDATE … RETURNING` statements, so they are atomic by
//! construction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use waybill_core::model::Trace;

use super::rows::*;
use super::secrets::SecretKey;
use super::*;

/// Rows per multi-row INSERT, well under SQLite's limit of 32766 bound parameters.
const ROWS_PER_INSERT: usize = 500;

/// Row counts of the multi-row INSERTs that write a subscription batch. A batch of any size
/// is cut into pieces of these sizes (largest first), so the writer only ever runs a
/// handful of distinct statements and finds each one in the prepared-statement cache:
/// a statement per batch size would be parsed and planned anew for almost every batch,
/// which cost as much as the inserts themselves.
const SUBSCRIBE_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// Cuts `items` into consecutive pieces whose lengths come from [`SUBSCRIBE_CHUNKS`].
fn fixed_chunks<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    for size in SUBSCRIBE_CHUNKS {
        while items.len() >= size {
            let (head, rest) = items.split_at(size);
            out.push(head);
            items = rest;
        }
    }
    out
}

/// The database file inside a data directory.
pub const DB_FILE: &str = "waybill.db";

/// A [`Store`] in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    path: PathBuf,
    secrets: std::sync::Arc<SecretKey>,
}

impl SqliteStore {
    /// Opens (creating it and the directory if needed) the store in `data_dir` and applies
    /// pending migrations.
    pub async fn open_dir(data_dir: &Path) -> StoreResult<Self> {
        super::location::create_private_dir(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open_file(&data_dir.join(DB_FILE)).await
    }

    /// Opens (creating it if needed) the database file and applies pending migrations.
    pub async fn open_file(path: &Path) -> StoreResult<Self> {
        // Tenants' keys are in the file: nobody but its owner reads it (nor its WAL).
        super::location::create_private_file(path).map_err(|source| StoreError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // The writer keeps a large page cache (the B-tree pages of the indexes that every
        // subscribe touches stay resident) and checkpoints less often, so fewer commits
        // pay for a checkpoint's writes and fsync. Durability is unchanged: WAL with
        // synchronous=FULL still syncs the WAL on every commit.
        let write_options = options
            .clone()
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "4000");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(write_options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let secrets = SecretKey::for_database(path)?;
        seal_clear_keys(&write, &secrets).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true).pragma("mmap_size", "268435456"))
            .await?;
        Ok(Self {
            write,
            read,
            path: path.to_path_buf(),
            secrets: std::sync::Arc::new(secrets),
        })
    }

    /// Runs a claim statement whose parameters are ?1 lease owner, ?2 lease end, ?3 now
    /// (due), ?4 limit and ?5 now on the lease clock.
    async fn claim_rows(
        &self,
        sql: &str,
        now: Timestamp,
        limit: u32,
        lease: &Lease<'_>,
    ) -> StoreResult<Vec<SqliteRow>> {
        Ok(sqlx::query(sql)
            .bind(lease.owner)
            .bind(ms(lease.until))
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(ms(lease.now))
            .fetch_all(&self.write)
            .await?)
    }

    /// Runs `body` in one transaction on the write connection and commits it.
    ///
    /// Why not `pool.begin()`: sqlx keeps its own count of open transactions and trusts it
    /// over SQLite. When a statement or the COMMIT fails with "database or disk is full"
    /// (or an I/O error), SQLite may already have rolled the transaction back; sqlx's
    /// ROLLBACK then fails and its count stays at one, so the next `begin` issues a
    /// SAVEPOINT (which opens a real transaction) and the next failure is undone with
    /// ROLLBACK TO, which leaves that transaction open. From then on every "commit" only
    /// released a savepoint inside it: each write was acknowledged and none was saved,
    /// until a restart. So the transaction is opened with an explicit `BEGIN IMMEDIATE`
    /// (which sqlx refuses on a connection it believes busy), a failed body is rolled back
    /// and waited for, and a connection whose COMMIT or ROLLBACK failed is closed instead
    /// of going back to the pool: closing it ends whatever SQLite still holds, and the
    /// pool opens a clean one for the next write.
    async fn write_tx<T>(
        &self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.write.acquire().await?;
        let mut clean = true;
        let result = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.inspect_err(|_| {
                clean = false;
            })?;
            match body(&mut tx).await {
                Ok(value) => {
                    tx.commit().await.inspect_err(|_| clean = false)?;
                    Ok(value)
                }
                Err(e) => {
                    if let Err(rollback) = tx.rollback().await {
                        tracing::warn!(error = %rollback, "rollback failed; reopening the write connection");
                        clean = false;
                    }
                    Err(e)
                }
            }
        }
        .await;
        if !clean {
            conn.close_on_drop();
        }
        result
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read-only pool, for tools that copy rows in bulk (`waybill migrate`).
    pub fn read_pool(&self) -> &SqlitePool {
        &self.read
    }
}

/// Seals the keys of tenants written before keys were sealed (migration 0006), in one
/// transaction: afterwards no key is in the database in clear.
async fn seal_clear_keys(write: &SqlitePool, secrets: &SecretKey) -> StoreResult<()> {
    let clear: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, api_key FROM tenants WHERE api_key_sealed IS NULL")
            .fetch_all(write)
            .await?;
    if clear.is_empty() {
        return Ok(());
    }
    let mut tx = write.begin().await?;
    for (id, key) in &clear {
        sqlx::query("UPDATE tenants SET api_key = ?, api_key_sealed = ? WHERE id = ?")
            .bind(secrets.lookup(key))
            .bind(secrets.seal(key)?)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(tenants = clear.len(), "Sealed tenant keys stored in clear");
    Ok(())
}

/// Writes one check's result inside `tx`; false (and nothing written) if the lease moved on.
async fn write_check(
    tx: &mut sqlx::SqliteConnection,
    o: &CheckOutcome,
    secrets: &SecretKey,
) -> StoreResult<bool> {
    let held: Option<i64> =
        sqlx::query_scalar("SELECT push_seq FROM subscriptions WHERE id = ? AND lease_owner = ?")
            .bind(o.subscription_id)
            .bind(&o.lease_owner)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(mut push_seq) = held else {
        return Ok(false);
    };
    let now = ms(o.checked_at);
    if let Some((trace, hash)) = &o.new_trace {
        sqlx::query("DELETE FROM events WHERE subscription_id = ?")
            .bind(o.subscription_id)
            .execute(&mut *tx)
            .await?;
        for (n, chunk) in trace.data.chunks(ROWS_PER_INSERT).enumerate() {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (subscription_id, seq, at_ms, time_text, context, location, \
                 area_code, area_name, state, raw_code, rule) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut row, (i, e)| {
                let seq = n * ROWS_PER_INSERT + i;
                row.push_bind(o.subscription_id)
                    .push_bind(i64::try_from(seq).unwrap_or(i64::MAX))
                    .push_bind(ms(e.time.at))
                    .push_bind(e.time.to_string())
                    .push_bind(&e.context)
                    .push_bind(&e.location)
                    .push_bind(&e.area_code)
                    .push_bind(&e.area_name)
                    .push_bind(e.state.name())
                    .push_bind(&e.raw_code)
                    .push_bind(&e.rule);
            });
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE subscriptions SET state = ?, trace_hash = ?, event_count = ?, \
             last_event_at = ?, last_change_at = ?, changes = changes + 1 WHERE id = ?",
        )
        .bind(trace.state.name())
        .bind(hash)
        .bind(i64::try_from(trace.data.len()).unwrap_or(i64::MAX))
        .bind(trace.data.first().map(|e| ms(e.time.at)))
        .bind(now)
        .bind(o.subscription_id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(c) = &o.correction {
        sqlx::query("UPDATE subscriptions SET company = ?, com_old = ?, com_new = ? WHERE id = ?")
            .bind(&c.com_new)
            .bind(&c.com_old)
            .bind(&c.com_new)
            .bind(o.subscription_id)
            .execute(&mut *tx)
            .await?;
    }
    for p in &o.pushes {
        push_seq += 1;
        let change = serde_json::to_string(&p.change).map_err(|e| StoreError::Corrupt {
            table: "outbox",
            detail: format!("change: {e}"),
        })?;
        // content_type and body stay empty: the dialect renders the change at send time.
        sqlx::query(
            "INSERT INTO outbox (push_id, subscription_id, seq, url, endpoint, content_type, \
             body, change, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, '', X'', ?, ?, ?)",
        )
        .bind(push_id(secrets, o.subscription_id, push_seq))
        .bind(o.subscription_id)
        .bind(push_seq)
        .bind(&p.url)
        .bind(push_endpoint(&p.url))
        .bind(change)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let eta = match &o.eta {
        Some(eta) => Some(
            eta.as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt {
                    table: "subscriptions",
                    detail: format!("eta: {e}"),
                })?,
        ),
        None => None,
    };
    // `eta` in the same statement: `Some(None)` clears it, `None` keeps it.
    sqlx::query(
        "UPDATE subscriptions SET status = ?, message = ?, next_check_at = ?, \
         lease_owner = NULL, lease_until = NULL, checks = checks + 1, \
         failures = CASE WHEN ? IS NULL THEN 0 ELSE failures + 1 END, last_error = ?, \
         push_seq = ?, last_check_at = ?, updated_at = ?, \
         eta = CASE WHEN ? THEN ? ELSE eta END WHERE id = ?",
    )
    .bind(o.status.as_str())
    .bind(&o.message)
    .bind(ms(o.next_check_at))
    .bind(&o.error)
    .bind(&o.error)
    .bind(push_seq)
    .bind(now)
    .bind(now)
    .bind(eta.is_some())
    .bind(eta.flatten())
    .bind(o.subscription_id)
    .execute(&mut *tx)
    .await?;
    if let Some(p) = &o.problems {
        sqlx::query("UPDATE subscriptions SET problems = ?, problems_due_at = ? WHERE id = ?")
            .bind(p.codes_text())
            .bind(p.due_at.map(ms))
            .bind(o.subscription_id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some((carrier, lesson)) = &o.lesson {
        learn_lanes(tx, carrier, lesson, now).await?;
    }
    Ok(true)
}

/// Merges a delivered parcel's lesson into each of its scopes' stored stats, inside the
/// check's transaction, so daemons sharing the database add up instead of overwriting.
async fn learn_lanes(
    tx: &mut sqlx::SqliteConnection,
    carrier: &str,
    lesson: &Lesson,
    now: i64,
) -> StoreResult<()> {
    for scope in &lesson.scopes {
        let key = scope.key();
        let stored: Option<String> =
            sqlx::query_scalar("SELECT stats FROM lanes WHERE carrier = ? AND scope = ?")
                .bind(carrier)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        let text = merged_lane(carrier, &key, stored.as_deref(), &lesson.stats)?;
        sqlx::query(
            "INSERT INTO lanes (carrier, scope, stats, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (carrier, scope) DO UPDATE SET stats = excluded.stats, \
             updated_at = excluded.updated_at",
        )
        .bind(carrier)
        .bind(&key)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Why `s` was not inserted: a live subscription of the waybill (duplicate), or else its
/// count in billing month `month` at `limit`.
async fn refused(
    tx: &mut sqlx::SqliteConnection,
    s: &NewSubscription,
    month: &str,
    limit: i64,
) -> StoreResult<SubscribeOutcome> {
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM subscriptions WHERE tenant_id = ? AND company = ? AND number = ? \
         AND status = 'polling'",
    )
    .bind(s.tenant_id)
    .bind(&s.company)
    .bind(&s.number)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(existing) = existing {
        return Ok(SubscribeOutcome::Duplicate { existing });
    }
    let subscribes: Option<i64> = sqlx::query_scalar(
        "SELECT subscribes FROM usage WHERE tenant_id = ? AND month = ? AND company = ? \
         AND number = ?",
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
                "insert of {}/{} ignored but no live row or monthly limit found \
                 (unknown tenant {}?)",
                s.company, s.number, s.tenant_id
            ),
        }),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(&self, t: &NewTenant, now: Timestamp) -> StoreResult<Tenant> {
        // The customer id names the tenant whose key signs a real-time query, so two
        // tenants must never share one; one statement checks and inserts, atomically.
        let row = sqlx::query(
            "INSERT INTO tenants (name, api_key, api_key_sealed, customer, created_at) \
             SELECT ?1, ?2, ?5, ?3, ?4 \
             WHERE ?3 IS NULL OR NOT EXISTS (SELECT 1 FROM tenants WHERE customer = ?3) \
             RETURNING id, name, api_key, api_key_sealed, customer, created_at, disabled, \
             expires_at, kdniao_push_url, webhook_secrets",
        )
        .bind(&t.name)
        .bind(self.secrets.lookup(&t.key))
        .bind(&t.customer)
        .bind(ms(now))
        .bind(self.secrets.seal(&t.key)?)
        .fetch_optional(&self.write)
        .await;
        match row {
            Ok(Some(row)) => tenant_from_row(&row, &self.secrets),
            Ok(None) => Err(StoreError::DuplicateCustomer),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::DuplicateTenantKey)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn tenant_by_key(&self, key: &str) -> StoreResult<Option<Tenant>> {
        sqlx::query(&format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE api_key = ?"
        ))
        .bind(self.secrets.lookup(key))
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(|r| tenant_from_row(r, &self.secrets))
        .transpose()
    }

    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>> {
        sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(|r| tenant_from_row(r, &self.secrets))
            .transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants ORDER BY id"))
            .fetch_all(&self.read)
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
        let done = sqlx::query("UPDATE tenants SET disabled = ?, expires_at = ? WHERE id = ?")
            .bind(i64::from(disabled))
            .bind(expires_at.map(ms))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn subscribe_many(
        &self,
        subs: &[NewSubscription],
        monthly_limit: u32,
    ) -> StoreResult<Vec<SubscribeOutcome>> {
        let options = subs
            .iter()
            .map(|s| serde_json::to_string(&s.options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt {
                table: "subscriptions",
                detail: format!("options: {e}"),
            })?;
        // The push-signing salt is a secret the daemon needs back: sealed like tenants' keys.
        let salts = subs
            .iter()
            .map(|s| s.salt.as_deref().map(|x| self.secrets.seal(x)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        // The billing month of each row; a batch is mostly made at one instant, so the
        // formatting is done once per distinct `created_at`.
        let mut months: Vec<String> = Vec::with_capacity(subs.len());
        for (i, s) in subs.iter().enumerate() {
            let month = match i.checked_sub(1) {
                Some(p) if subs[p].created_at == s.created_at => months[p].clone(),
                _ => billing_month(s.created_at),
            };
            months.push(month);
        }
        // One statement shape whatever the limit: "no limit" is a count no row reaches.
        let limit = if monthly_limit == 0 {
            i64::MAX
        } else {
            i64::from(monthly_limit)
        };
        self.write_tx(async |tx| {
            let mut out = Vec::with_capacity(subs.len());
            let pieces = fixed_chunks(subs)
                .into_iter()
                .zip(fixed_chunks(&options))
                .zip(fixed_chunks(&months))
                .zip(fixed_chunks(&salts));
            for (((chunk, options), months), salts) in pieces {
                // OR IGNORE turns a second live subscription of the same waybill (the partial
                // unique index) into "no row returned", and the NOT EXISTS leaves out waybills
                // at their monthly limit; RETURNING says which rows went in. The VALUES rows
                // carry the billing month as a 15th column for the usage lookup.
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT OR IGNORE INTO subscriptions (tenant_id, company, number, phone, \
                 from_area, to_area, callback_url, salt, options, next_check_at, created_at, \
                 updated_at, dialect, dialect_params) SELECT column1, column2, column3, column4, \
                 column5, column6, column7, column8, column9, column10, column11, column12, \
                 column13, column14 FROM (",
                );
                let rows = chunk.iter().zip(options).zip(months).zip(salts);
                q.push_values(rows, |mut row, (((s, options), month), salt)| {
                    row.push_bind(s.tenant_id)
                        .push_bind(&s.company)
                        .push_bind(&s.number)
                        .push_bind(&s.phone)
                        .push_bind(&s.from)
                        .push_bind(&s.to)
                        .push_bind(&s.callback_url)
                        .push_bind(salt)
                        .push_bind(options)
                        .push_bind(ms(s.next_check_at))
                        .push_bind(ms(s.created_at))
                        .push_bind(ms(s.created_at))
                        .push_bind(&s.dialect)
                        .push_bind(serde_json::Value::Object(s.dialect_params.clone()).to_string())
                        .push_bind(month);
                });
                q.push(
                    ") AS v WHERE NOT EXISTS (SELECT 1 FROM usage u WHERE u.tenant_id = v.column1 \
                 AND u.month = v.column15 AND u.company = v.column2 AND u.number = v.column3 \
                 AND u.subscribes >= ",
                );
                q.push_bind(limit);
                q.push(") RETURNING id, tenant_id, company, number");
                let mut inserted: HashMap<(i64, String, String), i64> = HashMap::new();
                for r in q.build().fetch_all(&mut *tx).await? {
                    inserted.insert(
                        (
                            r.try_get("tenant_id")?,
                            r.try_get("company")?,
                            r.try_get("number")?,
                        ),
                        r.try_get("id")?,
                    );
                }
                // The first of equal rows in a chunk is the one inserted; later ones and rows
                // that met an existing live subscription are duplicates.
                let mut created = Vec::new();
                let mut outcomes = Vec::with_capacity(chunk.len());
                for (s, month) in chunk.iter().zip(months) {
                    let key = (s.tenant_id, s.company.clone(), s.number.clone());
                    match inserted.remove(&key) {
                        Some(id) => {
                            created.push((s, month));
                            outcomes.push(Ok((id, s)));
                        }
                        None => outcomes.push(Err((s, month))),
                    }
                }
                let mut counts: HashMap<(i64, String, String), i64> = HashMap::new();
                for created in fixed_chunks(&created) {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO usage (tenant_id, month, company, number, first_at) ",
                    );
                    q.push_values(created, |mut row, (s, month)| {
                        row.push_bind(s.tenant_id)
                            .push_bind(*month)
                            .push_bind(&s.company)
                            .push_bind(&s.number)
                            .push_bind(ms(s.created_at));
                    });
                    q.push(
                        " ON CONFLICT (tenant_id, month, company, number) DO UPDATE SET \
                     subscribes = subscribes + 1 RETURNING tenant_id, company, number, subscribes",
                    );
                    for r in q.build().fetch_all(&mut *tx).await? {
                        counts.insert(
                            (
                                r.try_get("tenant_id")?,
                                r.try_get("company")?,
                                r.try_get("number")?,
                            ),
                            r.try_get("subscribes")?,
                        );
                    }
                }
                for o in outcomes {
                    out.push(match o {
                        Ok((id, s)) => {
                            let key = (s.tenant_id, s.company.clone(), s.number.clone());
                            let n = counts.get(&key).copied().unwrap_or(1);
                            SubscribeOutcome::Created {
                                id,
                                month_subscribes: u32::try_from(n).unwrap_or(u32::MAX),
                            }
                        }
                        Err((s, month)) => refused(tx, s, month, limit).await?,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn set_kdniao_push_url(&self, tenant: TenantId, url: Option<&str>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tenants SET kdniao_push_url = ? WHERE id = ?")
            .bind(url)
            .bind(tenant)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_webhook_secrets(&self, tenant: TenantId, secrets: &str) -> StoreResult<bool> {
        let sealed = self.secrets.seal(secrets)?;
        let mut tx = self.write.begin().await?;
        let done = sqlx::query("UPDATE tenants SET webhook_secrets = ? WHERE id = ?")
            .bind(&sealed)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE subscriptions SET salt = ? WHERE tenant_id = ? AND dialect = ?")
            .bind(&sealed)
            .bind(tenant)
            .bind(crate::dialect::native::NAME)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retrack(&self, id: SubscriptionId, now: Timestamp) -> StoreResult<Retrack> {
        // A write transaction from the start: one that reads first and then writes fails
        // at once with SQLITE_BUSY when another connection wrote in between.
        self.write_tx(async |tx| {
            let busy: Option<i64> = sqlx::query_scalar(
                "SELECT o.id FROM subscriptions s JOIN subscriptions o \
                 ON o.tenant_id = s.tenant_id AND o.company = s.company \
                 AND o.number = s.number AND o.id <> s.id \
                 WHERE s.id = ? AND o.status = 'polling' LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(other) = busy {
                return Ok(Retrack::Busy(other));
            }
            let done = sqlx::query(
                "UPDATE subscriptions SET status = 'polling', message = '', next_check_at = ?1, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ?1 WHERE id = ?2",
            )
            .bind(ms(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            Ok(if done.rows_affected() == 1 {
                Retrack::Resumed
            } else {
                Retrack::Missing
            })
        })
        .await
    }

    async fn idempotent_answer(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotentAnswer>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT fingerprint, status, body FROM idempotency WHERE tenant_id = ? AND key = ?",
        )
        .bind(tenant)
        .bind(key)
        .fetch_optional(&self.read)
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
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
            .bind(ms(forget_before))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO idempotency (tenant_id, key, fingerprint, status, body, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(tenant)
        .bind(key)
        .bind(&answer.fingerprint)
        .bind(i64::from(answer.status))
        .bind(&answer.body)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>> {
        sqlx::query(&format!(
            "SELECT {SUB_COLS} FROM subscriptions WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(|r| sub_from_row(r, &self.secrets))
        .transpose()
    }

    async fn subscriptions_by_id(&self, ids: &[SubscriptionId]) -> StoreResult<Vec<Subscription>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::Value::from(ids.to_vec()).to_string();
        sqlx::query(&format!(
            "SELECT {SUB_COLS} FROM subscriptions WHERE id IN (SELECT value FROM json_each(?))"
        ))
        .bind(ids)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| sub_from_row(r, &self.secrets))
        .collect()
    }

    async fn list_subscriptions(&self, f: &SubscriptionFilter) -> StoreResult<Vec<Subscription>> {
        let limit = if f.limit == 0 { 100 } else { f.limit };
        // Only the filters given go into the statement: `(? IS NULL OR col = ?)` would
        // keep SQLite from using the indexes (it plans before it sees the values).
        let mut q = QueryBuilder::<Sqlite>::new(format!(
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
            .fetch_all(&self.read)
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
             FROM events WHERE subscription_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.read)
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
            "UPDATE subscriptions SET status = 'abort', message = ?, lease_owner = NULL, \
             lease_until = NULL, updated_at = ? WHERE id = ? AND status = 'polling'",
        )
        .bind(message)
        .bind(ms(now))
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: u32,
        lease: &Lease<'_>,
    ) -> StoreResult<Vec<Subscription>> {
        let sql = format!(
            "UPDATE subscriptions SET lease_owner = ?1, lease_until = ?2 WHERE id IN ( \
               SELECT id FROM subscriptions WHERE status = 'polling' AND next_check_at <= ?3 \
               AND (lease_until IS NULL OR lease_until <= ?5) \
               ORDER BY next_check_at LIMIT ?4) \
             RETURNING {SUB_COLS}"
        );
        let rows = self.claim_rows(&sql, now, limit, lease).await?;
        let mut subs = rows
            .iter()
            .map(|r| sub_from_row(r, &self.secrets))
            .collect::<StoreResult<Vec<_>>>()?;
        subs.sort_by_key(|s| (s.next_check_at, s.id));
        Ok(subs)
    }

    async fn complete_check(&self, o: &CheckOutcome) -> StoreResult<()> {
        self.write_tx(async |tx| {
            if write_check(tx, o, &self.secrets).await? {
                Ok(())
            } else {
                Err(lease_lost(
                    "subscription",
                    o.subscription_id,
                    &o.lease_owner,
                ))
            }
        })
        .await
    }

    async fn complete_checks(&self, outcomes: &[CheckOutcome]) -> StoreResult<Vec<bool>> {
        self.write_tx(async |tx| {
            let mut written = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                written.push(write_check(tx, o, &self.secrets).await?);
            }
            Ok(written)
        })
        .await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_check_at) FROM subscriptions WHERE status = 'polling'",
        )
        .fetch_one(&self.read)
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
        // The candidates are the head of each subscription's pending queue, and only when
        // no earlier push of it is in flight (a leased push is still pending, so it is the
        // head itself), oldest first, leaving out receivers with no room at all. Of the
        // first few of those (?8: enough to see past one receiver's backlog), each receiver
        // gets at most its room: its row number among them must not pass it.
        let sql = format!(
            "UPDATE outbox SET lease_owner = ?1, lease_until = ?2 WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT c.id, c.next_attempt_at, ROW_NUMBER() OVER ( \
                          PARTITION BY c.ep ORDER BY c.next_attempt_at, c.id) AS n, \
                        COALESCE(r.value, ?7) AS room \
                 FROM (SELECT o.id, o.next_attempt_at, COALESCE(o.endpoint, o.url) AS ep \
                       FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= ?3 \
                       AND (o.lease_until IS NULL OR o.lease_until <= ?5) \
                       AND o.seq = (SELECT MIN(p.seq) FROM outbox p \
                                    WHERE p.subscription_id = o.subscription_id \
                                    AND p.state = 'pending') \
                       AND COALESCE(o.endpoint, o.url) NOT IN \
                           (SELECT key FROM json_each(?6) WHERE value <= 0) \
                       ORDER BY o.next_attempt_at, o.id LIMIT ?8) c \
                 LEFT JOIN json_each(?6) r ON r.key = c.ep) \
               WHERE n <= room ORDER BY next_attempt_at, id LIMIT ?4) \
             RETURNING {PUSH_COLS}"
        );
        let busy: serde_json::Map<String, serde_json::Value> = room
            .busy
            .iter()
            .map(|(endpoint, n)| (endpoint.clone(), (*n).into()))
            .collect();
        let candidates = if room.others >= limit && room.busy.is_empty() {
            limit
        } else {
            limit.saturating_mul(4).max(64)
        };
        let rows = sqlx::query(&sql)
            .bind(lease.owner)
            .bind(ms(lease.until))
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(ms(lease.now))
            .bind(serde_json::Value::Object(busy).to_string())
            .bind(i64::from(room.others))
            .bind(i64::from(candidates))
            .fetch_all(&self.write)
            .await?;
        let mut pushes = rows
            .iter()
            .map(push_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        pushes.sort_by_key(|p| (p.next_attempt_at, p.row));
        Ok(pushes)
    }

    async fn push_results(&self, results: &[PushResult]) -> StoreResult<Vec<bool>> {
        self.write_tx(async |tx| {
            let mut written = Vec::with_capacity(results.len());
            // Deliveries clear a URL's failure record; skip that when there is none.
            let any_failing: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM endpoint_failures)")
                    .fetch_one(&mut *tx)
                    .await?;
            for r in results {
                let query = match &r.verdict {
                    PushVerdict::Delivered { at } => sqlx::query(
                        "UPDATE outbox SET state = 'delivered', attempt = attempt + 1, \
                     finished_at = ?, last_error = NULL, lease_owner = NULL, lease_until = NULL \
                     WHERE push_id = ? AND lease_owner = ? AND state = 'pending'",
                    )
                    .bind(ms(*at)),
                    PushVerdict::Retry {
                        error,
                        next_attempt_at,
                        ..
                    } => sqlx::query(
                        "UPDATE outbox SET attempt = attempt + 1, next_attempt_at = ?, \
                     last_error = ?, lease_owner = NULL, lease_until = NULL \
                     WHERE push_id = ? AND lease_owner = ? AND state = 'pending'",
                    )
                    .bind(ms(*next_attempt_at))
                    .bind(error.as_str()),
                    PushVerdict::Dead { error, at } | PushVerdict::Gone { error, at } => sqlx::query(
                        "UPDATE outbox SET state = 'dead', attempt = attempt + 1, last_error = ?, \
                     finished_at = ?, lease_owner = NULL, lease_until = NULL \
                     WHERE push_id = ? AND lease_owner = ? AND state = 'pending'",
                    )
                    .bind(error.as_str())
                    .bind(ms(*at)),
                };
                let done = query
                    .bind(r.push_id.as_str())
                    .bind(r.owner.as_str())
                    .execute(&mut *tx)
                    .await?;
                let ok = done.rows_affected() == 1;
                match (&r.verdict, ok) {
                    (_, false) => {}
                    (PushVerdict::Delivered { .. }, true) if any_failing => {
                        sqlx::query(
                            "DELETE FROM endpoint_failures WHERE (tenant_id, url) IN \
                             (SELECT s.tenant_id, o.url FROM outbox o JOIN subscriptions s \
                             ON s.id = o.subscription_id WHERE o.push_id = ?)",
                        )
                        .bind(r.push_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    (PushVerdict::Delivered { .. }, true) => {}
                    (
                        PushVerdict::Retry { at, .. }
                        | PushVerdict::Dead { at, .. }
                        | PushVerdict::Gone { at, .. },
                        true,
                    ) => {
                        sqlx::query(
                            "INSERT INTO endpoint_failures (tenant_id, url, failing_since) \
                             SELECT s.tenant_id, o.url, ? FROM outbox o \
                             JOIN subscriptions s ON s.id = o.subscription_id \
                             WHERE o.push_id = ? ON CONFLICT (tenant_id, url) DO NOTHING",
                        )
                        .bind(ms(*at))
                        .bind(r.push_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                if let (PushVerdict::Gone { error, at }, true) = (&r.verdict, ok) {
                    sqlx::query(
                        "INSERT INTO disabled_endpoints (tenant_id, url, reason, disabled_at) \
                         SELECT s.tenant_id, o.url, ?, ? FROM outbox o \
                         JOIN subscriptions s ON s.id = o.subscription_id WHERE o.push_id = ? \
                         ON CONFLICT (tenant_id, url) DO NOTHING",
                    )
                    .bind(error.as_str())
                    .bind(ms(*at))
                    .bind(r.push_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                written.push(ok);
            }
            Ok(written)
        })
        .await
    }

    async fn disabled_endpoints(
        &self,
        tenant: Option<TenantId>,
    ) -> StoreResult<Vec<DisabledEndpoint>> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT tenant_id, url, reason, disabled_at FROM disabled_endpoints \
             WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, url",
        )
        .bind(tenant)
        .fetch_all(&self.read)
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
        self.write_tx(async |tx| {
            // Enabled with a clean slate: its failures so far do not count against it.
            sqlx::query("DELETE FROM endpoint_failures WHERE tenant_id = ? AND url = ?")
                .bind(tenant)
                .bind(url)
                .execute(&mut *tx)
                .await?;
            let done =
                sqlx::query("DELETE FROM disabled_endpoints WHERE tenant_id = ? AND url = ?")
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
        self.write_tx(async |tx| {
            let failing: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT tenant_id, url, failing_since FROM endpoint_failures \
                 WHERE failing_since < ?",
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
                     VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, url) DO NOTHING",
                )
                .bind(tenant_id)
                .bind(&url)
                .bind(&reason)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM endpoint_failures WHERE tenant_id = ? AND url = ?")
                    .bind(tenant_id)
                    .bind(&url)
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
            Ok(disabled)
        })
        .await
    }

    async fn push(&self, push_id: &str) -> StoreResult<Option<OutboxPush>> {
        sqlx::query(&format!("SELECT {PUSH_COLS} FROM outbox WHERE push_id = ?"))
            .bind(push_id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(push_from_row)
            .transpose()
    }

    async fn pushes_of(&self, id: SubscriptionId) -> StoreResult<Vec<OutboxPush>> {
        sqlx::query(&format!(
            "SELECT {PUSH_COLS} FROM outbox WHERE subscription_id = ? ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(push_from_row)
        .collect()
    }

    async fn dead_letters(&self, limit: u32) -> StoreResult<Vec<OutboxPush>> {
        let limit = if limit == 0 { 100 } else { limit };
        sqlx::query(&format!(
            "SELECT {PUSH_COLS} FROM outbox WHERE state = 'dead' ORDER BY finished_at, id LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
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
        self.write_tx(async |tx| {
            let ids: Vec<String> = if push_ids.is_empty() {
                sqlx::query_scalar(
                    "SELECT push_id FROM outbox WHERE state = 'dead' AND created_at >= ? \
                     ORDER BY id",
                )
                .bind(since.map_or(i64::MIN, ms))
                .fetch_all(&mut *tx)
                .await?
            } else {
                push_ids.to_vec()
            };
            let (mut redriven, mut superseded) = (0, 0);
            for id in ids {
                // A newer push of the same waybill carries the full trace already; re-sending
                // the older one after it would take the receiver backwards.
                let newer: Option<i64> = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM outbox n JOIN outbox o ON n.subscription_id = \
                 o.subscription_id AND n.seq > o.seq WHERE o.push_id = ? AND o.state = 'dead' \
                 AND n.state IN ('pending', 'delivered')",
                )
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
                if newer.unwrap_or(0) > 0 {
                    superseded += sqlx::query(
                    "UPDATE outbox SET state = 'superseded' WHERE push_id = ? AND state = 'dead'",
                )
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                } else {
                    redriven += sqlx::query(
                        "UPDATE outbox SET state = 'pending', attempt = 0, next_attempt_at = ?, \
                     finished_at = NULL WHERE push_id = ? AND state = 'dead'",
                    )
                    .bind(ms(now))
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
            }
            Ok((redriven, superseded))
        })
        .await
    }

    async fn next_push_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.read)
                .await?;
        ts_opt("outbox", v)
    }

    async fn waiting_pushes(
        &self,
        now: Timestamp,
        lease_now: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        // The same rows `claim_pushes` could hand out: a push queued behind its waybill's
        // head (which may be waiting for a retry) cannot be sent now, so it must not hold
        // back every tenant's checks.
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM outbox o WHERE o.state = 'pending' \
             AND o.next_attempt_at <= ?1 AND (o.lease_until IS NULL OR o.lease_until <= ?3) \
             AND o.seq = (SELECT MIN(p.seq) FROM outbox p \
                          WHERE p.subscription_id = o.subscription_id AND p.state = 'pending') \
             LIMIT ?2)",
        )
        .bind(ms(now))
        .bind(i64::from(limit))
        .bind(ms(lease_now))
        .fetch_one(&self.read)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn usage(&self, tenant: TenantId, month: &str) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM usage WHERE tenant_id = ? AND month = ?")
                .bind(tenant)
                .bind(month)
                .fetch_one(&self.read)
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
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
             VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (tenant_id, month, company, number) DO NOTHING",
        )
        .bind(tenant)
        .bind(billing_month(at))
        .bind(company)
        .bind(number)
        .bind(ms(at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn cached_query(
        &self,
        company: &str,
        waybill_key: &str,
    ) -> StoreResult<Option<(Trace, Timestamp)>> {
        let Some(row) = sqlx::query(
            "SELECT trace, fetched_at FROM query_cache WHERE company = ? AND waybill_key = ?",
        )
        .bind(company)
        .bind(waybill_key)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let text: String = row.try_get("trace")?;
        let trace: Trace = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            table: "query_cache",
            detail: format!("trace: {e}"),
        })?;
        Ok(Some((
            trace,
            ts("query_cache", row.try_get("fetched_at")?)?,
        )))
    }

    async fn save_query(
        &self,
        company: &str,
        waybill_key: &str,
        trace: &Trace,
        fetched_at: Timestamp,
    ) -> StoreResult<()> {
        let text = serde_json::to_string(trace).map_err(|e| StoreError::Corrupt {
            table: "query_cache",
            detail: format!("trace: {e}"),
        })?;
        sqlx::query(
            "INSERT INTO query_cache (company, waybill_key, trace, fetched_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (company, waybill_key) DO UPDATE SET trace = excluded.trace, \
             fetched_at = excluded.fetched_at",
        )
        .bind(company)
        .bind(waybill_key)
        .bind(text)
        .bind(ms(fetched_at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let mut stats = StoreStats::default();
        for r in sqlx::query("SELECT status, COUNT(*) AS n FROM subscriptions GROUP BY status")
            .fetch_all(&self.read)
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
            .fetch_all(&self.read)
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

    async fn ended_before(
        &self,
        ended_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<SubscriptionId>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM subscriptions s WHERE status <> 'polling' AND updated_at < ? \
             AND id < (SELECT MAX(id) FROM subscriptions) \
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subscription_id = s.id \
                             AND o.state = 'pending') \
             ORDER BY updated_at, id LIMIT ?",
        )
        .bind(ms(ended_before))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?)
    }

    async fn delete_subscriptions(&self, ids: &[SubscriptionId]) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = serde_json::Value::from(ids.to_vec()).to_string();
        self.write_tx(async |tx| {
            let kept = "SELECT value FROM json_each(?1) WHERE value IN (SELECT id FROM \
                        subscriptions s WHERE status <> 'polling' AND NOT EXISTS (SELECT 1 \
                        FROM outbox o WHERE o.subscription_id = s.id AND o.state = 'pending'))";
            // Children first: the events' and pushes' indexes lead with the subscription.
            for table in ["events", "outbox"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE subscription_id IN ({kept})"
                ))
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            }
            let done = sqlx::query(&format!("DELETE FROM subscriptions WHERE id IN ({kept})"))
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String> {
        self.write_tx(async |tx| {
            sqlx::query("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = ?")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?)
        })
        .await
    }

    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    fn push_prefix(&self, id: SubscriptionId) -> String {
        self.secrets.push_prefix(id)
    }

    fn tracking_id(&self, id: SubscriptionId, tenant: TenantId) -> String {
        self.secrets.tracking_id(id, tenant)
    }

    fn tracking_row(&self, public: &str, tenant: TenantId) -> Option<SubscriptionId> {
        self.secrets.tracking_row(public, tenant)
    }

    async fn lanes(&self) -> StoreResult<Vec<(String, Scope, LaneStats)>> {
        let rows = sqlx::query("SELECT carrier, scope, stats FROM lanes")
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let carrier: String = r.try_get("carrier")?;
            let key: String = r.try_get("scope")?;
            let corrupt = |detail: String| StoreError::Corrupt {
                table: "lanes",
                detail,
            };
            let scope = Scope::parse(&key).ok_or_else(|| corrupt(format!("scope {key:?}")))?;
            let stats = serde_json::from_str(&r.try_get::<String, _>("stats")?)
                .map_err(|e| corrupt(format!("{carrier} {key}: {e}")))?;
            out.push((carrier, scope, stats));
        }
        Ok(out)
    }

    async fn confirmed_number_counts(&self) -> StoreResult<Vec<waybill_core::guess::PriorCount>> {
        // `company` is the carrier the trace came from: an autoCheck correction rewrites it.
        let rows = sqlx::query(
            "SELECT company, length(n) AS len, substr(n, 1, ?) AS prefix, COUNT(DISTINCT n) AS confirmed \
             FROM (SELECT company, upper(replace(replace(number, ' ', ''), '-', '')) AS n \
                   FROM subscriptions WHERE event_count > 0) \
             GROUP BY company, len, prefix",
        )
        .bind(waybill_core::guess::PREFIX_LEN as i64)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(waybill_core::guess::PriorCount {
                carrier: r.try_get("company")?,
                length: usize::try_from(r.try_get::<i64, _>("len")?).unwrap_or(0),
                prefix: r.try_get("prefix")?,
                count: u64::try_from(r.try_get::<i64, _>("confirmed")?).unwrap_or(0),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use waybill_core::model::{EventTime, TrackEvent, CHINA_OFFSET};

    use super::*;

    fn t0() -> Timestamp {
        "2024-05-01T00:00:00Z".parse().expect("valid timestamp")
    }

    /// The `detail` lines of an `EXPLAIN QUERY PLAN` query.
    async fn plan_of<'q>(
        store: &SqliteStore,
        query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Vec<String> {
        query
            .fetch_all(&store.read)
            .await
            .expect("plan")
            .iter()
            .map(|r| r.try_get::<String, _>("detail").expect("detail"))
            .collect()
    }

    #[tokio::test]
    async fn tenant_keys_are_sealed_at_rest_and_found_by_their_lookup() {
        if std::env::var_os(super::super::secrets::SECRET_KEY_ENV).is_some() {
            return; // this test swaps the key file, which the environment's key overrides
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let store = SqliteStore::open_dir(&data).await.expect("open");
        let key = "7D3F0C9A51B2E8E4";
        let made = store
            .create_tenant(
                &NewTenant {
                    name: "shop".into(),
                    key: key.into(),
                    customer: Some("CUST1".into()),
                },
                t0(),
            )
            .await
            .expect("tenant");
        assert_eq!(made.key, key);
        assert_eq!(store.tenant_by_key(key).await.unwrap().unwrap().id, made.id);
        assert_eq!(store.list_tenants().await.unwrap()[0].key, key);
        store.close().await;

        // A copy of the database (file and WAL) holds no key.
        let mut bytes = std::fs::read(data.join(DB_FILE)).unwrap();
        bytes.extend(std::fs::read(data.join(format!("{DB_FILE}-wal"))).unwrap_or_default());
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));

        // A row written in clear before sealing existed is sealed when the store opens.
        let raw = SqlitePoolOptions::new()
            .connect_with(SqliteConnectOptions::new().filename(data.join(DB_FILE)))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO tenants (name, api_key, customer, created_at) VALUES ('old', 'OLDKEY', NULL, 0)",
        )
        .execute(&raw)
        .await
        .unwrap();
        raw.close().await;
        let store = SqliteStore::open_dir(&data).await.expect("reopen");
        assert_eq!(
            store.tenant_by_key("OLDKEY").await.unwrap().unwrap().name,
            "old"
        );
        let clear: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tenants WHERE api_key = 'OLDKEY' OR api_key_sealed IS NULL",
        )
        .fetch_one(&store.read)
        .await
        .unwrap();
        assert_eq!(clear, 0);
        store.close().await;

        // Another secret key finds no tenant and says why it cannot read them.
        std::fs::write(data.join(format!("{DB_FILE}.key")), "ab".repeat(32)).unwrap();
        let store = SqliteStore::open_dir(&data).await.expect("reopen");
        assert!(store.tenant_by_key(key).await.unwrap().is_none());
        let err = store.list_tenants().await.unwrap_err();
        assert!(
            err.to_string()
                .contains("does not open with this secret key"),
            "{err}"
        );
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open_dir(&dir.path().join("data"))
            .await
            .expect("open store");
        (dir, store)
    }

    async fn tenant(store: &SqliteStore) -> Tenant {
        store
            .create_tenant(
                &NewTenant {
                    name: "shop".into(),
                    key: "KEY1".into(),
                    customer: Some("CUST1".into()),
                },
                t0(),
            )
            .await
            .expect("tenant")
    }

    fn new_sub(tenant: TenantId, number: &str) -> NewSubscription {
        NewSubscription {
            tenant_id: tenant,
            company: "sandbox".into(),
            number: number.into(),
            phone: Some("1234".into()),
            from: None,
            to: Some("北京市朝阳区".into()),
            callback_url: "http://example.com/cb".into(),
            salt: Some("SALT".into()),
            dialect: "kuaidi100".into(),
            dialect_params: Default::default(),
            options: SubscribeOptions {
                resultv2: 4,
                ..SubscribeOptions::default()
            },
            next_check_at: t0(),
            created_at: t0(),
        }
    }

    /// A new tenant's waybill `number`, checked once by "a" and left with `pushes`
    /// pending pushes.
    async fn waybill_with_pushes(
        store: &SqliteStore,
        number: &str,
        pushes: usize,
    ) -> SubscriptionId {
        let t = tenant(store).await;
        let id = created(
            store
                .subscribe(&new_sub(t.id, number))
                .await
                .expect("subscribe"),
        );
        let lease = Lease::new("a", t0(), SignedDuration::from_mins(5));
        store.claim_due(t0(), 10, &lease).await.expect("claim");
        store
            .complete_check(&outcome(id, "a", pushes))
            .await
            .expect("complete");
        id
    }

    fn created(o: SubscribeOutcome) -> SubscriptionId {
        match o {
            SubscribeOutcome::Created { id, .. } => id,
            other => panic!("expected Created, got {other:?}"),
        }
    }

    fn trace_of(n: usize) -> Trace {
        let events = (0..n)
            .map(|i| TrackEvent {
                time: EventTime::new(t0() + SignedDuration::from_hours(i as i64), CHINA_OFFSET),
                context: format!("line {i}"),
                location: None,
                area_code: Some("110000000000".into()),
                area_name: Some("北京市".into()),
                state: if i == 0 {
                    State::Collected
                } else {
                    State::InTransit
                },
                raw_code: None,
                rule: Some("test".into()),
            })
            .collect();
        Trace::from_events("sandbox", "SB1", events)
    }

    fn outcome(id: SubscriptionId, owner: &str, pushes: usize) -> CheckOutcome {
        CheckOutcome {
            subscription_id: id,
            lease_owner: owner.into(),
            checked_at: t0(),
            status: MonitorStatus::Polling,
            message: String::new(),
            next_check_at: t0() + SignedDuration::from_hours(4),
            new_trace: None,
            correction: None,
            error: None,
            pushes: (0..pushes)
                .map(|i| NewPush {
                    url: "http://example.com/cb".into(),
                    change: numbered_change(i),
                })
                .collect(),
            problems: None,
            eta: None,
            lesson: None,
        }
    }

    /// A change told apart from others by its message.
    fn numbered_change(i: usize) -> Change {
        Change::new(
            PushHeader::new(MonitorStatus::Polling, format!("push {i}")),
            Trace::from_events("sandbox", "SB1", vec![]),
        )
    }

    #[tokio::test]
    async fn opening_creates_the_data_directory_and_reopening_keeps_the_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("nested").join("waybill-data");
        let store = SqliteStore::open_dir(&data).await.expect("open");
        let t = tenant(&store).await;
        store.close().await;
        assert!(data.join(DB_FILE).exists());
        let again = SqliteStore::open_dir(&data).await.expect("reopen");
        assert_eq!(again.tenant_by_key("KEY1").await.expect("query"), Some(t));
    }

    #[tokio::test]
    async fn subscription_round_trips_with_all_fields() {
        let (_dir, store) = store().await;
        let t = tenant(&store).await;
        let id = created(
            store
                .subscribe(&new_sub(t.id, "SB1"))
                .await
                .expect("subscribe"),
        );
        let s = store.subscription(id).await.expect("read").expect("exists");
        assert_eq!(
            s,
            Subscription::created(id, store.tracking_id(id, t.id), new_sub(t.id, "SB1")),
            "what the API answers without reading is what the store holds"
        );
        assert_eq!(s.tenant_id, t.id);
        assert_eq!(s.number, "SB1");
        assert_eq!(s.phone.as_deref(), Some("1234"));
        assert_eq!(s.to.as_deref(), Some("北京市朝阳区"));
        assert_eq!(s.salt.as_deref(), Some("SALT"));
        let stored: String = sqlx::query_scalar("SELECT salt FROM subscriptions WHERE id = ?")
            .bind(id)
            .fetch_one(&store.read)
            .await
            .expect("raw salt");
        assert!(
            stored.starts_with("v1:") && !stored.contains("SALT"),
            "salt sealed at rest"
        );
        assert_eq!(s.options.resultv2, 4);
        assert_eq!(s.status, MonitorStatus::Polling);
        assert_eq!(s.state, State::NoTrace);
        assert_eq!(s.next_check_at, t0());
        assert_eq!(s.trace_hash, None);
    }

    #[tokio::test]
    async fn the_monthly_limit_check_uses_the_usage_key() {
        let (_dir, store) = store().await;
        let plan = plan_of(
            &store,
            sqlx::query(
                "EXPLAIN QUERY PLAN SELECT column1 FROM (VALUES (1, 'sandbox', 'SB1', '2024-05')) \
                 AS v WHERE NOT EXISTS (SELECT 1 FROM usage u WHERE u.tenant_id = v.column1 \
                 AND u.month = v.column4 AND u.company = v.column2 AND u.number = v.column3 \
                 AND u.subscribes >= 4)",
            ),
        )
        .await;
        assert!(
            plan.iter()
                .any(|d| d.contains("USING INDEX sqlite_autoindex_usage_1")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn a_completed_check_stores_the_trace_and_queues_numbered_pushes() {
        let (_dir, store) = store().await;
        let t = tenant(&store).await;
        let id = created(
            store
                .subscribe(&new_sub(t.id, "SB1"))
                .await
                .expect("subscribe"),
        );
        store
            .claim_due(
                t0(),
                10,
                &Lease::until("a", t0(), t0() + SignedDuration::from_mins(5)),
            )
            .await
            .expect("claim");
        let trace = trace_of(3);
        let mut o = outcome(id, "a", 2);
        o.new_trace = Some((trace.clone(), trace.fingerprint()));
        store.complete_check(&o).await.expect("complete");

        let stored = store.trace(id).await.expect("trace").expect("exists");
        assert_eq!(stored.data, trace.data);
        assert_eq!(stored.state, State::InTransit);
        let s = store.subscription(id).await.expect("read").expect("exists");
        assert_eq!(s.trace_hash, Some(trace.fingerprint()));
        assert_eq!(s.event_count, 3);
        assert_eq!(s.last_event_at, Some(trace.data[0].time.at));
        assert_eq!(s.push_seq, 2);
        let pushes = store.pushes_of(id).await.expect("pushes");
        let ids: Vec<_> = pushes.iter().map(|p| p.push_id.clone()).collect();
        assert_eq!(ids, vec![store.push_id(id, 1), store.push_id(id, 2)]);
        assert_eq!(pushes[1].payload, PushPayload::Change(numbered_change(1)));
    }

    #[tokio::test]
    async fn a_push_queued_rendered_by_an_older_daemon_reads_back_as_stored() {
        let (_dir, store) = store().await;
        let id = waybill_with_pushes(&store, "SB1", 1).await;
        // What a daemon that signed at queue time wrote: a body, no change.
        sqlx::query(
            "INSERT INTO outbox (push_id, subscription_id, seq, url, content_type, body, \
             headers, next_attempt_at, created_at) VALUES (?, ?, 2, 'http://example.com/cb', \
             'application/x-www-form-urlencoded', ?, '[[\"X-Test\",\"1\"]]', 0, 0)",
        )
        .bind(format!("{id}-2"))
        .bind(id)
        .bind(b"param=%7B%7D".as_slice())
        .execute(&store.write)
        .await
        .expect("insert");
        let p = store
            .push(&format!("{id}-2"))
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            p.payload,
            PushPayload::Rendered {
                content_type: "application/x-www-form-urlencoded".into(),
                body: b"param=%7B%7D".to_vec(),
                headers: vec![("X-Test".into(), "1".into())],
            }
        );
    }

    #[test]
    fn fixed_chunks_cover_every_row_in_order_with_few_distinct_sizes() {
        for n in [0usize, 1, 5, 63, 64, 300, 1024, 1023] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks = fixed_chunks(&rows);
            let flat: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(flat, rows, "n = {n}");
            assert!(chunks.iter().all(|c| SUBSCRIBE_CHUNKS.contains(&c.len())));
        }
    }

    #[tokio::test]
    async fn the_statements_list_subscriptions_builds_for_a_number_use_the_waybill_index() {
        let (_dir, store) = store().await;
        // The shape list_subscriptions builds for tenant + company + number.
        let query = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT id FROM subscriptions WHERE id > ? \
             AND tenant_id = ? AND company = ? AND number = ? ORDER BY id LIMIT ?",
        )
        .bind(0)
        .bind(1)
        .bind("sandbox")
        .bind("SB1")
        .bind(100);
        let plan = plan_of(&store, query).await;
        assert!(
            plan.iter().any(|d| d.contains("subscriptions_waybill")),
            "{plan:?}"
        );
        // A number alone (any tenant, any company) uses the same index by its first column.
        let query = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT id FROM subscriptions WHERE id > ? AND number = ? \
             ORDER BY id LIMIT ?",
        )
        .bind(0)
        .bind("SB1")
        .bind(100);
        let plan = plan_of(&store, query).await;
        assert!(
            plan.iter().any(|d| d.contains("subscriptions_waybill")),
            "{plan:?}"
        );
    }

    #[test]
    fn trace_hash_changes_with_any_event_and_not_otherwise() {
        assert_eq!(trace_of(2).fingerprint(), trace_of(2).fingerprint());
        assert_ne!(trace_of(2).fingerprint(), trace_of(3).fingerprint());
        let mut t = trace_of(2);
        t.data[0].context.push('!');
        assert_ne!(t.fingerprint(), trace_of(2).fingerprint());
    }

    #[test]
    fn billing_month_is_taken_at_china_time() {
        let late = "2024-04-30T17:00:00Z".parse().expect("ts");
        assert_eq!(billing_month(late), "2024-05");
    }
}
