//! Arrival estimates learned per lane: when a parcel will reach its recipient, from how
//! long parcels on the same lane took before, with the reasoning behind the figure.
//!
//! # Stages
//!
//! A forward journey passes four milestones ([`Milestones::of`] reads them off a trace):
//!
//! | milestone | the first line that… |
//! |---|---|
//! | collected | shows the carrier holding the parcel (any phase after info-received) |
//! | destination city | is `ArrivedDestinationCity` or `AtDeliveryOutlet`, or lies in the destination's city, or is a later milestone |
//! | out for delivery | is out for delivery, in a locker or station, or delivered |
//! | delivered | puts the parcel at the recipient's disposal: signed for, or in a locker or station |
//!
//! A locker counts as delivered because the parcel is there for the recipient to take;
//! how long they leave it there is the 412 problem flag's business, not the carrier's
//! transit time. A parcel refused, returning or returned has no estimate and teaches
//! nothing.
//!
//! # Lanes
//!
//! Every delivered parcel adds, for each stage it passed, the time from entering that
//! stage to delivery ([`Lanes::learn`]). Samples go to four scopes at once, from the most
//! specific to the broadest ([`Scope`]): the city pair, the province pair, the reach
//! (same city, same province, other province) and the whole carrier. Each scope keeps one
//! [`Histogram`] per stage: log-spaced bins of 4 %, so memory per lane is bounded
//! (at most 300 counters per stage) whatever the traffic, and adding a parcel touches
//! four small records, never a scan.
//!
//! # Estimate
//!
//! [`Lanes::estimate`] takes the current stage and the time already spent in it, and asks
//! the most specific scope with enough samples ([`EtaConfig::min_samples`]) for the
//! remaining time *given* that much has passed (the conditional median, p20 and p80 of the
//! stage's histogram above the elapsed time). A parcel that has already waited longer than
//! most gets a later estimate, not one in the past. With no scope ready, the configured
//! cold-start defaults answer ([`ColdStart`]). Every [`Estimate`] says which scope, how
//! many samples, which stage and whether it fell back.
//!
//! ```
//! use waybill_core::eta::{Basis, EtaConfig, Lanes, Milestones, Stage};
//! use waybill_core::model::{EventTime, Trace, TrackEvent};
//! use waybill_core::state::State;
//! use waybill_core::time::SignedDuration;
//!
//! let at = |t: &str| t.parse::<EventTime>().unwrap();
//! let line = |t: &str, text: &str, s| TrackEvent::new(at(t), text, s);
//! let mut lanes = Lanes::new(EtaConfig { min_samples: 3, ..EtaConfig::default() });
//! for day in 1..=5 {
//!     let t = |h: u32| format!("2024-05-{day:02} {h:02}:00:00");
//!     let mut trace = Trace::from_events("sandbox", "SB1", vec![
//!         line(&t(8), "【深圳市】已揽收", State::Collected),
//!         line(&t(20), "快件到达【北京转运中心】", State::ArrivedDestinationCity),
//!         line(&t(22), "快件已签收", State::Delivered),
//!     ]);
//!     trace.locate(None, Some("北京市朝阳区"));
//!     lanes.learn("sandbox", &Milestones::of(&trace, Some("北京市朝阳区")));
//! }
//! let mut trace = Trace::from_events("sandbox", "SB2", vec![
//!     line("2024-06-01 09:00:00", "【深圳市】已揽收", State::Collected),
//! ]);
//! trace.locate(None, Some("北京市朝阳区"));
//! let m = Milestones::of(&trace, Some("北京市朝阳区"));
//! let now = at("2024-06-01 10:00:00").at;
//! let e = lanes.estimate("sandbox", &m, now).expect("an estimate");
//! assert_eq!(e.stage, Some(Stage::Collected));
//! assert!(matches!(&e.basis, Basis::Learned { scope, samples: 5, .. } if scope == "lane:440300-110000"));
//! let total = e.arrival.duration_since(at("2024-06-01 09:00:00").at);
//! assert!((total - SignedDuration::from_hours(14)).abs() < SignedDuration::from_mins(40));
//! ```

use std::collections::HashMap;

use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{Trace, CHINA_OFFSET};
use crate::place::{parse_address, Place};
use crate::policy::SubscriptionFacts;
use crate::problem::{Flag, FlagKind, Thresholds, Trigger};
use crate::state::{Phase, State};

/// Stage entries are bucketed by local hour into this many 2-hour buckets.
pub const HOUR_BUCKETS: usize = 12;

/// Bin growth: each bin is 4 % wider than the one before (a relative error of 2 %).
const GROWTH: f64 = 1.04;
/// Bins from under a minute to 1.04^300 minutes (about 90 days); longer times share the
/// last bin.
const MAX_BIN: u16 = 300;

