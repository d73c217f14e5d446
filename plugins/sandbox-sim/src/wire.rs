//! The sandbox carrier's HTTP wire format. Serde types only: no runtime, no sockets, so
//! the carrier plugin parses the same format the simulator writes.
//!
//! # Tracking
//!
//! `POST /api/track` with header `X-Api-Key: <key>` (checked only when the simulator has
//! a key) and `Content-Type: application/json`:
//!
//! ```json
//! {"numbers": ["SB20240501001", "SB20240501002"]}
//! ```
//!
//! At most [`MAX_BATCH`] numbers per request. A success is HTTP 200 with `code` 0 and one
//! result per number, in request order; events are newest first:
//!
//! ```json
//! {"code": 0, "results": [
//!   {"number": "SB20240501001", "found": true, "events": [
//!     {"time": "2024-05-01 12:00:00", "code": "DEPART", "location": "深圳市",
//!      "text": "快件已从【深圳南山区科技园营业部】发出，发往【深圳转运中心】"},
//!     {"time": "2024-05-01 10:00:00", "code": "PICKUP", "location": "深圳市",
//!      "text": "【广东省深圳市】深圳南山区科技园营业部 已揽收"}
//!   ]},
//!   {"number": "SB-1", "found": false, "events": [],
//!    "error": "invalid sandbox number \"SB-1\": ..."}
//! ]}
//! ```
//!
//! `found` is false while the carrier has no event for the number (not yet collected, or
//! never will be). `error` is present only for a number the sandbox cannot issue. Times
//! are Beijing time (UTC+8) as `YYYY-MM-DD HH:MM:SS`, the way Chinese carriers write them.
//! `text_en` appears on international lanes. Event `code`s are listed in
//! [`crate::journey`]; clients must tolerate codes they do not know.
//!
//! # Errors
//!
//! Any failure is a non-200 status with an [`ErrorBody`] `{"code": <status>, "message":
//! "..."}`: 400 bad request (not JSON, no `numbers`, batch over [`MAX_BATCH`]), 401 bad
//! or missing API key, 429 too many requests (with a `Retry-After` header in seconds),
//! 5xx server trouble. Under fault injection a 5xx body may be an HTML page, and a 200
//! body may be malformed: clients treat any body that does not parse as a transient error.
//!
//! ```
//! use waybill_sandbox_sim::wire::{decode, TrackResponse, Reply};
//! let body = br#"{"code":0,"results":[{"number":"SB123456","found":false,"events":[]}]}"#;
//! match decode(200, body) {
//!     Reply::Ok(TrackResponse { results, .. }) => assert!(!results[0].found),
//!     other => panic!("{other:?}"),
//! }
//! assert!(matches!(decode(401, br#"{"code":401,"message":"bad api key"}"#), Reply::Unauthorized(_)));
//! ```

use jiff::civil::DateTime;
use jiff::tz::Offset;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::journey::Journey;

/// Path of the tracking endpoint.
pub const TRACK_PATH: &str = "/api/track";
/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "X-Api-Key";
/// Most numbers accepted in one request.
pub const MAX_BATCH: usize = 50;
/// Offset of every time on the wire: Beijing time.
pub const WIRE_OFFSET_HOURS: i8 = 8;
/// Layout of every time on the wire (`strftime` style).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Body of `POST /api/track`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRequest {
    /// The numbers to look up, at most [`MAX_BATCH`].
    pub numbers: Vec<String>,
}

/// Body of a successful `POST /api/track`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackResponse {
    /// 0 on success.
    pub code: u16,
    /// One result per requested number, in request order.
    pub results: Vec<TrackResult>,
}

/// What the carrier knows about one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackResult {
    /// The number as requested.
    pub number: String,
    /// Whether there is any event yet.
    pub found: bool,
    /// Events, newest first.
    #[serde(default)]
    pub events: Vec<WireEvent>,
    /// Why the number was not looked up (it is not a valid sandbox number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One event as the sandbox reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent {
    /// Beijing time, `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
    /// The sandbox status code, e.g. `PICKUP`.
    pub code: String,
    /// Chinese text.
    pub text: String,
    /// English text, on international lanes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_en: Option<String>,
    /// City or place.
    #[serde(default)]
    pub location: String,
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status again.
    pub code: u16,
    /// What went wrong, for a human.
    pub message: String,
}

