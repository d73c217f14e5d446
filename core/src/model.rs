//! The trace model: a [`Waybill`] to follow, the [`TrackEvent`]s a carrier reports for it,
//! and the [`Trace`] they add up to.
//!
//! Field names follow kuaidi100's JSON where it has one (`com`, `nu`, `context`, `ischeck`),
//! so the kuaidi100 dialect renders with little more than serde.

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::Offset;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::place::Place;
use crate::state::State;

/// A parcel to follow: the carrier's code and the number on the label.
///
/// ```
/// use waybill_core::model::Waybill;
/// let w = Waybill::new("shunfeng", "SF1234567890123").with_phone("1234");
/// assert_eq!(w.phone.as_deref(), Some("1234"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Waybill {
    /// Carrier code (kuaidi100 company code where one exists).
    #[serde(rename = "com")]
    pub company: String,
    /// The tracking number as printed, normalised (no spaces, upper case).
    #[serde(rename = "nu")]
    pub number: String,
    /// Sender's or recipient's phone (some carriers need its last four digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Origin, "province-city-district" as kuaidi100 takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Destination, same form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Waybill {
    /// A waybill with only company and number.
    pub fn new(company: impl Into<String>, number: impl Into<String>) -> Self {
        Self {
            company: company.into(),
            number: number.into(),
            phone: None,
            from: None,
            to: None,
        }
    }

    /// The same waybill with a phone number.
    pub fn with_phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }
}

/// The offset Chinese carriers mean when they print a time without one.
pub const CHINA_OFFSET: Offset = Offset::constant(8);

/// An instant together with the offset the carrier reported it in.
///
/// Carriers print local wall-clock time; keeping the offset lets a trace be shown as the
/// carrier printed it while still ordering events by the real instant. It serialises as
/// RFC 3339 (`2024-05-01T10:00:00+08:00`).
///
/// ```
/// use waybill_core::model::{EventTime, CHINA_OFFSET};
/// let t = EventTime::parse("2024-05-01 10:00:00", CHINA_OFFSET).unwrap();
/// assert_eq!(t.to_string(), "2024-05-01T10:00:00+08:00");
/// assert_eq!(t.kuaidi100(), "2024-05-01 10:00:00");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventTime {
    /// The instant.
    pub at: Timestamp,
    /// The offset the carrier meant.
    pub offset: Offset,
}

/// A time a carrier printed that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable time {text:?}: expected RFC 3339 or \"YYYY-MM-DD HH:MM[:SS]\"")]
pub struct TimeError {
    /// What the carrier sent.
    pub text: String,
}

impl EventTime {
    /// An instant shown at `offset`.
    pub fn new(at: Timestamp, offset: Offset) -> Self {
        Self { at, offset }
    }

    /// Reads RFC 3339 with an offset, or a civil time (`2024-05-01 10:00:00`,
    /// `2024-05-01T10:00`, `2024/05/01 10:00:00`) taken at `default_offset`.
    pub fn parse(text: &str, default_offset: Offset) -> Result<Self, TimeError> {
        let err = || TimeError {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(err());
        }
        if let Ok(zoned) = trimmed.parse::<jiff::Zoned>() {
            return Ok(Self::new(zoned.timestamp(), zoned.offset()));
        }
        if let Ok(ts) = trimmed.parse::<Timestamp>() {
            // An RFC 3339 string with an explicit offset: keep that offset for display.
            let offset = offset_suffix(trimmed).unwrap_or(Offset::UTC);
            return Ok(Self::new(ts, offset));
        }
        let civil = trimmed.replace('/', "-");
        let dt: DateTime = civil.parse().map_err(|_| err())?;
        let at = default_offset.to_timestamp(dt).map_err(|_| err())?;
        Ok(Self::new(at, default_offset))
    }

    /// The civil date-time at the carrier's offset.
    pub fn civil(&self) -> DateTime {
        self.offset.to_datetime(self.at)
    }

