//! Carrier plugins in the host: discovery and loading ([`registry`]), the adapter that
//! makes a plugin a core `Carrier` ([`adapter`]), and the keyword classifier used for
//! events a plugin leaves without a state ([`keywords`]).

pub mod adapter;
pub mod keywords;
pub mod registry;
