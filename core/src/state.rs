//! The one status model every dialect renders from.
//!
//! [`State`] is a flat enum of sub-states; [`Phase`] groups them into the main states a
//! user sees. A flat enum keeps the dialect tables (kuaidi100, Kdniao, AfterShip) one row
//! per variant, and makes "is this a regression?" a question about two values.

use serde::{Deserialize, Serialize};

/// The main state of a parcel: what a user sees at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The carrier has nothing for this number yet.
    NoTrace,
    /// An order exists; the parcel has not been collected.
    InfoReceived,
    /// The carrier has the parcel.
    Collected,
    /// Moving through the network.
    InTransit,
    /// With a courier for delivery.
    OutForDelivery,
    /// Waiting in a locker, station or pickup point.
    AvailableForPickup,
    /// Signed for.
    Delivered,
    /// A delivery attempt failed.
    AttemptFailed,
    /// Something is wrong and needs attention.
    Problem,
    /// The recipient refused it.
    Refused,
    /// On its way back to the sender.
    Returning,
    /// Back with the sender and signed for.
    Returned,
    /// Handed to another carrier.
    HandedOver,
    /// In customs.
    Customs,
}

impl Phase {
    /// Every phase, in declaration order.
    pub const ALL: [Phase; 14] = [
        Phase::NoTrace,
        Phase::InfoReceived,
        Phase::Collected,
        Phase::InTransit,
        Phase::OutForDelivery,
        Phase::AvailableForPickup,
        Phase::Delivered,
        Phase::AttemptFailed,
        Phase::Problem,
        Phase::Refused,
        Phase::Returning,
        Phase::Returned,
        Phase::HandedOver,
        Phase::Customs,
    ];

    /// The snake_case name used in JSON and on the command line.
    ///
    /// ```
    /// use waybill_core::state::{Phase, State};
    /// assert_eq!(Phase::AvailableForPickup.name(), "available_for_pickup");
    /// assert_eq!(State::InLocker.phase().name(), "available_for_pickup");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Phase::NoTrace => "no_trace",
            Phase::InfoReceived => "info_received",
            Phase::Collected => "collected",
            Phase::InTransit => "in_transit",
            Phase::OutForDelivery => "out_for_delivery",
            Phase::AvailableForPickup => "available_for_pickup",
            Phase::Delivered => "delivered",
            Phase::AttemptFailed => "attempt_failed",
            Phase::Problem => "problem",
            Phase::Refused => "refused",
            Phase::Returning => "returning",
            Phase::Returned => "returned",
            Phase::HandedOver => "handed_over",
            Phase::Customs => "customs",
        }
    }
}

/// A parcel's state with its sub-state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No trace yet.
    NoTrace,
    /// Order information received (kuaidi100 101).
    OrderReceived,
    /// Awaiting pickup by the courier (kuaidi100 102, Kdniao 10).
    AwaitingCollection,
    /// Collected by the carrier.
    Collected,
    /// In transit with no finer detail.
    InTransit,
    /// On a line haul between cities.
    LineHaul,
    /// At a transfer or sorting centre.
    AtTransferCentre,
    /// Dispatched from the sending outlet.
    DepartedOrigin,
    /// Arrived in the destination city.
    ArrivedDestinationCity,
    /// At the delivery outlet.
    AtDeliveryOutlet,
    /// Forwarded to a new address.
    Redirected,
    /// Out for delivery.
    OutForDelivery,
    /// Placed in a locker or station, awaiting pickup.
    InLocker,
    /// Delivered to the recipient.
    Delivered,
    /// Delivered and signed for by a proxy.
    DeliveredByProxy,
    /// Collected by the recipient from a locker or station.
    DeliveredFromLocker,
    /// Delivered after an earlier failed attempt.
    DeliveredAfterFailure,
    /// A delivery attempt failed; another may follow.
    AttemptFailed,
    /// Redelivery scheduled after a failure.
    Redelivery,
    /// A problem the carrier did not name (kuaidi100 2 疑难, Kdniao 4 问题件, AfterShip
    /// `Exception_001`).
    Problem,
    /// Recipient cannot be reached.
    Unreachable,
    /// Address is wrong or incomplete.
    AddressProblem,
    /// Recipient's phone is wrong.
    WrongPhone,
    /// Damaged.
    Damaged,
    /// Lost.
    Lost,
    /// Held at an outlet.
    Held,
    /// Outside the carrier's delivery area.
    OutOfArea,
    /// Intercepted at the sender's request.
    Intercepted,
    /// Shipment cancelled.
    Cancelled,
    /// Sorted to the wrong place.
    MisSorted,
    /// Delayed.
    Delayed,
    /// The courier removed the parcel from the locker.
    RemovedFromLocker,
    /// Not signed for long after dispatch.
    NotSignedInTime,
    /// No update for a long time.
    NotUpdatedInTime,
    /// Not collected from the locker in time.
    LockerTimeout,
    /// Refused by the recipient.
    Refused,
    /// Returning to the sender.
    Returning,
    /// Returned and signed for by the sender.
    Returned,
    /// Handed to another carrier.
    HandedOver,
    /// Awaiting customs clearance.
    CustomsAwaiting,
    /// Customs clearance in progress.
    CustomsInProgress,
    /// Cleared customs.
    CustomsCleared,
    /// Customs exception.
    CustomsException,
}

