//! `routeInfo` and `isLoop` (resultv2 ≥ 4): where the parcel started, is and goes, and
//! whether its route came back to a city it had left.
//!
//! A *place* is `{number, name}` as kuaidi100 gives it: an area code and an area name.
//! An event's place is its area (`areaCode`, `areaName`), else its carrier location as a
//! name without a code.
//! - `from`: the subscription's (or query's) `from` as the name, with the area code of
//!   the division it names ([`waybill_core::place::parse_address`]), else of the oldest
//!   event whose area lies in it; without `from`, the oldest event's place.
//! - `cur`: the newest event's place.
//! - `to`: the `to` given as the name, with the code of the division it names, else of
//!   the newest event whose area lies in it; without `to`, the place it was signed at
//!   once signed, else `null`.
//!
//! An area lies in an address when the area name's most specific part ("朝阳区" of
//! "北京市,朝阳区") occurs in the address text.
//!
//! `isLoop` is true when the route, followed city by city from the oldest event, returns
//! to a city it had left. An event's city is the province and city digits of its area code
//! (the province alone for the four municipalities; a province-only code says no city),
//! else its area name or location.
use std::collections::HashSet;

use serde::Serialize;
use waybill_core::model::{Trace, TrackEvent};

/// `{number, name}`: an area code (null when unknown) and a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    /// Area code.
    pub number: Option<String>,
    /// Area name or address.
    pub name: String,
}

/// `routeInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    /// Where it started.
    pub from: Option<Place>,
    /// Where it is.
    pub cur: Option<Place>,
    /// Where it goes.
    pub to: Option<Place>,
}

/// `routeInfo` and `isLoop` of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `routeInfo`.
    pub info: RouteInfo,
    /// `isLoop`.
    pub is_loop: bool,
}

impl Route {
    /// The route of `trace` (events newest first) for a waybill sent from `from` to
    /// `to` (kuaidi100's province-city-district texts, either may be unknown).
    pub fn of(trace: &Trace, from: Option<&str>, to: Option<&str>) -> Self {
        let cur = trace.data.iter().find_map(place);
        let from = match from.map(str::trim).filter(|t| !t.is_empty()) {
            Some(text) => Some(Place {
                number: address_code(text).or_else(|| code_within(trace.data.iter().rev(), text)),
                name: text.to_owned(),
            }),
            None => trace.data.iter().rev().find_map(place),
        };
        let to = match to.map(str::trim).filter(|t| !t.is_empty()) {
            Some(text) => Some(Place {
                number: address_code(text).or_else(|| code_within(trace.data.iter(), text)),
                name: text.to_owned(),
            }),
            None if trace.ischeck => cur.clone(),
            None => None,
        };
        Self {
            info: RouteInfo { from, cur, to },
            is_loop: is_loop(trace),
        }
    }
}

fn text(t: &Option<String>) -> Option<&str> {
    t.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

fn place(e: &TrackEvent) -> Option<Place> {
    let code = text(&e.area_code);
    match (code, text(&e.area_name).or(text(&e.location))) {
        (None, None) => None,
        (code, name) => Some(Place {
            number: code.map(str::to_owned),
            name: name.unwrap_or_default().to_owned(),
        }),
    }
}

/// The area code of the division an address names (`广东省深圳市南山区` → `440305000000`).
fn address_code(address: &str) -> Option<String> {
    waybill_core::place::parse_address(address).map(|l| l.place.area_code())
}

/// The area code of the first of `events` with a code whose area lies in `address`.
fn code_within<'a>(
    mut events: impl Iterator<Item = &'a TrackEvent>,
    address: &str,
) -> Option<String> {
    events.find_map(|e| {
        let code = text(&e.area_code)?;
        let part = text(&e.area_name)?
            .rsplit([',', '，', '-', ' '])
            .find(|p| !p.trim().is_empty())?
            .trim();
        address.contains(part).then(|| code.to_owned())
    })
}

fn is_loop(trace: &Trace) -> bool {
    let mut left = HashSet::new();
    let mut here: Option<String> = None;
    for city in trace.data.iter().rev().filter_map(city) {
        if here.as_deref() == Some(city.as_str()) {
            continue;
        }
        if let Some(old) = here.replace(city.clone()) {
            left.insert(old);
        }
        if left.contains(&city) {
            return true;
        }
    }
    false
}

/// The city an event happened in, as a comparable key.
fn city(e: &TrackEvent) -> Option<String> {
    if let Some(code) = text(&e.area_code) {
        let digits = code.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        let prefix = &code[..code.len() - digits.len()];
        if digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return match (&digits[..2], &digits[2..4]) {
                ("11" | "12" | "31" | "50", _) => Some(format!("{prefix}{}", &digits[..2])),
                (_, "00") => None,
                _ => Some(format!("{prefix}{}", &digits[..4])),
            };
        }
        return Some(code.to_owned());
    }
    text(&e.area_name).or(text(&e.location)).map(str::to_owned)
}
