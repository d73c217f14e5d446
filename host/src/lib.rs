//! waybill-host as a library: the daemon's engine, so the `waybill` binary, the HTTP API,
//! the demo and end-to-end tests embed the same code.
//!
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation; group commit
//!   for subscriptions ([`store::SubscribeBatcher`]).
//! - [`scheduler`]: claims due subscriptions, asks carriers within their limits, applies
//!   core's policy and kuaidi100's terminal rules.
//! - [`push`]: kuaidi100 push rendering, HTTP delivery, the outbox worker (retries, dead
//!   letters) and the callback URL check.
//! - [`engine`]: [`engine::Engine`] ties them together on an injected clock.
//! - [`guess`]: the autoCheck's guesser over core's carrier guesser.
//! - [`sandbox`]: simulator + sandbox plugin + store + engine in one process (demo, tests).
//! - [`listen`]: the HTTP listener's connection cap and header/idle timeouts.
//! - [`latency`]: change→push latency in real time on a virtual clock.

pub mod api;
pub mod config;
pub mod dialect;
pub mod engine;
pub mod eta;
pub mod guess;
pub mod latency;
pub mod listen;
pub mod plugin;
pub mod problems;
pub mod push;
pub mod receiver;
pub mod retention;
pub mod sandbox;
pub mod scheduler;
pub mod store;
