//! Problem flags: which of Kdniao's 问题件 sub-states a parcel is in right now, with the
//! reason, as a pure function of its trace, its subscription, the thresholds and `now`.
//!
//! Two sources make a flag:
//!
//! - **Reported**: the carrier's own line says so. The normalizer already gives every line
//!   a [`State`]; a flag is active while the parcel's current state (the trace folded with
//!   the regression guard) is one whose Kdniao rendering ([`State::kdniao`]) is `State` 4
//!   with one of the `StateEx` codes below. A later line that moves the parcel on clears
//!   it.
//! - **Timed**: nothing happened for too long. Four kinds are measured against
//!   [`Thresholds`]: 401 (no trace N after subscribing), 402 (not signed N after the last
//!   out-for-delivery or arrival at the delivery outlet), 403 (last line older than N) and
//!   412 (in a locker or station for N). A timed flag appears at the instant its reference
//!   plus its threshold is reached (inclusive) with no new carrier event, so
//!   [`next_change_at`] tells a scheduler when to evaluate again. No timed flag is raised
//!   for a signed parcel.
//!
//! A kind is raised once: when the carrier reports a timed kind itself (402, 403, 412),
//! the carrier's line is the flag and the timer for that kind stands down.
//!
//! # Codes
//!
//! Kdniao renders every flag as `State` 4 (问题件) with the kind's code as `StateEx`.
//! kuaidi100 renders it as `state` 2 (疑难) with the advanced `statusCode` (`resultv2=4`)
//! where kuaidi100 has one for it, else 2. kuaidi100's main states 4 退签, 6 退回 and 14
//! 拒签 describe the parcel itself (the trace's state still renders them); as a flag they
//! are 疑难, with 203 拒收 for a refusal.
//!
//! | kind | Kdniao (State, StateEx) | kuaidi100 (state, statusCode) | source |
//! |---|---|---|---|
//! | 401 发货无信息 no shipping information | (4, 401) | (2, 2) | timed: `no_shipping_info`, 24 h after subscribing |
//! | 402 超时未签收 not signed in time | (4, 402) | (2, 201) 超时未签收 | timed: `not_signed`, 36 h; or reported |
//! | 403 超时未更新 not updated in time | (4, 403) | (2, 202) 超时未更新 | timed: `not_updated`, 5 d; or reported |
//! | 404 拒收(退件) refused / returned | (4, 404) | (2, 203) 拒收 | reported (`Refused`) |
//! | 405 派件异常 delivery exception | (4, 405) | (2, 204) 派件异常 | reported (`AttemptFailed`) |
//! | 406 退货签收 return signed | (4, 406) | (2, 2) | reported (`Returned`) |
//! | 407 退货未签收 return not signed | (4, 407) | (2, 2) | reported (`Returning`) |
//! | 412 快递柜或驿站超时未取 not collected in time | (4, 412) | (2, 205) 柜或驿站超时未取 | timed: `locker`, 18 h in `InLocker`; or reported |
//! | 413 单号已拦截 intercepted | (4, 413) | (2, 2) | reported (`Intercepted`) |
//! | 414 破损 damaged | (4, 414) | (2, 209) 破损 | reported (`Damaged`) |
//! | 416 无法联系 recipient unreachable | (4, 416) | (2, 206) 无法联系 | reported (`Unreachable`) |
//! | 417 配送延迟 delayed | (4, 417) | (2, 2) | reported (`Delayed`) |
//! | 420 收货地址不详细 address incomplete | (4, 420) | (2, 2) | reported (`AddressProblem`) |
//! | 421 收件人电话错误 wrong phone | (4, 421) | (2, 206) 无法联系 | reported (`WrongPhone`) |
//! | 422 错分件 mis-sorted | (4, 422) | (2, 2) | reported (`MisSorted`) |
//! | 423 超区件 out of area | (4, 423) | (2, 207) 超区 | reported (`OutOfArea`) |
//! | 490 超出线路时效 late for its lane | (4, 417) | (2, 2) | timed: past the lane's 95th percentile from collection ([`crate::eta::Lanes::lateness`]) |
//!
//! ```
//! use waybill_core::model::{EventTime, Trace, TrackEvent};
//! use waybill_core::policy::SubscriptionFacts;
//! use waybill_core::problem::{flags, next_change_at, FlagKind, Thresholds};
//! use waybill_core::state::State;
//! use waybill_core::time::{SignedDuration, Timestamp};
//!
//! let placed: EventTime = "2024-05-01 08:00:00".parse().unwrap();
//! let trace = Trace::from_events("sandbox", "SB1", vec![
//!     TrackEvent::new(placed, "已放入【丰巢】快递柜", State::InLocker),
//! ]);
//! let facts = SubscriptionFacts {
//!     company: "sandbox",
//!     number: "SB1",
//!     subscribed_at: placed.at - SignedDuration::from_hours(48),
//!     to: None,
//! };
//! let thresholds = Thresholds::default();
//! let now = placed.at + SignedDuration::from_mins(19 * 60 + 12);
//! let active = flags(&trace, &facts, &thresholds, now);
//! assert_eq!(active.len(), 1);
//! assert_eq!(active[0].kind, FlagKind::LockerTimeout);
//! assert_eq!(active[0].reason, "in a locker for 19 h 12 min; threshold 18 h");
//! // Three hours earlier nothing was active, and 412 was due at 18 h.
//! let earlier = now - SignedDuration::from_hours(3);
//! assert!(flags(&trace, &facts, &thresholds, earlier).is_empty());
//! assert_eq!(
//!     next_change_at(&trace, &facts, &thresholds, earlier),
//!     Some(placed.at + SignedDuration::from_hours(18)),
//! );
//! ```

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{EventTime, Trace};
use crate::policy::SubscriptionFacts;
use crate::state::{Phase, State};

