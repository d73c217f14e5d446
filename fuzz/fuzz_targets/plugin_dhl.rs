//! The dhl plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_dhl::Dhl as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("api_key", "KEY0001")]),
            plugin::query(&[("dhl", "00340434161094042557", None)]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
