//! `waybill serve`'s log as a collector reads it: no terminal colours in a redirected log,
//! one JSON object per line with `--log-format json`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{target_dir, waybill_bin};

/// The first lines the daemon logs with `args`, its stderr redirected to a pipe.
async fn first_log_lines(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(waybill_bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("WAYBILL_PLUGIN_DIR", target_dir())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start waybill serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < 2 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await {
            Ok(Ok(Some(line))) => out.push(line),
            _ => break,
        }
    }
    child.kill().await.expect("stop daemon");
    assert!(!out.is_empty(), "the daemon logged nothing");
    out
}

#[tokio::test]
async fn a_redirected_log_has_no_terminal_colours() {
    for line in first_log_lines(&[]).await {
        assert!(!line.contains('\u{1b}'), "escape codes in {line:?}");
    }
}

#[tokio::test]
async fn the_json_log_is_one_object_per_line() {
    for line in first_log_lines(&["--log-format", "json"]).await {
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
