//! The store contract: what every [`Store`](waybill_host::store::Store) must do, written
//! once against the trait and run against every backend.
//!
//! Each test is one property. It runs once per backend that [`harness::backends`] finds,
//! each time on a fresh database ([`harness::TestDb`]); a failure names the backend. The
//! concurrency tests open two handles on one database, standing for two daemons that share
//! it, and make them race.
//!
//! SQLite always runs. PostgreSQL runs when `WAYBILL_TEST_DATABASE_URL` names a server
//! (see [`harness::postgres_db`]).

// The crate root sits in tests/, so its modules are named by path into store_contract/.
#[macro_use]
#[path = "store_contract/harness.rs"]
mod harness;

#[path = "store_contract/concurrency.rs"]
mod concurrency;
#[path = "store_contract/fixtures.rs"]
mod fixtures;
#[path = "store_contract/outbox.rs"]
mod outbox;
#[path = "store_contract/records.rs"]
mod records;
#[path = "store_contract/scheduling.rs"]
mod scheduling;
#[path = "store_contract/subscriptions.rs"]
mod subscriptions;
#[path = "store_contract/tenants.rs"]
mod tenants;
