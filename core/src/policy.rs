//! The polling policy: when to ask a carrier about a waybill again, and when to stop.
//!
//! [`next`] is a pure function of what is known about one subscription — its
//! [`SubscriptionFacts`], a [`TraceSummary`], the [`LastOutcome`] of the previous check,
//! the current time and a [`PolicyConfig`] — and answers with a [`Decision`]: check again
//! at a given instant, shut down (the parcel is signed for) or abort (kuaidi100's
//! `3天查询无记录` and `60天无变化`).
//!
//! # The rules, in the order they apply
//!
//! 1. A signed parcel ([`State::is_signed`]) is [`Decision::Shutdown`], whatever else holds.
//! 2. No trace at all `no_trace_abort_after` (3 days) after subscribing is
//!    [`AbortReason::NoTraceIn3Days`]; no new event for `no_change_abort_after` (60 days) is
//!    [`AbortReason::NoChangeIn60Days`]. Both compare `now` with a fixed instant, so once
//!    they hold they keep holding: terminal decisions stay terminal.
//! 3. Otherwise a check is due: `first_check` (15 min) after subscribing; `interval` (4 h)
//!    after the last successful check, or `near_destination_interval` (1 h) once the parcel
//!    is in the destination city, out for delivery or waiting in a locker; after a failed
//!    check, `error_backoff_base × 2^(failures−1)` (5 min, 10 min, 20 min …) up to
//!    `error_backoff_max` (4 h), and never sooner than the carrier's retry-after.
//!
//! # Jitter
//!
//! Every delay is stretched or shrunk by up to `jitter_percent` (±10 %), by a fraction fixed
//! per waybill: a stable hash of company and number, so the same waybill always gets the same
//! fraction, in every process and every release. A million waybills subscribed in the same
//! second therefore fall due over three minutes rather than in one second. The hash is
//! FNV-1a 64 followed by the SplitMix64 finaliser, written out here because std's hasher may
//! change between releases and FNV-1a alone leaves the high bits — the ones that pick the
//! fraction — almost blind to the last characters of a number.
//!
//! # Bounds
//!
//! `max_interval` (4 h) is a hard ceiling on the delay, jitter included: a jittered delay that
//! would cross it is mirrored below it (`max − excess`), so waybills polled at the ceiling
//! still spread out instead of piling up on it. A carrier's retry-after longer than the
//! ceiling is cut to the ceiling: the scheduler promises never to leave a waybill unchecked
//! for longer, and a carrier still busy then answers with another retry-after. The instant
//! returned is never before `now` (an overdue check is due `now`) and never after
//! `now + max_interval`.
//!
//! # Configuration
//!
//! [`PolicyConfig`] deserialises from the daemon's TOML with durations as strings in jiff's
//! friendly format (`"15m"`, `"4h"`, `"3d"`, `"1h 30m"`) or ISO 8601 (`"PT4H"`), a day
//! being 24 hours; every key is optional and defaults to the values above. It serialises in
//! the compact friendly format, in hours at most (`"72h"`).
//! Deserialising checks the values ([`PolicyConfigError`]); [`next`] itself never panics,
//! even on a config built in code with nonsense in it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::model::{Trace, Waybill};
use crate::place;
use crate::state::State;

/// Every duration and share the policy uses. `Default` gives the documented defaults.
///
/// ```
/// use waybill_core::policy::PolicyConfig;
/// let config: PolicyConfig =
///     serde_json::from_str(r#"{ "interval": "2h", "first_check": "PT10M" }"#).unwrap();
/// assert_eq!(config.interval, jiff::SignedDuration::from_hours(2));
/// assert_eq!(config.max_interval, PolicyConfig::default().max_interval);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedPolicyConfig")]
pub struct PolicyConfig {
    /// Delay from subscribing to the first check. Default 15 min.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub first_check: SignedDuration,
    /// Delay between checks while the parcel is on its way. Default 4 h.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub interval: SignedDuration,
    /// Delay between checks once the parcel is in the destination city, out for delivery or
    /// in a locker. Default 1 h.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub near_destination_interval: SignedDuration,
    /// Ceiling on every delay, jitter and retry-after included. Default 4 h.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub max_interval: SignedDuration,
    /// Delay after the first failed check; it doubles with each further failure. Default 5 min.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub error_backoff_base: SignedDuration,
    /// Ceiling of the doubling. Default 4 h.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub error_backoff_max: SignedDuration,
    /// Give up ([`AbortReason::NoTraceIn3Days`]) when the carrier has reported nothing this
    /// long after subscribing. Default 72 h.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub no_trace_abort_after: SignedDuration,
    /// Give up ([`AbortReason::NoChangeIn60Days`]) when the trace has not changed for this
    /// long. Default 1440 h (60 days).
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub no_change_abort_after: SignedDuration,
    /// How far, in percent, a delay may be stretched or shrunk per waybill. Default 10, at
    /// most 50.
    pub jitter_percent: u8,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            first_check: SignedDuration::from_mins(15),
            interval: SignedDuration::from_hours(4),
            near_destination_interval: SignedDuration::from_hours(1),
            max_interval: SignedDuration::from_hours(4),
            error_backoff_base: SignedDuration::from_mins(5),
            error_backoff_max: SignedDuration::from_hours(4),
            no_trace_abort_after: SignedDuration::from_hours(3 * 24),
            no_change_abort_after: SignedDuration::from_hours(60 * 24),
            jitter_percent: 10,
        }
    }
}

/// The largest accepted `jitter_percent`: beyond it a shrunk delay could reach zero.
pub const MAX_JITTER_PERCENT: u8 = 50;

/// A [`PolicyConfig`] value that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyConfigError {
    /// A duration is zero or negative.
    #[error("policy setting `{field}` is {value:#}; it must be longer than zero")]
    NotPositive {
        /// The setting's key.
        field: &'static str,
        /// Its value.
        value: SignedDuration,
    },
    /// A polling delay is longer than the ceiling on every delay.
    #[error(
        "policy setting `{field}` is {value:#}, longer than `max_interval` ({max:#}); \
         shorten it or raise `max_interval`"
    )]
    AboveMaxInterval {
        /// The setting's key.
        field: &'static str,
        /// Its value.
        value: SignedDuration,
        /// The ceiling.
        max: SignedDuration,
    },
    /// The jitter share is too large.
    #[error(
        "policy setting `jitter_percent` is {percent}; it must be at most {MAX_JITTER_PERCENT}"
    )]
    JitterTooLarge {
        /// The value given.
        percent: u8,
    },
}