impl TrackResult {
    /// What the sandbox reports at `now` for a parcel on `journey` that started at
    /// `start`: every event due by then, newest first. `requested` is echoed as given.
    ///
    /// ```
    /// use jiff::{SignedDuration, Timestamp};
    /// use waybill_sandbox_sim::journey::{Journey, SimConfig};
    /// use waybill_sandbox_sim::wire::TrackResult;
    /// let journey = Journey::for_number("SB20240501001", &SimConfig::default()).unwrap();
    /// let start = Timestamp::UNIX_EPOCH;
    /// assert!(!TrackResult::from_journey("SB20240501001", &journey, start, start).found);
    /// let later = start + SignedDuration::from_hours(24 * 30);
    /// let all = TrackResult::from_journey("SB20240501001", &journey, start, later);
    /// assert_eq!(all.events.len(), journey.events.len());
    /// assert_eq!(all.events[0].code, "SIGNED");
    /// ```
    pub fn from_journey(
        requested: &str,
        journey: &Journey,
        start: Timestamp,
        now: Timestamp,
    ) -> Self {
        let events: Vec<WireEvent> = journey
            .visible_at(now.duration_since(start))
            .iter()
            .rev()
            .map(|e| WireEvent {
                time: format_time(start.checked_add(e.offset).unwrap_or(Timestamp::MAX)),
                code: e.code.as_str().to_string(),
                text: e.text.clone(),
                text_en: e.text_en.clone(),
                location: e.location.clone(),
            })
            .collect();
        Self {
            number: requested.to_string(),
            found: !events.is_empty(),
            events,
            error: None,
        }
    }
}

/// A wire time that does not read as `YYYY-MM-DD HH:MM:SS`.
#[derive(Debug, thiserror::Error)]
#[error("bad sandbox time {text:?}: {reason}")]
pub struct TimeError {
    /// The text as received.
    pub text: String,
    /// Why it does not parse.
    pub reason: String,
}

/// The offset of wire times as a jiff [`Offset`].
pub fn wire_offset() -> Offset {
    Offset::constant(WIRE_OFFSET_HOURS)
}

/// Writes an instant the way the sandbox puts it on the wire.
///
/// ```
/// use jiff::Timestamp;
/// use waybill_sandbox_sim::wire::format_time;
/// let t: Timestamp = "2024-05-01T02:00:00Z".parse().unwrap();
/// assert_eq!(format_time(t), "2024-05-01 10:00:00");
/// ```
pub fn format_time(at: Timestamp) -> String {
    wire_offset()
        .to_datetime(at)
        .strftime(TIME_FORMAT)
        .to_string()
}

/// Reads a wire time back into an instant.
///
/// ```
/// use waybill_sandbox_sim::wire::parse_time;
/// let t = parse_time("2024-05-01 10:00:00").unwrap();
/// assert_eq!(t.to_string(), "2024-05-01T02:00:00Z");
/// assert!(parse_time("yesterday").is_err());
/// ```
pub fn parse_time(text: &str) -> Result<Timestamp, TimeError> {
    let bad = |reason: String| TimeError {
        text: text.to_string(),
        reason,
    };
    let civil = DateTime::strptime(TIME_FORMAT, text.trim()).map_err(|e| bad(e.to_string()))?;
    wire_offset()
        .to_timestamp(civil)
        .map_err(|e| bad(e.to_string()))
}

/// A response sorted into what a client does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 with a body that parses.
    Ok(TrackResponse),
    /// 400: the request itself is wrong; retrying will not help.
    BadRequest(String),
    /// 401: the API key is missing or wrong.
    Unauthorized(String),
    /// 429: slow down (the `Retry-After` header says how long).
    RateLimited,
    /// 5xx: server trouble, retry later.
    ServerError {
        /// The status.
        status: u16,
        /// The body's message, or the start of the body if it is not an [`ErrorBody`].
        message: String,
    },
    /// A body that does not parse, or a status the format does not define.
    Malformed {
        /// The status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
}

