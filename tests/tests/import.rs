//! `waybill import` against the running daemon: a file streamed to `/poll` with every row
//! accounted for, a dead address refused before any row is read, and a daemon that dies part
//! way ending the run with the first unsent line instead of one rejection per row.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use waybill_host::store::{SqliteStore, Store};

use crate::support::{free_port, target_dir, wait_for_port, waybill_bin};

fn csv_of(rows: usize) -> String {
    let mut csv = String::from("company,number,phone,from,to\n");
    for i in 0..rows {
        csv.push_str(&format!("sandbox,SB{i:08},,广东省深圳市,北京市朝阳区\n"));
    }
    csv
}

async fn tenant_key(dir: &Path) -> String {
    let out = Command::new(waybill_bin())
        .args([
            "tenant",
            "add",
            "importer",
            "--key",
            "IMPORTKEY",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .await
        .expect("tenant add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    "IMPORTKEY".into()
}

async fn serve(dir: &Path, port: u16) -> Child {
    serve_with(dir, port, &[]).await
}

async fn serve_with(dir: &Path, port: u16, extra: &[&str]) -> Child {
    let child = Command::new(waybill_bin())
        .args([
            "serve",
            "--sandbox",
            "--allow-private-callbacks",
            "--data-dir",
        ])
        .arg(dir)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("WAYBILL_PLUGIN_DIR", target_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start waybill serve");
    wait_for_port(port).await;
    child
}

async fn import(file: &Path, port: u16) -> Output {
    Command::new(waybill_bin())
        .arg("import")
        .arg(file)
        .args(["--key", "IMPORTKEY", "--callback", "http://127.0.0.1:9/cb"])
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .await
        .expect("run import")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_subscribes_every_row_and_a_rerun_answers_501_for_each() {
    let dir = tempfile::tempdir().expect("dir");
    tenant_key(dir.path()).await;
    let port = free_port();
    let mut daemon = serve(dir.path(), port).await;
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, csv_of(2_000)).expect("write csv");

    let first = import(&file, port).await;
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.starts_with("2000 subscribed, 0 already"), "{stdout}");
    let again = import(&file, port).await;
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.starts_with("0 subscribed, 2000 already"), "{stdout}");
    daemon.kill().await.expect("stop daemon");

    let store = SqliteStore::open_dir(dir.path()).await.expect("store");
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.polling, 2_000, "every acknowledged row is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_throttled_by_the_per_key_rate_limit_still_subscribes_every_row() {
    let dir = tempfile::tempdir().expect("dir");
    tenant_key(dir.path()).await;
    let config = dir.path().join("waybill.toml");
    std::fs::write(
        &config,
        "[api.rate_limit.subscribe]\nper_second = 200\nburst = 20\n",
    )
    .expect("write config");
    let port = free_port();
    let config = config.to_str().expect("utf-8 path");
    let mut daemon = serve_with(dir.path(), port, &["--config", config]).await;
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, csv_of(600)).expect("write csv");

    let run = import(&file, port).await;
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.starts_with("600 subscribed, 0 already"),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    daemon.kill().await.expect("stop daemon");
    let store = SqliteStore::open_dir(dir.path()).await.expect("store");
    assert_eq!(store.stats().await.expect("stats").polling, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_against_no_daemon_fails_at_once_naming_the_address() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, csv_of(100_000)).expect("write csv");
    let started = Instant::now();
    let out = import(&file, free_port()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no daemon answers at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no row was reported: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_dying_mid_import_ends_the_run_with_the_first_unsent_line() {
    let dir = tempfile::tempdir().expect("dir");
    tenant_key(dir.path()).await;
    let port = free_port();
    let mut daemon = serve(dir.path(), port).await;
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, csv_of(200_000)).expect("write csv");
    let run = tokio::spawn({
        let file = file.clone();
        async move { import(&file, port).await }
    });
    // Let some rows through, then take the daemon away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.kill().await.expect("kill daemon");
    let out = run.await.expect("import task");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("stopped answering"), "{stdout}");
    assert!(
        stdout.lines().filter(|l| l.starts_with("line ")).count() < 100,
        "unsent rows are summarised, not listed: {stdout}"
    );
    let subscribed: usize = stdout
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count first");
    assert!(subscribed > 0 && subscribed < 200_000, "{stdout}");
}
