//! The carrier guesser on any text: never a panic, and every candidate it names is one of
//! the carriers it knows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waybill_core::guess::Guesser;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let guesser = Guesser::embedded();
    if let Ok(candidates) = guesser.guess(text) {
        for c in &candidates {
            assert!(!format!("{c:?}").is_empty());
        }
    }
});
