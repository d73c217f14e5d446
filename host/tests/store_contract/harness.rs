//! Which backends the contract runs against, and the fresh database each test gets.
//!
//! A [`TestDb`] owns one database and opens any number of independent handles onto it:
//! two handles are two daemons sharing the database, each with its own connections, so
//! what one writes the other must see and what they do at once must not collide.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Once};

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use waybill_host::store::secrets::SecretKey;
use waybill_host::store::{PgStore, SqliteStore, Store, StoreResult};

/// Names the PostgreSQL server the contract also runs against, e.g.
/// `postgres://waybill:waybill@localhost/postgres`. Each test creates (and drops) a database
/// of its own there.
pub const DATABASE_URL_ENV: &str = "WAYBILL_TEST_DATABASE_URL";

/// A store implementation the contract runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// [`SqliteStore`], one file in a temporary directory.
    Sqlite,
    /// The PostgreSQL store, on the server [`DATABASE_URL_ENV`] names.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The backends to run every contract test against: SQLite always, PostgreSQL when
/// [`DATABASE_URL_ENV`] is set.
pub fn backends() -> Vec<Backend> {
    static SKIPPED: Once = Once::new();
    if std::env::var_os(DATABASE_URL_ENV).is_some() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        // Written past the test harness's capture (which only takes `eprintln!`), so the
        // skip is seen once per run rather than never.
        SKIPPED.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "store_contract: {DATABASE_URL_ENV} is not set; PostgreSQL runs skipped"
            );
        });
        vec![Backend::Sqlite]
    }
}

impl Backend {
    /// A fresh, empty database on this backend; `Err` says why this backend cannot run
    /// here (the test then skips it, saying so).
    pub async fn fresh_db(self) -> Result<TestDb, String> {
        match self {
            Backend::Sqlite => Ok(sqlite_db().await),
            Backend::Postgres => {
                let url = std::env::var(DATABASE_URL_ENV)
                    .map_err(|e| format!("{DATABASE_URL_ENV}: {e}"))?;
                postgres_db(&url).await
            }
        }
    }
}

/// Opens one more handle onto a test database.
type OpenHandle = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = StoreResult<Arc<dyn Store>>> + Send>> + Send + Sync,
>;

/// One fresh database for one test, and the way to open handles onto it.
pub struct TestDb {
    backend: Backend,
    open: OpenHandle,
    /// Whatever keeps the database alive (a temporary directory, a guard that drops a
    /// PostgreSQL database); dropped after the test.
    _keep: Box<dyn Any + Send + Sync>,
}

impl TestDb {
    /// A test database on `backend` whose handles `open` opens, alive while `keep` is.
    pub fn new(backend: Backend, open: OpenHandle, keep: Box<dyn Any + Send + Sync>) -> Self {
        Self {
            backend,
            open,
            _keep: keep,
        }
    }

    /// The backend this database is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A new, independent handle onto this database (its own connections), as a second
    /// daemon sharing the database would have.
    pub async fn handle(&self) -> Arc<dyn Store> {
        match (self.open)().await {
            Ok(store) => store,
            Err(e) => panic!("opening a {} handle: {e}", self.backend),
        }
    }
}

/// SQLite: a temporary directory holding `waybill.db`; every handle opens that file, and
/// they share the secret key file the first one wrote beside it.
async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("waybill.db");
    let open: OpenHandle = Box::new(move || {
        let path = path.clone();
        Box::pin(async move {
            let store = SqliteStore::open_file(&path).await?;
            Ok(Arc::new(store) as Arc<dyn Store>)
        })
    });
    TestDb::new(Backend::Sqlite, open, Box::new(dir))
}

/// PostgreSQL: a fresh database `waybill_test_<pid>_<n>` on the server at `url`, dropped
/// (with whatever connections are still open) when the test ends. Its handles share one
/// secret key, as daemons sharing a database must. A server that cannot be reached fails
/// the test: the variable says PostgreSQL runs are wanted.
pub async fn postgres_db(url: &str) -> Result<TestDb, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "waybill_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin: PgConnectOptions = url
        .parse()
        .unwrap_or_else(|e| panic!("{DATABASE_URL_ENV}={url}: {e}"));
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .unwrap_or_else(|e| panic!("{DATABASE_URL_ENV}: cannot reach PostgreSQL at {url}: {e}"));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
    let _ = conn.close().await;
    let guard = DropDatabase {
        admin: admin.clone(),
        name: name.clone(),
    };
    let db = admin.database(&name);
    let key_hex = "5a".repeat(32);
    let open: OpenHandle = Box::new(move || {
        let db = db.clone();
        let key_hex = key_hex.clone();
        Box::pin(async move {
            let key = SecretKey::from_hex(&key_hex, "test key").expect("valid test key");
            let store = PgStore::open_with(db, key, 8).await?;
            Ok(Arc::new(store) as Arc<dyn Store>)
        })
    });
    Ok(TestDb::new(Backend::Postgres, open, Box::new(guard)))
}

/// Drops a test database when the test is over, whichever way it ended.
struct DropDatabase {
    admin: PgConnectOptions,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Its own thread and runtime: a Drop cannot await, and the test's runtime may be
        // shutting down around it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect_with(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&sql)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if let Ok(Err(e)) | Err(e) = dropped.map_err(|_| "panicked".to_string()) {
            eprintln!("store_contract: could not drop {}: {e}", self.name);
        }
    }
}

/// Names the test and backend on stderr when a test body panics, so a failure says which
/// backend broke the contract.
pub struct FailureNames {
    test: &'static str,
    backend: Backend,
}

impl FailureNames {
    /// Watches `test` running on `backend`.
    pub fn new(test: &'static str, backend: Backend) -> Self {
        Self { test, backend }
    }
}

impl Drop for FailureNames {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "store_contract: `{}` FAILED on the {} backend",
                self.test, self.backend
            );
        }
    }
}

/// Reports a backend that cannot run here; the test goes on with the next one.
pub fn skipped(test: &str, backend: Backend, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "store_contract: `{test}` skipped on {backend}: {why}"
    );
}

/// Runs one contract test's body once per backend of [`backends`], each time on a fresh
/// [`TestDb`], naming the backend if it fails.
pub async fn run<F, Fut>(test: &'static str, body: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        let db = match backend.fresh_db().await {
            Ok(db) => db,
            Err(why) => {
                skipped(test, backend, &why);
                continue;
            }
        };
        let _names = FailureNames::new(test, backend);
        body(db).await;
    }
}

/// Turns contract bodies (`async fn name(db: TestDb)` in the calling module) into tests,
/// one per body, in a `contract` module beside them, each run against every backend by
/// [`run`]. Attributes before a name (`#[ignore = "why"]`) go on its test. The runtime has
/// two worker threads so that spawned tasks really run at once.
///
/// The bodies are plain functions rather than macro input so that rustfmt formats them.
macro_rules! contract {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {
        mod contract {
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::harness::run(stringify!($name), super::$name).await;
                }
            )*
        }
    };
}
