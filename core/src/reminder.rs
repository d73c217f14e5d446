//! Node reminders (Kdniao's 物流节点提醒): the moments of a journey a subscriber asked to
//! be told about, and which of them a new trace has just reached.
//!
//! A reminder is reached by the first line of its kind that is newer than everything the
//! subscriber has already seen, so a trace read again, or a second out-for-delivery after
//! a failed attempt, reminds once per journey and never twice. `Problem` is reached when
//! a problem flag appears; the caller knows that from the flags, not from the lines.
//!
//! ```
//! use waybill_core::model::{EventTime, Trace, TrackEvent};
//! use waybill_core::reminder::{reached, Reminder};
//! use waybill_core::state::State;
//!
//! let at = |t: &str| t.parse::<EventTime>().unwrap();
//! let trace = Trace::from_events("sandbox", "SB1", vec![
//!     TrackEvent::new(at("2024-05-01 08:00:00"), "已揽收", State::Collected),
//!     TrackEvent::new(at("2024-05-02 09:00:00"), "派件中", State::OutForDelivery),
//!     TrackEvent::new(at("2024-05-02 11:00:00"), "已放入快递柜", State::InLocker),
//! ]);
//! let seen = Some(at("2024-05-01 08:00:00").at);
//! let wanted = [Reminder::OutForDelivery, Reminder::Locker, Reminder::Signed];
//! assert_eq!(reached(&trace, None, seen, &wanted), [Reminder::OutForDelivery, Reminder::Locker]);
//! // Seen already: nothing new to tell.
//! let seen = Some(at("2024-05-02 11:00:00").at);
//! assert!(reached(&trace, None, seen, &wanted).is_empty());
//! ```

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::eta::Milestones;
use crate::model::Trace;
use crate::state::Phase;

/// A moment of the journey a subscriber can ask to be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reminder {
    /// Arrived in the destination city.
    DestinationCity,
    /// Out for delivery.
    OutForDelivery,
    /// Placed in a locker or station for pickup.
    Locker,
    /// Signed for.
    Signed,
    /// A problem flag appeared.
    Problem,
}

impl Reminder {
    /// Every reminder, in journey order.
    pub const ALL: [Reminder; 5] = [
        Reminder::DestinationCity,
        Reminder::OutForDelivery,
        Reminder::Locker,
        Reminder::Signed,
        Reminder::Problem,
    ];

    /// The snake_case name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Reminder::DestinationCity => "destination_city",
            Reminder::OutForDelivery => "out_for_delivery",
            Reminder::Locker => "locker",
            Reminder::Signed => "signed",
            Reminder::Problem => "problem",
        }
    }
}

/// When `trace` first reached each line-based reminder (`Problem` is never here).
fn first_lines(trace: &Trace, to: Option<&str>) -> [(Reminder, Option<Timestamp>); 4] {
    let m = Milestones::of(trace, to);
    let first = |f: &dyn Fn(Phase) -> bool| {
        trace
            .data
            .iter()
            .rev()
            .find(|e| f(e.state.phase()))
            .map(|e| e.time.at)
    };
    [
        (Reminder::DestinationCity, m.destination_city),
        (
            Reminder::OutForDelivery,
            first(&|p| p == Phase::OutForDelivery),
        ),
        (Reminder::Locker, first(&|p| p == Phase::AvailableForPickup)),
        (Reminder::Signed, first(&|p| p == Phase::Delivered)),
    ]
}

/// The reminders in `wanted` that `trace` (to `to`) reaches with lines newer than `seen`
/// (the newest line the subscriber was already told of; `None`: nothing yet), in journey
/// order.
pub fn reached(
    trace: &Trace,
    to: Option<&str>,
    seen: Option<Timestamp>,
    wanted: &[Reminder],
) -> Vec<Reminder> {
    first_lines(trace, to)
        .into_iter()
        .filter(|(r, at)| {
            wanted.contains(r) && at.is_some_and(|at| seen.is_none_or(|seen| at > seen))
        })
        .map(|(r, _)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventTime, TrackEvent};
    use crate::state::State;

    fn at(t: &str) -> EventTime {
        t.parse().unwrap()
    }

    #[test]
    fn a_second_round_after_a_failed_attempt_does_not_remind_again() {
        let trace = Trace::from_events(
            "sandbox",
            "SB1",
            vec![
                TrackEvent::new(at("2024-05-02 09:00:00"), "派件中", State::OutForDelivery),
                TrackEvent::new(
                    at("2024-05-02 12:00:00"),
                    "派件未成功",
                    State::AttemptFailed,
                ),
                TrackEvent::new(at("2024-05-03 09:00:00"), "再次派件", State::OutForDelivery),
            ],
        );
        let seen = Some(at("2024-05-02 12:00:00").at);
        assert!(reached(&trace, None, seen, &[Reminder::OutForDelivery]).is_empty());
        assert_eq!(
            reached(&trace, None, None, &[Reminder::OutForDelivery]),
            [Reminder::OutForDelivery]
        );
    }

    #[test]
    fn signed_and_destination_city_come_from_their_first_lines() {
        let mut trace = Trace::from_events(
            "sandbox",
            "SB1",
            vec![
                TrackEvent::new(
                    at("2024-05-01 08:00:00"),
                    "【深圳市】已揽收",
                    State::Collected,
                ),
                TrackEvent::new(
                    at("2024-05-02 06:00:00"),
                    "快件到达【北京转运中心】",
                    State::InTransit,
                ),
                TrackEvent::new(at("2024-05-02 11:00:00"), "已签收", State::Delivered),
            ],
        );
        trace.locate(None, Some("北京市朝阳区"));
        let all = Reminder::ALL;
        assert_eq!(
            reached(
                &trace,
                Some("北京市朝阳区"),
                Some(at("2024-05-01 08:00:00").at),
                &all
            ),
            [Reminder::DestinationCity, Reminder::Signed]
        );
        assert!(
            reached(&trace, None, None, &[]).is_empty(),
            "nothing asked, nothing told"
        );
    }
}