/// A kind of problem, numbered by its Kdniao `StateEx` code.
///
/// ```
/// use waybill_core::problem::FlagKind;
/// use waybill_core::state::State;
/// assert_eq!(FlagKind::LockerTimeout.code(), 412);
/// assert_eq!(FlagKind::LockerTimeout.kdniao(), (4, 412));
/// assert_eq!(FlagKind::LockerTimeout.kuaidi100(), (2, 205));
/// assert_eq!(FlagKind::from_code(416), Some(FlagKind::Unreachable));
/// assert_eq!(FlagKind::from_state(State::AttemptFailed), Some(FlagKind::DeliveryException));
/// assert_eq!(FlagKind::from_state(State::Redelivery), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// 401 发货无信息: no trace a while after subscribing.
    NoShippingInfo,
    /// 402 超时未签收: not signed long after going out for delivery.
    NotSignedInTime,
    /// 403 超时未更新: no new line for a long time.
    NotUpdatedInTime,
    /// 404 拒收(退件): refused by the recipient.
    Refused,
    /// 405 派件异常: a delivery attempt failed.
    DeliveryException,
    /// 406 退货签收: back with the sender and signed for.
    ReturnSigned,
    /// 407 退货未签收: on its way back, not signed yet.
    ReturnNotSigned,
    /// 412 快递柜或驿站超时未取: not collected from a locker or station in time.
    LockerTimeout,
    /// 413 单号已拦截: intercepted.
    Intercepted,
    /// 414 破损: damaged.
    Damaged,
    /// 416 无法联系: recipient unreachable.
    Unreachable,
    /// 417 配送延迟: delayed.
    Delayed,
    /// 420 收货地址不详细: address incomplete.
    AddressIncomplete,
    /// 421 收件人电话错误: wrong phone number.
    WrongPhone,
    /// 422 错分件: sorted to the wrong place.
    MisSorted,
    /// 423 超区件: outside the delivery area.
    OutOfArea,
    /// 490 超出线路时效 (waybill's own code; Kdniao renders it as 417 配送延迟): in
    /// transit longer than most parcels of its lane took ([`crate::eta::Lanes::lateness`]).
    LateForLane,
}

/// One row per kind, in declaration order: Kdniao `StateEx`, kuaidi100 advanced code,
/// Kdniao's label.
#[rustfmt::skip]
const ROWS: [(FlagKind, u16, u16, &str); 17] = [
    (FlagKind::NoShippingInfo,    401, 2,   "发货无信息"),
    (FlagKind::NotSignedInTime,   402, 201, "超时未签收"),
    (FlagKind::NotUpdatedInTime,  403, 202, "超时未更新"),
    (FlagKind::Refused,           404, 203, "拒收(退件)"),
    (FlagKind::DeliveryException, 405, 204, "派件异常"),
    (FlagKind::ReturnSigned,      406, 2,   "退货签收"),
    (FlagKind::ReturnNotSigned,   407, 2,   "退货未签收"),
    (FlagKind::LockerTimeout,     412, 205, "快递柜或驿站超时未取"),
    (FlagKind::Intercepted,       413, 2,   "单号已拦截"),
    (FlagKind::Damaged,           414, 209, "破损"),
    (FlagKind::Unreachable,       416, 206, "无法联系"),
    (FlagKind::Delayed,           417, 2,   "配送延迟"),
    (FlagKind::AddressIncomplete, 420, 2,   "收货地址不详细"),
    (FlagKind::WrongPhone,        421, 206, "收件人电话错误"),
    (FlagKind::MisSorted,         422, 2,   "错分件"),
    (FlagKind::OutOfArea,         423, 207, "超区件"),
    (FlagKind::LateForLane,       490, 2,   "超出线路时效"),
];

impl FlagKind {
    /// Every kind, in code order.
    pub const ALL: [FlagKind; 17] = [
        FlagKind::NoShippingInfo,
        FlagKind::NotSignedInTime,
        FlagKind::NotUpdatedInTime,
        FlagKind::Refused,
        FlagKind::DeliveryException,
        FlagKind::ReturnSigned,
        FlagKind::ReturnNotSigned,
        FlagKind::LockerTimeout,
        FlagKind::Intercepted,
        FlagKind::Damaged,
        FlagKind::Unreachable,
        FlagKind::Delayed,
        FlagKind::AddressIncomplete,
        FlagKind::WrongPhone,
        FlagKind::MisSorted,
        FlagKind::OutOfArea,
        FlagKind::LateForLane,
    ];

    fn row(self) -> &'static (FlagKind, u16, u16, &'static str) {
        // ROWS follows declaration order (checked by a test).
        &ROWS[self as usize]
    }

    /// Kdniao's `StateEx` code.
    ///
    /// ```
    /// assert_eq!(waybill_core::problem::FlagKind::NoShippingInfo.code(), 401);
    /// ```
    pub fn code(self) -> u16 {
        self.row().1
    }

    /// The kind with Kdniao `StateEx` code `code`; `None` for any other code.
    ///
    /// ```
    /// use waybill_core::problem::FlagKind;
    /// assert_eq!(FlagKind::from_code(403), Some(FlagKind::NotUpdatedInTime));
    /// assert_eq!(FlagKind::from_code(419), None);
    /// ```
    pub fn from_code(code: u16) -> Option<FlagKind> {
        ROWS.iter().find(|row| row.1 == code).map(|row| row.0)
    }

    /// Kdniao (`State`, `StateEx`): always 4 问题件 and the kind's code; lane lateness,
    /// which Kdniao has no code for, as 417 配送延迟.
    ///
    /// ```
    /// use waybill_core::problem::FlagKind;
    /// assert_eq!(FlagKind::Damaged.kdniao(), (4, 414));
    /// assert_eq!(FlagKind::LateForLane.kdniao(), (4, 417));
    /// ```
    pub fn kdniao(self) -> (u8, u16) {
        match self {
            FlagKind::LateForLane => (4, FlagKind::Delayed.code()),
            other => (4, other.code()),
        }
    }

    /// kuaidi100 (`state`, advanced `statusCode`): 2 疑难 and the 2xx code where one
    /// corresponds, else 2 (see the module's table).
    ///
    /// ```
    /// use waybill_core::problem::FlagKind;
    /// assert_eq!(FlagKind::NotUpdatedInTime.kuaidi100(), (2, 202));
    /// assert_eq!(FlagKind::Intercepted.kuaidi100(), (2, 2));
    /// ```
    pub fn kuaidi100(self) -> (u16, u16) {
        (2, self.row().2)
    }

    /// Kdniao's Chinese name for the kind.
    ///
    /// ```
    /// assert_eq!(waybill_core::problem::FlagKind::LockerTimeout.label_zh(), "快递柜或驿站超时未取");
    /// ```
    pub fn label_zh(self) -> &'static str {
        self.row().3
    }

    /// The kind a carrier-reported state raises: the state's Kdniao `StateEx` when it
    /// renders as 问题件 with one of the kinds' codes. `None` for every other state
    /// (including generic `Problem`, `Lost`, `Held`, `Cancelled`, `Redelivery`).
    ///
    /// ```
    /// use waybill_core::problem::FlagKind;
    /// use waybill_core::state::State;
    /// assert_eq!(FlagKind::from_state(State::Returning), Some(FlagKind::ReturnNotSigned));
    /// assert_eq!(FlagKind::from_state(State::Problem), None);
    /// assert_eq!(FlagKind::from_state(State::InLocker), None);
    /// ```
    pub fn from_state(state: State) -> Option<FlagKind> {
        match state.kdniao() {
            (4, ex) => FlagKind::from_code(ex),
            _ => None,
        }
    }

    /// Whether this kind can be raised by time alone (it has a threshold).
    ///
    /// ```
    /// use waybill_core::problem::FlagKind;
    /// assert!(FlagKind::LockerTimeout.is_timed());
    /// assert!(!FlagKind::Damaged.is_timed());
    /// ```
    pub fn is_timed(self) -> bool {
        matches!(
            self,
            FlagKind::NoShippingInfo
                | FlagKind::NotSignedInTime
                | FlagKind::NotUpdatedInTime
                | FlagKind::LockerTimeout
                | FlagKind::LateForLane
        )
    }
}

