//! # waybill-core
//!
//! The pure heart of waybill: everything here is a function of its inputs, time included.
//! No sockets, no runtime, no database.
//!
//! - [`state`]: the one status model ([`state::State`], [`state::Phase`]) and its dialects.
//! - [`model`]: [`model::Waybill`], [`model::TrackEvent`], [`model::Trace`].
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

pub mod carrier;
pub mod guess;
pub mod model;
pub mod state;