impl PolicyConfig {
    /// Checks that every duration is positive, that polling delays do not exceed
    /// `max_interval` and that `jitter_percent` is at most [`MAX_JITTER_PERCENT`].
    /// Deserialising runs this; call it on a config built in code.
    ///
    /// ```
    /// use waybill_core::policy::{PolicyConfig, PolicyConfigError};
    /// let mut config = PolicyConfig::default();
    /// assert_eq!(config.validate(), Ok(()));
    /// config.jitter_percent = 80;
    /// assert_eq!(config.validate(), Err(PolicyConfigError::JitterTooLarge { percent: 80 }));
    /// ```
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        let all = [
            ("first_check", self.first_check),
            ("interval", self.interval),
            ("near_destination_interval", self.near_destination_interval),
            ("max_interval", self.max_interval),
            ("error_backoff_base", self.error_backoff_base),
            ("error_backoff_max", self.error_backoff_max),
            ("no_trace_abort_after", self.no_trace_abort_after),
            ("no_change_abort_after", self.no_change_abort_after),
        ];
        if let Some(&(field, value)) = all.iter().find(|(_, d)| !d.is_positive()) {
            return Err(PolicyConfigError::NotPositive { field, value });
        }
        // The abort thresholds are not delays between checks, so the ceiling does not apply.
        if let Some(&(field, value)) = all[..6].iter().find(|(_, d)| *d > self.max_interval) {
            return Err(PolicyConfigError::AboveMaxInterval {
                field,
                value,
                max: self.max_interval,
            });
        }
        if self.jitter_percent > MAX_JITTER_PERCENT {
            return Err(PolicyConfigError::JitterTooLarge {
                percent: self.jitter_percent,
            });
        }
        Ok(())
    }
}

/// What the config file holds before [`PolicyConfig::validate`] has looked at it.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UncheckedPolicyConfig {
    #[serde(deserialize_with = "duration_from_text")]
    first_check: SignedDuration,
    #[serde(deserialize_with = "duration_from_text")]
    interval: SignedDuration,
    #[serde(deserialize_with = "duration_from_text")]
    near_destination_interval: SignedDuration,
    #[serde(deserialize_with = "duration_from_text")]
    max_interval: SignedDuration,
    #[serde(deserialize_with = "duration_from_text")]
    error_backoff_base: SignedDuration,
    #[serde(deserialize_with = "duration_from_text")]
    error_backoff_max: SignedDuration,
    #[serde(deserialize_with = "duration_from_text")]
    no_trace_abort_after: SignedDuration,
    #[serde(deserialize_with = "duration_from_text")]
    no_change_abort_after: SignedDuration,
    jitter_percent: u8,
}

/// Reads a duration as jiff's friendly format or ISO 8601, taking a day as 24 hours and a
/// week as 7 days: `SignedDuration`'s own `Deserialize` refuses days, and "60d" is how
/// people write the abort threshold. Months and years are refused: their length varies.
/// A positive duration written as text (`"18h"`, `"3d"`): problem thresholds and ETA
/// defaults, where zero or less would mean "at once" or "never".
pub(crate) fn positive_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SignedDuration, D::Error> {
    let span = duration_from_text(deserializer)?;
    if span.is_positive() {
        Ok(span)
    } else {
        Err(serde::de::Error::custom(format!(
            "the duration must be positive, not {span:#}"
        )))
    }
}

pub(crate) fn duration_from_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SignedDuration, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(deserializer)?;
    let unreadable = |e: jiff::Error| {
        D::Error::custom(format!(
            "unreadable duration {text:?} (write e.g. \"15m\", \"4h\", \"3d\"): {e}"
        ))
    };
    let span: jiff::Span = text.parse().map_err(unreadable)?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(unreadable)
}

impl Default for UncheckedPolicyConfig {
    fn default() -> Self {
        let d = PolicyConfig::default();
        Self {
            first_check: d.first_check,
            interval: d.interval,
            near_destination_interval: d.near_destination_interval,
            max_interval: d.max_interval,
            error_backoff_base: d.error_backoff_base,
            error_backoff_max: d.error_backoff_max,
            no_trace_abort_after: d.no_trace_abort_after,
            no_change_abort_after: d.no_change_abort_after,
            jitter_percent: d.jitter_percent,
        }
    }
}

impl TryFrom<UncheckedPolicyConfig> for PolicyConfig {
    type Error = PolicyConfigError;
    fn try_from(u: UncheckedPolicyConfig) -> Result<Self, Self::Error> {
        let config = PolicyConfig {
            first_check: u.first_check,
            interval: u.interval,
            near_destination_interval: u.near_destination_interval,
            max_interval: u.max_interval,
            error_backoff_base: u.error_backoff_base,
            error_backoff_max: u.error_backoff_max,
            no_trace_abort_after: u.no_trace_abort_after,
            no_change_abort_after: u.no_change_abort_after,
            jitter_percent: u.jitter_percent,
        };
        config.validate()?;
        Ok(config)
    }
}

/// What is fixed about a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionFacts<'a> {
    /// Carrier code; with `number`, the seed of the waybill's jitter.
    pub company: &'a str,
    /// Tracking number.
    pub number: &'a str,
    /// When the subscription was made.
    pub subscribed_at: Timestamp,
    /// Destination as "province-city-district", when the subscriber gave one. An event
    /// located in its city counts as near destination.
    pub to: Option<&'a str>,
}

impl<'a> SubscriptionFacts<'a> {
    /// The facts of a subscription to `waybill` made at `subscribed_at`.
    pub fn new(waybill: &'a Waybill, subscribed_at: Timestamp) -> Self {
        Self {
            company: &waybill.company,
            number: &waybill.number,
            subscribed_at,
            to: waybill.to.as_deref(),
        }
    }
}

/// What the policy needs to know about a waybill's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSummary<'a> {
    /// The overall state.
    pub state: State,
    /// Carrier's time of the newest event; `None` while there is no trace.
    pub newest_event_at: Option<Timestamp>,
    /// When the stored trace last changed, by the host's clock, if known.
    pub last_change_at: Option<Timestamp>,
    /// Where the newest event happened: its area name, else the carrier's location, else
    /// the line's text (the policy reads the place out of it).
    pub newest_location: Option<&'a str>,
}