/// Counts of durations in log-spaced bins, in minutes: a quantile sketch with bounded
/// memory whose answers are within 2 % of the exact quantile.
///
/// ```
/// use waybill_core::eta::Histogram;
/// use waybill_core::time::SignedDuration;
/// let mut h = Histogram::default();
/// for hours in 1..=100 {
///     h.add(SignedDuration::from_hours(hours));
/// }
/// let median = h.quantile(0.5).unwrap().as_secs_f64() / 3600.0;
/// assert!((median - 50.0).abs() < 1.5, "{median}");
/// // Given that 80 hours have passed, the median of what is left is about 90 hours.
/// let later = h.quantile_after(0.5, SignedDuration::from_hours(80)).unwrap();
/// assert!((later.as_secs_f64() / 3600.0 - 90.0).abs() < 2.0);
/// assert!(h.quantile_after(0.5, SignedDuration::from_hours(200)).is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Index of the first bin in `counts`.
    first: u16,
    /// Counts of bins `first..first + counts.len()`.
    counts: Vec<u32>,
}

fn bin_of(minutes: f64) -> u16 {
    if minutes < GROWTH {
        return 0;
    }
    // Truncation is the floor here: the value is positive and far below u16::MAX.
    ((minutes.ln() / GROWTH.ln()) as u16).min(MAX_BIN)
}

/// Lower edge of bin `i` in minutes (bin 0 starts at zero).
fn lower(i: u16) -> f64 {
    if i == 0 {
        0.0
    } else {
        GROWTH.powi(i32::from(i))
    }
}

fn upper(i: u16) -> f64 {
    GROWTH.powi(i32::from(i) + 1)
}

fn minutes(d: SignedDuration) -> f64 {
    d.as_secs_f64().max(0.0) / 60.0
}

fn from_minutes(m: f64) -> SignedDuration {
    SignedDuration::from_secs((m * 60.0).round() as i64)
}

impl Histogram {
    /// Counts one duration (negative ones count as zero).
    pub fn add(&mut self, d: SignedDuration) {
        let slot = self.slot(bin_of(minutes(d)));
        *slot = slot.saturating_add(1);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (i, &c) in other.counts.iter().enumerate() {
            if c > 0 {
                let slot = self.slot(other.first + i as u16);
                *slot = slot.saturating_add(c);
            }
        }
    }

    /// The counter of bin `b`, growing the range to hold it.
    fn slot(&mut self, b: u16) -> &mut u32 {
        if self.counts.is_empty() {
            self.first = b;
        } else if b < self.first {
            let grow = usize::from(self.first - b);
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = b;
        }
        let at = usize::from(b - self.first);
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        &mut self.counts[at]
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// How many durations lie below `m` minutes, interpolating inside `m`'s bin.
    fn rank_of(&self, m: f64) -> f64 {
        let b = bin_of(m);
        let mut below = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            let bin = self.first + i as u16;
            if bin < b {
                below += f64::from(c);
            } else if bin == b {
                let (lo, hi) = (lower(bin), upper(bin));
                let share = ((m - lo) / (hi - lo)).clamp(0.0, 1.0);
                below += f64::from(c) * share;
            } else {
                break;
            }
        }
        below
    }

    /// The duration at rank `r` (0 ≤ r ≤ count), interpolating inside its bin.
    fn at_rank(&self, r: f64) -> f64 {
        let mut seen = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            let c = f64::from(c);
            if c > 0.0 && seen + c >= r {
                let bin = self.first + i as u16;
                let share = ((r - seen) / c).clamp(0.0, 1.0);
                return lower(bin) + (upper(bin) - lower(bin)) * share;
            }
            seen += c;
        }
        upper(self.first + self.counts.len().saturating_sub(1) as u16)
    }

    /// The `q` quantile (0 ≤ q ≤ 1); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<SignedDuration> {
        self.quantile_after(q, SignedDuration::ZERO)
    }

    /// The `q` quantile of the durations longer than `elapsed`: "given that `elapsed` has
    /// passed, by when have a share `q` finished?". `None` when fewer than half a sample
    /// lies beyond `elapsed`.
    pub fn quantile_after(&self, q: f64, elapsed: SignedDuration) -> Option<SignedDuration> {
        let n = self.count() as f64;
        let floor = self.rank_of(minutes(elapsed));
        let beyond = n - floor;
        if n == 0.0 || beyond < 0.5 {
            return None;
        }
        let r = floor + q.clamp(0.0, 1.0) * beyond;
        Some(from_minutes(self.at_rank(r)).max(elapsed))
    }

    /// The point estimate for a parcel that entered its stage at `since` and has spent
    /// `elapsed` in it: the median within the local day (in `zone`) on which most of the
    /// durations longer than `elapsed` end. Deliveries come in rounds, so the remaining
    /// time is often bimodal (this evening or tomorrow morning); the overall median can
    /// fall in the night between, on the wrong day, where no parcel arrives. `None` when
    /// nothing lies beyond `elapsed`.
    pub fn likeliest_day(
        &self,
        since: Timestamp,
        elapsed: SignedDuration,
        zone: &TimeZone,
    ) -> Option<SignedDuration> {
        let n = self.count() as f64;
        let floor = minutes(elapsed);
        if n - self.rank_of(floor) < 0.5 {
            return None;
        }
        let last = upper(self.first + self.counts.len().saturating_sub(1) as u16);
        let mut day = (since + elapsed).to_zoned(zone.clone()).date();
        let mut best: Option<(f64, f64, f64)> = None;
        loop {
            let start = day.to_zoned(zone.clone()).ok()?.timestamp();
            let next = day.tomorrow().ok()?;
            let end = next.to_zoned(zone.clone()).ok()?.timestamp();
            let lo = minutes(start.duration_since(since)).max(floor);
            let hi = minutes(end.duration_since(since));
            let (r_lo, r_hi) = (self.rank_of(lo), self.rank_of(hi));
            if best.is_none_or(|(mass, _, _)| r_hi - r_lo > mass) {
                best = Some((r_hi - r_lo, r_lo, r_hi));
            }
            if hi >= last {
                break;
            }
            day = next;
        }
        let (_, r_lo, r_hi) = best?;
        Some(from_minutes(self.at_rank((r_lo + r_hi) / 2.0)).max(elapsed))
    }

    /// How many counted durations are longer than `elapsed` (fractional inside its bin).
    pub fn beyond(&self, elapsed: SignedDuration) -> f64 {
        self.count() as f64 - self.rank_of(minutes(elapsed))
    }
}

