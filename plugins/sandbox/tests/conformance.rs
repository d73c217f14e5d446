//! Runs the SDK's conformance suite against the built `libwaybill_carrier_sandbox.so`, and
//! checks the plugin against a live simulator.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use waybill_core::clock::ManualClock;
use waybill_sandbox_sim::journey::SimConfig;
use waybill_sandbox_sim::server::{Faults, Simulator};
use waybill_sdk::conformance::{self, Expect, Suite};
use waybill_sdk::{
    drive, Config, HttpRequest, HttpResponse, Query, QueryWaybill, State, Step, StepMachine,
};

const OK: &[u8] = include_bytes!("../fixtures/track_ok.json");
const STATE: &str = "track:SB20240501001,SB00000030,SB00000072,SB1";

fn load() -> waybill_sdk::loader::LoadedPlugin {
    conformance::load_built("waybill_carrier_sandbox")
}

fn sample() -> Query {
    Query::new(
        ["SB20240501001", "SB00000030", "SB00000072", "SB1"]
            .into_iter()
            .map(|n| QueryWaybill::new("sandbox", n))
            .collect(),
    )
}

/// The suite, with the fixtures of `fixtures/conformance.json` and a truncated body.
fn suite() -> Suite {
    let config = Config::from_pairs([("base_url", "http://127.0.0.1:9"), ("api_key", "k")]);
    Suite::from_fixture_dir(config, sample(), &waybill_sdk::fixture_dir!()).fixture(
        "truncated body",
        STATE,
        HttpResponse::new(200, &OK[..OK.len() / 2]),
        Expect::Failed("transient"),
    )
}

#[test]
fn sandbox_passes_the_conformance_suite_through_its_so() {
    let plugin = load();
    let manifest = plugin.manifest();
    assert_eq!(manifest.codes, vec!["sandbox"]);
    assert_eq!(manifest.name_zh, "沙箱快递");
    suite().run_loaded(&plugin);
}

#[test]
fn fixture_results_are_classified_per_number() {
    let plugin = load();
    let m = plugin.instantiate(&suite().config).unwrap();
    let Step::Done(out) = m.resume(STATE, &HttpResponse::new(200, OK)) else {
        panic!("expected Done")
    };
    assert_eq!(out.len(), 4);
    let delivered = out[0].result.as_ref().unwrap();
    assert_eq!(delivered[0].state, Some(State::Delivered));
    assert_eq!(delivered[0].raw_code.as_deref(), Some("SIGNED"));
    let international = out[1].result.as_ref().unwrap();
    assert!(international
        .iter()
        .any(|e| e.state == Some(State::CustomsException)));
    assert!(
        international.iter().all(|e| e.text.contains('(')),
        "English text kept"
    );
    assert_eq!(out[2].result.as_ref().unwrap_err().kind(), "not_found");
    assert_eq!(out[3].result.as_ref().unwrap_err().kind(), "invalid_input");
}

/// A blocking HTTP/1.1 transport for `drive`: the host's real client is async, but the
/// plugin does not care who sends its requests.
fn send(req: &HttpRequest) -> HttpResponse {
    let rest = req.url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = TcpStream::connect(authority).unwrap();
    let mut head = format!(
        "{} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        req.body.len()
    );
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&req.body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut response = HttpResponse::new(status, raw[split + 4..].to_vec());
    for (name, value) in lines.filter_map(|l| l.split_once(": ")) {
        response = response.with_header(name, value);
    }
    response
}

#[test]
fn the_plugin_tracks_a_parcel_on_a_live_simulator_until_delivery() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock = Arc::new(ManualClock::new("2024-05-01T00:00:00Z".parse().unwrap()));
    let config = SimConfig {
        api_key: "k".into(),
        ..SimConfig::default()
    };
    let sim = runtime
        .block_on(Simulator::start(
            "127.0.0.1:0".parse().unwrap(),
            clock.clone(),
            config,
        ))
        .unwrap();
    let plugin = load();
    let m = plugin
        .instantiate(&Config::from_pairs([
            ("base_url", sim.base_url()),
            ("api_key", "k".to_string()),
        ]))
        .unwrap();
    let query = Query::single("sandbox", "SB20240501001");

    let first = drive(&m, &query, send).unwrap();
    assert_eq!(first[0].result.as_ref().unwrap_err().kind(), "not_found");

    let mut last_len = 0;
    let mut last_state = None;
    for _ in 0..12 {
        clock.advance(SignedDuration::from_hours(12));
        let out = drive(&m, &query, send).unwrap();
        let events = out[0].result.as_ref().unwrap();
        assert!(events.len() >= last_len);
        last_len = events.len();
        last_state = events[0].state;
    }
    assert_eq!(last_state, Some(State::Delivered));

    sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 9,
        ..Faults::default()
    })
    .unwrap();
    let err = drive(&m, &query, send).unwrap_err();
    assert_eq!(
        err,
        waybill_sdk::PluginError::RateLimited {
            retry_after_secs: Some(9)
        }
    );

    let wrong_key = plugin
        .instantiate(&Config::from_pairs([("base_url", sim.base_url())]))
        .unwrap();
    sim.set_faults(Faults::default()).unwrap();
    assert_eq!(
        drive(&wrong_key, &query, send).unwrap_err().kind(),
        "unauthorized"
    );
    let now: Timestamp = sim.now();
    assert!(now > "2024-05-06T00:00:00Z".parse::<Timestamp>().unwrap());
    runtime.block_on(sim.shutdown()).unwrap();
}
