//! International mode (`interCom=1`): which events are the departure country's and which
//! the destination country's.
//!
//! kuaidi100 offers it for postal items only. Here that is a waybill whose number is a
//! UPU S10 item number (two letters, nine digits, the origin post's country code, e.g.
//! `RR123456785CN`; only postal operators issue them), or whose company is a postal one
//! ([`POSTAL`]).
//!
//! The countries, each from the first source that has it:
//! - departure: `departureCountry`; the S10 number's country code;
//! - destination: `destinationCountry`; the subscription's `to` (a trailing two-letter
//!   code such as "Osaka, JP", or Chinese characters, which kuaidi100's province-city-
//!   district `to` is written in, for CN); the newest event placed in another country
//!   than the departure.
//!
//! The waybill is international when both are known and differ; otherwise there is no
//! `destResult`. An event is placed in a country by its area code (a leading two-letter
//! code, as in `CN370112005000`, or the bare 12-digit Chinese administrative code for CN),
//! else by its location or area name (a trailing two-letter code as carriers write
//! "Leipzig, DE", or Chinese characters for CN), else not at all.
//!
//! The trace splits once, at the oldest event placed in the destination country: it and
//! every newer event make the destination's part; all older events, placed or not, the
//! departure's. Until such an event exists the destination's part is empty. `com` of each
//! part is `departureCom` / `destinationCom` when given, else the polled company.
use waybill_core::model::{Trace, TrackEvent};

use crate::store::Subscription;

/// Company codes of postal operators (kuaidi100 codes where they exist).
pub const POSTAL: &[&str] = &[
    "ems",
    "emsguoji",
    "youzhengguonei",
    "youzhengguoji",
    "s10",
    "usps",
    "canada_post",
];

/// Where `trace.data` (newest first) splits: `data[..at]` is the destination country's
/// part, `data[at..]` the departure country's. `None` when the waybill is not an
/// international postal item.
pub fn split(sub: &Subscription, trace: &Trace) -> Option<usize> {
    let s10 = s10_country(&sub.number);
    if s10.is_none() && !POSTAL.contains(&sub.company.as_str()) {
        return None;
    }
    let options = &sub.options;
    let departure = options.departure_country.clone().or(s10)?;
    let destination = options
        .destination_country
        .clone()
        .or_else(|| sub.to.as_deref().and_then(address_country))
        .or_else(|| {
            trace
                .data
                .iter()
                .filter_map(event_country)
                .find(|c| *c != departure)
        })?;
    if destination == departure {
        return None;
    }
    let oldest_there = trace
        .data
        .iter()
        .rposition(|e| event_country(e).as_deref() == Some(destination.as_str()));
    Some(oldest_there.map_or(0, |i| i + 1))
}

/// The country an event is placed in (see the module docs), upper case.
pub fn event_country(e: &TrackEvent) -> Option<String> {
    if let Some(code) = e.area_code.as_deref().map(str::trim) {
        let b = code.as_bytes();
        if b.len() > 2
            && b[..2].iter().all(u8::is_ascii_alphabetic)
            && b[2..].iter().all(u8::is_ascii_digit)
        {
            return Some(code[..2].to_ascii_uppercase());
        }
        if b.len() == 12 && b.iter().all(u8::is_ascii_digit) {
            return Some("CN".into());
        }
    }
    [e.location.as_deref(), e.area_name.as_deref()]
        .into_iter()
        .flatten()
        .find_map(address_country)
}

/// The country of an address or place text: a trailing two-letter code after a comma
/// (or alone), else CN for Chinese characters.
fn address_country(text: &str) -> Option<String> {
    let last = text.rsplit([',', '，']).next().unwrap_or("").trim();
    if last.len() == 2 && last.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Some(last.to_ascii_uppercase());
    }
    text.chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
        .then(|| "CN".to_owned())
}

/// The origin country of a UPU S10 item number (`AA123456789CC`).
fn s10_country(number: &str) -> Option<String> {
    let n: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    let b = n.as_bytes();
    (b.len() == 13
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..11].iter().all(u8::is_ascii_digit)
        && b[11..].iter().all(u8::is_ascii_uppercase))
    .then(|| n[11..].to_owned())
}
