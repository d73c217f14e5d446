//! Runs the SDK's conformance suite against the built `libwaybill_carrier_ups.so`,
//! through both steps (token, then track).

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::{drive, Config, HttpResponse, Query, State};

const SECRET: &str = "ups-conformance-secret-01";

fn config() -> Config {
    Config::from_pairs([("client_id", "ups-conformance"), ("client_secret", SECRET)])
}

#[test]
fn ups_passes_the_conformance_suite_through_its_so() {
    let plugin = conformance::load_built("waybill_carrier_ups");
    assert_eq!(plugin.manifest().codes, vec!["ups"]);
    let sample = Query::single("ups", "1Z999AA10123456784")
        .with_nonce(7)
        .at(1_741_060_000_000);
    Suite::from_fixture_dir(config(), sample, &waybill_sdk::fixture_dir!()).run_loaded(&plugin);
}

#[test]
fn the_loaded_plugin_tracks_through_both_steps_without_leaking_the_secret() {
    let m = conformance::load_built("waybill_carrier_ups")
        .instantiate(&config())
        .unwrap();
    let mut seen = Vec::new();
    let out = drive(
        &m,
        &Query::single("ups", "1Z999AA10123456784").with_nonce(3),
        |req| {
            seen.push(req.clone());
            let body: &[u8] = if req.url.ends_with("/oauth/token") {
                include_bytes!("../fixtures/token_ok.json")
            } else {
                include_bytes!("../fixtures/track_delivered.json")
            };
            HttpResponse::new(200, body.to_vec())
        },
    )
    .unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| !r.state.contains(SECRET)));
    assert_eq!(
        out[0].result.as_ref().unwrap()[0].state,
        Some(State::Delivered)
    );
}
