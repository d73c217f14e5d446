//! The autoCheck's guesser over core's carrier guesser: when a subscription has had no
//! trace for three days, the scheduler asks [`CompanyGuesser::candidates`] which other
//! carriers the number could belong to, and tries those it has a plugin for.
//!
//! ```
//! use waybill_host::guess::CoreGuesser;
//! use waybill_host::scheduler::CompanyGuesser;
//! let g = CoreGuesser::embedded();
//! // A China Post / EMS style S10 number: several carriers are possible, best first,
//! // each named once.
//! let c = g.candidates("EA123456785CN");
//! assert!(!c.is_empty());
//! let mut unique = c.clone();
//! unique.sort();
//! unique.dedup();
//! assert_eq!(unique.len(), c.len());
//! ```

use std::sync::Arc;

use waybill_core::guess::Guesser;

use crate::scheduler::CompanyGuesser;

/// [`CompanyGuesser`] backed by a [`waybill_core::guess::Guesser`] (the embedded rules,
/// or rules extended with those of loaded plugins).
#[derive(Clone)]
pub struct CoreGuesser {
    guesser: Arc<Guesser>,
}

impl CoreGuesser {
    /// Uses `guesser`.
    pub fn new(guesser: Arc<Guesser>) -> Self {
        Self { guesser }
    }

    /// Uses core's embedded rules.
    pub fn embedded() -> Self {
        Self::new(Arc::new(Guesser::embedded().clone()))
    }
}

impl CompanyGuesser for CoreGuesser {
    fn candidates(&self, number: &str) -> Vec<String> {
        // A number the guesser refuses (empty, too long, control characters) simply has
        // no other carrier to try.
        let Ok(found) = self.guesser.guess(number) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::with_capacity(found.len());
        for c in found {
            if !out.iter().any(|o| o == c.carrier) {
                out.push(c.carrier.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_no_format_fits_has_no_candidates() {
        assert!(CoreGuesser::embedded().candidates("").is_empty());
        assert!(CoreGuesser::embedded().candidates("\u{7}").is_empty());
    }

    #[test]
    fn an_sf_number_names_shunfeng_first() {
        let c = CoreGuesser::embedded().candidates("SF1234567890123");
        assert_eq!(c.first().map(String::as_str), Some("shunfeng"), "{c:?}");
    }
}
