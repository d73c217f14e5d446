//! Runs the SDK's conformance suite against the built `libwaybill_carrier_zto.so`.

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::loader::LoadedPlugin;
use waybill_sdk::{Config, HttpResponse, Query, QueryWaybill, State, Step, StepMachine};

const STATE: &str = "track:73100000000017";
const SECRET: &str = "zto-conformance-0123456789";

fn load() -> LoadedPlugin {
    conformance::load_built("waybill_carrier_zto")
}

fn ok(body: &[u8]) -> HttpResponse {
    HttpResponse::new(200, body.to_vec())
}

fn config() -> Config {
    Config::from_pairs([("app_key", "APPKEY01"), ("app_secret", SECRET)])
}

/// The suite, with the fixtures of `fixtures/conformance.json`.
fn suite() -> Suite {
    let sample = Query::new(vec![
        QueryWaybill::new("zhongtong", "73100000000017").with_phone("13800005678")
    ]);
    Suite::from_fixture_dir(config(), sample, &waybill_sdk::fixture_dir!())
}

#[test]
fn zto_passes_the_conformance_suite_through_its_so() {
    let plugin = load();
    let m = plugin.manifest();
    assert_eq!(m.codes, vec!["zhongtong", "zto"]);
    assert_eq!(m.capabilities.max_batch, 1);
    suite().run_loaded(&plugin);
}

#[test]
fn the_loaded_plugin_maps_scans_and_keeps_the_secret_out() {
    let m = load().instantiate(&config()).unwrap();
    let Step::Done(out) = m.resume(STATE, &ok(include_bytes!("../fixtures/every_type.json")))
    else {
        panic!("expected Done")
    };
    let events = out[0].result.as_ref().unwrap();
    assert_eq!(events.last().unwrap().state, Some(State::Delivered));
    assert_eq!(events[7].state, Some(State::DeliveredByProxy));
    let Step::Send(req) = m.start(&suite().sample) else {
        panic!("expected a request")
    };
    assert!(!req.state.contains(SECRET));
    assert!(!String::from_utf8_lossy(&req.body).contains(SECRET));
    assert!(req.headers.iter().all(|(_, v)| !v.contains(SECRET)));
    let Step::Failed(e) = m.resume(STATE, &ok(include_bytes!("../fixtures/bad_digest.json")))
    else {
        panic!("expected a failure")
    };
    assert_eq!(e.kind(), "unauthorized");
    assert!(!e.to_string().contains(SECRET));
}