/// A stage of the forward journey, entered at its milestone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The carrier has the parcel, in the origin's network or on a line haul.
    Collected,
    /// In the destination city, on the way to the delivery outlet.
    DestinationCity,
    /// With the courier, or waiting in a locker or station.
    OutForDelivery,
}

impl Stage {
    /// Every stage, in journey order.
    pub const ALL: [Stage; 3] = [
        Stage::Collected,
        Stage::DestinationCity,
        Stage::OutForDelivery,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Collected => "collected",
            Stage::DestinationCity => "destination_city",
            Stage::OutForDelivery => "out_for_delivery",
        }
    }
}

/// The milestones of a trace and the ends of its lane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Milestones {
    /// When the carrier first had the parcel.
    pub collected: Option<Timestamp>,
    /// When it first reached the destination city.
    pub destination_city: Option<Timestamp>,
    /// When it first went out for delivery (or into a locker).
    pub out_for_delivery: Option<Timestamp>,
    /// When it was first at the recipient's disposal.
    pub delivered: Option<Timestamp>,
    /// Where it was collected.
    pub origin: Option<Place>,
    /// Where it goes: the subscription's `to`, else (once delivered) where it was delivered.
    pub destination: Option<Place>,
    /// Refused, returning or returned: no estimate, nothing to learn.
    pub returning: bool,
    /// The carrier's local offset (of its first line): stage entries are bucketed by
    /// their local hour.
    pub offset: Option<Offset>,
}

impl Milestones {
    /// Reads the milestones off `trace` (its lines located, see [`Trace::locate`]), with
    /// the subscription's destination address `to` when there is one.
    pub fn of(trace: &Trace, to: Option<&str>) -> Self {
        let mut m = Milestones {
            destination: to.and_then(parse_address).map(|l| l.place),
            ..Milestones::default()
        };
        let dest_city = m.destination.map(|p| p.city_code().unwrap_or(p.code));
        for e in trace.data.iter().rev() {
            let phase = e.state.phase();
            let at = e.time.at;
            if matches!(phase, Phase::Refused | Phase::Returning | Phase::Returned) {
                m.returning = true;
            }
            if matches!(phase, Phase::NoTrace | Phase::InfoReceived) {
                continue;
            }
            m.collected.get_or_insert(at);
            m.offset.get_or_insert(e.time.offset);
            let place = e.place();
            if m.origin.is_none() {
                m.origin = place;
            }
            let in_dest_city = match (place, dest_city) {
                (Some(p), Some(city)) => p.city_code().unwrap_or(p.code) == city,
                _ => false,
            };
            let last_mile = matches!(
                phase,
                Phase::OutForDelivery | Phase::AvailableForPickup | Phase::Delivered
            );
            if in_dest_city
                || last_mile
                || matches!(
                    e.state,
                    State::ArrivedDestinationCity | State::AtDeliveryOutlet
                )
            {
                m.destination_city.get_or_insert(at);
            }
            if last_mile {
                m.out_for_delivery.get_or_insert(at);
            }
            if matches!(phase, Phase::AvailableForPickup | Phase::Delivered)
                && m.delivered.is_none()
            {
                m.delivered = Some(at);
                if m.destination.is_none() {
                    m.destination = place;
                }
            }
        }
        m
    }

    /// When the parcel entered `stage`.
    pub fn entered(&self, stage: Stage) -> Option<Timestamp> {
        match stage {
            Stage::Collected => self.collected,
            Stage::DestinationCity => self.destination_city,
            Stage::OutForDelivery => self.out_for_delivery,
        }
    }

    /// The bucket of the local hour at which `stage` was entered ([`HOUR_BUCKETS`] of
    /// two hours each: 0 is 00:00–02:00).
    pub fn entry_bucket(&self, stage: Stage) -> Option<usize> {
        Some(self.slot(self.entered(stage)?))
    }

    /// The [`HOUR_BUCKETS`] slot of `at` in the carrier's local time.
    fn slot(&self, at: Timestamp) -> usize {
        let local = at.to_zoned(TimeZone::fixed(self.offset.unwrap_or(CHINA_OFFSET)));
        usize::from(local.hour().unsigned_abs()) / (24 / HOUR_BUCKETS)
    }

    /// The latest stage reached, `None` before collection (or once delivered).
    pub fn stage(&self) -> Option<Stage> {
        if self.delivered.is_some() {
            return None;
        }
        Stage::ALL
            .into_iter()
            .rev()
            .find(|&s| self.entered(s).is_some())
    }
}