impl<'a> TraceSummary<'a> {
    /// A waybill the carrier has reported nothing for.
    pub const EMPTY: TraceSummary<'static> = TraceSummary {
        state: State::NoTrace,
        newest_event_at: None,
        last_change_at: None,
        newest_location: None,
    };

    /// The summary of `trace`; `last_change_at` is left `None` because only the store
    /// knows when it last changed.
    pub fn of(trace: &'a Trace) -> Self {
        let newest = trace.data.first();
        Self {
            state: trace.state,
            newest_event_at: newest.map(|e| e.time.at),
            last_change_at: None,
            // The area (filled from the text when the carrier gave none) is the canonical
            // place; the carrier's location text and then the line itself are fallbacks.
            newest_location: newest.map(|e| {
                e.area_name
                    .as_deref()
                    .or(e.location.as_deref())
                    .unwrap_or(&e.context)
            }),
        }
    }
}

/// How the previous check of this waybill went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastOutcome {
    /// Not checked since subscribing.
    NeverChecked,
    /// The carrier answered (with or without news).
    Ok {
        /// When the check was made.
        at: Timestamp,
    },
    /// The check failed.
    Error {
        /// When the check was made.
        at: Timestamp,
        /// The carrier's retry-after, if it sent one ([`crate::carrier::TrackError::retry_after`]).
        retry_after: Option<Duration>,
        /// Failures in a row, this one included (0 is read as 1).
        consecutive_failures: u32,
    },
}

/// Why a check is due when it is: the rule that set the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckReason {
    /// First check after subscribing.
    FirstCheck,
    /// Regular interval while in transit.
    Regular,
    /// Shorter interval near the destination.
    NearDestination,
    /// Exponential backoff after failures.
    ErrorBackoff,
    /// The carrier's retry-after was longer than the backoff.
    RetryAfter,
}

impl CheckReason {
    /// One line for logs and `waybill explain`.
    pub fn explain(self) -> &'static str {
        match self {
            CheckReason::FirstCheck => "first check after subscribing",
            CheckReason::Regular => "in transit: regular interval",
            CheckReason::NearDestination => {
                "near destination (destination city, out for delivery or locker): short interval"
            }
            CheckReason::ErrorBackoff => "last check failed: exponential backoff",
            CheckReason::RetryAfter => "last check failed: waiting as long as the carrier asked",
        }
    }
}

impl std::fmt::Display for CheckReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.explain())
    }
}

/// Why polling stopped without a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// No trace `no_trace_abort_after` (default 3 days) after subscribing.
    NoTraceIn3Days,
    /// No new event for `no_change_abort_after` (default 60 days).
    NoChangeIn60Days,
}

impl AbortReason {
    /// kuaidi100's abort message, exactly as its push carries it.
    ///
    /// ```
    /// use waybill_core::policy::AbortReason;
    /// assert_eq!(AbortReason::NoTraceIn3Days.message(), "3天查询无记录");
    /// ```
    pub fn message(self) -> &'static str {
        match self {
            AbortReason::NoTraceIn3Days => "3天查询无记录",
            AbortReason::NoChangeIn60Days => "60天无变化",
        }
    }
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// What to do next with a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Ask the carrier again at `at`.
    CheckAt {
        /// When; never before `now`, never after `now + max_interval`.
        at: Timestamp,
        /// The rule that set the delay.
        why: CheckReason,
    },
    /// Signed for: stop polling (kuaidi100 `shutdown`).
    Shutdown,
    /// Give up (kuaidi100 `abort`).
    Abort {
        /// Why.
        reason: AbortReason,
    },
}

impl Decision {
    /// True for [`Decision::Shutdown`] and [`Decision::Abort`]: no further check.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Decision::CheckAt { .. })
    }
}

/// One line for logs and `waybill explain`.
///
/// ```
/// use waybill_core::policy::{AbortReason, Decision};
/// let d = Decision::Abort { reason: AbortReason::NoChangeIn60Days };
/// assert_eq!(d.to_string(), "abort: 60天无变化");
/// ```
impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::CheckAt { at, why } => write!(f, "check at {at} ({why})"),
            Decision::Shutdown => f.write_str("shutdown: signed for"),
            Decision::Abort { reason } => write!(f, "abort: {reason}"),
        }
    }
}

/// The policy: what to do next with one subscription. See the [module docs](self) for the
/// rules. Pure and cheap (a hash of company and number, a few integer operations, and,
/// when a destination is set, two reads of the division table, see `place` in
/// BENCHMARKS.md): the scheduler calls it after every check.
///
/// ```
/// use jiff::{SignedDuration, Timestamp};
/// use waybill_core::model::Waybill;
/// use waybill_core::policy::{
///     next, AbortReason, CheckReason, Decision, LastOutcome, PolicyConfig, SubscriptionFacts,
///     TraceSummary,
/// };
///
/// let config = PolicyConfig::default();
/// let waybill = Waybill::new("sandbox", "SB0001");
/// let subscribed: Timestamp = "2024-05-01T00:00:00Z".parse().unwrap();
/// let facts = SubscriptionFacts::new(&waybill, subscribed);
///
/// // Just subscribed: first check about 15 minutes later (±10 %, fixed per waybill).
/// let d = next(&facts, &TraceSummary::EMPTY, &LastOutcome::NeverChecked, subscribed, &config);
/// let Decision::CheckAt { at, why } = d else { panic!("{d:?}") };
/// assert_eq!(why, CheckReason::FirstCheck);
/// let delay = at.duration_since(subscribed);
/// assert!(delay >= SignedDuration::from_secs(810) && delay <= SignedDuration::from_secs(990));
///
/// // Still nothing three days later: abort.
/// let later = subscribed + SignedDuration::from_hours(72);
/// let last = LastOutcome::Ok { at: later };
/// let d = next(&facts, &TraceSummary::EMPTY, &last, later, &config);
/// assert_eq!(d, Decision::Abort { reason: AbortReason::NoTraceIn3Days });
/// ```
pub fn next(
    facts: &SubscriptionFacts<'_>,
    trace: &TraceSummary<'_>,
    last: &LastOutcome,
    now: Timestamp,
    config: &PolicyConfig,
) -> Decision {
    if trace.state.is_signed() {
        return Decision::Shutdown;
    }
    if let Some(reason) = abort_reason(facts, trace, now, config) {
        return Decision::Abort { reason };
    }

    let max = millis(config.max_interval);
    let jitter = Jitter::of(facts.company, facts.number, config.jitter_percent);
    let (anchor, delay, why) = match *last {
        LastOutcome::NeverChecked => (
            facts.subscribed_at,
            jitter.apply(millis(config.first_check), max),
            CheckReason::FirstCheck,
        ),
        LastOutcome::Ok { at } => {
            let (interval, why) = if near_destination(facts, trace) {
                (
                    config.near_destination_interval,
                    CheckReason::NearDestination,
                )
            } else {
                (config.interval, CheckReason::Regular)
            };
            (at, jitter.apply(millis(interval), max), why)
        }
        LastOutcome::Error {
            at,
            retry_after,
            consecutive_failures,
        } => {
            let backoff = backoff(config, consecutive_failures);
            let backoff = jitter.apply(backoff, max);
            // Retry-after is a floor; jitter may only lengthen it, or a carrier that told
            // everyone "60 s" would get everyone back in the same second.
            let floor = retry_after.map_or(0, |d| jitter.lengthen(std_millis(d)));
            if floor > backoff {
                (at, floor.min(max), CheckReason::RetryAfter)
            } else {
                (at, backoff, CheckReason::ErrorBackoff)
            }
        }
    };

    let earliest = now;
    let latest = add_millis(now, max);
    let at = add_millis(anchor, delay).max(earliest).min(latest);
    Decision::CheckAt { at, why }
}