impl State {
    /// Every state, in declaration order.
    pub const ALL: [State; 43] = [
        State::NoTrace,
        State::OrderReceived,
        State::AwaitingCollection,
        State::Collected,
        State::InTransit,
        State::LineHaul,
        State::AtTransferCentre,
        State::DepartedOrigin,
        State::ArrivedDestinationCity,
        State::AtDeliveryOutlet,
        State::Redirected,
        State::OutForDelivery,
        State::InLocker,
        State::Delivered,
        State::DeliveredByProxy,
        State::DeliveredFromLocker,
        State::DeliveredAfterFailure,
        State::AttemptFailed,
        State::Redelivery,
        State::Problem,
        State::Unreachable,
        State::AddressProblem,
        State::WrongPhone,
        State::Damaged,
        State::Lost,
        State::Held,
        State::OutOfArea,
        State::Intercepted,
        State::Cancelled,
        State::MisSorted,
        State::Delayed,
        State::RemovedFromLocker,
        State::NotSignedInTime,
        State::NotUpdatedInTime,
        State::LockerTimeout,
        State::Refused,
        State::Returning,
        State::Returned,
        State::HandedOver,
        State::CustomsAwaiting,
        State::CustomsInProgress,
        State::CustomsCleared,
        State::CustomsException,
    ];

    /// The main state this sub-state belongs to.
    ///
    /// ```
    /// use waybill_core::state::{Phase, State};
    /// assert_eq!(State::DeliveredFromLocker.phase(), Phase::Delivered);
    /// ```
    pub fn phase(self) -> Phase {
        use State::*;
        match self {
            NoTrace => Phase::NoTrace,
            OrderReceived | AwaitingCollection => Phase::InfoReceived,
            Collected => Phase::Collected,
            InTransit
            | LineHaul
            | AtTransferCentre
            | DepartedOrigin
            | ArrivedDestinationCity
            | AtDeliveryOutlet
            | Redirected => Phase::InTransit,
            OutForDelivery => Phase::OutForDelivery,
            InLocker => Phase::AvailableForPickup,
            Delivered | DeliveredByProxy | DeliveredFromLocker | DeliveredAfterFailure => {
                Phase::Delivered
            }
            AttemptFailed | Redelivery => Phase::AttemptFailed,
            Problem | Unreachable | AddressProblem | WrongPhone | Damaged | Lost | Held
            | OutOfArea | Intercepted | Cancelled | MisSorted | Delayed | RemovedFromLocker
            | NotSignedInTime | NotUpdatedInTime | LockerTimeout => Phase::Problem,
            Refused => Phase::Refused,
            Returning => Phase::Returning,
            Returned => Phase::Returned,
            HandedOver => Phase::HandedOver,
            CustomsAwaiting | CustomsInProgress | CustomsCleared | CustomsException => {
                Phase::Customs
            }
        }
    }

