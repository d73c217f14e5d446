//! The fedex plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_fedex::Fedex as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("client_id", "l7xx-fuzz"), ("client_secret", "SECRET01")]),
            plugin::query(&[
                ("fedex", "794600000017", None),
                ("fedex", "794600000025", None),
            ]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
