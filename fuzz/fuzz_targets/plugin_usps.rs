//! The usps plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_usps::Usps as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("client_id", "usps-fuzz"), ("client_secret", "SECRET01")]),
            plugin::query(&[("usps", "9400100000000000000017", None)]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
