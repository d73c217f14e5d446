//! The trace normalizer on any text, line by line and as a whole trace: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waybill_core::carrier::{Normalizer, RawLine};
use waybill_core::normalize::TextNormalizer;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let n = TextNormalizer::builtin();
    for line in text.lines() {
        let c = n.classify(&RawLine {
            text: line,
            ..Default::default()
        });
        assert!(!c.rule.is_empty(), "every answer names what decided it");
    }
    let _ = n.scrubbed(text);
});
