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
    pub const ALL: [State; 42] = [
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
            Unreachable | AddressProblem | WrongPhone | Damaged | Lost | Held | OutOfArea
            | Intercepted | Cancelled | MisSorted | Delayed | RemovedFromLocker
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
    pub fn name(self) -> &'static str {
        STATE_NAMES[self as usize]
    }
}

const STATE_NAMES: [&str; 42] = [
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
    /// ```
    /// use waybill_core::state::State;
    /// assert!(!State::Delivered.accepts(State::InTransit));
    /// assert!(State::Delivered.accepts(State::Returning));
    /// assert!(State::OutForDelivery.accepts(State::AtDeliveryOutlet));
    /// assert!(!State::Collected.accepts(State::OrderReceived));
    /// ```
    pub fn accepts(self, next: State) -> bool {
        match self.phase() {
            Phase::Returned => next.phase() == Phase::Returned,
            Phase::Delivered => matches!(
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
