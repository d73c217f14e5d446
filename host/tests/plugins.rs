//! End to end through the `waybill` binary: a plugin directory with one good plugin, a
//! duplicate, a plugin built for another SDK and a text file; then a real-time query
//! through the example plugin against a local imitation of its carrier's API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the example plugin and the skewed fixture (a no-op when up to date) and returns
/// the directory holding their libraries.
fn built_libraries() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "waybill-carrier-hexi",
            "-p",
            "waybill-sdk-skewed",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the plugins failed");
    // target/debug/deps/plugins-xxxx → target/debug
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("waybill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn waybill(dir: &Path, args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(args)
        .env("WAYBILL_PLUGIN_DIR", dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_files_are_refused_by_name_while_the_good_plugin_loads() {
    let libs = built_libraries();
    let dir = temp_dir("plugins");
    std::fs::copy(
        libs.join("libwaybill_carrier_hexi.so"),
        dir.join("libwaybill_carrier_hexi.so"),
    )
    .unwrap();
    std::fs::copy(
        libs.join("libwaybill_carrier_hexi.so"),
        dir.join("libwaybill_carrier_hexi_copy.so"),
    )
    .unwrap();
    std::fs::copy(
        libs.join("libwaybill_sdk_skewed.so"),
        dir.join("libwaybill_carrier_future.so"),
    )
    .unwrap();
    std::fs::write(dir.join("libwaybill_carrier_notes.so"), "not a library\n").unwrap();
    std::fs::write(dir.join("unrelated.txt"), "ignored").unwrap();

    let (code, stdout, stderr) = waybill(&dir, &["plugins", "--format", "json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let plugins = v["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1, "{stdout}");
    assert!(plugins[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("libwaybill_carrier_hexi.so"));
    assert_eq!(
        plugins[0]["codes"],
        serde_json::json!(["hexi", "hexiexpress"])
    );
    assert_eq!(plugins[0]["sdk_version"], "1.0.0");

    let refused = v["refused"].as_array().unwrap();
    let reason = |file: &str| -> String {
        refused
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not refused: {stdout}"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(refused.len(), 3, "{stdout}");
    let future = reason("libwaybill_carrier_future.so");
    assert!(
        future.contains("2.0.0") && future.contains("1.0.0"),
        "{future}"
    );
    assert!(reason("libwaybill_carrier_notes.so").contains("not a waybill plugin"));
    let dup = reason("libwaybill_carrier_hexi_copy.so");
    assert!(
        dup.contains("`hexi`") && dup.contains("libwaybill_carrier_hexi.so"),
        "{dup}"
    );

    let (code, text, _) = waybill(&dir, &["plugins"], &[]);
    assert_eq!(code, 0);
    assert!(
        text.contains("hexi, hexiexpress  河西快运 / Hexi Express"),
        "{text}"
    );
    let refused_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("refused ")).collect();
    assert_eq!(refused_lines.len(), 3, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tiny HTTP/1.1 server imitating Hexi's API; records each request's first line and
/// `Authorization` header.
fn fake_hexi() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut auth = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap(),
                    "authorization" => auth = v.trim().to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            log.lock()
                .unwrap()
                .push(format!("{} | {auth}", first.trim_end()));
            let reply: &[u8] = if first.starts_with("POST /oauth/token") {
                include_bytes!("../../examples/custom-carrier/fixtures/token_ok.json")
            } else if first.starts_with("GET /v2/track") && auth == "Bearer tok-7f1c2e" {
                include_bytes!("../../examples/custom-carrier/fixtures/track_ok.json")
            } else {
                b"{}"
            };
            let status = if reply == b"{}" {
                "401 Unauthorized"
            } else {
                "200 OK"
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reply.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(reply);
        }
    });
    (base, seen)
}

#[test]
fn track_queries_the_example_plugin_and_prints_the_normalized_trace() {
    let libs = built_libraries();
    let dir = temp_dir("track");
    std::fs::copy(
        libs.join("libwaybill_carrier_hexi.so"),
        dir.join("libwaybill_carrier_hexi.so"),
    )
    .unwrap();
    let (base, seen) = fake_hexi();
    let env = [
        ("WAYBILL_HEXI_CLIENT_ID", "demo".to_owned()),
        ("WAYBILL_HEXI_CLIENT_SECRET", "s3cret-value".to_owned()),
        ("WAYBILL_HEXI_BASE_URL", base),
    ];

    let (code, stdout, stderr) = waybill(&dir, &["track", "hexi", "hx240501000017"], &env);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("HX240501000017") && lines[0].contains("delivered (signed)"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("TIME"), "{stdout}");
    assert!(
        lines[2].starts_with("2024-05-02 11:02:00  武威市"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("delivered") && lines[2].contains("已签收"),
        "{stdout}"
    );
    assert_eq!(lines.len(), 2 + 5, "{stdout}");

    let (code, stdout, _) = waybill(
        &dir,
        &["track", "hexi", "HX240501000025", "--format", "json"],
        &env,
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["error"]["kind"], "not_found");

    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|r| r.starts_with("POST /oauth/token")));
    assert!(seen
        .iter()
        .any(|r| r.starts_with("GET /v2/track?numbers=HX240501000017 ")
            && r.ends_with("Bearer tok-7f1c2e")));
    assert!(!stderr.contains("s3cret-value"));
    std::fs::remove_dir_all(&dir).unwrap();
}
