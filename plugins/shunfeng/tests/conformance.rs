//! Runs the SDK's conformance suite against the built `libwaybill_carrier_shunfeng.so`.

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::loader::LoadedPlugin;
use waybill_sdk::{Config, HttpResponse, Query, QueryWaybill, State, Step, StepMachine};

const STATE: &str = "routes:SF1400000000017,SF1400000000025";
const CHECKWORD: &str = "cw-conformance-0123456789";

fn load() -> LoadedPlugin {
    conformance::load_built("waybill_carrier_shunfeng")
}

fn ok(body: &[u8]) -> HttpResponse {
    HttpResponse::new(200, body.to_vec())
}

fn config() -> Config {
    Config::from_pairs([("partner_id", "PARTNER01"), ("checkword", CHECKWORD)])
}

/// The suite, with the fixtures of `fixtures/conformance.json`.
fn suite() -> Suite {
    let sample = Query::new(vec![
        QueryWaybill::new("shunfeng", "SF1400000000017").with_phone("13800005678"),
        QueryWaybill::new("shunfeng", "SF1400000000025"),
    ])
    .at(1_741_060_000_000);
    Suite::from_fixture_dir(config(), sample, &waybill_sdk::fixture_dir!())
}

#[test]
fn shunfeng_passes_the_conformance_suite_through_its_so() {
    let plugin = load();
    let m = plugin.manifest();
    assert_eq!(m.codes, vec!["shunfeng", "sf"]);
    assert!(m.capabilities.needs_phone);
    assert_eq!(m.capabilities.max_batch, 10);
    suite().run_loaded(&plugin);
}

#[test]
fn the_loaded_plugin_maps_routes_and_keeps_the_checkword_out() {
    let m = load().instantiate(&config()).unwrap();
    let Step::Done(out) = m.resume(STATE, &ok(include_bytes!("../fixtures/delivered.json"))) else {
        panic!("expected Done")
    };
    assert_eq!(
        out[0].result.as_ref().unwrap().last().unwrap().state,
        Some(State::DeliveredFromLocker)
    );
    let Step::Send(req) = m.start(&suite().sample) else {
        panic!("expected a request")
    };
    assert!(!req.state.contains(CHECKWORD));
    assert!(!String::from_utf8_lossy(&req.body).contains(CHECKWORD));
    let Step::Failed(e) = m.resume(STATE, &ok(include_bytes!("../fixtures/bad_digest.json")))
    else {
        panic!("expected a failure")
    };
    assert!(!e.to_string().contains(CHECKWORD));
}
