//! A small keyword classifier for trace lines a plugin left without a state.
//!
//! It stands in for core's text normalizer (`waybill_core::normalize`), which replaces it
//! where the adapter is built (`cmd::track`); the adapter only sees `Arc<dyn Normalizer>`.

use waybill_core::carrier::{Classification, Normalizer, RawLine};
use waybill_core::state::State;

/// Keywords in the order they are tried: the first match decides.
const RULES: &[(&str, &[&str], State)] = &[
    ("kw:refused", &["拒收", "refused"], State::Refused),
    (
        "kw:returning",
        &["退回", "returned to sender"],
        State::Returning,
    ),
    ("kw:locker", &["快递柜", "驿站", "locker"], State::InLocker),
    ("kw:delivered", &["签收", "delivered"], State::Delivered),
    (
        "kw:out_for_delivery",
        &["派件", "派送", "out for delivery"],
        State::OutForDelivery,
    ),
    (
        "kw:collected",
        &["揽收", "揽件", "picked up"],
        State::Collected,
    ),
    ("kw:arrived", &["到达", "arrived"], State::AtTransferCentre),
    (
        "kw:departed",
        &["离开", "发往", "departed"],
        State::InTransit,
    ),
];

/// Classifies by keyword; lines matching nothing are `InTransit` with rule `kw:default`.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeywordNormalizer;

impl Normalizer for KeywordNormalizer {
    fn classify(&self, line: &RawLine<'_>) -> Classification {
        let text = line.text.to_lowercase();
        let (rule, state) = RULES
            .iter()
            .find(|(_, words, _)| words.iter().any(|w| text.contains(w)))
            .map(|(rule, _, state)| (*rule, *state))
            .unwrap_or(("kw:default", State::InTransit));
        Classification {
            state,
            rule: rule.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(text: &str) -> State {
        KeywordNormalizer
            .classify(&RawLine {
                text,
                ..Default::default()
            })
            .state
    }

    #[test]
    fn refusal_wins_over_the_word_sign() {
        assert_eq!(state("收件人拒收，未签收"), State::Refused);
        assert_eq!(state("已签收，签收人：本人"), State::Delivered);
        assert_eq!(state("Out for delivery"), State::OutForDelivery);
        assert_eq!(state("something else"), State::InTransit);
    }
}