    /// The snake_case name used in JSON and on the command line.
    ///
    /// ```
    /// assert_eq!(waybill_core::state::State::InLocker.name(), "in_locker");
    /// ```
    pub fn name(self) -> &'static str {
        STATE_NAMES[self as usize]
    }

    /// Whether the parcel needs someone's attention: every sub-state of
    /// [`Phase::Problem`] (kuaidi100 疑难, Kdniao 问题件), a failed delivery attempt, a
    /// refusal and a customs exception. A redelivery already scheduled, a return under way
    /// and customs still working are not problems.
    ///
    /// ```
    /// use waybill_core::state::State;
    /// assert!(State::AddressProblem.is_problem());
    /// assert!(State::CustomsException.is_problem());
    /// assert!(!State::CustomsInProgress.is_problem());
    /// assert!(!State::Delivered.is_problem());
    /// ```
    pub fn is_problem(self) -> bool {
        matches!(self.phase(), Phase::Problem | Phase::Refused)
            || matches!(self, State::AttemptFailed | State::CustomsException)
    }
}

const STATE_NAMES: [&str; 43] = [
    "no_trace",
    "order_received",
    "awaiting_collection",
    "collected",
    "in_transit",
    "line_haul",
    "at_transfer_centre",
    "departed_origin",
    "arrived_destination_city",
    "at_delivery_outlet",
    "redirected",
    "out_for_delivery",
    "in_locker",
    "delivered",
    "delivered_by_proxy",
    "delivered_from_locker",
    "delivered_after_failure",
    "attempt_failed",
    "redelivery",
    "problem",
    "unreachable",
    "address_problem",
    "wrong_phone",
    "damaged",
    "lost",
    "held",
    "out_of_area",
    "intercepted",
    "cancelled",
    "mis_sorted",
    "delayed",
    "removed_from_locker",
    "not_signed_in_time",
    "not_updated_in_time",
    "locker_timeout",
    "refused",
    "returning",
    "returned",
    "handed_over",
    "customs_awaiting",
    "customs_in_progress",
    "customs_cleared",
    "customs_exception",
];

impl State {
    /// True once the parcel is signed for, by the recipient or back at the sender
    /// (kuaidi100 `ischeck=1`). Polling ends here.
    pub fn is_signed(self) -> bool {
        matches!(self.phase(), Phase::Delivered | Phase::Returned)
    }

    /// How far along the forward journey a state is. Problems, customs and hand-overs can
    /// happen anywhere, so they sit at the transit level and never block progress.
    fn progress(self) -> u8 {
        match self.phase() {
            Phase::NoTrace => 0,
            Phase::InfoReceived => 1,
            Phase::Collected => 2,
            Phase::InTransit | Phase::Customs | Phase::HandedOver | Phase::Problem => 3,
            Phase::OutForDelivery | Phase::AvailableForPickup | Phase::AttemptFailed => 3,
            Phase::Refused | Phase::Returning => 4,
            Phase::Delivered => 5,
            Phase::Returned => 6,
        }
    }

    /// The regression guard: may a parcel in `self` move to `next`?
    ///
    /// A late or replayed event must not undo what is known: nothing goes back to "no
    /// trace" or "order received" once the carrier has the parcel, and a delivered parcel
    /// never returns to transit. The one way out of delivered is the modelled exception of
    /// a return after delivery (refused after signing, returning, returned), and a returned
    /// parcel is final.
    ///
    /// The guard sees only two states, so a refused or returning parcel cannot tell whether
    /// it was delivered before. It is therefore held to the same rule as a delivered one:
    /// the return leg only moves on to delivered, refused, returning or returned. Transit
    /// scans on the way back leave the state at returning.
    ///
    /// ```
    /// use waybill_core::state::State;
    /// assert!(!State::Delivered.accepts(State::InTransit));
    /// assert!(State::Delivered.accepts(State::Returning));
    /// assert!(!State::Returning.accepts(State::LineHaul));
    /// assert!(State::OutForDelivery.accepts(State::AtDeliveryOutlet));
    /// assert!(!State::Collected.accepts(State::OrderReceived));
    /// ```
    pub fn accepts(self, next: State) -> bool {
        match self.phase() {
            Phase::Returned => next.phase() == Phase::Returned,
            Phase::Delivered | Phase::Refused | Phase::Returning => matches!(
                next.phase(),
                Phase::Delivered | Phase::Refused | Phase::Returning | Phase::Returned
            ),
            _ => match next.progress() {
                0 => self.progress() == 0,
                1 => self.progress() <= 1,
                2 => self.progress() <= 2,
                _ => true,
            },
        }
    }

