//! End-to-end tests of waybill live in `tests/e2e.rs` (one binary: `lifecycle`, `crash`);
//! this library is empty.