/// The limits of the timed kinds. Each field overrides the crate default when present.
///
/// ```
/// use waybill_core::problem::Limits;
/// let l: Limits = toml::from_str(r#"locker = "12h""#).unwrap();
/// assert_eq!(l.locker, Some(waybill_core::time::SignedDuration::from_hours(12)));
/// assert_eq!(l.not_signed, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// 401: no trace this long after subscribing.
    #[serde(
        deserialize_with = "optional_positive",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub no_shipping_info: Option<SignedDuration>,
    /// 402: not signed this long after the last out-for-delivery or arrival at the
    /// delivery outlet.
    #[serde(
        deserialize_with = "optional_positive",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_signed: Option<SignedDuration>,
    /// 403: the newest line is this old.
    #[serde(
        deserialize_with = "optional_positive",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_updated: Option<SignedDuration>,
    /// 412: in a locker or station this long.
    #[serde(
        deserialize_with = "optional_positive",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub locker: Option<SignedDuration>,
}

impl Limits {
    fn get(&self, kind: FlagKind) -> Option<SignedDuration> {
        match kind {
            FlagKind::NoShippingInfo => self.no_shipping_info,
            FlagKind::NotSignedInTime => self.not_signed,
            FlagKind::NotUpdatedInTime => self.not_updated,
            FlagKind::LockerTimeout => self.locker,
            _ => None,
        }
    }
}

/// The thresholds of the timed kinds: defaults per kind, overridden per carrier.
///
/// The defaults are Kdniao's: 401 after 24 h, 402 after 36 h, 403 after 5 days, 412 after
/// 18 h. In a config file (durations as `"18h"`, `"5d"`; a day is 24 hours):
///
/// ```
/// use waybill_core::problem::{FlagKind, Thresholds};
/// use waybill_core::time::SignedDuration;
/// let t: Thresholds = toml::from_str(r#"
///     not_updated = "3d"
///     [carriers.shunfeng]
///     locker = "12h"
/// "#).unwrap();
/// let h = SignedDuration::from_hours;
/// assert_eq!(t.get(FlagKind::LockerTimeout, "shunfeng"), Some(h(12)));
/// assert_eq!(t.get(FlagKind::LockerTimeout, "yuantong"), Some(h(18)));
/// assert_eq!(t.get(FlagKind::NotUpdatedInTime, "shunfeng"), Some(h(72)));
/// assert_eq!(t.get(FlagKind::Damaged, "shunfeng"), None);
/// assert!(toml::from_str::<Thresholds>(r#"locker = "-1h""#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// 401: no trace this long after subscribing.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub no_shipping_info: SignedDuration,
    /// 402: not signed this long after the last out-for-delivery or arrival at the
    /// delivery outlet.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub not_signed: SignedDuration,
    /// 403: the newest line is this old.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub not_updated: SignedDuration,
    /// 412: in a locker or station this long.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub locker: SignedDuration,
    /// Overrides by carrier code.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub carriers: BTreeMap<String, Limits>,
    /// Overrides by lane, `"ORIGIN>DESTINATION"` with each end a city's name or 6-digit
    /// code (`"深圳市>北京市"`, `"440300>110000"`): the origin is where the trace's first
    /// placed line is, the destination the subscription's `to`. A lane's override wins
    /// over the carrier's.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lane_keys"
    )]
    pub lanes: BTreeMap<String, Limits>,
}

/// The city code of one end of a lane key: a 6-digit code or a place name.
fn lane_end(text: &str) -> Option<u32> {
    let text = text.trim();
    let place = match text.parse::<u32>() {
        Ok(code) => crate::place::Place::from_code(code)?,
        Err(_) => crate::place::parse_address(text)?.place,
    };
    Some(place.city_code().unwrap_or(place.code))
}

fn lane_of_key(key: &str) -> Option<(u32, u32)> {
    let (from, to) = key.split_once('>')?;
    Some((lane_end(from)?, lane_end(to)?))
}

fn lane_keys<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Limits>, D::Error> {
    let map = BTreeMap::<String, Limits>::deserialize(d)?;
    if let Some(bad) = map.keys().find(|k| lane_of_key(k).is_none()) {
        return Err(serde::de::Error::custom(format!(
            "problem lane {bad:?} is not \"ORIGIN>DESTINATION\" with two known cities (names or 6-digit codes)"
        )));
    }
    Ok(map)
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            no_shipping_info: SignedDuration::from_hours(24),
            not_signed: SignedDuration::from_hours(36),
            not_updated: SignedDuration::from_hours(5 * 24),
            locker: SignedDuration::from_hours(18),
            carriers: BTreeMap::new(),
            lanes: BTreeMap::new(),
        }
    }
}

