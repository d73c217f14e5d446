//! # waybill-sdk
//!
//! Everything needed to write a waybill carrier plugin, and everything the host needs to
//! load one.
//!
//! A plugin is a plain Rust type implementing [`CarrierPlugin`]: a sans-IO state machine
//! that turns a [`Query`] into [`HttpRequest`]s and the [`HttpResponse`]s into
//! [`RawEvent`]s. [`export_carrier!`] turns it into a `cdylib` the host loads at run time.
//! The plugin never opens a socket, never owns a runtime, and never sees `abi_stable`.
//!
//! ```
//! use waybill_sdk::*;
//!
//! struct Tiny;
//! impl CarrierPlugin for Tiny {
//!     fn manifest() -> Manifest {
//!         Manifest { codes: vec!["tiny".into()], name_en: "Tiny".into(), ..Default::default() }
//!     }
//!     fn new(_config: &Config) -> Result<Self, PluginError> { Ok(Tiny) }
//!     fn start(&self, q: &Query) -> Step {
//!         let no = &q.waybills[0].number;
//!         Step::Send(HttpRequest::get(format!("https://tiny.invalid/{no}")).state(no.clone()))
//!     }
//!     fn resume(&self, number: &str, resp: &HttpResponse) -> Step {
//!         if let Some(e) = resp.status_error() { return Step::Failed(e); }
//!         Step::Done(vec![WaybillOutcome::events(number,
//!             vec![RawEvent::new("2024-05-01 10:00", resp.text())])])
//!     }
//! }
//! export_carrier!(Tiny);
//!
//! // The same state machine, driven in-process with a canned transport:
//! let m = InProcess::<Tiny>::new(&Config::new()).unwrap();
//! let out = drive(&m, &Query::single("tiny", "T1"), |_| HttpResponse::new(200, "已揽收")).unwrap();
//! assert_eq!(out[0].number, "T1");
//! ```
//!
//! ## Modules
//! - [`types`]: the plain data types (re-exported at the root).
//! - [`plugin`]: [`CarrierPlugin`], [`StepMachine`], [`InProcess`], [`drive`].
//! - [`ffi`]: the `abi_stable` boundary (prefix-type root module, [`SDK_VERSION`]).
//! - [`zone`]: the time zone of a scan's place, for carriers that print local times.
//! - [`guess`]: number rules and manifests as rules of core's carrier guesser.
//! - [`loader`]: load one file or a directory of `libwaybill_carrier_*.so`.
//! - `conformance` (feature `conformance`): the suite every plugin runs.
//!
//! ## Compatibility rules
//! - [`SDK_VERSION`] is the ABI version. A host loads plugins with the same major.
//! - The root module is an `abi_stable` prefix type: entry points are only ever
//!   appended. The manifest crosses as JSON with defaults, so its fields grow freely.
//! - Types the host fills are `#[non_exhaustive]`; types the plugin fills implement
//!   `Default`. Use `..Default::default()` in struct literals.
//! - Only the loader touches `abi_stable` (unmaintained since 2023): another loader
//!   (wasm, subprocess) could replace it without changing any carrier.

pub mod ffi;
pub mod guess;
pub mod loader;
pub mod plugin;
pub mod types;
pub mod zone;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use ffi::SDK_VERSION;
pub use plugin::{drive, CarrierPlugin, InProcess, StepMachine, MAX_STEPS};
pub use types::{
    percent_encode, redact, returned_signatures, Capabilities, CodeTable, Config, ConfigKey,
    DocumentedCode, HttpRequest, HttpResponse, Manifest, NumberRule, PluginError, Query,
    QueryWaybill, RawEvent, RuleRank, Step, WaybillOutcome,
};
/// The status model (a state and its phase), re-exported so plugins need no direct
/// `waybill-core` dependency.
pub use waybill_core::state::{Phase, State};
