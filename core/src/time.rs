//! The time types of the public API, re-exported from [`jiff`] so an application needs no
//! `jiff` dependency of its own (nor one of another version, whose types would not fit).
//!
//! [`crate::model::EventTime`] is a carrier's local time with its offset; instants are
//! [`Timestamp`]s, delays [`SignedDuration`]s, and a [`crate::clock::Clock`] gives the
//! time. The whole crate is [`crate::jiff`] for anything more.
//!
//! ```
//! use waybill_core::model::EventTime;
//! use waybill_core::time::{Offset, SignedDuration, Timestamp};
//!
//! let at: Timestamp = "2024-05-01T02:00:00Z".parse().unwrap();
//! let local = EventTime::new(at, Offset::constant(8));
//! assert_eq!(local.kuaidi100(), "2024-05-01 10:00:00");
//! assert_eq!(at + SignedDuration::from_hours(4), "2024-05-01T06:00:00Z".parse().unwrap());
//! ```

pub use jiff::civil::DateTime;
pub use jiff::tz::Offset;
pub use jiff::{SignedDuration, Timestamp};
