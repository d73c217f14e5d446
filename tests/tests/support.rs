//! Paths of build outputs the tests use, the wait for a daemon they start, and the
//! Python environments of the third-party clients.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

/// `target/<profile>`: the directory of this test binary's parent (`deps`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("test binary lives in target/<profile>/deps")
}

/// The `waybill` binary next to the test binary. `cargo build --workspace` (the first
/// step of `.ci/run`) builds it.
pub fn waybill_bin() -> PathBuf {
    let bin = target_dir().join("waybill");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace` before the end-to-end tests",
        bin.display()
    );
    bin
}

/// A port free on 127.0.0.1 for a daemon to bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something accepts connections on 127.0.0.1:`port` (30 s at most).
pub async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A virtual environment `target/<profile>/<name>` with `requirements` installed (made
/// once per target directory; pip reaches the package registry). Tests asking for the
/// same one at once take turns.
pub async fn python_venv(name: &str, requirements: &Path) -> PathBuf {
    static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = MAKING.lock().await;
    let venv = target_dir().join(name);
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .await
            .expect("python3 is needed (tests/kdniao/setup installs it)");
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
    }
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("-r")
        .arg(requirements)
        .status()
        .await
        .expect("pip");
    assert!(
        installed.success(),
        "installing {} from PyPI failed",
        requirements.display()
    );
    python
}

/// A PostgreSQL database of its own on the test server, for tests that run daemons or
/// commands on one; dropped (with any connection still open) when the test is over,
/// whichever way it ended.
pub struct TestDatabase {
    admin: sqlx::postgres::PgConnectOptions,
    name: String,
    /// The database's URL, for `--database`.
    pub url: String,
}

impl TestDatabase {
    /// A fresh database `waybill_test_<what>_<pid>_<n>` on the server at `server_url`.
    pub async fn create(server_url: &str, what: &str) -> Self {
        use sqlx::Connection;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("waybill_test_{what}_{}_{n}", std::process::id());
        let admin: sqlx::postgres::PgConnectOptions = server_url
            .parse()
            .unwrap_or_else(|e| panic!("WAYBILL_TEST_DATABASE_URL={server_url}: {e}"));
        let mut conn = sqlx::PgConnection::connect_with(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {server_url}: {e}"));
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.expect(&sql);
        }
        let _ = conn.close().await;
        let mut url = url::Url::parse(server_url).expect("the server URL is a URL");
        url.set_path(&name);
        Self {
            admin,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Its own thread and runtime: a Drop cannot await, and the test's runtime may be
        // shutting down around it (a failed assertion unwinds through here).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect_with(&admin)
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
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}