/// How far apart the ends of a lane are, when nothing finer has samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Origin and destination in one city.
    SameCity,
    /// In one province.
    SameProvince,
    /// Across provinces.
    OtherProvince,
}

impl Reach {
    /// The reach between two places.
    pub fn between(from: &Place, to: &Place) -> Reach {
        let city = |p: &Place| p.city_code().unwrap_or(p.code);
        if city(from) == city(to) {
            Reach::SameCity
        } else if from.province_code() == to.province_code() {
            Reach::SameProvince
        } else {
            Reach::OtherProvince
        }
    }

    fn name(self) -> &'static str {
        match self {
            Reach::SameCity => "same_city",
            Reach::SameProvince => "same_province",
            Reach::OtherProvince => "other_province",
        }
    }
}

/// Which parcels a set of samples describes, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// From one city to another (GB/T 2260 city codes).
    Lane {
        /// Origin city.
        from: u32,
        /// Destination city.
        to: u32,
    },
    /// From one province to another.
    Provinces {
        /// Origin province.
        from: u32,
        /// Destination province.
        to: u32,
    },
    /// Every lane of that reach.
    Reach(Reach),
    /// Every parcel of the carrier.
    Carrier,
}

impl Scope {
    /// The scopes a parcel from `origin` to `destination` belongs to, most specific first.
    pub fn chain(origin: Option<&Place>, destination: Option<&Place>) -> Vec<Scope> {
        let mut out = Vec::with_capacity(4);
        if let (Some(o), Some(d)) = (origin, destination) {
            let city = |p: &Place| p.city_code().unwrap_or(p.code);
            out.push(Scope::Lane {
                from: city(o),
                to: city(d),
            });
            out.push(Scope::Provinces {
                from: o.province_code(),
                to: d.province_code(),
            });
            out.push(Scope::Reach(Reach::between(o, d)));
        }
        out.push(Scope::Carrier);
        out
    }

    /// The stored key: `lane:440300-110100`, `provinces:440000-110000`,
    /// `reach:same_city`, `carrier`.
    ///
    /// ```
    /// use waybill_core::eta::Scope;
    /// let s = Scope::Lane { from: 440300, to: 110100 };
    /// assert_eq!(s.key(), "lane:440300-110100");
    /// assert_eq!(Scope::parse(&s.key()), Some(s));
    /// assert_eq!(Scope::parse("reach:same_city").map(|s| s.key()).as_deref(), Some("reach:same_city"));
    /// assert_eq!(Scope::parse("lane:x"), None);
    /// ```
    pub fn key(&self) -> String {
        match self {
            Scope::Lane { from, to } => format!("lane:{from:06}-{to:06}"),
            Scope::Provinces { from, to } => format!("provinces:{from:06}-{to:06}"),
            Scope::Reach(r) => format!("reach:{}", r.name()),
            Scope::Carrier => "carrier".into(),
        }
    }

    /// Reads a key written by [`Scope::key`].
    pub fn parse(key: &str) -> Option<Scope> {
        let pair = |s: &str| -> Option<(u32, u32)> {
            let (a, b) = s.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        if key == "carrier" {
            return Some(Scope::Carrier);
        }
        let (kind, rest) = key.split_once(':')?;
        match kind {
            "lane" => pair(rest).map(|(from, to)| Scope::Lane { from, to }),
            "provinces" => pair(rest).map(|(from, to)| Scope::Provinces { from, to }),
            "reach" => [Reach::SameCity, Reach::SameProvince, Reach::OtherProvince]
                .into_iter()
                .find(|r| r.name() == rest)
                .map(Scope::Reach),
            _ => None,
        }
    }
}

/// What one scope has learned: per stage, the time from entering it to delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneStats {
    /// Delivered parcels counted.
    pub deliveries: u64,
    /// Remaining time to delivery from entering each stage, in [`Stage::ALL`] order.
    pub from_stage: [Histogram; 3],
    /// The same, split by the local hour the stage was entered ([`HOUR_BUCKETS`]): the
    /// hour decides which line haul and which delivery round a parcel catches, so the
    /// remaining time from 10:00 and from 22:00 are different distributions.
    #[serde(default)]
    pub by_entry_hour: [[Histogram; HOUR_BUCKETS]; 3],
}

impl LaneStats {
    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &LaneStats) {
        self.deliveries += other.deliveries;
        for (mine, theirs) in self.from_stage.iter_mut().zip(&other.from_stage) {
            mine.merge(theirs);
        }
        for (mine, theirs) in self.by_entry_hour.iter_mut().zip(&other.by_entry_hour) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.merge(t);
            }
        }
    }
}

/// What one delivered parcel teaches: its samples, and the scopes they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    /// The parcel's scopes, most specific first ([`Scope::chain`]).
    pub scopes: Vec<Scope>,
    /// One delivery, with one sample per stage the parcel passed.
    pub stats: LaneStats,
}

impl Lesson {
    /// The lesson of a delivered parcel; `None` for one not delivered, returning, or
    /// without a collection time.
    pub fn of(m: &Milestones) -> Option<Lesson> {
        let delivered = m.delivered.filter(|_| !m.returning)?;
        m.collected?;
        let mut stats = LaneStats {
            deliveries: 1,
            ..LaneStats::default()
        };
        for stage in Stage::ALL {
            if let (Some(t), Some(b)) = (m.entered(stage), m.entry_bucket(stage)) {
                let left = delivered.duration_since(t);
                stats.from_stage[stage.index()].add(left);
                stats.by_entry_hour[stage.index()][b].add(left);
            }
        }
        Some(Lesson {
            scopes: Scope::chain(m.origin.as_ref(), m.destination.as_ref()),
            stats,
        })
    }
}

