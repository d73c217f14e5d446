//! The native API `/v1` against `waybill serve --sandbox`, checked by code someone else
//! wrote: the Standard Webhooks reference library (PyPI `standardwebhooks`) verifies every
//! push across a secret rotation and a 503 retry, and schemathesis (PyPI) fuzzes every
//! operation from the served OpenAPI document. Both are installed at test time into a
//! virtual environment under the target directory (tests/native/requirements.txt).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::support::{free_port, python_venv, target_dir, wait_for_port, waybill_bin};

const KEY: &str = "NATIVEKEY123";

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("native")
}

async fn python() -> PathBuf {
    python_venv("native-venv", &scripts().join("requirements.txt")).await
}

/// A daemon on the sandbox (an hour of parcel life a second) with one tenant, and its
/// port. Reads are allowed 1,000 a second: schemathesis sends them as fast as it can.
async fn daemon(dir: &Path) -> (Child, u16) {
    let added = Command::new(waybill_bin())
        .args([
            "tenant",
            "add",
            "shop",
            "--key",
            KEY,
            "--format",
            "json",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .await
        .expect("tenant add");
    assert!(added.status.success(), "{added:?}");
    let tenant: Value = serde_json::from_slice(&added.stdout).expect("json");
    assert_eq!(tenant["native"]["authorization"], format!("Bearer {KEY}"));
    let config = dir.join("waybill.toml");
    std::fs::write(
        &config,
        "[api.rate_limit.read]\nper_second = 1000\nburst = 2000\n\
         [api.rate_limit.autonumber]\nper_second = 1000\nburst = 2000\n",
    )
    .expect("config");
    let port = free_port();
    let child = Command::new(waybill_bin())
        .args(["serve", "--sandbox", "--clock-speed", "3600"])
        .args(["--allow-private-callbacks", "--data-dir"])
        .arg(dir)
        .arg("--config")
        .arg(&config)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("WAYBILL_PLUGIN_DIR", target_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start waybill serve");
    wait_for_port(port).await;
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_webhooks_library_verifies_every_push_across_a_rotation_and_a_retry() {
    let python = python().await;
    let dir = tempfile::tempdir().expect("dir");
    let (_daemon, port) = daemon(dir.path()).await;
    let number = "SB00077001";
    let run = Command::new(&python)
        .arg(scripts().join("webhooks.py"))
        .args([
            &format!("http://127.0.0.1:{port}"),
            &free_port().to_string(),
            KEY,
            number,
            "90",
        ])
        .output()
        .await
        .expect("run the receiver");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out: Value = serde_json::from_slice(&run.stdout).expect("receiver json");
    let secret = out["secrets"][0].as_str().expect("a secret");
    assert!(secret.starts_with("whsec_"), "{out}");
    assert_eq!(out["tracking"]["number"], number, "{out}");
    assert_eq!(out["tracking"]["monitor"], "polling", "{out}");
    let rotated = out["rotated"].as_array().expect("rotated");
    assert_eq!(rotated.len(), 2, "the new and the old secret: {out}");
    assert_eq!(rotated[1], secret, "the old one still signs: {out}");

    let pushes = out["pushes"].as_array().expect("pushes");
    assert!(
        pushes.len() >= 3,
        "a refused push, its retry, one after the rotation: {out}"
    );
    assert_eq!(pushes[0]["answered"], 503);
    assert_eq!(
        pushes[0]["id"], pushes[1]["id"],
        "a retry keeps its webhook-id: {out}"
    );
    for p in pushes {
        assert_eq!(p["number"], number, "{p}");
        assert!(
            matches!(
                p["type"].as_str(),
                Some("tracking.updated" | "tracking.stopped")
            ),
            "{p}"
        );
        let by: Vec<u64> = p["verified_by"]
            .as_array()
            .expect("verified_by")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        if p["secrets_then"] == 1 {
            assert_eq!(by, [0], "signed with the only secret: {p}");
        } else {
            assert_eq!(
                p["signatures"], 2,
                "both secrets sign during the overlap: {p}"
            );
            assert_eq!(by, [0, 1], "old and new secret both verify: {p}");
        }
    }
    assert!(
        pushes.iter().any(|p| p["secrets_then"] == 2),
        "a push after the rotation: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let python = python().await;
    let dir = tempfile::tempdir().expect("dir");
    let (_daemon, port) = daemon(dir.path()).await;
    let base = format!("http://127.0.0.1:{port}");
    let schemathesis = python.with_file_name("schemathesis");
    let run = Command::new(schemathesis)
        .arg("run")
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--url", &base])
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", "40", "--seed", "20261204", "--no-color"])
        .current_dir(dir.path())
        .output()
        .await
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        report.contains("Tested: 12"),
        "every operation was tested: {report}"
    );
}