    /// The overall state of events taken oldest first, applying [`State::accepts`].
    ///
    /// ```
    /// use waybill_core::state::State;
    /// let s = State::fold([State::Collected, State::Delivered, State::InTransit]);
    /// assert_eq!(s, State::Delivered);
    /// ```
    pub fn fold(oldest_first: impl IntoIterator<Item = State>) -> State {
        oldest_first.into_iter().fold(
            State::NoTrace,
            |now, next| if now.accepts(next) { next } else { now },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn name_equals_serde_serialization_for_every_state() {
        for s in State::ALL {
            let json = serde_json::to_string(&s).expect("a unit variant serializes");
            assert_eq!(json, format!("\"{}\"", s.name()), "{s:?}");
            let back: State = serde_json::from_str(&json).expect("round trip");
            assert_eq!(back, s);
        }
    }

    #[test]
    fn all_lists_every_state_once_in_declaration_order() {
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
        }
    }

    fn after_delivery(p: Phase) -> bool {
        matches!(
            p,
            Phase::Delivered | Phase::Refused | Phase::Returning | Phase::Returned
        )
    }

    fn events() -> impl Strategy<Value = Vec<State>> {
        prop::collection::vec(prop::sample::select(State::ALL.to_vec()), 0..40)
    }

    /// The states a fold passes through, one per event.
    fn walk(events: &[State]) -> Vec<State> {
        let mut now = State::NoTrace;
        events
            .iter()
            .map(|&next| {
                if now.accepts(next) {
                    now = next;
                }
                now
            })
            .collect()
    }

    #[test]
    fn refused_after_delivery_does_not_reopen_transit() {
        let s = State::fold([State::Delivered, State::Refused, State::InTransit]);
        assert_eq!(s, State::Refused);
        let s = State::fold([State::Delivered, State::Returning, State::OutForDelivery]);
        assert_eq!(s, State::Returning);
    }

    proptest! {
        #[test]
        fn delivered_parcel_never_returns_to_a_transit_phase(events in events()) {
            let states = walk(&events);
            if let Some(first) = states.iter().position(|s| s.phase() == Phase::Delivered) {
                for s in &states[first..] {
                    prop_assert!(after_delivery(s.phase()), "{:?} after delivery in {:?}", s, events);
                }
            }
        }

        #[test]
        fn fold_is_never_no_trace_after_a_collected_or_later_event(events in events()) {
            let collected = events
                .iter()
                .any(|s| !matches!(s.phase(), Phase::NoTrace | Phase::InfoReceived));
            let folded = State::fold(events.iter().copied());
            if collected {
                prop_assert_ne!(folded.phase(), Phase::NoTrace);
                prop_assert_ne!(folded.phase(), Phase::InfoReceived);
            }
        }

        #[test]
        fn returned_is_final(events in events()) {
            let states = walk(&events);
            if let Some(first) = states.iter().position(|s| s.phase() == Phase::Returned) {
                for s in &states[first..] {
                    prop_assert_eq!(s.phase(), Phase::Returned);
                }
            }
        }

        #[test]
        fn fold_equals_the_last_state_of_the_walk(events in events()) {
            let last = walk(&events).last().copied().unwrap_or(State::NoTrace);
            prop_assert_eq!(State::fold(events.iter().copied()), last);
        }
    }

    #[test]
    fn phase_names_are_the_serde_names() {
        for phase in Phase::ALL {
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json.trim_matches('"'), phase.name());
        }
    }

    #[test]
    fn every_problem_phase_state_is_a_problem_and_no_signed_state_is() {
        for state in State::ALL {
            if state.phase() == Phase::Problem {
                assert!(state.is_problem(), "{state:?}");
            }
            if state.is_signed() {
                assert!(!state.is_problem(), "{state:?}");
            }
        }
    }
}
