//! The ups plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_ups::Ups as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("client_id", "ups-fuzz"), ("client_secret", "SECRET01")]),
            plugin::query(&[("ups", "1Z999AA10123456784", None)]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
