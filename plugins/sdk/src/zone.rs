//! Where a carrier prints a local time without an offset (DHL `timestamp`, FedEx scan
//! dates from some backends, USPS `eventTimestamp`), the offset comes from the scan's
//! place: [`zone_of`] maps a country, and for countries that span several zones a state
//! or province, to its IANA time zone; [`offset_minutes_at`] gives the offset that zone
//! had at that local time, summer time included.
//!
//! The table is small and written out here on purpose (no system time zone database is
//! read, so a plugin stays a pure function of its input): one zone per country for the
//! countries that keep one civil time; the states of the US, Canada and Australia; for
//! another country that spans several zones (Brazil, Mexico, Russia, Indonesia, ...) or a
//! place not listed, there is no answer and the plugin keeps its documented fallback. A
//! state split between two zones takes the zone most of its people live in (Indiana,
//! Kentucky, Tennessee: the zone of Indianapolis, Louisville, Nashville). The zone rules
//! themselves are jiff's bundled copy of the IANA database, fixed at build time.

use jiff::civil::DateTime;
use jiff::tz::{self, TimeZone};

/// The IANA zone of a place: `country` is an ISO 3166-1 alpha-2 code (any case);
/// `region` the state or province code (`TX`, `ON`, `NSW`), needed only for countries
/// that span several zones. `None` when the table does not settle it.
///
/// ```
/// use waybill_sdk::zone::zone_of;
/// assert_eq!(zone_of("de", None).and_then(|z| z.iana_name().map(str::to_owned)).as_deref(), Some("Europe/Berlin"));
/// assert_eq!(zone_of("US", Some("TN")).unwrap().iana_name(), Some("America/Chicago"));
/// assert!(zone_of("US", None).is_none()); // which of six zones?
/// ```
pub fn zone_of(country: &str, region: Option<&str>) -> Option<TimeZone> {
    let country = country.trim().to_ascii_uppercase();
    let region = region
        .map(|r| r.trim().to_ascii_uppercase())
        .filter(|r| !r.is_empty());
    match country.as_str() {
        "US" => us_state(region.as_deref()?),
        "CA" => canada_province(region.as_deref()?),
        "AU" => australia_state(region.as_deref()?),
        c => single_zone_country(c),
    }
}

/// The offset, in minutes east of UTC, of the civil time `time`
/// (`YYYY-MM-DD[T| ]HH:MM[:SS]`) at the place [`zone_of`] finds. A time in a summer-time
/// gap takes the offset after the change, one in a fold the earlier instant's (RFC 5545's
/// rule, jiff's `compatible`). `None` when the place is not settled or the time does not
/// parse.
///
/// ```
/// use waybill_sdk::zone::offset_minutes_at;
/// // Memphis, Tennessee, in winter and in summer.
/// assert_eq!(offset_minutes_at("2025-01-15T10:02:00", "US", Some("TN")), Some(-360));
/// assert_eq!(offset_minutes_at("2025-07-15 10:02:00", "US", Some("TN")), Some(-300));
/// assert_eq!(offset_minutes_at("2025-07-15T10:02:00", "DE", None), Some(120));
/// assert_eq!(offset_minutes_at("yesterday", "DE", None), None);
/// ```
pub fn offset_minutes_at(time: &str, country: &str, region: Option<&str>) -> Option<i32> {
    let zone = zone_of(country, region)?;
    let civil: DateTime = time.trim().replacen(' ', "T", 1).parse().ok()?;
    let zoned = zone.to_ambiguous_zoned(civil).compatible().ok()?;
    Some(zoned.offset().seconds() / 60)
}

fn us_state(state: &str) -> Option<TimeZone> {
    Some(match state {
        "CT" | "DE" | "DC" | "FL" | "GA" | "IN" | "KY" | "ME" | "MD" | "MA" | "MI" | "NH"
        | "NJ" | "NY" | "NC" | "OH" | "PA" | "RI" | "SC" | "VT" | "VA" | "WV" => {
            tz::get!("America/New_York")
        }
        "AL" | "AR" | "IL" | "IA" | "KS" | "LA" | "MN" | "MS" | "MO" | "NE" | "ND" | "OK"
        | "SD" | "TN" | "TX" | "WI" => tz::get!("America/Chicago"),
        "CO" | "ID" | "MT" | "NM" | "UT" | "WY" => tz::get!("America/Denver"),
        "AZ" => tz::get!("America/Phoenix"),
        "CA" | "NV" | "OR" | "WA" => tz::get!("America/Los_Angeles"),
        "AK" => tz::get!("America/Anchorage"),
        "HI" => tz::get!("Pacific/Honolulu"),
        "PR" | "VI" => tz::get!("America/Puerto_Rico"),
        "GU" | "MP" => tz::get!("Pacific/Guam"),
        _ => return None,
    })
}

fn canada_province(province: &str) -> Option<TimeZone> {
    Some(match province {
        "BC" => tz::get!("America/Vancouver"),
        "AB" => tz::get!("America/Edmonton"),
        "SK" => tz::get!("America/Regina"),
        "MB" => tz::get!("America/Winnipeg"),
        "ON" | "QC" => tz::get!("America/Toronto"),
        "NB" | "NS" | "PE" => tz::get!("America/Halifax"),
        "NL" => tz::get!("America/St_Johns"),
        "YT" => tz::get!("America/Whitehorse"),
        "NT" => tz::get!("America/Edmonton"),
        "NU" => tz::get!("America/Iqaluit"),
        _ => return None,
    })
}

