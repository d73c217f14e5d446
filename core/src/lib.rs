//! # waybill-core
//!
//! The pure heart of waybill: everything here is a function of its inputs, time included.
//! No sockets, no runtime, no database.
//!
//! - [`state`]: the one status model ([`state::State`], [`state::Phase`]) and its
//!   regression guard.
//! - [`dialect`]: kuaidi100, Kdniao and AfterShip status codes as tables over
//!   [`state::State`].
//! - [`model`]: [`model::Waybill`], [`model::TrackEvent`], [`model::Trace`].
//! - [`normalize`]: reading trace lines: a carrier's text to a [`state::State`] with the
//!   rule (or model) that decided it ([`normalize::TextNormalizer`]).
//! - [`guess`]: which carrier issued a tracking number ([`guess::Guesser`]), from number
//!   formats kept as data, a learned [`guess::Prior`], and the number's
//!   [`guess::canonical`] form.
//! - [`policy`]: when to check a waybill next, or stop (shutdown / abort).
//! - [`eta`]: arrival estimates learned per lane ([`eta::Lanes`], [`eta::Estimate`]).
//! - [`problem`]: problem flags (Kdniao 问题件 401–423, kuaidi100 疑难 2xx) from the trace,
//!   thresholds and `now` ([`problem::flags`]), and when the next one is due
//!   ([`problem::next_change_at`]).
//! - [`sign`]: kuaidi100 and Kdniao MD5 signs, Standard Webhooks and AfterShip HMACs, and
//!   their constant-time checks.
//! - [`reminder`]: node reminders (物流节点提醒): which chosen moments a new trace reaches.
//! - [`receive`]: the subscriber's side of a push: [`receive::Kuaidi100Push`] checked and
//!   parsed.
//! - [`place`]: the place of every trace line and of an address ([`place::Place`],
//!   GB/T 2260 codes, kuaidi100 `areaCode`/`areaName`).
//! - [`clock`]: time as an input ([`clock::Clock`], [`clock::ManualClock`]).
//! - [`time`]: the `jiff` types of the API ([`time::Timestamp`], [`time::Offset`],
//!   [`time::SignedDuration`]), re-exported; the whole crate is [`jiff`].
//! - [`carrier`]: the [`carrier::Carrier`], [`carrier::Normalizer`] and
//!   [`carrier::Notifier`] traits.
//!
//! ```
//! use waybill_core::model::{Trace, Waybill};
//! use waybill_core::state::State;
//! let w = Waybill::new("sandbox", "SB0001");
//! let trace = Trace::from_events(&w.company, &w.number, vec![]);
//! assert_eq!(trace.state, State::NoTrace);
//! ```

pub use jiff;

pub mod carrier;
pub mod clock;
pub mod dialect;
pub mod eta;
pub mod guess;
pub mod model;
pub mod normalize;
pub mod place;
pub mod policy;
pub mod problem;
pub mod receive;
pub mod reminder;
pub mod shipper;
pub mod sign;
pub mod state;
pub mod time;
