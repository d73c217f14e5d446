//! waybill-host as a library: the daemon's engine (store, scheduler, push delivery) so the
//! `waybill` binary, the HTTP API and end-to-end tests embed the same code.

pub mod api;
pub mod config;
pub mod engine;
pub mod plugin;
pub mod push;
pub mod scheduler;
pub mod store;