fn quantile_share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let q = f64::deserialize(d)?;
    if (0.5..1.0).contains(&q) {
        Ok(q)
    } else {
        Err(serde::de::Error::custom(format!(
            "late_quantile must be at least 0.5 and below 1, not {q}"
        )))
    }
}

/// Door-to-door times used while no scope has enough samples (a fresh install), by reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdStart {
    /// Collected to delivered within one city.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub same_city: SignedDuration,
    /// Within one province.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub same_province: SignedDuration,
    /// Across provinces, or when the lane's ends are unknown.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub other_province: SignedDuration,
    /// From arriving in the destination city to delivery.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub destination_city: SignedDuration,
    /// From going out for delivery to delivery.
    #[serde(
        deserialize_with = "crate::policy::positive_duration",
        serialize_with = "jiff::fmt::serde::duration::friendly::compact::required"
    )]
    pub out_for_delivery: SignedDuration,
}

impl Default for ColdStart {
    fn default() -> Self {
        let h = SignedDuration::from_hours;
        Self {
            same_city: h(24),
            same_province: h(36),
            other_province: h(72),
            destination_city: h(16),
            out_for_delivery: h(3),
        }
    }
}

/// Settings of the estimator.
///
/// ```
/// use waybill_core::eta::EtaConfig;
/// let c: EtaConfig = toml::from_str("min_samples = 50\n[cold_start]\nsame_city = \"12h\"").unwrap();
/// assert_eq!(c.min_samples, 50);
/// assert_eq!(c.cold_start.same_city, waybill_core::time::SignedDuration::from_hours(12));
/// assert!(toml::from_str::<EtaConfig>("[cold_start]\nsame_city = \"0s\"").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtaConfig {
    /// Samples a scope needs at a stage before it answers for that stage.
    pub min_samples: u64,
    /// Lane lateness (problem 490): a parcel still on its way this long after collection
    /// for this share of its lane's deliveries is late ([`Lanes::lateness`]).
    #[serde(deserialize_with = "quantile_share")]
    pub late_quantile: f64,
    /// Defaults while no scope is ready.
    pub cold_start: ColdStart,
}

impl Default for EtaConfig {
    fn default() -> Self {
        Self {
            min_samples: 20,
            late_quantile: 0.95,
            cold_start: ColdStart::default(),
        }
    }
}

/// Where an estimate's figures come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Basis {
    /// A learned scope ([`Scope::key`]) and how many samples it had at the stage.
    Learned {
        /// The scope's key.
        scope: String,
        /// Samples at the stage.
        samples: u64,
        /// The local hours of stage entry the samples share (`08-12`), when the scope
        /// had enough of them; `None`: all hours.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry_hours: Option<String>,
    },
    /// The configured cold-start default.
    ColdStart {
        /// Why: no scope had enough samples.
        reach: Option<Reach>,
    },
}

/// When a parcel will arrive, and why we think so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// The median estimate of delivery.
    pub arrival: Timestamp,
    /// 20th percentile: one parcel in five like this one arrives earlier.
    pub early: Timestamp,
    /// 80th percentile: four in five arrive by then.
    pub late: Timestamp,
    /// The stage the estimate starts from; `None` before collection (counted from now).
    pub stage: Option<Stage>,
    /// When that stage was entered.
    pub stage_since: Option<Timestamp>,
    /// The lane's typical door-to-door time (median from collection), kuaidi100's
    /// `totalTime`.
    #[serde(with = "duration_text")]
    pub typical_total: SignedDuration,
    /// Where the figures come from.
    pub basis: Basis,
    /// Whether a broader scope than the city pair answered.
    pub fallback: bool,
    /// The estimate in words.
    pub explanation: String,
}

mod duration_text {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        jiff::fmt::serde::duration::friendly::compact::required(d, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        SignedDuration::deserialize(d)
    }
}

impl Estimate {
    /// Time left until `arrival` at `now`, never negative.
    pub fn remaining(&self, now: Timestamp) -> SignedDuration {
        self.arrival.duration_since(now).max(SignedDuration::ZERO)
    }
}

/// The learned lanes of every carrier, and the estimator over them.
#[derive(Debug, Clone, Default)]
pub struct Lanes {
    config: EtaConfig,
    /// By carrier, then scope: a lookup by `&str` allocates nothing.
    stats: HashMap<String, HashMap<Scope, LaneStats>>,
}