    /// kuaidi100's `time` format: `YYYY-MM-DD HH:MM:SS` at the carrier's offset.
    pub fn kuaidi100(&self) -> String {
        self.civil().strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

fn offset_suffix(text: &str) -> Option<Offset> {
    if text.ends_with('Z') || text.ends_with('z') {
        return Some(Offset::UTC);
    }
    let tail = text.get(text.len().checked_sub(6)?..)?;
    let sign = match tail.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i32 = tail.get(1..3)?.parse().ok()?;
    let minutes: i32 = tail.get(4..6)?.parse().ok()?;
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let civil = self.civil();
        let secs = self.offset.seconds();
        let sign = if secs < 0 { '-' } else { '+' };
        let secs = secs.abs();
        write!(
            f,
            "{}{}{:02}:{:02}",
            civil.strftime("%Y-%m-%dT%H:%M:%S"),
            sign,
            secs / 3600,
            (secs % 3600) / 60
        )
    }
}

impl FromStr for EventTime {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, CHINA_OFFSET)
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One line of a carrier's trace.
///
/// Build one with [`TrackEvent::new`] and the `with_*` setters; the fields stay public
/// for reading.
///
/// ```
/// use waybill_core::model::{EventTime, TrackEvent};
/// use waybill_core::place::Place;
/// use waybill_core::state::State;
/// let time: EventTime = "2024-05-01 10:00:00".parse().unwrap();
/// let e = TrackEvent::new(time, "快件到达【深圳宝安集散中心】", State::AtTransferCentre)
///     .with_raw_code("30")
///     .with_rule("sf:30")
///     .with_place(&Place::from_code(440306).unwrap());
/// assert_eq!(e.area_code.as_deref(), Some("440306000000"));
/// assert_eq!(e.area_name.as_deref(), Some("广东,深圳市,宝安区"));
/// assert_eq!(e.place().map(|p| p.city), Some(Some("深圳市")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackEvent {
    /// When it happened.
    pub time: EventTime,
    /// The carrier's text, unchanged.
    pub context: String,
    /// Where, as the carrier names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Administrative area (kuaidi100 `areaCode`), when known.
    #[serde(rename = "areaCode", default, skip_serializing_if = "Option::is_none")]
    pub area_code: Option<String>,
    /// Area name (kuaidi100 `areaName`), when known.
    #[serde(rename = "areaName", default, skip_serializing_if = "Option::is_none")]
    pub area_name: Option<String>,
    /// The state this line puts the parcel in.
    pub state: State,
    /// The carrier's own status code for this line, when it sends one.
    #[serde(rename = "rawCode", default, skip_serializing_if = "Option::is_none")]
    pub raw_code: Option<String>,
    /// Which rule decided `state` (a carrier code mapping or a normalizer rule id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl TrackEvent {
    /// A line with its time, the carrier's text and the state it reports; nothing else
    /// known yet.
    pub fn new(time: EventTime, context: impl Into<String>, state: State) -> Self {
        Self {
            time,
            context: context.into(),
            location: None,
            area_code: None,
            area_name: None,
            state,
            raw_code: None,
            rule: None,
        }
    }

    /// The same line with the carrier's location text.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The same line with an area as kuaidi100 writes it (`440305000000`, `广东,深圳市,南山区`).
    pub fn with_area(mut self, code: impl Into<String>, name: impl Into<String>) -> Self {
        self.area_code = Some(code.into());
        self.area_name = Some(name.into());
        self
    }

    /// The same line located at `place` (its kuaidi100 `areaCode` and `areaName`).
    pub fn with_place(self, place: &Place) -> Self {
        self.with_area(place.area_code(), place.area_name())
    }

    /// The same line with the carrier's own status code.
    pub fn with_raw_code(mut self, code: impl Into<String>) -> Self {
        self.raw_code = Some(code.into());
        self
    }

    /// The same line with the rule that decided its state.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// The division this line's `areaCode` names, when it is a GB/T 2260 code.
    pub fn place(&self) -> Option<Place> {
        Place::from_area_code(self.area_code.as_deref()?)
    }
}

/// A parcel's whole trace: events newest first and the state they add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// Carrier code.
    pub com: String,
    /// Tracking number.
    pub nu: String,
    /// Overall state, derived with the regression guard.
    pub state: State,
    /// True once the parcel is signed for (kuaidi100 `ischeck`).
    pub ischeck: bool,
    /// Events, newest first.
    pub data: Vec<TrackEvent>,
}