/// Sorts a raw HTTP status and body into a [`Reply`]. Never panics, whatever the body.
pub fn decode(status: u16, body: &[u8]) -> Reply {
    let message = || match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.message,
        Err(_) => excerpt(body),
    };
    match status {
        200 => match serde_json::from_slice::<TrackResponse>(body) {
            Ok(r) if r.code == 0 => Reply::Ok(r),
            Ok(r) => Reply::Malformed {
                status,
                reason: format!("status 200 with code {}", r.code),
            },
            Err(e) => Reply::Malformed {
                status,
                reason: format!("{e} in body {}", excerpt(body)),
            },
        },
        400 => Reply::BadRequest(message()),
        401 | 403 => Reply::Unauthorized(message()),
        429 => Reply::RateLimited,
        500..=599 => Reply::ServerError {
            status,
            message: message(),
        },
        _ => Reply::Malformed {
            status,
            reason: format!("unexpected status with body {}", excerpt(body)),
        },
    }
}

/// The first 120 characters of a body, for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(120).collect();
    if text.chars().nth(120).is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_beijing_time() {
        let t: Timestamp = "2024-12-31T16:30:05Z".parse().unwrap();
        let text = format_time(t);
        assert_eq!(text, "2025-01-01 00:30:05");
        assert_eq!(parse_time(&text).unwrap(), t);
    }

    #[test]
    fn malformed_times_are_errors_naming_the_text() {
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01 10:00:00",
            "2024-05-01T10:00:00Z",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn responses_round_trip_and_omit_empty_optionals() {
        let response = TrackResponse {
            code: 0,
            results: vec![TrackResult {
                number: "SB123456".into(),
                found: true,
                events: vec![WireEvent {
                    time: "2024-05-01 10:00:00".into(),
                    code: "PICKUP".into(),
                    text: "已揽收".into(),
                    text_en: None,
                    location: "深圳市".into(),
                }],
                error: None,
            }],
        };
        let json = serde_json::to_string(&response).unwrap();
        assert!(
            !json.contains("text_en") && !json.contains("error"),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<TrackResponse>(&json).unwrap(),
            response
        );
    }

    #[test]
    fn decode_sorts_statuses_into_what_to_do_next() {
        assert_eq!(
            decode(401, br#"{"code":401,"message":"bad api key"}"#),
            Reply::Unauthorized("bad api key".into())
        );
        assert_eq!(decode(429, b""), Reply::RateLimited);
        assert_eq!(
            decode(400, br#"{"code":400,"message":"too many numbers"}"#),
            Reply::BadRequest("too many numbers".into())
        );
        match decode(502, b"<html><body>502 Bad Gateway</body></html>") {
            Reply::ServerError { status, message } => {
                assert_eq!(status, 502);
                assert!(message.contains("Bad Gateway"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decode_calls_garbage_malformed_without_panicking() {
        for body in [
            &b"{\"code\":0,\"results\":[{\"number\""[..],
            b"<html>ok</html>",
            b"\xff\xfe\x00",
            br#"{"code":0,"results":{}}"#,
            br#"{"code":7,"results":[]}"#,
        ] {
            assert!(
                matches!(decode(200, body), Reply::Malformed { status: 200, .. }),
                "{body:?}"
            );
        }
        assert!(matches!(
            decode(302, b""),
            Reply::Malformed { status: 302, .. }
        ));
    }

    #[test]
    fn unknown_fields_and_codes_are_tolerated() {
        let body = br#"{"code":0,"extra":1,"results":[{"number":"SB123456","found":true,
            "events":[{"time":"2024-05-01 10:00:00","code":"TELEPORTED","text":"?","x":2}]}]}"#;
        match decode(200, body) {
            Reply::Ok(r) => {
                assert_eq!(r.results[0].events[0].code, "TELEPORTED");
                assert_eq!(r.results[0].events[0].location, "");
            }
            other => panic!("{other:?}"),
        }
    }
}
