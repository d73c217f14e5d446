//! Copying a whole SQLite store into an empty PostgreSQL one (`waybill migrate`).
//!
//! The two schemas have the same tables and column names (the PostgreSQL migration is the
//! SQLite ones in one step), so the copy follows the schemas rather than a column list of
//! its own: each table's columns and types come from PostgreSQL's catalogue and are read
//! by name from SQLite. A column only one side has is an error, not a silent loss (or a
//! column left at its default); columns SQLite computes (`subscriptions.live`) are not
//! data and are left out.
//!
//! Everything is read from one SQLite snapshot and written in one PostgreSQL transaction:
//! a copy that fails leaves the target as empty as it was. Rows keep their ids, because
//! push ids are derived from the subscription id and the secret key: with both kept, a
//! receiver that deduplicates by push id sees the same ids from the new store.

use sqlx::sqlite::SqliteRow;
use sqlx::{PgConnection, Row, SqliteConnection};

use super::{PgStore, SqliteStore, Store, StoreError, SubscriptionId};

/// The tables of a store, parents before children: foreign keys are checked at each
/// insert.
pub const TABLES: [&str; 10] = [
    "tenants",
    "subscriptions",
    "events",
    "outbox",
    "usage",
    "query_cache",
    "idempotency",
    "disabled_endpoints",
    "endpoint_failures",
    "lanes",
];

/// Tables whose `id` is an identity column in PostgreSQL: their sequences must start past
/// the copied ids, or the next insert would collide with a copied row.
const IDENTITY_TABLES: [&str; 3] = ["tenants", "subscriptions", "outbox"];

/// Tables of the stores that are not data: the migration bookkeeping of each side, and
/// PostgreSQL's `meta` (written by [`PgStore::open`]).
const BOOKKEEPING: [&str; 2] = ["_sqlx_migrations", "meta"];

/// Rows read and written at a time. An INSERT binds one array per column, so the size is
/// bounded by memory (outbox bodies are the big rows), not by a limit on parameters.
pub const ROWS_PER_BATCH: usize = 5_000;

/// The verification reads every this many-th subscription (in id order, and the last one)
/// through the [`Store`] trait on both sides.
pub const SAMPLE_EVERY: usize = 97;

/// Why a copy was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds data; the copy never merges.
    #[error(
        "the target database is not empty (table {table} has rows); `waybill migrate` copies \
         only into an empty database"
    )]
    TargetNotEmpty {
        /// The first table found with rows.
        table: &'static str,
    },
    /// SQLite has a table the copy does not know, so copying would lose it.
    #[error(
        "the SQLite store has a table `{0}` that the copy does not know; copying would lose it"
    )]
    UnknownTable(String),
    /// A table the copy needs is missing on one side.
    #[error("table {table} is missing in {side}")]
    MissingTable {
        /// The table.
        table: &'static str,
        /// "SQLite" or "PostgreSQL".
        side: &'static str,
    },
    /// A column exists on one side only (stores of different waybill versions).
    #[error(
        "column {table}.{column} is in {side} only, so copying would lose it or leave it \
         unset; are both stores from the same waybill version?"
    )]
    OneSidedColumn {
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
        /// Where it is: "SQLite" or "PostgreSQL".
        side: &'static str,
    },
    /// A PostgreSQL column of a type the copy does not convert.
    #[error("column {table}.{column} has PostgreSQL type {ty}, which the copy does not handle")]
    UnknownType {
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
        /// Its `information_schema` data type.
        ty: String,
    },
    /// Reading rows from SQLite failed (including a value of an unexpected type).
    #[error("reading table {table} from SQLite: {source}")]
    Read {
        /// The table.
        table: &'static str,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// Writing rows to PostgreSQL failed.
    #[error("writing table {table} to PostgreSQL: {source}")]
    Write {
        /// The table.
        table: &'static str,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// Any other database error (opening the snapshot, the transaction, the commit).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A store read of the verification failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: &'static str,
    /// Rows copied.
    pub rows: u64,
}

/// How a column's values travel: the three types the schemas use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Bytes,
}

impl Kind {
    fn from_pg(data_type: &str) -> Option<Self> {
        match data_type {
            "bigint" => Some(Kind::Int),
            "text" => Some(Kind::Text),
            "bytea" => Some(Kind::Bytes),
            _ => None,
        }
    }

    fn pg_array(self) -> &'static str {
        match self {
            Kind::Int => "bigint[]",
            Kind::Text => "text[]",
            Kind::Bytes => "bytea[]",
        }
    }
}

