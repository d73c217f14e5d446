//! Runs the SDK's conformance suite against the built `libwaybill_carrier_hexi.so`.

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::{Config, HttpResponse, Query, QueryWaybill, Step, StepMachine};

const NUMBERS: &str = "HX240501000017,HX240501000025";

fn ok(body: &[u8]) -> HttpResponse {
    HttpResponse::new(200, body.to_vec())
}

/// The suite, with the fixtures of `fixtures/conformance.json`.
fn suite() -> Suite {
    let config = Config::from_pairs([("client_id", "demo"), ("client_secret", "not-a-secret")]);
    let sample = Query::new(vec![
        QueryWaybill::new("hexi", "HX240501000017"),
        QueryWaybill::new("hexi", "HX240501000025"),
    ]);
    Suite::from_fixture_dir(config, sample, &waybill_sdk::fixture_dir!())
}

#[test]
fn hexi_passes_the_conformance_suite_through_its_so() {
    let plugin = conformance::load_built("waybill_carrier_hexi");
    assert_eq!(plugin.manifest().codes, vec!["hexi", "hexiexpress"]);
    suite().run_loaded(&plugin);
}

#[test]
fn hexi_maps_its_own_codes_and_reports_unknown_numbers() {
    let plugin = conformance::load_built("waybill_carrier_hexi");
    let m = plugin.instantiate(&suite().config).unwrap();
    let step = m.resume(
        &format!("track:{NUMBERS}"),
        &ok(include_bytes!("../fixtures/track_ok.json")),
    );
    let Step::Done(outcomes) = step else {
        panic!("expected Done, got {step:?}")
    };
    assert_eq!(outcomes.len(), 2);
    let events = outcomes[0].result.as_ref().unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[4].raw_code.as_deref(), Some("SIGNED"));
    assert_eq!(events[4].state, Some(waybill_sdk::State::Delivered));
    assert_eq!(outcomes[1].result.as_ref().unwrap_err().kind(), "not_found");
}

#[test]
fn hexi_refuses_to_start_without_credentials_and_names_the_key() {
    let plugin = conformance::load_built("waybill_carrier_hexi");
    let err = plugin
        .instantiate(&Config::from_pairs([("client_id", "demo")]))
        .err()
        .unwrap();
    assert_eq!(err.kind(), "config");
    assert!(err.to_string().contains("client_secret"));
}

#[test]
fn the_secret_goes_only_into_the_token_request_body() {
    let plugin = conformance::load_built("waybill_carrier_hexi");
    let m = plugin.instantiate(&suite().config).unwrap();
    let Step::Send(req) = m.start(&suite().sample) else {
        panic!("expected a token request")
    };
    assert!(String::from_utf8_lossy(&req.body).contains("not-a-secret"));
    assert!(!req.state.contains("not-a-secret"));
    assert!(!req.url.contains("not-a-secret"));
}