fn abort_reason(
    facts: &SubscriptionFacts<'_>,
    trace: &TraceSummary<'_>,
    now: Timestamp,
    config: &PolicyConfig,
) -> Option<AbortReason> {
    let has_trace = trace.newest_event_at.is_some() || trace.state != State::NoTrace;
    if !has_trace {
        if now.duration_since(facts.subscribed_at) >= config.no_trace_abort_after {
            return Some(AbortReason::NoTraceIn3Days);
        }
        return None;
    }
    // The later of the two, so a carrier that back-dates events does not cut a live
    // parcel short; a trace without times counts from the subscription.
    let since = match (trace.last_change_at, trace.newest_event_at) {
        (Some(a), Some(b)) => a.max(b),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => facts.subscribed_at,
    };
    (now.duration_since(since) >= config.no_change_abort_after)
        .then_some(AbortReason::NoChangeIn60Days)
}

/// In the destination city, out for delivery, or waiting in a locker or station.
fn near_destination(facts: &SubscriptionFacts<'_>, trace: &TraceSummary<'_>) -> bool {
    use State::*;
    let by_state = matches!(
        trace.state,
        ArrivedDestinationCity
            | AtDeliveryOutlet
            | OutForDelivery
            | InLocker
            | LockerTimeout
            | AttemptFailed
            | Redelivery
    );
    by_state
        || match (facts.to, trace.newest_location) {
            (Some(to), Some(location)) => in_city_of(to, location),
            _ => false,
        }
}

/// Is `location` (an area name, a hub's name, a pinyin place) in the city of the
/// address `to`, written in any format (`广东省深圳市南山区`, `广东-深圳-南山`,
/// `北京市朝阳区`)? Both are read against the division table; an ambiguous location
/// counts when any of its readings is in that city. Only an address the table cannot
/// read falls back to finding its city's name in the text.
fn in_city_of(to: &str, location: &str) -> bool {
    let Some(city) = place::parse_address(to).and_then(|l| l.place.city_code()) else {
        return destination_city(to).is_some_and(|c| location.contains(c));
    };
    let Some(here) = place::parse_address(location) else {
        return false;
    };
    std::iter::once(&here.place)
        .chain(&here.alternatives)
        .any(|p| p.city_code() == Some(city))
}

/// The city of a "province-city-district" destination without its 市 suffix, as carriers
/// often write it ("深圳转运中心"); `None` when too short to match safely.
fn destination_city(to: &str) -> Option<&str> {
    let mut parts = to.split(['-', ' ', '/']).filter(|p| !p.is_empty());
    let first = parts.next()?;
    let city = parts.next().unwrap_or(first);
    let city = city.strip_suffix('市').unwrap_or(city);
    (city.chars().count() >= 2).then_some(city)
}

/// `error_backoff_base × 2^(failures−1)`, capped at `error_backoff_max`, in milliseconds.
fn backoff(config: &PolicyConfig, consecutive_failures: u32) -> i64 {
    let base = millis(config.error_backoff_base);
    let cap = millis(config.error_backoff_max);
    let doublings = consecutive_failures.max(1) - 1;
    let grown = if doublings >= 62 {
        i64::MAX
    } else {
        base.saturating_mul(1i64 << doublings)
    };
    grown.min(cap)
}

/// A duration in whole milliseconds, negatives read as zero.
fn millis(d: SignedDuration) -> i64 {
    i64::try_from(d.as_millis().max(0)).unwrap_or(i64::MAX)
}

fn std_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn add_millis(t: Timestamp, ms: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_millis(ms))
        .unwrap_or(Timestamp::MAX)
}

/// A waybill's fixed jitter: a position in `[0, 2^64)` and the share it may move a delay.
#[derive(Debug, Clone, Copy)]
struct Jitter {
    seed: u64,
    percent: i128,
}

impl Jitter {
    fn of(company: &str, number: &str, percent: u8) -> Self {
        Self {
            seed: waybill_seed(company, number),
            percent: i128::from(percent),
        }
    }

    /// `delay` moved by up to ±percent, uniformly by seed, and kept under `max` by
    /// mirroring what would cross it. Milliseconds in and out, never negative.
    fn apply(self, delay: i64, max: i64) -> i64 {
        let delay = i128::from(delay.clamp(0, max.max(0)));
        let spread = delay * self.percent / 100;
        // Uniform in [-spread, spread] from the seed's high bits: multiply-shift, no modulo bias
        // worth the name and no floats, so every platform agrees.
        let width = (2 * spread + 1) as u128;
        let offset = ((u128::from(self.seed) * width) >> 64) as i128 - spread;
        let max = i128::from(max.max(0));
        let moved = delay + offset;
        let mirrored = if moved > max { 2 * max - moved } else { moved };
        i64::try_from(mirrored.max(0)).unwrap_or(i64::MAX)
    }

