//! Carrier plugins in the host: discovery and loading ([`registry`]), the adapter that
//! makes a plugin a core `Carrier` ([`adapter`]). Events a plugin leaves without a state
//! are classified by core's text normalizer.

pub mod adapter;
pub mod registry;