impl Lanes {
    /// No lanes learned yet.
    pub fn new(config: EtaConfig) -> Self {
        Self {
            config,
            stats: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EtaConfig {
        &self.config
    }

    /// Adds a delivered parcel of `carrier` to every scope it belongs to, and returns the
    /// lesson (to persist it). Nothing for a parcel not delivered, returning, or without a
    /// collection time.
    pub fn learn(&mut self, carrier: &str, m: &Milestones) -> Option<Lesson> {
        let lesson = Lesson::of(m)?;
        self.apply(carrier, &lesson);
        Some(lesson)
    }

    /// Adds `lesson` to every scope it names.
    pub fn apply(&mut self, carrier: &str, lesson: &Lesson) {
        let scopes = match self.stats.get_mut(carrier) {
            Some(scopes) => scopes,
            None => self.stats.entry(carrier.to_string()).or_default(),
        };
        for scope in &lesson.scopes {
            scopes.entry(*scope).or_default().merge(&lesson.stats);
        }
    }

    /// What `scope` of `carrier` has learned.
    pub fn get(&self, carrier: &str, scope: &Scope) -> Option<&LaneStats> {
        self.stats.get(carrier)?.get(scope)
    }

    /// Puts back what was learned before (from the store), replacing that scope's stats.
    pub fn insert(&mut self, carrier: &str, scope: Scope, stats: LaneStats) {
        self.stats
            .entry(carrier.to_string())
            .or_default()
            .insert(scope, stats);
    }

    /// How many (carrier, scope) records are held.
    pub fn len(&self) -> usize {
        self.stats.values().map(HashMap::len).sum()
    }

    /// True before anything was learned.
    pub fn is_empty(&self) -> bool {
        self.stats.values().all(HashMap::is_empty)
    }

    /// The first scope of the chain with enough samples at `stage`: its histogram for
    /// the entry-hour `bucket` when that one is ready, else its histogram of all hours.
    fn ready(
        &self,
        carrier: &str,
        chain: &[Scope],
        stage: Stage,
        bucket: Option<usize>,
    ) -> Option<(Scope, &Histogram, Option<usize>)> {
        let enough = |h: &Histogram| h.count() >= self.config.min_samples;
        chain.iter().find_map(|s| {
            let st = self.get(carrier, s)?;
            let by_hour = bucket.map(|b| (b, &st.by_entry_hour[stage.index()][b]));
            match by_hour {
                Some((b, h)) if enough(h) => Some((*s, h, Some(b))),
                _ => {
                    let h = &st.from_stage[stage.index()];
                    enough(h).then_some((*s, h, None))
                }
            }
        })
    }

    /// The estimate for a parcel of `carrier` at `now`; `None` once it is delivered or
    /// while it is on its way back.
    pub fn estimate(&self, carrier: &str, m: &Milestones, now: Timestamp) -> Option<Estimate> {
        if m.returning || m.delivered.is_some() {
            return None;
        }
        let chain = Scope::chain(m.origin.as_ref(), m.destination.as_ref());
        // Before collection, count as if collected now.
        let stage = m.stage();
        let at_stage = stage.unwrap_or(Stage::Collected);
        let since = stage.and_then(|s| m.entered(s)).unwrap_or(now);
        let elapsed = now.duration_since(since).max(SignedDuration::ZERO);
        let reach = match (m.origin.as_ref(), m.destination.as_ref()) {
            (Some(o), Some(d)) => Some(Reach::between(o, d)),
            _ => None,
        };
        // Before collection the hour of "now" stands in for the collection's.
        let bucket = Some(m.slot(since));
        let learned = self
            .ready(carrier, &chain, at_stage, bucket)
            .map(|(scope, h, hours)| {
                let q = |p| h.quantile_after(p, elapsed);
                let (p20, p50, p80) = match (q(0.2), q(0.5), q(0.8)) {
                    (Some(a), Some(b), Some(c)) => {
                        let zone = TimeZone::fixed(m.offset.unwrap_or(CHINA_OFFSET));
                        (a, h.likeliest_day(since, elapsed, &zone).unwrap_or(b), c)
                    }
                    // Longer than every parcel seen: due now, with the lane's usual spread.
                    _ => {
                        let spread = h
                            .quantile(0.8)
                            .zip(h.quantile(0.5))
                            .map_or(SignedDuration::from_hours(1), |(a, b)| a - b);
                        (elapsed, elapsed, elapsed + spread)
                    }
                };
                let total = self
                    .ready(carrier, &chain, Stage::Collected, None)
                    .and_then(|(_, h, _)| h.quantile(0.5))
                    .unwrap_or(p50);
                let basis = Basis::Learned {
                    scope: scope.key(),
                    samples: h.count(),
                    entry_hours: hours.map(|b| {
                        let w = 24 / HOUR_BUCKETS;
                        format!("{:02}-{:02}", b * w, (b + 1) * w)
                    }),
                };
                (p20, p50, p80, total, basis, scope != chain[0])
            });
        let (p20, p50, p80, total, basis, fallback) = learned.unwrap_or_else(|| {
            let c = &self.config.cold_start;
            let total = match reach {
                Some(Reach::SameCity) => c.same_city,
                Some(Reach::SameProvince) => c.same_province,
                _ => c.other_province,
            };
            let left = match at_stage {
                Stage::Collected => total,
                Stage::DestinationCity => c.destination_city.min(total),
                Stage::OutForDelivery => c.out_for_delivery.min(total),
            };
            let p50 = left.max(elapsed + SignedDuration::from_hours(1));
            let spread = p50 / 4;
            (
                p50 - spread,
                p50,
                p50 + spread,
                total,
                Basis::ColdStart { reach },
                true,
            )
        });
        let arrival = since + p50;
        let explanation = explain(stage, since, now, p50, &basis, fallback);
        Some(Estimate {
            arrival,
            early: (since + p20).max(now),
            late: (since + p80).max(arrival),
            stage,
            stage_since: stage.map(|_| since),
            typical_total: total,
            basis,
            fallback,
            explanation,
        })
    }

    /// The problem flags of `trace` at `now` ([`crate::problem::flags`]) with lane
    /// lateness (490) added, in code order, and when the next timed flag is due if the
    /// trace does not change ([`crate::problem::next_change_at`], or the lane's bound).
    ///
    /// `m` are the trace's milestones ([`Milestones::of`] with `facts.to`), read once by
    /// the caller for the estimate too.
    pub fn flags(
        &self,
        trace: &Trace,
        m: &Milestones,
        facts: &SubscriptionFacts<'_>,
        thresholds: &Thresholds,
        now: Timestamp,
    ) -> (Vec<Flag>, Option<Timestamp>) {
        let mut flags = crate::problem::flags(trace, facts, thresholds, now);
        let mut due = crate::problem::next_change_at(trace, facts, thresholds, now);
        if let Some(late) = self.lateness(facts.company, m) {
            match late.flag(now) {
                Some(flag) => flags.push(flag),
                None => due = Some(due.map_or(late.due, |d| d.min(late.due))),
            }
        }
        flags.sort_by_key(|f| f.kind.code());
        (flags, due)
    }

    /// Lane lateness of a parcel on its way: when it becomes late (collection plus the
    /// [`EtaConfig::late_quantile`] of the door-to-door times of the most specific ready
    /// scope). `None` for a parcel delivered, returning, not collected, or on a lane
    /// without enough deliveries.
    pub fn lateness(&self, carrier: &str, m: &Milestones) -> Option<Lateness> {
        if m.returning || m.delivered.is_some() {
            return None;
        }
        let collected = m.collected?;
        let chain = Scope::chain(m.origin.as_ref(), m.destination.as_ref());
        let (scope, h, _) = self.ready(carrier, &chain, Stage::Collected, None)?;
        let bound = h.quantile(self.config.late_quantile)?;
        Some(Lateness {
            collected,
            due: collected + bound,
            bound,
            quantile: self.config.late_quantile,
            scope,
            samples: h.count(),
        })
    }
}

/// When a parcel becomes late for its lane, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Lateness {
    /// When it was collected.
    pub collected: Timestamp,
    /// When it becomes late: `collected + bound`.
    pub due: Timestamp,
    /// The lane's bound on the door-to-door time.
    pub bound: SignedDuration,
    /// The share of deliveries within the bound.
    pub quantile: f64,
    /// The scope that set it.
    pub scope: Scope,
    /// Its deliveries.
    pub samples: u64,
}

impl Lateness {
    /// The 490 flag, active once `now` reaches [`Lateness::due`].
    ///
    /// ```
    /// use waybill_core::eta::{Lateness, Scope};
    /// use waybill_core::problem::FlagKind;
    /// use waybill_core::time::{SignedDuration, Timestamp};
    /// let collected: Timestamp = "2024-05-01T00:00:00Z".parse().unwrap();
    /// let bound = SignedDuration::from_hours(50);
    /// let late = Lateness { collected, due: collected + bound, bound, quantile: 0.95, scope: Scope::Carrier, samples: 120 };
    /// assert!(late.flag(collected + SignedDuration::from_hours(49)).is_none());
    /// let flag = late.flag(collected + SignedDuration::from_hours(53)).unwrap();
    /// assert_eq!(flag.kind, FlagKind::LateForLane);
    /// assert_eq!(flag.reason, "in transit 2 d 5 h since collection; 95 % of 120 deliveries on carrier took at most 2 d 2 h");
    /// ```
    pub fn flag(&self, now: Timestamp) -> Option<Flag> {
        if now < self.due {
            return None;
        }
        let elapsed = now.duration_since(self.collected);
        Some(Flag {
            kind: FlagKind::LateForLane,
            since: self.due,
            reason: format!(
                "in transit {} since collection; {:.0} % of {} deliveries on {} took at most {}",
                crate::problem::span_text(elapsed),
                self.quantile * 100.0,
                self.samples,
                self.scope.key(),
                crate::problem::span_text(self.bound),
            ),
            trigger: Trigger::Elapsed {
                from: self.collected,
                elapsed,
                threshold: self.bound,
            },
        })
    }
}

fn hours(d: SignedDuration) -> String {
    format!("{:.1} h", d.as_secs_f64() / 3600.0)
}

fn explain(
    stage: Option<Stage>,
    since: Timestamp,
    now: Timestamp,
    p50: SignedDuration,
    basis: &Basis,
    fallback: bool,
) -> String {
    let from = match stage {
        Some(s) => format!(
            "stage {} since {} ({} ago)",
            s.name(),
            since.strftime("%Y-%m-%d %H:%M UTC"),
            hours(now.duration_since(since))
        ),
        None => "not collected yet, counted from now".to_string(),
    };
    let how = match basis {
        Basis::Learned {
            scope,
            samples,
            entry_hours,
        } => format!(
            "median {} from this stage on {scope} ({samples} deliveries{}{})",
            hours(p50),
            entry_hours
                .as_ref()
                .map(|h| format!(" entering it at {h} h"))
                .unwrap_or_default(),
            if fallback { ", a fallback scope" } else { "" }
        ),
        Basis::ColdStart { reach } => format!(
            "cold start: {} by default ({}), no lane has enough deliveries yet",
            hours(p50),
            reach.map_or("reach unknown", Reach::name)
        ),
    };
    format!("{from}; {how}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventTime, TrackEvent};

    fn at(t: &str) -> EventTime {
        t.parse().unwrap()
    }

    #[test]
    fn merged_histograms_count_like_one() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        let mut both = Histogram::default();
        for h in 1..40 {
            let d = SignedDuration::from_hours(h);
            if h % 2 == 0 {
                a.add(d)
            } else {
                b.add(d)
            }
            both.add(d);
        }
        a.merge(&b);
        assert_eq!(a.count(), both.count());
        assert_eq!(a.quantile(0.5), both.quantile(0.5));
    }

    #[test]
    fn a_quantile_is_within_the_bin_error_of_the_exact_one() {
        let mut h = Histogram::default();
        let mut exact: Vec<i64> = (0..1000).map(|i| 600 + (i * 7919) % 5000).collect();
        for &m in &exact {
            h.add(SignedDuration::from_mins(m));
        }
        exact.sort_unstable();
        for q in [0.2, 0.5, 0.8, 0.95] {
            let want = exact[(q * 999.0) as usize] as f64;
            let got = h.quantile(q).unwrap().as_secs_f64() / 60.0;
            assert!((got - want).abs() / want < 0.03, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn milestones_follow_the_journey_and_a_locker_counts_as_delivered() {
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
                    "快件到达【北京朝阳营业部】",
                    State::InTransit,
                ),
                TrackEvent::new(at("2024-05-02 09:00:00"), "派件中", State::OutForDelivery),
                TrackEvent::new(at("2024-05-02 11:00:00"), "已放入快递柜", State::InLocker),
                TrackEvent::new(at("2024-05-03 11:00:00"), "已取件", State::Delivered),
            ],
        );
        trace.locate(None, Some("北京市朝阳区"));
        let m = Milestones::of(&trace, Some("北京市朝阳区"));
        assert_eq!(m.collected, Some(at("2024-05-01 08:00:00").at));
        assert_eq!(m.destination_city, Some(at("2024-05-02 06:00:00").at));
        assert_eq!(m.out_for_delivery, Some(at("2024-05-02 09:00:00").at));
        assert_eq!(m.delivered, Some(at("2024-05-02 11:00:00").at));
        assert_eq!(m.origin.and_then(|p| p.city), Some("深圳市"));
        assert!(!m.returning);
    }

    #[test]
    fn a_returned_parcel_teaches_nothing_and_gets_no_estimate() {
        let trace = Trace::from_events(
            "sandbox",
            "SB1",
            vec![
                TrackEvent::new(at("2024-05-01 08:00:00"), "已揽收", State::Collected),
                TrackEvent::new(at("2024-05-02 08:00:00"), "拒收", State::Refused),
            ],
        );
        let m = Milestones::of(&trace, None);
        assert!(m.returning);
        let mut lanes = Lanes::default();
        assert!(lanes.learn("sandbox", &m).is_none());
        assert!(lanes
            .estimate("sandbox", &m, at("2024-05-02 09:00:00").at)
            .is_none());
    }

    #[test]
    fn cold_start_answers_from_the_defaults_and_says_so() {
        let trace = Trace::from_events(
            "sandbox",
            "SB1",
            vec![TrackEvent::new(
                at("2024-05-01 08:00:00"),
                "已揽收",
                State::Collected,
            )],
        );
        let m = Milestones::of(&trace, None);
        let lanes = Lanes::new(EtaConfig::default());
        let now = at("2024-05-01 09:00:00").at;
        let e = lanes.estimate("sandbox", &m, now).unwrap();
        assert_eq!(e.basis, Basis::ColdStart { reach: None });
        assert_eq!(e.arrival, at("2024-05-04 08:00:00").at);
        assert!(e.early <= e.arrival && e.arrival <= e.late);
        assert!(e.explanation.contains("cold start"), "{}", e.explanation);
    }

    #[test]
    fn a_parcel_later_than_most_is_estimated_later_not_in_the_past() {
        let mut lanes = Lanes::new(EtaConfig {
            min_samples: 1,
            ..EtaConfig::default()
        });
        for h in [20, 22, 24, 26, 28, 60] {
            let m = Milestones {
                collected: Some(at("2024-05-01 00:00:00").at),
                delivered: Some(at("2024-05-01 00:00:00").at + SignedDuration::from_hours(h)),
                ..Milestones::default()
            };
            lanes.learn("sandbox", &m);
        }
        let m = Milestones {
            collected: Some(at("2024-06-01 00:00:00").at),
            ..Milestones::default()
        };
        let now = at("2024-06-02 06:00:00").at; // 30 h in: later than five of six
        let e = lanes.estimate("sandbox", &m, now).unwrap();
        assert!(e.arrival > now, "{e:?}");
        let never = at("2024-06-05 00:00:00").at; // later than every sample
        let e = lanes.estimate("sandbox", &m, never).unwrap();
        assert!(e.arrival >= never && e.late > e.arrival, "{e:?}");
    }
}