/// One column's values of a batch, bound as one PostgreSQL array (NULLs kept).
enum Values {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Values {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Int => Values::Int(Vec::with_capacity(ROWS_PER_BATCH)),
            Kind::Text => Values::Text(Vec::with_capacity(ROWS_PER_BATCH)),
            Kind::Bytes => Values::Bytes(Vec::with_capacity(ROWS_PER_BATCH)),
        }
    }

    fn push(&mut self, row: &SqliteRow, index: usize) -> Result<(), sqlx::Error> {
        match self {
            Values::Int(v) => v.push(row.try_get(index)?),
            Values::Text(v) => v.push(row.try_get(index)?),
            Values::Bytes(v) => v.push(row.try_get(index)?),
        }
        Ok(())
    }
}

/// A value of the key a table is paged by.
#[derive(Debug, Clone)]
enum KeyValue {
    Int(i64),
    Text(String),
}

/// How one table is read and written.
struct TablePlan {
    table: &'static str,
    kinds: Vec<Kind>,
    /// Kinds of the paging key columns, selected after the copied columns.
    key_kinds: Vec<Kind>,
    /// `SELECT` of the first page (no key yet).
    first_page: String,
    /// `SELECT` of a page after a key.
    next_page: String,
    insert: String,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Refuses a SQLite store with a table the copy would not carry over.
async fn refuse_unknown_tables(sqlite: &mut SqliteConnection) -> Result<(), CopyError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *sqlite)
    .await?;
    for name in tables {
        if !TABLES.contains(&name.as_str()) && !BOOKKEEPING.contains(&name.as_str()) {
            return Err(CopyError::UnknownTable(name));
        }
    }
    Ok(())
}

/// Matches `table`'s columns on both sides and builds its statements.
async fn plan(
    table: &'static str,
    sqlite: &mut SqliteConnection,
    pg: &mut PgConnection,
) -> Result<TablePlan, CopyError> {
    let pg_columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *pg)
    .await?;
    if pg_columns.is_empty() {
        return Err(CopyError::MissingTable {
            table,
            side: "PostgreSQL",
        });
    }
    // `hidden` is 0 for stored columns, 2 and 3 for generated ones; `pk` is the column's
    // place in the primary key (0: not in it).
    let sqlite_columns: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT name, hidden, pk FROM pragma_table_xinfo(?) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *sqlite)
            .await?;
    if sqlite_columns.is_empty() {
        return Err(CopyError::MissingTable {
            table,
            side: "SQLite",
        });
    }
    let stored: Vec<&str> = sqlite_columns
        .iter()
        .filter(|(_, hidden, _)| *hidden == 0)
        .map(|(name, _, _)| name.as_str())
        .collect();
    if let Some(extra) = stored
        .iter()
        .find(|name| !pg_columns.iter().any(|(pg, _)| pg == *name))
    {
        return Err(CopyError::OneSidedColumn {
            table,
            column: (*extra).to_owned(),
            side: "SQLite",
        });
    }
    let mut names = Vec::with_capacity(pg_columns.len());
    let mut kinds = Vec::with_capacity(pg_columns.len());
    for (column, ty) in &pg_columns {
        if !stored.contains(&column.as_str()) {
            return Err(CopyError::OneSidedColumn {
                table,
                column: column.clone(),
                side: "PostgreSQL",
            });
        }
        let kind = Kind::from_pg(ty).ok_or_else(|| CopyError::UnknownType {
            table,
            column: column.clone(),
            ty: ty.clone(),
        })?;
        names.push(quote(column));
        kinds.push(kind);
    }

    // Pages follow the primary key (an index walk, unlike OFFSET, which rereads every
    // earlier row); a table without one (usage keeps a UNIQUE) is paged by its rowid.
    let mut key: Vec<(i64, &str)> = sqlite_columns
        .iter()
        .filter(|(_, _, pk)| *pk > 0)
        .map(|(name, _, pk)| (*pk, name.as_str()))
        .collect();
    key.sort();
    let (key_names, key_kinds): (Vec<String>, Vec<Kind>) = if key.is_empty() {
        (vec!["rowid".to_owned()], vec![Kind::Int])
    } else {
        key.iter()
            .map(|(_, name)| {
                let kind = pg_columns
                    .iter()
                    .position(|(pg, _)| pg == name)
                    .map_or(Kind::Text, |i| kinds[i]);
                (quote(name), kind)
            })
            .unzip()
    };
    if key_kinds.contains(&Kind::Bytes) {
        return Err(CopyError::UnknownType {
            table,
            column: key_names.join(", "),
            ty: "bytea in a primary key".to_owned(),
        });
    }
    let select = format!(
        "SELECT {}, {} FROM {}",
        names.join(", "),
        key_names.join(", "),
        quote(table)
    );
    let order = format!(" ORDER BY {} LIMIT {ROWS_PER_BATCH}", key_names.join(", "));
    let params = vec!["?"; key_names.len()].join(", ");
    let first_page = format!("{select}{order}");
    let next_page = format!(
        "{select} WHERE ({}) > ({params}){order}",
        key_names.join(", ")
    );
    let arrays: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| format!("${}::{}", i + 1, k.pg_array()))
        .collect();
    let insert = format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
        quote(table),
        names.join(", "),
        arrays.join(", ")
    );
    Ok(TablePlan {
        table,
        kinds,
        key_kinds,
        first_page,
        next_page,
        insert,
    })
}

