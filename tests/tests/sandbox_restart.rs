//! `waybill serve --sandbox` stopped and started again on the same data directory carries
//! on where it was: its fast clock resumes from the saved reading and the simulator starts
//! each stored parcel's journey when it was subscribed (looked up in the store), so no
//! answer looks like it went backwards.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::support::{free_port, target_dir, wait_for_port, waybill_bin};

const ROWS: usize = 40;

async fn serve(dir: &Path, port: u16) -> Child {
    let child = Command::new(waybill_bin())
        .args(["serve", "--sandbox", "--clock-speed", "3600"])
        .args([
            "--allow-private-callbacks",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("WAYBILL_PLUGIN_DIR", target_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start waybill serve");
    wait_for_port(port).await;
    child
}

/// Stops the daemon as an operator does (SIGTERM) and returns its log.
async fn stop(mut child: Child) -> String {
    let pid = child.id().expect("running").to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(sent.success());
    let mut log = String::new();
    let mut stderr = child.stderr.take().expect("piped");
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        stderr.read_to_string(&mut log).await.expect("read log");
        child.wait().await.expect("wait")
    })
    .await
    .expect("the daemon stops within a minute");
    assert!(read.success(), "exit {read:?}\n{log}");
    log
}

async fn saved_clock(dir: &Path) -> Timestamp {
    let text = std::fs::read_to_string(dir.join("sandbox-clock")).expect("clock file");
    text.trim().parse().expect("a timestamp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sandbox_daemon_resumes_its_clock_and_journeys() {
    let dir = tempfile::tempdir().expect("dir");
    let added = Command::new(waybill_bin())
        .args(["tenant", "add", "shop", "--key", "RESTARTKEY", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .expect("tenant add");
    assert!(added.status.success());
    let port = free_port();
    let daemon = serve(dir.path(), port).await;
    let mut csv = String::from("company,number,phone,from,to\n");
    for i in 0..ROWS {
        csv.push_str(&format!(
            "sandbox,SB{:08},,广东省深圳市,北京市朝阳区\n",
            7_000 + i
        ));
    }
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, csv).expect("csv");
    let imported = Command::new(waybill_bin())
        .arg("import")
        .arg(&file)
        .args(["--key", "RESTARTKEY", "--callback", "http://127.0.0.1:9/cb"])
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .await
        .expect("import");
    assert!(imported.status.success());
    // Three seconds at 3600x: three virtual hours, past every first check (15 min).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first_log = stop(daemon).await;
    let first_stop = saved_clock(dir.path()).await;
    assert!(
        first_stop > Timestamp::now() + jiff::SignedDuration::from_hours(2),
        "the saved clock {first_stop} is the fast clock's, hours ahead of the wall clock"
    );

    let daemon = serve(dir.path(), port).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second_log = stop(daemon).await;
    let second_stop = saved_clock(dir.path()).await;
    assert!(
        second_stop > first_stop + jiff::SignedDuration::from_hours(2),
        "the clock resumed from {first_stop}, and ran on to {second_stop}"
    );
    for log in [&first_log, &second_log] {
        assert!(
            !log.contains("would go backwards"),
            "an answer went backwards after the restart:\n{log}"
        );
    }
}