fn australia_state(state: &str) -> Option<TimeZone> {
    Some(match state {
        "NSW" | "ACT" => tz::get!("Australia/Sydney"),
        "VIC" => tz::get!("Australia/Melbourne"),
        "QLD" => tz::get!("Australia/Brisbane"),
        "SA" => tz::get!("Australia/Adelaide"),
        "WA" => tz::get!("Australia/Perth"),
        "TAS" => tz::get!("Australia/Hobart"),
        "NT" => tz::get!("Australia/Darwin"),
        _ => return None,
    })
}

/// Countries with one civil time (their overseas territories have their own ISO codes,
/// or are left out: Spain's Canary Islands and Portugal's Azores read as the mainland).
fn single_zone_country(country: &str) -> Option<TimeZone> {
    Some(match country {
        // Europe
        "GB" => tz::get!("Europe/London"),
        "IE" => tz::get!("Europe/Dublin"),
        "PT" => tz::get!("Europe/Lisbon"),
        "ES" => tz::get!("Europe/Madrid"),
        "FR" => tz::get!("Europe/Paris"),
        "BE" => tz::get!("Europe/Brussels"),
        "NL" => tz::get!("Europe/Amsterdam"),
        "LU" => tz::get!("Europe/Luxembourg"),
        "DE" => tz::get!("Europe/Berlin"),
        "CH" => tz::get!("Europe/Zurich"),
        "AT" => tz::get!("Europe/Vienna"),
        "IT" => tz::get!("Europe/Rome"),
        "DK" => tz::get!("Europe/Copenhagen"),
        "NO" => tz::get!("Europe/Oslo"),
        "SE" => tz::get!("Europe/Stockholm"),
        "FI" => tz::get!("Europe/Helsinki"),
        "PL" => tz::get!("Europe/Warsaw"),
        "CZ" => tz::get!("Europe/Prague"),
        "SK" => tz::get!("Europe/Bratislava"),
        "HU" => tz::get!("Europe/Budapest"),
        "SI" => tz::get!("Europe/Ljubljana"),
        "HR" => tz::get!("Europe/Zagreb"),
        "RO" => tz::get!("Europe/Bucharest"),
        "BG" => tz::get!("Europe/Sofia"),
        "GR" => tz::get!("Europe/Athens"),
        "EE" => tz::get!("Europe/Tallinn"),
        "LV" => tz::get!("Europe/Riga"),
        "LT" => tz::get!("Europe/Vilnius"),
        "TR" => tz::get!("Europe/Istanbul"),
        // Asia and the Middle East
        "CN" => tz::get!("Asia/Shanghai"),
        "HK" => tz::get!("Asia/Hong_Kong"),
        "MO" => tz::get!("Asia/Macau"),
        "TW" => tz::get!("Asia/Taipei"),
        "JP" => tz::get!("Asia/Tokyo"),
        "KR" => tz::get!("Asia/Seoul"),
        "SG" => tz::get!("Asia/Singapore"),
        "MY" => tz::get!("Asia/Kuala_Lumpur"),
        "TH" => tz::get!("Asia/Bangkok"),
        "VN" => tz::get!("Asia/Ho_Chi_Minh"),
        "PH" => tz::get!("Asia/Manila"),
        "IN" => tz::get!("Asia/Kolkata"),
        "AE" => tz::get!("Asia/Dubai"),
        "SA" => tz::get!("Asia/Riyadh"),
        "IL" => tz::get!("Asia/Jerusalem"),
        // Elsewhere
        "NZ" => tz::get!("Pacific/Auckland"),
        "ZA" => tz::get!("Africa/Johannesburg"),
        "EG" => tz::get!("Africa/Cairo"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_us_scan_takes_its_states_zone_not_china_time() {
        // 10:02 in Memphis in March (CDT, after the 9 March 2025 change) is 15:02 UTC.
        assert_eq!(
            offset_minutes_at("2025-03-14T10:02:00", "US", Some("TN")),
            Some(-300)
        );
        assert_eq!(
            offset_minutes_at("2025-03-04T10:02:00", "US", Some("TN")),
            Some(-360)
        );
        assert_eq!(
            offset_minutes_at("2025-03-04T10:02:00", "US", Some("AZ")),
            Some(-420)
        );
        assert_eq!(
            offset_minutes_at("2025-07-04T10:02:00", "US", Some("AZ")),
            Some(-420)
        );
    }

    #[test]
    fn multi_zone_countries_need_a_region() {
        for c in ["US", "CA", "AU", "BR", "RU", "MX"] {
            assert!(zone_of(c, None).is_none(), "{c}");
        }
        assert!(zone_of("US", Some("XX")).is_none());
        assert_eq!(
            zone_of("au", Some("wa")).unwrap().iana_name(),
            Some("Australia/Perth")
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_takes_the_summer_offset() {
        // 02:30 on 30 March 2025 does not exist in Berlin.
        assert_eq!(
            offset_minutes_at("2025-03-30T02:30:00", "DE", None),
            Some(120)
        );
        assert_eq!(offset_minutes_at("2025-03-30T01:30", "DE", None), Some(60));
    }
}