impl Thresholds {
    /// The threshold of `kind` for `carrier`: the carrier's override, else the default.
    /// `None` for a kind that only the carrier reports.
    pub fn get(&self, kind: FlagKind, carrier: &str) -> Option<SignedDuration> {
        self.get_on(kind, carrier, None)
    }

    /// The threshold of `kind` for `carrier` on `lane` (origin and destination city
    /// codes): the lane's override, else the carrier's, else the default.
    ///
    /// ```
    /// use waybill_core::problem::{FlagKind, Thresholds};
    /// use waybill_core::time::SignedDuration;
    /// let t: Thresholds = toml::from_str(r#"
    ///     [lanes."深圳市>北京市"]
    ///     not_updated = "2d"
    /// "#).unwrap();
    /// let lane = Some((440300, 110000));
    /// let h = SignedDuration::from_hours;
    /// assert_eq!(t.get_on(FlagKind::NotUpdatedInTime, "shunfeng", lane), Some(h(48)));
    /// assert_eq!(t.get_on(FlagKind::NotUpdatedInTime, "shunfeng", None), Some(h(120)));
    /// assert!(toml::from_str::<Thresholds>("[lanes.\"深圳市>Atlantis\"]").is_err());
    /// ```
    pub fn get_on(
        &self,
        kind: FlagKind,
        carrier: &str,
        lane: Option<(u32, u32)>,
    ) -> Option<SignedDuration> {
        if let Some(lane) = lane.filter(|_| !self.lanes.is_empty()) {
            let over = self
                .lanes
                .iter()
                .filter(|(key, _)| lane_of_key(key) == Some(lane))
                .find_map(|(_, l)| l.get(kind));
            if over.is_some() {
                return over;
            }
        }
        if let Some(over) = self.carriers.get(carrier).and_then(|l| l.get(kind)) {
            return Some(over);
        }
        match kind {
            FlagKind::NoShippingInfo => Some(self.no_shipping_info),
            FlagKind::NotSignedInTime => Some(self.not_signed),
            FlagKind::NotUpdatedInTime => Some(self.not_updated),
            FlagKind::LockerTimeout => Some(self.locker),
            _ => None,
        }
    }
}

fn optional_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SignedDuration>, D::Error> {
    #[derive(Deserialize)]
    struct Positive(#[serde(deserialize_with = "crate::policy::positive_duration")] SignedDuration);
    Ok(Option::<Positive>::deserialize(d)?.map(|p| p.0))
}

/// What raised a flag: the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Trigger {
    /// Time passed: `elapsed` since `from` (what `from` is depends on the kind) reached
    /// `threshold`.
    Elapsed {
        /// The reference instant: the subscription (401), the last out-for-delivery or
        /// delivery-outlet line (402), the newest line (403), the first line of the
        /// current stay in the locker (412).
        from: Timestamp,
        /// `now - from`.
        #[serde(with = "friendly_duration")]
        elapsed: SignedDuration,
        /// The threshold that applied (after the carrier's override).
        #[serde(with = "friendly_duration")]
        threshold: SignedDuration,
    },
    /// The carrier's line put the parcel in a problem state.
    Reported {
        /// The state the normalizer gave the line.
        state: State,
        /// When the parcel entered that state.
        at: EventTime,
        /// The line's text.
        context: String,
    },
}

mod friendly_duration {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        jiff::fmt::serde::duration::friendly::compact::required(d, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        SignedDuration::deserialize(d)
    }
}

/// One active problem.
///
/// `reason` and the elapsed time grow with `now`; whether a flag appeared or cleared is a
/// question about `kind` and `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Which problem.
    pub kind: FlagKind,
    /// Since when it has been active: the instant the threshold was reached, or the time of
    /// the carrier's line.
    pub since: Timestamp,
    /// The numbers that raised it.
    pub trigger: Trigger,
    /// For a person: "in a locker for 19 h 12 min; threshold 18 h".
    pub reason: String,
}

/// What the walk over a trace found, oldest line first with the regression guard.
struct Walk<'a> {
    /// The folded state and the line that entered it.
    state: State,
    entered: Option<&'a crate::model::TrackEvent>,
    /// The newest line's time, accepted or not: any line is news from the carrier.
    newest: Option<Timestamp>,
    /// The last out-for-delivery or delivery-outlet line, while the parcel has not moved
    /// on from the delivery end (signed, back in transit, in a locker, returning).
    delivery_step: Option<&'a crate::model::TrackEvent>,
}

fn walk(trace: &Trace) -> Walk<'_> {
    let mut w = Walk {
        state: State::NoTrace,
        entered: None,
        newest: None,
        delivery_step: None,
    };
    for e in trace.data.iter().rev() {
        w.newest = Some(w.newest.map_or(e.time.at, |n| n.max(e.time.at)));
        if !w.state.accepts(e.state) {
            continue;
        }
        if e.state != w.state || w.entered.is_none() {
            w.state = e.state;
            w.entered = Some(e);
        }
        match e.state {
            State::OutForDelivery | State::AtDeliveryOutlet => w.delivery_step = Some(e),
            // A failed attempt or a problem at the delivery end still waits for a
            // signature; anything else means the parcel moved on.
            s if matches!(s.phase(), Phase::AttemptFailed | Phase::Problem) => {}
            _ => w.delivery_step = None,
        }
    }
    w
}

/// A timed kind whose condition holds for this trace: it is active from `from + threshold`.
struct Timer {
    kind: FlagKind,
    from: Timestamp,
    threshold: SignedDuration,
    /// How the reason names the wait.
    what: &'static str,
}

impl Timer {
    fn due(&self) -> Option<Timestamp> {
        self.from.checked_add(self.threshold).ok()
    }

    fn reason(&self, elapsed: SignedDuration) -> String {
        let (e, t) = (span_text(elapsed), span_text(self.threshold));
        match self.kind {
            FlagKind::NoShippingInfo => format!("no trace {e} after subscribing; threshold {t}"),
            FlagKind::NotUpdatedInTime => format!("no update for {e}; threshold {t}"),
            FlagKind::LockerTimeout => format!("in a locker for {e}; threshold {t}"),
            _ => format!("not signed {e} after {}; threshold {t}", self.what),
        }
    }
}