/// Copies one table page by page; `progress` gets the rows copied so far.
async fn copy_table(
    plan: &TablePlan,
    sqlite: &mut SqliteConnection,
    pg: &mut PgConnection,
    mut progress: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let table = plan.table;
    let read = |source| CopyError::Read { table, source };
    let mut after: Option<Vec<KeyValue>> = None;
    let mut copied = 0u64;
    loop {
        let rows = match &after {
            None => sqlx::query(&plan.first_page).fetch_all(&mut *sqlite).await,
            Some(key) => {
                let mut q = sqlx::query(&plan.next_page);
                for value in key {
                    q = match value {
                        KeyValue::Int(v) => q.bind(*v),
                        KeyValue::Text(v) => q.bind(v.clone()),
                    };
                }
                q.fetch_all(&mut *sqlite).await
            }
        }
        .map_err(read)?;
        let Some(last) = rows.last() else {
            return Ok(copied);
        };
        let width = plan.kinds.len();
        let key = plan
            .key_kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| match kind {
                Kind::Int => last.try_get(width + i).map(KeyValue::Int),
                _ => last.try_get(width + i).map(KeyValue::Text),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(read)?;
        let mut columns: Vec<Values> = plan.kinds.iter().map(|k| Values::new(*k)).collect();
        for row in &rows {
            for (i, values) in columns.iter_mut().enumerate() {
                values.push(row, i).map_err(read)?;
            }
        }
        let mut insert = sqlx::query(&plan.insert);
        for values in columns {
            insert = match values {
                Values::Int(v) => insert.bind(v),
                Values::Text(v) => insert.bind(v),
                Values::Bytes(v) => insert.bind(v),
            };
        }
        insert
            .execute(&mut *pg)
            .await
            .map_err(|source| CopyError::Write { table, source })?;
        copied += rows.len() as u64;
        progress(copied);
        if rows.len() < ROWS_PER_BATCH {
            return Ok(copied);
        }
        after = Some(key);
    }
}

async fn sqlite_count(sqlite: &mut SqliteConnection, table: &str) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(table)))
        .fetch_one(&mut *sqlite)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn pg_count(pg: &mut PgConnection, table: &str) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(table)))
        .fetch_one(&mut *pg)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Copies every table of `source` into `target`, which must hold no rows, and moves the
/// identity sequences past the copied ids. `target` must have been opened with the
/// source's secret key (the sealed values are copied as they are). `progress` is told
/// `(table, rows copied, rows in the table)` after each batch.
///
/// The source should not be written meanwhile (stop its daemons): the copy reads one
/// snapshot, and whatever is written after it is not in the target.
pub async fn copy_store(
    source: &SqliteStore,
    target: &PgStore,
    mut progress: impl FnMut(&'static str, u64, u64),
) -> Result<Vec<TableCount>, CopyError> {
    // One read transaction: with WAL, every page of every table comes from the same
    // snapshot, so the copy is consistent even if something wrote to the file meanwhile.
    // It wrote nothing, so it is simply dropped (rolled back) at the end.
    let mut snapshot = source.read_pool().begin().await?;
    copy_snapshot(&mut snapshot, target, &mut progress).await
}

async fn copy_snapshot(
    sqlite: &mut SqliteConnection,
    target: &PgStore,
    progress: &mut impl FnMut(&'static str, u64, u64),
) -> Result<Vec<TableCount>, CopyError> {
    refuse_unknown_tables(sqlite).await?;
    let mut pg = target.pool().begin().await?;
    // Nobody writes the tables until the commit, and a second copy started at the same
    // time waits here and then finds them full instead of interleaving rows.
    sqlx::query(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        TABLES.map(quote).join(", ")
    ))
    .execute(&mut *pg)
    .await?;
    for table in TABLES {
        let full: bool =
            sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", quote(table)))
                .fetch_one(&mut *pg)
                .await?;
        if full {
            return Err(CopyError::TargetNotEmpty { table });
        }
    }
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let plan = plan(table, sqlite, &mut pg).await?;
        let total = sqlite_count(sqlite, table)
            .await
            .map_err(|source| CopyError::Read { table, source })?;
        progress(table, 0, total);
        let rows = copy_table(&plan, sqlite, &mut pg, |done| progress(table, done, total)).await?;
        counts.push(TableCount { table, rows });
    }
    for table in IDENTITY_TABLES {
        // `is_called = false`: the next id handed out is exactly max + 1 (1 when empty).
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             COALESCE((SELECT max(id) FROM {}), 0) + 1, false)",
            quote(table)
        ))
        .execute(&mut *pg)
        .await
        .map_err(|source| CopyError::Write { table, source })?;
    }
    pg.commit().await?;
    Ok(counts)
}

