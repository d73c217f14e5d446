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

/// Builds the workspace (the five plugins, the example plugin and the skewed fixture among
/// it; a no-op when up to date) and returns the directory holding their libraries. This is
/// why `cargo test --workspace` works without a `cargo build` first.
fn built_libraries() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        // The same selection `cargo test --workspace` builds, so inside it this is a no-op:
        // a `-p` subset resolves features differently and would rebuild (and overwrite)
        // artifacts other tests and doctests of this run are using.
        .args(["build", "--workspace", "--tests"])
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
    assert_eq!(plugins[0]["sdk_version"], waybill_sdk::SDK_VERSION);

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
        future.contains("2.0.0") && future.contains(waybill_sdk::SDK_VERSION),
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

#[test]
fn a_plugin_of_the_right_version_but_another_layout_is_refused_showing_the_difference() {
    let libs = built_libraries();
    let dir = temp_dir("misshapen");
    std::fs::copy(
        libs.join("libwaybill_sdk_misshapen.so"),
        dir.join("libwaybill_carrier_misshapen.so"),
    )
    .unwrap();
    let (code, stdout, stderr) = waybill(&dir, &["plugins", "--format", "json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reason = v["refused"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("layout does not match"), "{reason}");
    assert!(
        reason.contains("field 1: expected `manifest_json: fn()->RResult`, found `manifest_json: fn()->RString`"),
        "the differing field is named: {reason}"
    );
    assert!(
        reason.contains("`instantiate"),
        "missing fields listed: {reason}"
    );
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

/// The plugins of this workspace: library file stem and carrier codes.
const ALL_PLUGINS: [(&str, &[&str]); 10] = [
    ("dhl", &["dhl"]),
    ("fedex", &["fedex"]),
    ("hexi", &["hexi", "hexiexpress"]),
    ("kdniao", &["kdniao"]),
    ("kuaidi100", &["kuaidi100"]),
    ("sandbox", &["sandbox"]),
    ("shunfeng", &["shunfeng", "sf"]),
    ("track17", &["17track"]),
    ("ups", &["ups"]),
    ("usps", &["usps"]),
];

fn lib_file(stem: &str) -> String {
    format!("libwaybill_carrier_{stem}.so")
}

/// A directory with the ten plugins of the workspace.
fn all_plugins_dir(name: &str) -> PathBuf {
    let libs = built_libraries();
    let dir = temp_dir(name);
    for (stem, _) in ALL_PLUGINS {
        std::fs::copy(libs.join(lib_file(stem)), dir.join(lib_file(stem))).unwrap();
    }
    dir
}

fn codes_of(v: &serde_json::Value) -> Vec<Vec<String>> {
    v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| serde_json::from_value(p["codes"].clone()).unwrap())
        .collect()
}

#[test]
fn the_plugins_and_the_example_load_together_and_a_corrupt_one_is_refused_by_name() {
    let libs = built_libraries();
    let dir = all_plugins_dir("all");
    // The first 4 KiB of a real plugin: an ELF header whose segments are missing. (Half
    // a debug build still loads: the second half is debug info.)
    let whole = std::fs::read(libs.join(lib_file("sandbox"))).unwrap();
    std::fs::write(dir.join(lib_file("broken")), &whole[..4096]).unwrap();
    std::fs::copy(
        libs.join("libwaybill_sdk_skewed.so"),
        dir.join(lib_file("future")),
    )
    .unwrap();

    let (code, stdout, stderr) = waybill(&dir, &["plugins", "--format", "json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let expected: Vec<Vec<String>> = ALL_PLUGINS
        .iter()
        .map(|(_, codes)| codes.iter().map(|c| (*c).to_owned()).collect())
        .collect();
    assert_eq!(codes_of(&v), expected, "{stdout}");
    for (p, (stem, _)) in v["plugins"].as_array().unwrap().iter().zip(ALL_PLUGINS) {
        assert!(
            p["file"].as_str().unwrap().ends_with(&lib_file(stem)),
            "{p}"
        );
        assert_eq!(p["sdk_version"], waybill_sdk::SDK_VERSION);
    }
    for i in [3, 4, 7] {
        let aggregator = &v["plugins"][i];
        assert_eq!(aggregator["aggregator"], true, "{aggregator}");
    }

    let refused = v["refused"].as_array().unwrap();
    let files: Vec<&str> = refused
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 2, "{stdout}");
    assert!(files[0].ends_with(&lib_file("broken")), "{stdout}");
    assert!(refused[0]["reason"]
        .as_str()
        .unwrap()
        .contains("not a waybill plugin"));
    assert!(files[1].ends_with(&lib_file("future")), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_default_plugin_dir_is_next_to_the_binary() {
    built_libraries();
    let out = Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["plugins", "--format", "json"])
        .env_remove("WAYBILL_PLUGIN_DIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_waybill")).parent().unwrap();
    assert_eq!(v["dir"], bin_dir.display().to_string());
    let codes = codes_of(&v);
    for (_, want) in ALL_PLUGINS {
        assert!(
            codes.iter().any(|c| c == want),
            "{want:?} missing from {codes:?}"
        );
    }
}

#[test]
fn guess_with_plugins_knows_plugin_carriers_and_ranks_the_sandbox_last() {
    let dir = all_plugins_dir("guess");
    let (code, stdout, stderr) = waybill(
        &dir,
        &[
            "guess",
            "--plugins",
            "--format",
            "json",
            "HX240501000017",
            "SF1400000000017",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("refused"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let carriers = |i: usize| -> Vec<String> {
        lines[i]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["carrier"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(carriers(0).first().map(String::as_str), Some("hexi"));
    assert_eq!(carriers(0).last().map(String::as_str), Some("sandbox"));
    assert_eq!(carriers(1).first().map(String::as_str), Some("shunfeng"));
    assert_eq!(carriers(1).last().map(String::as_str), Some("sandbox"));

    // Without --plugins, only the embedded rules answer.
    let (_, stdout, _) = waybill(&dir, &["guess", "HX240501000017"], &[]);
    assert!(
        !stdout.contains("hexi") && !stdout.contains("sandbox"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One request as a fake carrier saw it.
#[derive(Debug, Clone)]
struct Seen {
    first_line: String,
    body: String,
}

/// A tiny HTTP/1.1 server answering every request with `reply(request)`.
fn fake_carrier(
    reply: impl Fn(&Seen) -> (u16, Vec<u8>) + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
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
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request = Seen {
                first_line: first.trim_end().to_owned(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, payload) = reply(&request);
            log.lock().unwrap().push(request);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&payload);
        }
    });
    (base, seen)
}

/// The value of a form field, percent-decoded (`+` is not used by the plugins).
fn form_field(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            let b = v.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() + 1 {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
    })
}

#[test]
fn a_company_without_a_plugin_is_tracked_through_the_upstream_aggregator() {
    let dir = all_plugins_dir("upstream");
    let (base, seen) = fake_carrier(|_| {
        (
            200,
            include_bytes!("../../plugins/kuaidi100/fixtures/delivered.json").to_vec(),
        )
    });
    let env = [
        ("WAYBILL_KUAIDI100_CUSTOMER", "CUST0001".to_owned()),
        ("WAYBILL_KUAIDI100_KEY", "k100-secret".to_owned()),
        ("WAYBILL_KUAIDI100_BASE_URL", base),
    ];

    // No upstream configured: yuantong has no plugin.
    let (code, _, stderr) = waybill(&dir, &["track", "yuantong", "YT7300000000202"], &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("WAYBILL_UPSTREAM"), "{stderr}");

    let mut with_upstream = env.to_vec();
    with_upstream.push(("WAYBILL_UPSTREAM", "kuaidi100".to_owned()));
    let (code, stdout, stderr) = waybill(
        &dir,
        &["track", "yuantong", "YT7300000000202", "--format", "json"],
        &with_upstream,
    );
    assert_eq!(code, 0, "{stderr}");
    let trace: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(trace["com"], "yuantong", "{stdout}");
    assert_eq!(trace["nu"], "YT7300000000202");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].first_line.starts_with("POST /poll/query.do"));
    let param: serde_json::Value =
        serde_json::from_str(&form_field(&seen[0].body, "param").unwrap()).unwrap();
    assert_eq!(param["com"], "yuantong");

    // A code with its own plugin never goes upstream.
    let (code, _, stderr) = waybill(&dir, &["track", "kuaidi100", "X1"], &with_upstream);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("invalid input"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SF's answer for the numbers of a route query: one collected event each.
fn sf_routes(numbers: &[String]) -> Vec<u8> {
    let resps: Vec<serde_json::Value> = numbers
        .iter()
        .map(|n| {
            serde_json::json!({"mailNo": n, "routes": [{
                "acceptTime": "2025-03-03 18:02:11", "acceptAddress": "深圳市",
                "remark": "顺丰速运 已收取快件", "opCode": "54"}]})
        })
        .collect();
    let data = serde_json::json!({"success": true, "errorCode": "S0000", "errorMsg": null,
        "msgData": {"routeResps": resps}});
    serde_json::json!({"apiResultCode": "A1000", "apiErrorMsg": "",
        "apiResponseID": "X", "apiResultData": data.to_string()})
    .to_string()
    .into_bytes()
}

#[test]
fn a_mixed_phone_batch_reaches_sf_as_one_request_per_phone_signed_with_the_hosts_clock() {
    use waybill_core::carrier::Carrier;
    use waybill_core::model::Waybill;
    use waybill_host::plugin::adapter::AdapterSettings;
    use waybill_host::plugin::registry::Registry;

    let dir = all_plugins_dir("sf-batch");
    let (base, seen) = fake_carrier(|req| {
        let msg: serde_json::Value =
            serde_json::from_str(&form_field(&req.body, "msgData").unwrap()).unwrap();
        let numbers: Vec<String> = serde_json::from_value(msg["trackingNumber"].clone()).unwrap();
        (200, sf_routes(&numbers))
    });
    let registry = Registry::load(&dir).unwrap();
    let carrier = registry
        .carrier(
            "shunfeng",
            &waybill_sdk::Config::from_pairs([
                ("partner_id", "PARTNER01"),
                ("checkword", "cw-test"),
                ("base_url", base.as_str()),
            ]),
            Arc::new(waybill_core::normalize::TextNormalizer::builtin().clone()),
            AdapterSettings::default(),
        )
        .unwrap();
    let waybill = |n: &str, phone: &str| {
        let mut w = Waybill::new("shunfeng", n);
        w.phone = Some(phone.to_owned());
        w
    };
    let waybills = [
        waybill("SF1400000000017", "13800005678"),
        waybill("SF1400000000025", "13900001111"),
        waybill("SF1400000000033", "5678"),
    ];
    let before = jiff::Timestamp::now().as_millisecond();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = runtime.block_on(carrier.track(&waybills));
    let after = jiff::Timestamp::now().as_millisecond();

    assert_eq!(out.len(), 3);
    for (o, w) in out.iter().zip(&waybills) {
        let trace = o.as_ref().unwrap_or_else(|e| panic!("{}: {e}", w.number));
        assert_eq!(trace.nu, w.number);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let mut phones = Vec::new();
    for req in seen.iter() {
        let msg: serde_json::Value =
            serde_json::from_str(&form_field(&req.body, "msgData").unwrap()).unwrap();
        phones.push((
            msg["checkPhoneNo"].as_str().unwrap().to_owned(),
            msg["trackingNumber"].as_array().unwrap().len(),
        ));
        let ts: i64 = form_field(&req.body, "timestamp").unwrap().parse().unwrap();
        assert!(
            (before..=after).contains(&ts),
            "{before} <= {ts} <= {after}"
        );
    }
    phones.sort();
    assert_eq!(phones, vec![("1111".to_owned(), 1), ("5678".to_owned(), 2)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn track_sandbox_prints_a_trace_from_a_running_simulator() {
    use waybill_core::clock::ManualClock;
    use waybill_sandbox_sim::journey::SimConfig;
    use waybill_sandbox_sim::server::Simulator;

    let dir = all_plugins_dir("sandbox-track");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock = Arc::new(ManualClock::new("2024-05-01T00:00:00Z".parse().unwrap()));
    let sim = runtime
        .block_on(Simulator::start(
            "127.0.0.1:0".parse().unwrap(),
            clock.clone(),
            SimConfig {
                api_key: "k".into(),
                ..SimConfig::default()
            },
        ))
        .unwrap();
    let env = [
        ("WAYBILL_SANDBOX_BASE_URL", sim.base_url()),
        ("WAYBILL_SANDBOX_API_KEY", "k".to_owned()),
    ];
    // The first query registers the parcel; the simulator's clock then moves it along.
    let (code, _, stderr) = waybill(&dir, &["track", "sandbox", "SB20240501001"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
    clock.advance(jiff::SignedDuration::from_hours(36));

    let (code, stdout, stderr) = waybill(&dir, &["track", "sandbox", "sb20240501001"], &env);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("sandbox SB20240501001  state: "),
        "{stdout}"
    );
    assert!(lines[1].starts_with("TIME"), "{stdout}");
    assert!(lines.len() >= 3, "no events: {stdout}");
    assert!(lines[2].starts_with("2024-05-"), "{stdout}");
    runtime.block_on(sim.shutdown()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `waybill track COMPANY NUMBER --format json` against a fake carrier; the trace.
fn track_json(
    dir: &Path,
    company: &str,
    number: &str,
    env: &[(&str, String)],
) -> serde_json::Value {
    let (code, stdout, stderr) = waybill(dir, &["track", company, number, "--format", "json"], env);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn the_carriers_own_examples_read_right_end_to_end() {
    let dir = all_plugins_dir("fidelity");

    // SF's documentation example: taken in at a partner point (655/701, remark 已代收),
    // with `success` as the string "true". Collected, not signed for.
    let (base, _) = fake_carrier(|_| {
        (
            200,
            include_bytes!("../../plugins/shunfeng/fixtures/doc_example.json").to_vec(),
        )
    });
    let env = [
        ("WAYBILL_SHUNFENG_PARTNER_ID", "PARTNER01".to_owned()),
        ("WAYBILL_SHUNFENG_CHECKWORD", "cw-fidelity".to_owned()),
        ("WAYBILL_SHUNFENG_BASE_URL", base),
    ];
    let trace = track_json(&dir, "shunfeng", "SF1400000000017", &env);
    assert_eq!(trace["state"], "collected", "{trace}");
    assert_eq!(trace["ischeck"], false);

    // DHL's return shipment: delivered back at the sender is returned.
    let (base, _) = fake_carrier(|_| {
        (
            200,
            include_bytes!("../../plugins/dhl/fixtures/returned.json").to_vec(),
        )
    });
    let env = [
        ("WAYBILL_DHL_API_KEY", "dhl-key".to_owned()),
        ("WAYBILL_DHL_BASE_URL", base),
    ];
    let trace = track_json(&dir, "dhl", "00340434161094000019", &env);
    assert_eq!(trace["state"], "returned", "{trace}");

    // FedEx scans printed without an offset: a Memphis delivery is Central time.
    let (base, _) = fake_carrier(|req| {
        if req.first_line.starts_with("POST /oauth/token") {
            (
                200,
                include_bytes!("../../plugins/fedex/fixtures/token_ok.json").to_vec(),
            )
        } else {
            (
                200,
                include_bytes!("../../plugins/fedex/fixtures/track_no_offset.json").to_vec(),
            )
        }
    });
    let env = [
        ("WAYBILL_FEDEX_CLIENT_ID", "l7xx-id".to_owned()),
        ("WAYBILL_FEDEX_CLIENT_SECRET", "fx-secret".to_owned()),
        ("WAYBILL_FEDEX_BASE_URL", base),
    ];
    let trace = track_json(&dir, "fedex", "794600000017", &env);
    assert_eq!(trace["state"], "delivered", "{trace}");
    let newest = trace["data"][0].to_string();
    assert!(newest.contains("2025-03-05T10:02:00-06:00"), "{newest}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ups_and_usps_track_through_oauth_against_fake_servers() {
    let dir = all_plugins_dir("ups-usps");

    // UPS: Basic-auth token, then the track call with transId and transactionSrc.
    let (base, seen) = fake_carrier(|req| {
        if req.first_line.starts_with("POST /security/v1/oauth/token") {
            (
                200,
                include_bytes!("../../plugins/ups/fixtures/token_ok.json").to_vec(),
            )
        } else if req.first_line.contains("/1Z999AA10123456784?") {
            (
                200,
                include_bytes!("../../plugins/ups/fixtures/track_delivered.json").to_vec(),
            )
        } else {
            // UPS's quirk: an unknown number is HTTP 200 with a TW0001 warning.
            (
                200,
                include_bytes!("../../plugins/ups/fixtures/not_found.json").to_vec(),
            )
        }
    });
    let env = [
        ("WAYBILL_UPS_CLIENT_ID", "ups-id".to_owned()),
        ("WAYBILL_UPS_CLIENT_SECRET", "ups-secret-value".to_owned()),
        ("WAYBILL_UPS_BASE_URL", base),
    ];
    let trace = track_json(&dir, "ups", "1Z999AA10123456784", &env);
    assert_eq!(trace["state"], "delivered", "{trace}");
    assert_eq!(trace["ischeck"], true);
    let (code, stdout, stderr) = waybill(
        &dir,
        &["track", "ups", "1Z999AA10000000001", "--format", "json"],
        &env,
    );
    assert_eq!(code, 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["error"]["kind"], "not_found", "{v}");
    assert!(!stderr.contains("ups-secret-value"));
    assert!(seen.lock().unwrap().iter().any(|r| r
        .first_line
        .starts_with("GET /api/track/v1/details/1Z999AA10123456784?locale=en_US")));

    // USPS: token with the tracking scope, then the v3 detail query.
    let (base, seen) = fake_carrier(|req| {
        if req.first_line.starts_with("POST /oauth2/v3/token") {
            (
                200,
                include_bytes!("../../plugins/usps/fixtures/token_ok.json").to_vec(),
            )
        } else {
            (
                200,
                include_bytes!("../../plugins/usps/fixtures/track_delivered.json").to_vec(),
            )
        }
    });
    let env = [
        ("WAYBILL_USPS_CLIENT_ID", "usps-id".to_owned()),
        ("WAYBILL_USPS_CLIENT_SECRET", "usps-secret".to_owned()),
        ("WAYBILL_USPS_BASE_URL", base),
    ];
    let trace = track_json(&dir, "usps", "9400100000000000000017", &env);
    assert_eq!(trace["state"], "delivered", "{trace}");
    // 11:20 in Austin with GMTOffset -06:00.
    assert!(
        trace["data"][0]
            .to_string()
            .contains("2025-03-06T11:20:00-06:00"),
        "{trace}"
    );
    let seen = seen.lock().unwrap();
    assert!(form_field(&seen[0].body, "scope").as_deref() == Some("tracking"));
    assert!(seen[1]
        .first_line
        .starts_with("GET /tracking/v3/tracking/9400100000000000000017?expand=DETAIL"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kdniao_and_17track_track_a_company_without_a_plugin_as_upstreams() {
    let dir = all_plugins_dir("upstreams");

    let (base, seen) = fake_carrier(|_| {
        (
            200,
            include_bytes!("../../plugins/kdniao/fixtures/in_transit.json").to_vec(),
        )
    });
    let env = [
        ("WAYBILL_KDNIAO_EBUSINESS_ID", "1700000".to_owned()),
        ("WAYBILL_KDNIAO_APP_KEY", "kdn-secret-key".to_owned()),
        ("WAYBILL_KDNIAO_BASE_URL", base),
        ("WAYBILL_UPSTREAM", "kdniao".to_owned()),
    ];
    let trace = track_json(&dir, "yuantong", "YT7300000000202", &env);
    assert_eq!(trace["com"], "yuantong", "{trace}");
    assert_eq!(trace["state"], "out_for_delivery", "{trace}");
    let seen = seen.lock().unwrap();
    assert!(seen[0]
        .first_line
        .starts_with("POST /Ebusiness/EbusinessOrderHandle.aspx"));
    let data: serde_json::Value =
        serde_json::from_str(&form_field(&seen[0].body, "RequestData").unwrap()).unwrap();
    assert_eq!(data["ShipperCode"], "YTO");
    assert_eq!(
        form_field(&seen[0].body, "RequestType").as_deref(),
        Some("8001")
    );
    drop(seen);

    // 17TRACK: the number is not registered yet, so register, then read again.
    let calls = Arc::new(Mutex::new(0usize));
    let counter = calls.clone();
    let (base, seen) = fake_carrier(move |req| {
        *counter.lock().unwrap() += 1;
        let body: &[u8] = if req.first_line.contains("/register") {
            include_bytes!("../../plugins/track17/fixtures/register_ok.json")
        } else if *counter.lock().unwrap() == 1 {
            include_bytes!("../../plugins/track17/fixtures/trackinfo_ok.json")
        } else {
            include_bytes!("../../plugins/track17/fixtures/trackinfo_final.json")
        };
        (200, body.to_vec())
    });
    let env = [
        ("WAYBILL_17TRACK_API_KEY", "17t-secret".to_owned()),
        ("WAYBILL_17TRACK_BASE_URL", base),
        ("WAYBILL_UPSTREAM", "17track".to_owned()),
    ];
    let trace = track_json(&dir, "yuantong", "YT7300000000202", &env);
    assert_eq!(trace["state"], "collected", "{trace}");
    let lines: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.first_line.clone())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[1].starts_with("POST /track/v2.2/register"),
        "{lines:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_daemon_tracks_a_company_without_a_plugin_through_the_upstream() {
    let dir = all_plugins_dir("upstream-daemon");
    let data = temp_dir("upstream-daemon-data");
    let (base, seen) = fake_carrier(|_| {
        (
            200,
            include_bytes!("../../plugins/kuaidi100/fixtures/delivered.json").to_vec(),
        )
    });
    let env = [
        ("WAYBILL_KUAIDI100_CUSTOMER", "CUST0001".to_owned()),
        ("WAYBILL_KUAIDI100_KEY", "k100-secret".to_owned()),
        ("WAYBILL_KUAIDI100_BASE_URL", base),
        ("WAYBILL_UPSTREAM", "kuaidi100".to_owned()),
    ];
    let data_dir = data.to_string_lossy().into_owned();
    let (code, stdout, stderr) = waybill(
        &dir,
        &[
            "tenant",
            "add",
            "shop",
            "--key",
            "UPKEY001",
            "--format",
            "json",
            "--data-dir",
            &data_dir,
        ],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let tenant: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let customer = tenant["customer"].as_str().unwrap().to_owned();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args([
            "serve",
            "--data-dir",
            &data_dir,
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env("WAYBILL_PLUGIN_DIR", &dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let url = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (made, answer, recognised) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let made = client
            .post(format!("{url}/v1/trackings"))
            .bearer_auth("UPKEY001")
            .json(&serde_json::json!({"number": "YT7300000000202", "carrier": "yuantong"}))
            .send()
            .await
            .unwrap();
        let made = (made.status().as_u16(), made.text().await.unwrap());
        let param = r#"{"com":"yuantong","num":"YT7300000000202"}"#;
        let sign = waybill_core::sign::kuaidi100_query_sign(param, "UPKEY001", &customer);
        let answer: serde_json::Value = client
            .post(format!("{url}/poll/query.do"))
            .form(&[
                ("customer", customer.as_str()),
                ("sign", &sign),
                ("param", param),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Recognition uses the plugins' number rules too: only the sandbox plugin knows
        // what an SB number is.
        let recognised: serde_json::Value = client
            .get(format!(
                "{url}/autonumber/auto?num=SB20240501001&key=UPKEY001"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (made, answer, recognised)
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(recognised[0]["comCode"], "sandbox", "{recognised}");
    assert_eq!(made.0, 201, "{}", made.1);
    assert!(made.1.contains(r#""carrier":"yuantong""#), "{}", made.1);
    assert_eq!(answer["nu"], "YT7300000000202", "{answer}");
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "the query reached the upstream");
    let param: serde_json::Value =
        serde_json::from_str(&form_field(&seen[0].body, "param").unwrap()).unwrap();
    assert_eq!(param["com"], "yuantong");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn waybill_carriers_says_what_tracks_each_carrier_here() {
    let dir = all_plugins_dir("carriers-tracked-by");
    let tracked = |env: &[(&str, String)]| {
        let (code, stdout, stderr) = waybill(&dir, &["carriers", "--format", "json"], env);
        assert_eq!(code, 0, "{stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                (
                    v["code"].as_str().unwrap().to_owned(),
                    v["tracked_by"].clone(),
                )
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    let alone = tracked(&[]);
    assert_eq!(alone["shunfeng"]["by"], "plugin", "{:?}", alone["shunfeng"]);
    assert_eq!(alone["shunfeng"]["file"], "libwaybill_carrier_shunfeng.so");
    assert_eq!(
        alone["zhongtong"]["by"], "nothing",
        "no ZTO plugin, no upstream"
    );
    let routed = tracked(&[("WAYBILL_UPSTREAM", "kuaidi100".to_owned())]);
    assert_eq!(routed["zhongtong"]["by"], "upstream");
    assert_eq!(routed["zhongtong"]["aggregator"], "kuaidi100");
    assert_eq!(
        routed["shunfeng"]["by"], "plugin",
        "its own plugin still wins"
    );
}