    /// `delay` moved up by between 0 and percent, by seed.
    fn lengthen(self, delay: i64) -> i64 {
        let delay = i128::from(delay.max(0));
        let spread = delay * self.percent / 100;
        let extra = ((u128::from(self.seed) * (spread + 1) as u128) >> 64) as i128;
        i64::try_from(delay + extra).unwrap_or(i64::MAX)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a64(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// SplitMix64's finaliser: spreads every input bit over all 64 output bits.
fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stable per-waybill seed. The 0xff separator cannot occur in UTF-8, so
/// ("ab", "c") and ("a", "bc") hash apart. Changing this reschedules every waybill.
fn waybill_seed(company: &str, number: &str) -> u64 {
    let h = fnv1a64(FNV_OFFSET, company.as_bytes());
    let h = fnv1a64(h, &[0xff]);
    splitmix64_mix(fnv1a64(h, number.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn t0() -> Timestamp {
        "2024-05-01T00:00:00Z".parse().unwrap()
    }

    fn facts(number: &str) -> SubscriptionFacts<'_> {
        SubscriptionFacts {
            company: "sandbox",
            number,
            subscribed_at: t0(),
            to: None,
        }
    }

    fn in_transit(at: Timestamp) -> TraceSummary<'static> {
        TraceSummary {
            state: State::InTransit,
            newest_event_at: Some(at),
            last_change_at: Some(at),
            newest_location: None,
        }
    }

    fn mins(m: i64) -> SignedDuration {
        SignedDuration::from_mins(m)
    }

    fn hours(h: i64) -> SignedDuration {
        SignedDuration::from_hours(h)
    }

    /// The delay from `from` of a `CheckAt`, and its reason; panics on any other decision.
    fn due(d: Decision, from: Timestamp) -> (SignedDuration, CheckReason) {
        match d {
            Decision::CheckAt { at, why } => (at.duration_since(from), why),
            other => panic!("expected a check, got {other:?}"),
        }
    }

    fn within(delay: SignedDuration, lo: SignedDuration, hi: SignedDuration) -> bool {
        lo <= delay && delay <= hi
    }

    #[test]
    fn first_check_is_fifteen_minutes_after_subscribing_within_ten_percent() {
        let config = PolicyConfig::default();
        for n in ["SB0001", "SB0002", "SF1234567890123", "YT0000000000"] {
            let d = next(
                &facts(n),
                &TraceSummary::EMPTY,
                &LastOutcome::NeverChecked,
                t0(),
                &config,
            );
            let (delay, why) = due(d, t0());
            assert_eq!(why, CheckReason::FirstCheck);
            assert!(
                within(
                    delay,
                    SignedDuration::from_secs(810),
                    SignedDuration::from_secs(990)
                ),
                "{n}: {delay:#}"
            );
        }
    }

    #[test]
    fn without_jitter_every_default_delay_is_exact() {
        let config = PolicyConfig {
            jitter_percent: 0,
            ..PolicyConfig::default()
        };
        let f = facts("SB0001");
        let first = next(
            &f,
            &TraceSummary::EMPTY,
            &LastOutcome::NeverChecked,
            t0(),
            &config,
        );
        assert_eq!(due(first, t0()), (mins(15), CheckReason::FirstCheck));

        let checked = t0() + hours(1);
        let ok = LastOutcome::Ok { at: checked };
        let regular = next(&f, &in_transit(t0()), &ok, checked, &config);
        assert_eq!(due(regular, checked), (hours(4), CheckReason::Regular));

        let near = TraceSummary {
            state: State::OutForDelivery,
            ..in_transit(t0())
        };
        let hourly = next(&f, &near, &ok, checked, &config);
        assert_eq!(
            due(hourly, checked),
            (hours(1), CheckReason::NearDestination)
        );
    }

    #[test]
    fn regular_checks_are_four_hours_apart_at_most_and_ten_percent_less_at_least() {
        let config = PolicyConfig::default();
        let checked = t0() + hours(5);
        for i in 0..200 {
            let number = format!("SB{i:04}");
            let d = next(
                &facts(&number),
                &in_transit(t0()),
                &LastOutcome::Ok { at: checked },
                checked,
                &config,
            );
            let (delay, why) = due(d, checked);
            assert_eq!(why, CheckReason::Regular);
            assert!(within(delay, mins(216), hours(4)), "{number}: {delay:#}");
        }
    }

    #[test]
    fn regular_checks_at_the_ceiling_still_spread_out() {
        let config = PolicyConfig::default();
        let checked = t0() + hours(5);
        let delays: HashSet<SignedDuration> = (0..1000)
            .map(|i| {
                let number = format!("SB{i:06}");
                let d = next(
                    &facts(&number),
                    &in_transit(t0()),
                    &LastOutcome::Ok { at: checked },
                    checked,
                    &config,
                );
                due(d, checked).0
            })
            .collect();
        assert!(delays.len() > 900, "only {} distinct delays", delays.len());
    }

    #[test]
    fn hourly_once_arrived_in_the_destination_city_out_for_delivery_or_in_a_locker() {
        let config = PolicyConfig::default();
        let checked = t0() + hours(30);
        let near = [
            State::ArrivedDestinationCity,
            State::AtDeliveryOutlet,
            State::OutForDelivery,
            State::InLocker,
            State::LockerTimeout,
            State::AttemptFailed,
            State::Redelivery,
        ];
        for state in State::ALL.into_iter().filter(|s| !s.is_signed()) {
            let trace = TraceSummary {
                state,
                ..in_transit(t0())
            };
            let d = next(
                &facts("SB0001"),
                &trace,
                &LastOutcome::Ok { at: checked },
                checked,
                &config,
            );
            let (delay, why) = due(d, checked);
            if near.contains(&state) {
                assert_eq!(why, CheckReason::NearDestination, "{state:?}");
                assert!(within(delay, mins(54), mins(66)), "{state:?}: {delay:#}");
            } else {
                assert_eq!(why, CheckReason::Regular, "{state:?}");
            }
        }
    }

    #[test]
    fn an_event_in_the_destination_city_counts_as_near_destination() {
        let config = PolicyConfig::default();
        let checked = t0() + hours(30);
        let mut f = facts("SB0001");
        f.to = Some("广东省-深圳市-南山区");
        let at_hub = TraceSummary {
            newest_location: Some("深圳转运中心"),
            ..in_transit(t0())
        };
        let elsewhere = TraceSummary {
            newest_location: Some("广州转运中心"),
            ..in_transit(t0())
        };
        let ok = LastOutcome::Ok { at: checked };
        assert_eq!(
            due(next(&f, &at_hub, &ok, checked, &config), checked).1,
            CheckReason::NearDestination
        );
        assert_eq!(
            due(next(&f, &elsewhere, &ok, checked, &config), checked).1,
            CheckReason::Regular
        );
    }

    #[test]
    fn near_destination_by_city_reads_every_address_format() {
        let config = PolicyConfig::default();
        let checked = t0() + hours(30);
        let ok = LastOutcome::Ok { at: checked };
        let reason = |to: &'static str, location: &'static str| {
            let mut f = facts("SB0001");
            f.to = Some(to);
            let trace = TraceSummary {
                newest_location: Some(location),
                ..in_transit(t0())
            };
            due(next(&f, &trace, &ok, checked, &config), checked).1
        };
        for to in [
            "广东省深圳市南山区",
            "广东省-深圳市-南山区",
            "广东 深圳 南山",
            "深圳市",
        ] {
            for here in [
                "广东,深圳市,宝安区",
                "快件到达【深圳宝安集散中心】",
                "SHENZHEN - CHINA",
            ] {
                assert_eq!(
                    reason(to, here),
                    CheckReason::NearDestination,
                    "{to} / {here}"
                );
            }
            assert_eq!(reason(to, "广州转运中心"), CheckReason::Regular, "{to}");
            assert_eq!(reason(to, "广东,东莞市"), CheckReason::Regular, "{to}");
        }
        // A Beijing district named without its city is read against the destination.
        assert_eq!(
            reason("北京市朝阳区", "朝阳区望京营业部"),
            CheckReason::NearDestination
        );
        assert_eq!(
            reason("北京市朝阳区", "北京顺义集散中心"),
            CheckReason::NearDestination
        );
        assert_eq!(reason("北京市朝阳区", "辽宁省朝阳市"), CheckReason::Regular);
    }

    #[test]
    fn destination_city_is_the_second_part_without_its_suffix() {
        assert_eq!(destination_city("广东省-深圳市-南山区"), Some("深圳"));
        assert_eq!(destination_city("北京市-北京市-朝阳区"), Some("北京"));
        assert_eq!(destination_city("杭州市"), Some("杭州"));
        assert_eq!(destination_city("市"), None);
        assert_eq!(destination_city(""), None);
    }

    #[test]
    fn signed_parcels_shut_down() {
        let config = PolicyConfig::default();
        for state in State::ALL.into_iter().filter(|s| s.is_signed()) {
            let trace = TraceSummary {
                state,
                ..in_transit(t0())
            };
            let d = next(
                &facts("SB0001"),
                &trace,
                &LastOutcome::NeverChecked,
                t0(),
                &config,
            );
            assert_eq!(d, Decision::Shutdown, "{state:?}");
        }
    }

    #[test]
    fn no_trace_three_days_after_subscribing_aborts_and_not_a_second_earlier() {
        let config = PolicyConfig::default();
        let f = facts("SB0001");
        let deadline = t0() + hours(72);
        let before = deadline - SignedDuration::from_secs(1);
        let last = LastOutcome::Ok { at: before };
        assert!(!next(&f, &TraceSummary::EMPTY, &last, before, &config).is_terminal());
        let d = next(&f, &TraceSummary::EMPTY, &last, deadline, &config);
        assert_eq!(
            d,
            Decision::Abort {
                reason: AbortReason::NoTraceIn3Days
            }
        );
    }

    #[test]
    fn a_trace_found_in_time_keeps_polling_after_three_days() {
        let config = PolicyConfig::default();
        let now = t0() + hours(80);
        let d = next(
            &facts("SB0001"),
            &in_transit(t0() + hours(70)),
            &LastOutcome::Ok { at: now },
            now,
            &config,
        );
        assert!(!d.is_terminal(), "{d:?}");
    }

    #[test]
    fn sixty_days_without_a_new_event_aborts() {
        let config = PolicyConfig::default();
        let event = t0() + hours(10);
        let f = facts("SB0001");
        let day59 = event + hours(59 * 24);
        let day60 = event + hours(60 * 24);
        let trace = TraceSummary {
            last_change_at: None,
            ..in_transit(event)
        };
        assert!(!next(&f, &trace, &LastOutcome::Ok { at: day59 }, day59, &config).is_terminal());
        assert_eq!(
            next(&f, &trace, &LastOutcome::Ok { at: day60 }, day60, &config),
            Decision::Abort {
                reason: AbortReason::NoChangeIn60Days
            }
        );
    }

    #[test]
    fn sixty_days_count_from_the_later_of_last_change_and_newest_event() {
        let config = PolicyConfig::default();
        let event = t0() + hours(10);
        let changed = event + hours(24 * 5);
        let trace = TraceSummary {
            last_change_at: Some(changed),
            ..in_transit(event)
        };
        let now = event + hours(24 * 61);
        let d = next(
            &facts("SB0001"),
            &trace,
            &LastOutcome::Ok { at: now },
            now,
            &config,
        );
        assert!(!d.is_terminal(), "{d:?}");
    }

    #[test]
    fn abort_messages_are_kuaidi100s() {
        assert_eq!(AbortReason::NoTraceIn3Days.message(), "3天查询无记录");
        assert_eq!(AbortReason::NoChangeIn60Days.to_string(), "60天无变化");
    }

    #[test]
    fn errors_back_off_from_five_minutes_doubling_up_to_four_hours() {
        let config = PolicyConfig {
            jitter_percent: 0,
            ..PolicyConfig::default()
        };
        let failed = t0() + hours(2);
        let expected = [
            (1, 5),
            (2, 10),
            (3, 20),
            (4, 40),
            (5, 80),
            (6, 160),
            (7, 240),
        ];
        for (n, minutes) in expected
            .into_iter()
            .chain([(0, 5), (100, 240), (u32::MAX, 240)])
        {
            let last = LastOutcome::Error {
                at: failed,
                retry_after: None,
                consecutive_failures: n,
            };
            let d = next(&facts("SB0001"), &in_transit(t0()), &last, failed, &config);
            assert_eq!(
                due(d, failed),
                (mins(minutes), CheckReason::ErrorBackoff),
                "{n} failures"
            );
        }
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_is_honoured() {
        let config = PolicyConfig::default();
        let failed = t0() + hours(2);
        let last = LastOutcome::Error {
            at: failed,
            retry_after: Some(Duration::from_secs(30 * 60)),
            consecutive_failures: 1,
        };
        let (delay, why) = due(
            next(&facts("SB0001"), &in_transit(t0()), &last, failed, &config),
            failed,
        );
        assert_eq!(why, CheckReason::RetryAfter);
        assert!(within(delay, mins(30), mins(33)), "{delay:#}");
    }

    #[test]
    fn a_retry_after_shorter_than_the_backoff_leaves_the_backoff() {
        let config = PolicyConfig::default();
        let failed = t0() + hours(2);
        let last = LastOutcome::Error {
            at: failed,
            retry_after: Some(Duration::from_secs(5)),
            consecutive_failures: 4,
        };
        let (delay, why) = due(
            next(&facts("SB0001"), &in_transit(t0()), &last, failed, &config),
            failed,
        );
        assert_eq!(why, CheckReason::ErrorBackoff);
        assert!(within(delay, mins(36), mins(44)), "{delay:#}");
    }

    #[test]
    fn a_retry_after_beyond_the_ceiling_is_cut_to_the_ceiling() {
        let config = PolicyConfig::default();
        let failed = t0() + hours(2);
        let last = LastOutcome::Error {
            at: failed,
            retry_after: Some(Duration::from_secs(10 * 3600)),
            consecutive_failures: 1,
        };
        let d = next(&facts("SB0001"), &in_transit(t0()), &last, failed, &config);
        assert_eq!(due(d, failed), (hours(4), CheckReason::RetryAfter));
    }

    #[test]
    fn an_overdue_check_is_due_now() {
        let config = PolicyConfig::default();
        let now = t0() + hours(2);
        let d = next(
            &facts("SB0001"),
            &TraceSummary::EMPTY,
            &LastOutcome::NeverChecked,
            now,
            &config,
        );
        assert_eq!(due(d, now), (SignedDuration::ZERO, CheckReason::FirstCheck));
    }

    #[test]
    fn a_million_waybills_subscribed_in_one_second_spread_their_first_check() {
        let config = PolicyConfig::default();
        let mut per_second: HashMap<i64, u32> = HashMap::new();
        let mut number = String::with_capacity(16);
        for i in 0..1_000_000u32 {
            use std::fmt::Write;
            number.clear();
            write!(number, "SF{i:013}").unwrap();
            let d = next(
                &facts(&number),
                &TraceSummary::EMPTY,
                &LastOutcome::NeverChecked,
                t0(),
                &config,
            );
            let Decision::CheckAt { at, .. } = d else {
                panic!("{d:?}")
            };
            *per_second.entry(at.as_second()).or_default() += 1;
        }
        // ±90 s around 15 min: 181 possible seconds; uniform means ~5,500 per second.
        assert!(
            per_second.len() >= 180,
            "{} distinct seconds",
            per_second.len()
        );
        let busiest = per_second.values().max().copied().unwrap_or(0);
        assert!(busiest < 7_000, "busiest second has {busiest} checks");
    }

    #[test]
    fn a_check_explains_itself_in_one_line() {
        let d = Decision::CheckAt {
            at: t0(),
            why: CheckReason::NearDestination,
        };
        assert_eq!(
            d.to_string(),
            "check at 2024-05-01T00:00:00Z (near destination (destination city, out for \
             delivery or locker): short interval)"
        );
    }

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_finaliser_matches_the_reference_sequence() {
        // SplitMix64 seeded with 0 adds the golden gamma before mixing; its first output
        // is the published 0xe220a8397b1dcdaf.
        assert_eq!(splitmix64_mix(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn company_and_number_boundary_matters_to_the_seed() {
        assert_ne!(waybill_seed("ab", "c"), waybill_seed("a", "bc"));
    }

    #[test]
    fn default_config_round_trips_through_its_friendly_form() {
        let json = serde_json::to_value(PolicyConfig::default()).unwrap();
        assert_eq!(json["first_check"], "15m");
        assert_eq!(json["interval"], "4h");
        assert_eq!(json["no_trace_abort_after"], "72h");
        assert_eq!(json["jitter_percent"], 10);
        let back: PolicyConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, PolicyConfig::default());
        let empty: PolicyConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, PolicyConfig::default());
    }

    #[test]
    fn config_rejects_nonsense_with_the_key_named() {
        let err = |s: &str| {
            serde_json::from_str::<PolicyConfig>(s)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"interval": "-5m"}"#).contains("`interval`"));
        assert!(err(r#"{"first_check": "0s"}"#).contains("`first_check`"));
        let above = err(r#"{"near_destination_interval": "5h"}"#);
        assert!(
            above.contains("`near_destination_interval` is 5h"),
            "{above}"
        );
        assert!(above.contains("`max_interval` (4h)"), "{above}");
        assert!(err(r#"{"jitter_percent": 60}"#).contains("at most 50"));
        assert!(err(r#"{"intervall": "1h"}"#).contains("unknown field"));
        assert!(err(r#"{"interval": "soon"}"#).contains("unreadable duration \"soon\""));
        assert!(err(r#"{"interval": "1 month"}"#).contains("\"1 month\""));
    }

    #[test]
    fn long_abort_thresholds_are_not_held_to_the_polling_ceiling() {
        let config: PolicyConfig =
            serde_json::from_str(r#"{"no_change_abort_after": "90 days"}"#).unwrap();
        assert_eq!(config.no_change_abort_after, hours(90 * 24));
        let config: PolicyConfig =
            serde_json::from_str(r#"{"no_trace_abort_after": "1w 1d"}"#).unwrap();
        assert_eq!(config.no_trace_abort_after, hours(8 * 24));
    }

    fn any_state() -> impl Strategy<Value = State> {
        (0..State::ALL.len()).prop_map(|i| State::ALL[i])
    }

    fn any_time() -> impl Strategy<Value = Timestamp> {
        // 2000..2100, in milliseconds.
        (946_684_800_000i64..4_102_444_800_000)
            .prop_map(|ms| Timestamp::from_millisecond(ms).unwrap())
    }

    fn any_config() -> impl Strategy<Value = PolicyConfig> {
        let secs = |lo: i64, hi: i64| (lo..hi).prop_map(SignedDuration::from_secs);
        (
            secs(1, 86_400),
            secs(1, 86_400),
            secs(1, 86_400),
            secs(1, 86_400),
            secs(1, 86_400),
            secs(1, 86_400 * 10),
            secs(1, 86_400 * 100),
            0u8..=MAX_JITTER_PERCENT,
            secs(0, 86_400),
        )
            .prop_map(|(a, b, c, d, e, f, g, jitter, headroom)| {
                let max = a.max(b).max(c).max(d).max(e) + headroom;
                PolicyConfig {
                    first_check: a,
                    interval: b,
                    near_destination_interval: c,
                    max_interval: max,
                    error_backoff_base: d,
                    error_backoff_max: e,
                    no_trace_abort_after: f,
                    no_change_abort_after: g,
                    jitter_percent: jitter,
                }
            })
    }

    /// Instants within a few months of `base`, where the interesting cases are.
    fn near(base: Timestamp) -> impl Strategy<Value = Timestamp> {
        (-10 * 86_400_000i64..120 * 86_400_000)
            .prop_map(move |ms| base + SignedDuration::from_millis(ms))
    }

    fn any_outcome(base: Timestamp) -> impl Strategy<Value = LastOutcome> {
        prop_oneof![
            Just(LastOutcome::NeverChecked),
            near(base).prop_map(|at| LastOutcome::Ok { at }),
            (
                near(base),
                proptest::option::of(0u64..200_000),
                prop_oneof![0u32..20, any::<u32>()],
            )
                .prop_map(|(at, ra, n)| LastOutcome::Error {
                    at,
                    retry_after: ra.map(Duration::from_secs),
                    consecutive_failures: n,
                }),
        ]
    }

    #[derive(Debug, Clone)]
    struct Case {
        number: String,
        subscribed_at: Timestamp,
        state: State,
        newest_event_at: Option<Timestamp>,
        last_change_at: Option<Timestamp>,
        newest_location: Option<&'static str>,
        last: LastOutcome,
        now: Timestamp,
        config: PolicyConfig,
    }

    impl Case {
        fn decide_at(&self, now: Timestamp, last: &LastOutcome) -> Decision {
            let facts = SubscriptionFacts {
                company: "sandbox",
                number: &self.number,
                subscribed_at: self.subscribed_at,
                to: Some("广东省-深圳市-南山区"),
            };
            let trace = TraceSummary {
                state: self.state,
                newest_event_at: self.newest_event_at,
                last_change_at: self.last_change_at,
                newest_location: self.newest_location,
            };
            next(&facts, &trace, last, now, &self.config)
        }
        fn decide(&self) -> Decision {
            self.decide_at(self.now, &self.last)
        }
    }

    fn any_case() -> impl Strategy<Value = Case> {
        any_time().prop_flat_map(|base| {
            (
                "[A-Z0-9]{0,20}",
                prop_oneof![Just(State::NoTrace), any_state()],
                proptest::option::of(near(base)),
                proptest::option::of(near(base)),
                proptest::option::of(prop_oneof![Just("深圳转运中心"), Just("广州转运中心")]),
                any_outcome(base),
                near(base),
                any_config(),
            )
                .prop_map(
                    move |(
                        number,
                        state,
                        newest_event_at,
                        last_change_at,
                        newest_location,
                        last,
                        now,
                        config,
                    )| {
                        Case {
                            number,
                            subscribed_at: base,
                            state,
                            newest_event_at,
                            last_change_at,
                            newest_location,
                            last,
                            now,
                            config,
                        }
                    },
                )
        })
    }

    #[test]
    fn the_case_generator_reaches_every_kind_of_decision() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let mut kinds = HashMap::new();
        for _ in 0..2000 {
            let case = any_case().new_tree(&mut runner).unwrap().current();
            let kind = match case.decide() {
                Decision::CheckAt { why, .. } => format!("{why:?}"),
                Decision::Shutdown => "Shutdown".into(),
                Decision::Abort { reason } => format!("{reason:?}"),
            };
            *kinds.entry(kind).or_insert(0u32) += 1;
        }
        eprintln!("{kinds:?}");
        // Every rule is reached often enough for the properties to say something about it.
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        assert!(kinds.values().all(|&n| n >= 20), "{kinds:?}");
    }

    proptest! {
        #[test]
        fn a_check_is_never_in_the_past(case in any_case()) {
            if let Decision::CheckAt { at, .. } = case.decide() {
                prop_assert!(at >= case.now);
            }
        }

        #[test]
        fn a_check_is_never_beyond_the_maximum_interval(case in any_case()) {
            if let Decision::CheckAt { at, .. } = case.decide() {
                prop_assert!(at.duration_since(case.now) <= case.config.max_interval);
            }
        }

        #[test]
        fn signed_parcels_always_shut_down(case in any_case(), pick in any::<prop::sample::Index>()) {
            let signed: Vec<State> = State::ALL.into_iter().filter(|s| s.is_signed()).collect();
            let case = Case { state: *pick.get(&signed), ..case };
            prop_assert_eq!(case.decide(), Decision::Shutdown);
        }

        #[test]
        fn terminal_decisions_stay_terminal(
            case in any_case(),
            later_ms in 0i64..(86_400_000 * 400),
            later_last in any_outcome(Timestamp::UNIX_EPOCH),
        ) {
            let first = case.decide();
            prop_assume!(first.is_terminal());
            let later = case.now + SignedDuration::from_millis(later_ms);
            prop_assert_eq!(case.decide_at(later, &later_last), first);
        }

        #[test]
        fn a_retry_after_within_the_ceiling_is_never_cut_short(
            case in any_case(),
            retry_secs in 0u64..86_400,
            n in any::<u32>(),
        ) {
            let failed = case.now;
            let last = LastOutcome::Error {
                at: failed,
                retry_after: Some(Duration::from_secs(retry_secs)),
                consecutive_failures: n,
            };
            if let Decision::CheckAt { at, .. } = case.decide_at(failed, &last) {
                let wanted = SignedDuration::from_secs(retry_secs as i64).min(case.config.max_interval);
                prop_assert!(at.duration_since(failed) >= wanted);
            }
        }

        #[test]
        fn nonsense_configs_built_in_code_never_panic(
            case in any_case(),
            secs in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 8),
            jitter in any::<u8>(),
        ) {
            let d = |i: usize| SignedDuration::from_secs(secs[i]);
            let config = PolicyConfig {
                first_check: d(0),
                interval: d(1),
                near_destination_interval: d(2),
                max_interval: d(3),
                error_backoff_base: d(4),
                error_backoff_max: d(5),
                no_trace_abort_after: d(6),
                no_change_abort_after: d(7),
                jitter_percent: jitter,
            };
            let case = Case { config, ..case };
            if let Decision::CheckAt { at, .. } = case.decide() {
                prop_assert!(at >= case.now);
            }
        }
    }
}
