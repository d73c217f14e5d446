//! End-to-end: the daemon's engine with the sandbox simulator and plugin, pushing to a
//! real HTTP receiver.
//!
//! - `lifecycle`: 1,000 waybills on a virtual clock, each to its end; a healthy receiver
//!   gets each change exactly once and in order, a flaky one at least once and in order.
//! - `crash`: the `waybill` binary killed with SIGKILL at random moments and restarted on
//!   the same data directory loses no subscription and no push, and never goes backwards.
//! - `migrate`: a sandbox run's SQLite store copied to PostgreSQL (`waybill migrate`) reads
//!   the same there; runs only with `WAYBILL_TEST_DATABASE_URL`.

mod crash;
mod import;
mod kdniao;
mod lifecycle;
mod log;
mod migrate;
mod multi_daemon;
mod native;
mod place;
mod sandbox_restart;
mod support;