fn timers(
    trace: &Trace,
    walk: &Walk<'_>,
    facts: &SubscriptionFacts<'_>,
    thresholds: &Thresholds,
) -> Vec<Timer> {
    let carrier = facts.company;
    // The lane matters only when lanes are configured: skip reading places otherwise.
    let lane = if thresholds.lanes.is_empty() {
        None
    } else {
        let m = crate::eta::Milestones::of(trace, facts.to);
        let city = |p: crate::place::Place| p.city_code().unwrap_or(p.code);
        m.origin.map(city).zip(m.destination.map(city))
    };
    let mut out = Vec::new();
    let mut add = |kind: FlagKind, from: Timestamp, what: &'static str| {
        if let Some(threshold) = thresholds.get_on(kind, carrier, lane) {
            out.push(Timer {
                kind,
                from,
                threshold,
                what,
            });
        }
    };
    if walk.state.is_signed() {
        return out;
    }
    if walk.state == State::NoTrace {
        add(FlagKind::NoShippingInfo, facts.subscribed_at, "subscribing");
    }
    if let (Some(newest), false) = (walk.newest, walk.state == State::NoTrace) {
        // A parcel with no trace yet is 401's; "no update" needs something to update.
        add(FlagKind::NotUpdatedInTime, newest, "the newest line");
    }
    if let Some(step) = walk.delivery_step {
        let what = if step.state == State::OutForDelivery {
            "going out for delivery"
        } else {
            "arriving at the delivery outlet"
        };
        add(FlagKind::NotSignedInTime, step.time.at, what);
    }
    if let (State::InLocker, Some(entered)) = (walk.state, walk.entered) {
        add(FlagKind::LockerTimeout, entered.time.at, "the locker");
    }
    out
}

/// The problems active at `now`, one per kind, in code order.
///
/// `facts.company` chooses the carrier's thresholds; `facts.subscribed_at` starts the 401
/// wait. See the module documentation for the rules.
///
/// ```
/// use waybill_core::model::{EventTime, Trace, TrackEvent};
/// use waybill_core::policy::SubscriptionFacts;
/// use waybill_core::problem::{flags, FlagKind, Thresholds, Trigger};
/// use waybill_core::state::State;
/// use waybill_core::time::SignedDuration;
///
/// let t: EventTime = "2024-05-01 10:00:00".parse().unwrap();
/// let trace = Trace::from_events("sandbox", "SB1", vec![
///     TrackEvent::new(t, "派送不成功，收件人电话无人接听", State::Unreachable),
/// ]);
/// let facts = SubscriptionFacts { company: "sandbox", number: "SB1", subscribed_at: t.at, to: None };
/// let active = flags(&trace, &facts, &Thresholds::default(), t.at + SignedDuration::from_hours(1));
/// assert_eq!(active[0].kind, FlagKind::Unreachable);
/// assert_eq!(active[0].since, t.at);
/// assert!(matches!(active[0].trigger, Trigger::Reported { state: State::Unreachable, .. }));
/// ```
pub fn flags(
    trace: &Trace,
    facts: &SubscriptionFacts<'_>,
    thresholds: &Thresholds,
    now: Timestamp,
) -> Vec<Flag> {
    let w = walk(trace);
    let mut found: BTreeMap<FlagKind, Flag> = BTreeMap::new();
    if let (Some(kind), Some(line)) = (FlagKind::from_state(w.state), w.entered) {
        let reason = format!(
            "the carrier reports {} ({}) since {}: {}",
            kind.label_zh(),
            w.state.name(),
            line.time,
            line.context
        );
        found.insert(
            kind,
            Flag {
                kind,
                since: line.time.at,
                trigger: Trigger::Reported {
                    state: w.state,
                    at: line.time,
                    context: line.context.clone(),
                },
                reason,
            },
        );
    }
    for timer in timers(trace, &w, facts, thresholds) {
        let Some(due) = timer.due() else { continue };
        if due > now || found.contains_key(&timer.kind) {
            continue;
        }
        let elapsed = now.duration_since(timer.from);
        found.insert(
            timer.kind,
            Flag {
                kind: timer.kind,
                since: due,
                reason: timer.reason(elapsed),
                trigger: Trigger::Elapsed {
                    from: timer.from,
                    elapsed,
                    threshold: timer.threshold,
                },
            },
        );
    }
    found.into_values().collect()
}

/// The next instant after `now` at which a timed flag appears if the trace does not
/// change: when a scheduler should evaluate [`flags`] again. `None` when no timed flag is
/// pending (a signed parcel, or every pending one is already active).
///
/// ```
/// use waybill_core::model::Trace;
/// use waybill_core::policy::SubscriptionFacts;
/// use waybill_core::problem::{flags, next_change_at, Thresholds};
/// use waybill_core::time::{SignedDuration, Timestamp};
///
/// let subscribed: Timestamp = "2024-05-01T00:00:00Z".parse().unwrap();
/// let trace = Trace::from_events("sandbox", "SB1", vec![]);
/// let facts = SubscriptionFacts { company: "sandbox", number: "SB1", subscribed_at: subscribed, to: None };
/// let thresholds = Thresholds::default();
/// let due = next_change_at(&trace, &facts, &thresholds, subscribed).unwrap();
/// assert_eq!(due, subscribed + SignedDuration::from_hours(24));
/// assert_eq!(flags(&trace, &facts, &thresholds, due)[0].reason, "no trace 24 h after subscribing; threshold 24 h");
/// assert_eq!(next_change_at(&trace, &facts, &thresholds, due), None);
/// ```
pub fn next_change_at(
    trace: &Trace,
    facts: &SubscriptionFacts<'_>,
    thresholds: &Thresholds,
    now: Timestamp,
) -> Option<Timestamp> {
    let w = walk(trace);
    let reported = FlagKind::from_state(w.state);
    timers(trace, &w, facts, thresholds)
        .iter()
        .filter(|timer| Some(timer.kind) != reported)
        .filter_map(Timer::due)
        .filter(|&due| due > now)
        .min()
}

