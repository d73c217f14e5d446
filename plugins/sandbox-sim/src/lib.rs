//! # waybill-sandbox-sim
//!
//! The sandbox carrier: a simulated courier that waybill's daemon, demo and end-to-end
//! tests poll instead of a real one.
//!
//! - [`journey`]: the deterministic life of a parcel per tracking number (pure).
//! - [`wire`]: the sandbox's HTTP wire format (serde types only, no runtime).
//! - `server` (feature `server`, on by default): the simulator, an HTTP server on a
//!   clock that may run faster than real time, with fault injection.
//!
//! The carrier plugin depends on this crate with `default-features = false` and uses only
//! [`wire`].

pub mod journey;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

pub use journey::SimError;