/// Row counts of one table on both sides after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    /// The table.
    pub table: &'static str,
    /// Rows in SQLite.
    pub sqlite: u64,
    /// Rows in PostgreSQL.
    pub postgres: u64,
}

/// A difference the verification found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// A table's row counts differ.
    #[error("table {table}: {sqlite} rows in SQLite, {postgres} in PostgreSQL")]
    Count {
        /// The table.
        table: &'static str,
        /// Rows in SQLite.
        sqlite: u64,
        /// Rows in PostgreSQL.
        postgres: u64,
    },
    /// What [`Store::stats`] counts differs.
    #[error("subscription and push counts by state differ")]
    Stats,
    /// A subscription reads differently.
    #[error("subscription {0} differs")]
    Subscription(SubscriptionId),
    /// A subscription's trace reads differently.
    #[error("the trace of subscription {0} differs")]
    Trace(SubscriptionId),
    /// A subscription's pushes read differently.
    #[error("the pushes of subscription {0} differ")]
    Pushes(SubscriptionId),
    /// A subscription's push ids would differ (another secret key).
    #[error("the push ids of subscription {0} differ")]
    PushIds(SubscriptionId),
    /// A tenant's key does not find the same tenant.
    #[error("tenant {0}'s key does not find the same tenant in PostgreSQL")]
    Tenant(super::TenantId),
}

/// What the verification compared, and what differed.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Row counts per table.
    pub tables: Vec<TableCheck>,
    /// Subscriptions compared with their traces and pushes.
    pub subscriptions_sampled: usize,
    /// Tenants looked up by key.
    pub tenants_checked: usize,
    /// Every difference found; empty: the copy is faithful as far as checked.
    pub mismatches: Vec<Mismatch>,
}

/// Compares `target` with `source` after a copy: row counts of every table, the counts
/// by state, every [`SAMPLE_EVERY`]-th subscription (and the last one) with its trace,
/// pushes and push ids, and each tenant found by its key. Both are read as they are now,
/// so a daemon that wrote to either since the copy shows up as a difference.
pub async fn verify(source: &SqliteStore, target: &PgStore) -> Result<Verification, CopyError> {
    let mut out = Verification::default();
    let mut sqlite = source.read_pool().acquire().await?;
    let mut pg = target.pool().acquire().await?;
    for table in TABLES {
        let check = TableCheck {
            table,
            sqlite: sqlite_count(&mut sqlite, table).await?,
            postgres: pg_count(&mut pg, table).await?,
        };
        if check.sqlite != check.postgres {
            out.mismatches.push(Mismatch::Count {
                table,
                sqlite: check.sqlite,
                postgres: check.postgres,
            });
        }
        out.tables.push(check);
    }
    drop(pg);
    if source.stats().await? != target.stats().await? {
        out.mismatches.push(Mismatch::Stats);
    }

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM subscriptions ORDER BY id")
        .fetch_all(&mut *sqlite)
        .await?;
    drop(sqlite);
    let mut sample: Vec<i64> = ids.iter().step_by(SAMPLE_EVERY).copied().collect();
    if let Some(last) = ids.last().filter(|l| sample.last() != Some(*l)) {
        sample.push(*last);
    }
    for id in sample {
        out.subscriptions_sampled += 1;
        if source.subscription(id).await? != target.subscription(id).await? {
            out.mismatches.push(Mismatch::Subscription(id));
        }
        if source.trace(id).await? != target.trace(id).await? {
            out.mismatches.push(Mismatch::Trace(id));
        }
        if source.pushes_of(id).await? != target.pushes_of(id).await? {
            out.mismatches.push(Mismatch::Pushes(id));
        }
        if source.push_prefix(id) != target.push_prefix(id) {
            out.mismatches.push(Mismatch::PushIds(id));
        }
    }
    for tenant in source.list_tenants().await? {
        out.tenants_checked += 1;
        if target.tenant_by_key(&tenant.key).await?.as_ref() != Some(&tenant) {
            out.mismatches.push(Mismatch::Tenant(tenant.id));
        }
    }
    Ok(out)
}