/// A span as a person reads it: "19 h 12 min", "36 h", "5 d 2 h", "45 min" (rounded down
/// to the minute). Days only from two days on, as thresholds are written ("36 h", "5 d");
/// days drop the minutes.
pub(crate) fn span_text(d: SignedDuration) -> String {
    let minutes = d.as_secs().max(0) / 60;
    let (days, rest) = if minutes >= 2 * 1440 {
        (minutes / 1440, minutes % 1440)
    } else {
        (0, minutes)
    };
    let (hours, mins) = (rest / 60, rest % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrackEvent;
    use proptest::prelude::*;

    fn at(text: &str) -> EventTime {
        text.parse().expect("test time")
    }

    fn line(time: &str, state: State) -> TrackEvent {
        TrackEvent::new(at(time), format!("{} line", state.name()), state)
    }

    fn trace(lines: Vec<TrackEvent>) -> Trace {
        Trace::from_events("sandbox", "SB1", lines)
    }

    fn facts(subscribed: &str) -> SubscriptionFacts<'static> {
        SubscriptionFacts {
            company: "sandbox",
            number: "SB1",
            subscribed_at: at(subscribed).at,
            to: None,
        }
    }

    fn hours(h: i64) -> SignedDuration {
        SignedDuration::from_hours(h)
    }

    fn kinds(flags: &[Flag]) -> Vec<u16> {
        flags.iter().map(|f| f.kind.code()).collect()
    }

    #[test]
    fn rows_follow_declaration_order_and_all() {
        for (i, kind) in FlagKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
            assert_eq!(ROWS[i].0, *kind);
            assert_eq!(FlagKind::from_code(kind.code()), Some(*kind));
        }
    }

    #[test]
    fn kdniao_codes_decode_to_the_states_that_raise_them() {
        for kind in FlagKind::ALL {
            if kind == FlagKind::LateForLane {
                // Computed from the lanes, never reported: Kdniao reads it as "delayed".
                assert_eq!(State::from_kdniao(kind.kdniao().1), Some(State::Delayed));
                continue;
            }
            let state = State::from_kdniao(kind.code()).expect("every flag code is documented");
            if kind == FlagKind::NoShippingInfo {
                // 401 decodes to the generic problem, which raises nothing by itself.
                assert_eq!(state, State::Problem);
                assert_eq!(FlagKind::from_state(state), None);
            } else {
                assert_eq!(FlagKind::from_state(state), Some(kind), "{kind:?}");
            }
        }
    }

    #[test]
    fn kuaidi100_codes_agree_with_the_dialect_tables() {
        for kind in FlagKind::ALL {
            let (main, advanced) = kind.kuaidi100();
            assert_eq!(main, 2, "{kind:?}");
            let decoded = State::from_kuaidi100(advanced).expect("a documented code");
            assert!(decoded.is_problem(), "{kind:?} → {decoded:?}");
            let Some(state) = State::from_kdniao(kind.code()) else {
                continue;
            };
            // Where the dialect already renders the state as 疑难, the flag says the same.
            if state.kuaidi100() == 2 {
                assert_eq!(advanced, state.kuaidi100_advanced(), "{kind:?}");
            }
        }
        assert_eq!(State::from_kuaidi100(203), Some(State::Refused));
    }

    #[test]
    fn locker_for_19_hours_raises_412_with_the_reason() {
        let t = trace(vec![
            line("2024-05-01 08:00", State::OutForDelivery),
            line("2024-05-01 09:00", State::InLocker),
            // A reminder line keeps the stay's start.
            line("2024-05-01 20:00", State::InLocker),
        ]);
        let now = at("2024-05-02 04:12").at;
        let f = flags(&t, &facts("2024-04-30 10:00"), &Thresholds::default(), now);
        assert_eq!(kinds(&f), [412]);
        assert_eq!(f[0].reason, "in a locker for 19 h 12 min; threshold 18 h");
        assert_eq!(f[0].since, at("2024-05-02 03:00").at);
        assert_eq!(
            f[0].trigger,
            Trigger::Elapsed {
                from: at("2024-05-01 09:00").at,
                elapsed: SignedDuration::from_mins(19 * 60 + 12),
                threshold: hours(18),
            }
        );
        let before = flags(
            &t,
            &facts("2024-04-30 10:00"),
            &Thresholds::default(),
            at("2024-05-02 02:59").at,
        );
        assert!(before.is_empty(), "{before:?}");
    }

    #[test]
    fn a_lanes_threshold_wins_over_the_carriers_and_only_on_that_lane() {
        let th: Thresholds = toml::from_str(
            r#"
            [carriers.sandbox]
            not_updated = "4d"
            [lanes."深圳市>北京市"]
            not_updated = "2d"
            "#,
        )
        .unwrap();
        let mut t = trace(vec![TrackEvent::new(
            at("2024-05-01 08:00"),
            "【深圳市】已揽收",
            State::Collected,
        )]);
        t.locate(None, None);
        let to_beijing = SubscriptionFacts {
            to: Some("北京市朝阳区"),
            ..facts("2024-05-01 07:00")
        };
        let to_shanghai = SubscriptionFacts {
            to: Some("上海市浦东新区"),
            ..facts("2024-05-01 07:00")
        };
        let day3 = at("2024-05-04 09:00").at;
        assert_eq!(kinds(&flags(&t, &to_beijing, &th, day3)), [403]);
        assert!(
            flags(&t, &to_shanghai, &th, day3).is_empty(),
            "4 d on other lanes"
        );
        assert_eq!(
            next_change_at(&t, &to_shanghai, &th, day3),
            Some(at("2024-05-05 08:00").at)
        );
    }

    #[test]
    fn silent_for_5_days_raises_403() {
        let t = trace(vec![
            line("2024-05-01 08:00", State::Collected),
            line("2024-05-01 20:00", State::LineHaul),
        ]);
        let s = facts("2024-05-01 07:00");
        let th = Thresholds::default();
        let due = at("2024-05-06 20:00").at;
        assert_eq!(
            next_change_at(&t, &s, &th, at("2024-05-02 00:00").at),
            Some(due)
        );
        assert!(flags(&t, &s, &th, due - SignedDuration::from_secs(1)).is_empty());
        let f = flags(&t, &s, &th, due + hours(2));
        assert_eq!(kinds(&f), [403]);
        assert_eq!(f[0].reason, "no update for 5 d 2 h; threshold 5 d");
        assert_eq!(f[0].since, due);
        assert_eq!(next_change_at(&t, &s, &th, due), None);
    }

    #[test]
    fn signed_parcel_has_no_timed_flags_ever() {
        let t = trace(vec![
            line("2024-05-01 08:00", State::Collected),
            line("2024-05-02 08:00", State::OutForDelivery),
            line("2024-05-02 09:00", State::InLocker),
            line("2024-05-04 09:00", State::DeliveredFromLocker),
        ]);
        let s = facts("2024-05-01 07:00");
        let th = Thresholds::default();
        let years = at("2026-05-01 00:00").at;
        assert!(flags(&t, &s, &th, years).is_empty());
        assert_eq!(next_change_at(&t, &s, &th, at("2024-05-04 10:00").at), None);
    }

    #[test]
    fn thresholds_are_overridden_per_carrier() {
        let th: Thresholds = toml::from_str(
            r#"
            locker = "20h"
            [carriers.shunfeng]
            locker = "6h"
            not_updated = "1d"
            "#,
        )
        .expect("valid thresholds");
        let t = trace(vec![line("2024-05-01 09:00", State::InLocker)]);
        let now = at("2024-05-01 19:00").at;
        let mut sf = facts("2024-05-01 00:00");
        sf.company = "shunfeng";
        let f = flags(&t, &sf, &th, now);
        assert_eq!(kinds(&f), [412]);
        assert_eq!(f[0].reason, "in a locker for 10 h; threshold 6 h");
        // Another carrier uses the file's default, 20 h, not the crate's 18 h.
        let other = facts("2024-05-01 00:00");
        assert!(flags(&t, &other, &th, now).is_empty());
        assert_eq!(
            next_change_at(&t, &other, &th, now),
            Some(at("2024-05-02 05:00").at)
        );
        // shunfeng's 403 after a day; its 412 already active.
        assert_eq!(
            next_change_at(&t, &sf, &th, now),
            Some(at("2024-05-02 09:00").at)
        );
    }

    #[test]
    fn no_trace_after_subscribing_raises_401_and_a_first_line_clears_it() {
        let s = facts("2024-05-01 00:00");
        let th = Thresholds::default();
        let empty = trace(vec![]);
        let now = at("2024-05-02 03:30").at;
        let f = flags(&empty, &s, &th, now);
        assert_eq!(kinds(&f), [401]);
        assert_eq!(
            f[0].reason,
            "no trace 27 h 30 min after subscribing; threshold 24 h"
        );
        let collected = trace(vec![line("2024-05-02 03:00", State::Collected)]);
        assert!(flags(&collected, &s, &th, now).is_empty());
    }

    #[test]
    fn not_signed_36_hours_after_out_for_delivery_raises_402() {
        let t = trace(vec![
            line("2024-05-01 08:00", State::AtDeliveryOutlet),
            line("2024-05-01 09:00", State::OutForDelivery),
            line("2024-05-01 18:00", State::AttemptFailed),
        ]);
        let s = facts("2024-05-01 00:00");
        let th = Thresholds::default();
        let due = at("2024-05-02 21:00").at;
        assert_eq!(
            next_change_at(&t, &s, &th, at("2024-05-01 19:00").at),
            Some(due)
        );
        let f = flags(&t, &s, &th, due);
        // The failed attempt is reported (405) from its line; 402 from the last
        // out-for-delivery line, the failure does not restart the wait.
        assert_eq!(kinds(&f), [402, 405]);
        assert_eq!(
            f[0].reason,
            "not signed 36 h after going out for delivery; threshold 36 h"
        );
        assert_eq!(f[1].since, at("2024-05-01 18:00").at);
    }

    #[test]
    fn arrival_at_the_outlet_starts_the_402_wait_and_moving_on_stops_it() {
        let s = facts("2024-05-01 00:00");
        let th = Thresholds::default();
        let outlet = trace(vec![line("2024-05-01 08:00", State::AtDeliveryOutlet)]);
        let f = flags(&outlet, &s, &th, at("2024-05-02 21:00").at);
        assert_eq!(kinds(&f), [402]);
        assert_eq!(
            f[0].reason,
            "not signed 37 h after arriving at the delivery outlet; threshold 36 h"
        );
        let redirected = trace(vec![
            line("2024-05-01 08:00", State::AtDeliveryOutlet),
            line("2024-05-01 12:00", State::Redirected),
        ]);
        assert!(flags(&redirected, &s, &th, at("2024-05-02 21:00").at).is_empty());
        let in_locker = trace(vec![
            line("2024-05-01 08:00", State::OutForDelivery),
            line("2024-05-01 10:00", State::InLocker),
        ]);
        // In a locker, 412 is the flag (at 18 h) and 402 does not double it.
        let f = flags(&in_locker, &s, &th, at("2024-05-02 21:00").at);
        assert_eq!(kinds(&f), [412]);
    }

    #[test]
    fn reported_problems_follow_the_current_state() {
        let s = facts("2024-05-01 00:00");
        let th = Thresholds::default();
        let now = at("2024-05-02 00:00").at;
        let cases = [
            (State::Refused, 404),
            (State::AttemptFailed, 405),
            (State::Returned, 406),
            (State::Returning, 407),
            (State::LockerTimeout, 412),
            (State::Intercepted, 413),
            (State::Damaged, 414),
            (State::Unreachable, 416),
            (State::Delayed, 417),
            (State::AddressProblem, 420),
            (State::WrongPhone, 421),
            (State::MisSorted, 422),
            (State::OutOfArea, 423),
        ];
        for (state, code) in cases {
            let t = trace(vec![
                line("2024-05-01 08:00", State::Collected),
                line("2024-05-01 12:00", state),
            ]);
            let f = flags(&t, &s, &th, now);
            assert_eq!(kinds(&f), [code], "{state:?}");
            assert_eq!(f[0].since, at("2024-05-01 12:00").at);
            assert!(
                f[0].reason.contains(f[0].kind.label_zh()),
                "{}",
                f[0].reason
            );
        }
        // A later line that moves the parcel on clears the flag.
        let t = trace(vec![
            line("2024-05-01 08:00", State::Damaged),
            line("2024-05-01 12:00", State::LineHaul),
        ]);
        assert!(flags(&t, &s, &th, now).is_empty());
        // Intercepted then returning: 413 gives way to 407.
        let t = trace(vec![
            line("2024-05-01 08:00", State::Intercepted),
            line("2024-05-01 12:00", State::Returning),
        ]);
        assert_eq!(kinds(&flags(&t, &s, &th, now)), [407]);
        // States without a kind of their own raise nothing.
        for state in [State::Problem, State::Lost, State::Held, State::Redelivery] {
            let t = trace(vec![line("2024-05-01 08:00", state)]);
            assert!(flags(&t, &s, &th, now).is_empty(), "{state:?}");
        }
    }

    #[test]
    fn a_reported_kind_that_is_also_timed_is_raised_once_from_the_carriers_line() {
        let t = trace(vec![
            line("2024-05-01 08:00", State::Collected),
            line("2024-05-01 09:00", State::NotUpdatedInTime),
        ]);
        let s = facts("2024-05-01 00:00");
        let f = flags(&t, &s, &Thresholds::default(), at("2024-05-09 00:00").at);
        assert_eq!(kinds(&f), [403]);
        assert_eq!(f[0].since, at("2024-05-01 09:00").at);
        assert!(matches!(f[0].trigger, Trigger::Reported { .. }));
        // Its timer stands down: nothing new is due.
        assert_eq!(
            next_change_at(&t, &s, &Thresholds::default(), at("2024-05-01 10:00").at),
            None
        );
    }

    #[test]
    fn flags_round_trip_through_json() {
        let t = trace(vec![line("2024-05-01 09:00", State::InLocker)]);
        let s = facts("2024-05-01 00:00");
        let f = flags(&t, &s, &Thresholds::default(), at("2024-05-02 04:12").at);
        let json = serde_json::to_string(&f).expect("serializes");
        assert!(json.contains(r#""elapsed":"19h 12m""#), "{json}");
        assert!(json.contains(r#""kind":"locker_timeout""#), "{json}");
        let back: Vec<Flag> = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, f);
    }

    #[test]
    fn thresholds_round_trip_and_refuse_nonsense() {
        let mut th = Thresholds::default();
        th.carriers.insert(
            "shunfeng".into(),
            Limits {
                locker: Some(hours(12)),
                ..Limits::default()
            },
        );
        // The config file is TOML; JSON exercises the same serde impls (core's toml has
        // no writer).
        let text = serde_json::to_string(&th).expect("serializes");
        assert!(text.contains(r#""locker":"12h""#), "{text}");
        let back: Thresholds = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, th, "{text}");
        assert!(toml::from_str::<Thresholds>(r#"locker = "0h""#).is_err());
        assert!(toml::from_str::<Thresholds>(r#"lockr = "1h""#).is_err());
        assert!(toml::from_str::<Thresholds>("[carriers.sf]\nlocker = \"soon\"").is_err());
        assert_eq!(
            toml::from_str::<Thresholds>("").expect("empty"),
            Thresholds::default()
        );
    }

    #[test]
    fn far_future_thresholds_do_not_overflow() {
        let t = trace(vec![line("2024-05-01 09:00", State::InLocker)]);
        let s = facts("2024-05-01 00:00");
        let th = Thresholds {
            locker: SignedDuration::MAX,
            not_updated: SignedDuration::MAX,
            ..Thresholds::default()
        };
        assert!(flags(&t, &s, &th, Timestamp::MAX).is_empty());
        assert_eq!(next_change_at(&t, &s, &th, Timestamp::MAX), None);
    }

    fn arbitrary_trace() -> impl Strategy<Value = (Trace, i64)> {
        let lines =
            prop::collection::vec((0i64..400, prop::sample::select(State::ALL.to_vec())), 0..8);
        (lines, -50i64..100).prop_map(|(lines, subscribed)| {
            let start = at("2024-05-01 00:00").at;
            let events = lines
                .into_iter()
                .map(|(h, state)| {
                    TrackEvent::new(
                        EventTime::new(start + hours(h), crate::model::CHINA_OFFSET),
                        "",
                        state,
                    )
                })
                .collect();
            (trace(events), subscribed)
        })
    }

    fn kind_set(f: &[Flag]) -> std::collections::BTreeSet<FlagKind> {
        f.iter().map(|f| f.kind).collect()
    }

    proptest! {
        #[test]
        fn flags_only_accumulate_with_time_and_next_change_at_is_exact(
            (t, subscribed) in arbitrary_trace(),
            now_h in 0i64..600,
            later_h in 0i64..600,
        ) {
            let start = at("2024-05-01 00:00").at;
            let s = SubscriptionFacts {
                company: "sandbox",
                number: "SB1",
                subscribed_at: start + hours(subscribed),
                to: None,
            };
            let th = Thresholds::default();
            let now = start + hours(now_h);
            let active = flags(&t, &s, &th, now);
            let later = flags(&t, &s, &th, now + hours(later_h));
            prop_assert!(kind_set(&active).is_subset(&kind_set(&later)));
            for f in &active {
                if let Trigger::Elapsed { .. } = f.trigger {
                    prop_assert!(f.since <= now);
                    prop_assert!(!t.state.is_signed(), "timed flag on a signed parcel");
                }
            }
            match next_change_at(&t, &s, &th, now) {
                Some(due) => {
                    prop_assert!(due > now);
                    let just_before = flags(&t, &s, &th, due - SignedDuration::from_secs(1));
                    prop_assert_eq!(kind_set(&just_before), kind_set(&active));
                    let at_due = flags(&t, &s, &th, due);
                    prop_assert!(kind_set(&at_due).len() > kind_set(&active).len());
                }
                None => {
                    let far = flags(&t, &s, &th, now + hours(24 * 3650));
                    prop_assert_eq!(kind_set(&far), kind_set(&active));
                }
            }
        }
    }

    #[test]
    fn span_text_reads_like_a_person() {
        let m = SignedDuration::from_mins;
        assert_eq!(span_text(m(45)), "45 min");
        assert_eq!(span_text(m(18 * 60)), "18 h");
        assert_eq!(span_text(m(19 * 60 + 12)), "19 h 12 min");
        assert_eq!(span_text(m(36 * 60)), "36 h");
        assert_eq!(span_text(m(47 * 60 + 59)), "47 h 59 min");
        assert_eq!(span_text(m(2 * 1440)), "2 d");
        assert_eq!(span_text(m(5 * 1440)), "5 d");
        assert_eq!(span_text(m(5 * 1440 + 130)), "5 d 2 h");
        assert_eq!(span_text(m(-5)), "0 min");
    }
}
