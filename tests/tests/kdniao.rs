//! A Kdniao client someone else wrote (PyPI `kdn-sdk`, installed at test time into a
//! virtual environment under the target directory) subscribes (8008), queries (1002,
//! 8001) and recognizes (2002) against `waybill serve --sandbox`, changing only its host;
//! its pushes reach a receiver that verifies DataSign as Kdniao documents it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;

use crate::support::{free_port, python_venv, target_dir, wait_for_port, waybill_bin};

/// The project's own test client and its requirements.
fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kdniao")
}

/// A virtual environment with the third-party client installed.
async fn python() -> PathBuf {
    python_venv("kdniao-venv", &client_dir().join("requirements.txt")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_kdniao_client_subscribes_queries_and_recognizes_and_its_pushes_verify() {
    let python = python().await;
    let dir = tempfile::tempdir().expect("dir");
    let receiver_port = free_port();
    let push_url = format!("http://127.0.0.1:{receiver_port}/kdniao");
    let added = Command::new(waybill_bin())
        .args([
            "tenant",
            "add",
            "shop",
            "--key",
            "KDNIAOKEY123",
            "--format",
            "json",
        ])
        .args(["--kdniao-push-url", &push_url, "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .expect("tenant add");
    assert!(added.status.success(), "{added:?}");
    let tenant: Value = serde_json::from_slice(&added.stdout).expect("json");
    let ebusiness = tenant["kdniao"]["EBusinessID"]
        .as_str()
        .expect("EBusinessID");
    assert_eq!(tenant["kdniao"]["AppKey"], "KDNIAOKEY123");

    let port = free_port();
    let _daemon = Command::new(waybill_bin())
        .args(["serve", "--sandbox", "--clock-speed", "3600"])
        .args(["--allow-private-callbacks", "--data-dir"])
        .arg(dir.path())
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("WAYBILL_PLUGIN_DIR", target_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start waybill serve");
    wait_for_port(port).await;

    let number = "SB00042001";
    let run = Command::new(&python)
        .arg(client_dir().join("client.py"))
        .args([
            &format!("http://127.0.0.1:{port}"),
            &receiver_port.to_string(),
            ebusiness,
            "KDNIAOKEY123",
            number,
            "60",
            "SF1234567890123",
        ])
        .output()
        .await
        .expect("run the client");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out: Value = serde_json::from_slice(&run.stdout).expect("client json");

    let sub = &out["subscribe"];
    assert_eq!(sub["Success"], true, "{sub}");
    assert_eq!(sub["EBusinessID"], ebusiness);

    let q = &out["query_1002"];
    assert_eq!(q["Success"], true, "{q}");
    assert_eq!(
        (&q["ShipperCode"], &q["LogisticCode"]),
        (&"SANDBOX".into(), &number.into())
    );
    assert!(q["Traces"].is_array(), "{q}");

    let m = &out["query_8001"];
    assert_eq!(m["Success"], true, "{m}");
    assert_eq!(m["OrderCode"], "ORDER-1");
    let state = m["State"].as_str().expect("State");
    let state_ex = m["StateEx"].as_str().expect("StateEx");
    assert!(
        state_ex.starts_with(state),
        "StateEx {state_ex} refines State {state}"
    );

    let r = &out["recognize"];
    assert_eq!(r["Success"], true, "{r}");
    assert_eq!(r["Shippers"][0]["ShipperCode"], "SF", "{r}");

    let bad = &out["bad_sign"];
    assert_eq!(bad["Success"], false, "{bad}");
    assert_eq!(bad["ResultCode"], "102", "{bad}");

    let pushes = out["pushes"].as_array().expect("pushes");
    assert!(!pushes.is_empty(), "no push arrived: {out}");
    for p in pushes {
        assert_eq!(p["sign_ok"], true, "DataSign verifies: {p}");
        assert_eq!(
            p["request_type"], "102",
            "an 8008 subscription pushes 102: {p}"
        );
        assert_eq!(p["ebusiness_id"], ebusiness);
        assert_eq!(p["data_type"], "2");
        let d = &p["data"]["Data"][0];
        assert_eq!(d["LogisticCode"], number, "{p}");
        assert_eq!(d["ShipperCode"], "SANDBOX", "{p}");
        assert_eq!(d["CallBack"], "cb-42", "{p}");
        assert_eq!(d["OrderCode"], "ORDER-1", "{p}");
        assert!(d["Traces"].as_array().is_some_and(|t| !t.is_empty()), "{p}");
    }
}