impl Trace {
    /// A short hash of the events (time, state, text and place of every line): equal for
    /// equal traces, different when any line changed. The daemon stores it to tell whether
    /// a carrier's new answer changed anything.
    ///
    /// ```
    /// use waybill_core::model::{EventTime, Trace, TrackEvent};
    /// use waybill_core::state::State;
    /// let t: EventTime = "2024-05-01 10:00:00".parse().unwrap();
    /// let one = Trace::from_events("sandbox", "SB1", vec![TrackEvent::new(t, "已揽收", State::Collected)]);
    /// let mut two = one.clone();
    /// assert_eq!(one.fingerprint(), two.fingerprint());
    /// two.data[0].context.push('!');
    /// assert_ne!(one.fingerprint(), two.fingerprint());
    /// assert_eq!(one.fingerprint().len(), 32);
    /// ```
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for e in &self.data {
            h.update(e.time.at.as_millisecond().to_le_bytes());
            h.update(e.state.name().as_bytes());
            h.update([0]);
            h.update(e.context.as_bytes());
            h.update([0]);
            for part in [&e.location, &e.area_code, &e.area_name] {
                h.update(part.as_deref().unwrap_or("").as_bytes());
                h.update([0]);
            }
        }
        let digest = h.finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Builds a trace from events in any order: sorts them newest first (stable, so equal
    /// times keep the carrier's order) and derives the overall state with the regression
    /// guard of [`State::accepts`].
    ///
    /// ```
    /// use waybill_core::model::{EventTime, Trace, TrackEvent, CHINA_OFFSET};
    /// use waybill_core::state::State;
    /// let ev = |t: &str, s| TrackEvent::new(EventTime::parse(t, CHINA_OFFSET).unwrap(), "", s);
    /// let trace = Trace::from_events("sandbox", "SB1", vec![
    ///     ev("2024-05-01 10:00", State::Collected),
    ///     ev("2024-05-03 09:00", State::Delivered),
    /// ]);
    /// assert_eq!(trace.state, State::Delivered);
    /// assert!(trace.ischeck);
    /// assert_eq!(trace.data[0].state, State::Delivered);
    /// ```
    pub fn from_events(
        com: impl Into<String>,
        nu: impl Into<String>,
        mut events: Vec<TrackEvent>,
    ) -> Self {
        // Carriers list newest or oldest first; reverse first so a stable sort keeps
        // same-second events in the order the carrier meant.
        if events.len() > 1 && events[0].time.at < events[events.len() - 1].time.at {
            events.reverse();
        }
        events.sort_by_key(|e| std::cmp::Reverse(e.time.at));
        let state = State::fold(events.iter().rev().map(|e| e.state));
        Trace {
            com: com.into(),
            nu: nu.into(),
            state,
            ischeck: state.is_signed(),
            data: events,
        }
    }

    /// Fills the area (kuaidi100 `areaCode`/`areaName`) of every line the carrier left
    /// without one, from the line's text (else its location text), reading ambiguous
    /// names with the rest of the trace and the waybill's `from`/`to`
    /// ([`crate::place::locate_trace`]). Areas the carrier gave are kept.
    ///
    /// ```
    /// use waybill_core::model::{EventTime, Trace, TrackEvent};
    /// use waybill_core::state::State;
    /// let t: EventTime = "2024-05-01 10:00:00".parse().unwrap();
    /// let mut trace = Trace::from_events("sandbox", "SB1", vec![
    ///     TrackEvent::new(t, "快件到达【杭州转运中心】", State::AtTransferCentre),
    /// ]);
    /// trace.locate(None, Some("浙江省杭州市西湖区"));
    /// assert_eq!(trace.data[0].area_code.as_deref(), Some("330100000000"));
    /// assert_eq!(trace.data[0].area_name.as_deref(), Some("浙江,杭州市"));
    /// ```
    pub fn locate(&mut self, from: Option<&str>, to: Option<&str>) {
        if self.data.iter().all(|e| e.area_code.is_some()) {
            return;
        }
        let found =
            crate::place::locate_trace(self.data.iter().map(|e| e.context.as_str()), from, to);
        for (e, line) in self.data.iter_mut().zip(found) {
            if e.area_code.is_some() {
                continue;
            }
            let at = line.at.map(|l| l.place).or_else(|| {
                let location = e.location.as_deref()?;
                crate::place::parse_address(location).map(|l| l.place)
            });
            if let Some(p) = at {
                e.area_code = Some(p.area_code());
                e.area_name = Some(p.area_name());
            }
        }
    }
}
