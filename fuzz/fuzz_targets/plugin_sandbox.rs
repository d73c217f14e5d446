//! The sandbox plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_sandbox::Sandbox as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("base_url", "http://127.0.0.1:9"), ("api_key", "k")]),
            plugin::query(&[("sandbox", "SB20240501001", None)]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
