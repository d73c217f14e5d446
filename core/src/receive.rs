//! The receiving side of a push: what a subscriber's endpoint gets from kuaidi100 (or from
//! a waybill daemon speaking its dialect), checked and parsed.
//!
//! A kuaidi100 push is a form POST with two fields, `param` (JSON) and `sign`
//! (MD5 of `param` + salt, see [`crate::sign::verify_kuaidi100_push`]). Decode the form with
//! your web framework, then hand both fields to [`Kuaidi100Push::verify`], and answer
//! [`KUAIDI100_ACK`] once the push is stored: anything else makes the sender retry.
//!
//! ```
//! use waybill_core::receive::{Kuaidi100Push, PushStatus};
//! use waybill_core::sign::kuaidi100_push_sign;
//! use waybill_core::state::State;
//!
//! let param = r#"{"status":"polling","billstatus":"got","message":"","autoCheck":"0",
//!   "comOld":"","comNew":"","lastResult":{"message":"ok","state":"0","status":"200",
//!   "condition":"F00","ischeck":"0","com":"yuantong","nu":"YT0000000000","data":[
//!   {"context":"【杭州市】快件离开杭州转运中心","time":"2024-05-01 10:00:00",
//!    "ftime":"2024-05-01 10:00:00","areaCode":"CN330100000000","areaName":"浙江,杭州市"}]}}"#;
//! let sign = kuaidi100_push_sign(param, "SALT");
//!
//! let push = Kuaidi100Push::verify(param, "SALT", &sign).unwrap();
//! assert_eq!(push.status, PushStatus::Polling);
//! assert_eq!(push.last_result.nu, "YT0000000000");
//! assert_eq!(push.last_result.state(), Some(State::InTransit));
//! assert_eq!(push.last_result.data[0].area_code.as_deref(), Some("CN330100000000"));
//! assert!(push.correction().is_none());
//! assert!(Kuaidi100Push::verify(param, "OTHER SALT", &sign).is_err());
//! ```

use serde::{Deserialize, Deserializer};

use crate::sign::{verify_kuaidi100_push, SignError};
use crate::state::State;

/// The body a kuaidi100 push must be answered with to count as delivered.
pub const KUAIDI100_ACK: &str = r#"{"result":true,"returnCode":"200","message":"成功"}"#;

/// Why a push could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The `sign` does not match `param` and the salt.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// `param` is not the JSON of a kuaidi100 push.
    #[error("the push param is not a kuaidi100 push: {source}")]
    Param {
        /// The parser's error, with line and column.
        source: serde_json::Error,
    },
}

/// The monitoring status a push reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushStatus {
    /// Still being watched.
    Polling,
    /// Watching ended: the parcel was signed for.
    Shutdown,
    /// Watching stopped without a signature (`message` says why, e.g. "3天查询无记录").
    Abort,
    /// The whole trace again, as asked.
    Updateall,
}

/// A kuaidi100 push `param`, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Kuaidi100Push {
    /// Monitoring status.
    pub status: PushStatus,
    /// Why watching stopped, for `abort`; empty otherwise.
    #[serde(default)]
    pub message: String,
    /// `autoCheck=1`: the trace is from the company the sender corrected to.
    #[serde(rename = "autoCheck", default, deserialize_with = "flag")]
    pub auto_check: bool,
    /// The company code subscribed, when it was corrected.
    #[serde(rename = "comOld", default, deserialize_with = "non_empty")]
    pub com_old: Option<String>,
    /// The company code the sender switched to.
    #[serde(rename = "comNew", default, deserialize_with = "non_empty")]
    pub com_new: Option<String>,
    /// The trace (the departure leg, for international pushes).
    #[serde(rename = "lastResult")]
    pub last_result: Kuaidi100Result,
    /// The destination leg of an international (`interCom`) push.
    #[serde(rename = "destResult", default)]
    pub dest_result: Option<Kuaidi100Result>,
}

/// The trace of a push (`lastResult`), also the answer of a real-time query.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Kuaidi100Result {
    /// Company code.
    #[serde(default)]
    pub com: String,
    /// Tracking number.
    #[serde(default)]
    pub nu: String,
    /// The state code: 0–14, or an advanced code (101…) with `resultv2=4`.
    #[serde(default, deserialize_with = "code")]
    pub state: Option<u16>,
    /// `ischeck=1`: signed for.
    #[serde(default, deserialize_with = "flag")]
    pub ischeck: bool,
    /// Trace lines, newest first.
    #[serde(default)]
    pub data: Vec<Kuaidi100Line>,
}

/// One trace line of a push.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Kuaidi100Line {
    /// The carrier's text.
    #[serde(default)]
    pub context: String,
    /// Local time as `YYYY-MM-DD HH:MM:SS` (China time for Chinese carriers).
    #[serde(default)]
    pub time: String,
    /// The same time, formatted (kuaidi100 sends both).
    #[serde(default)]
    pub ftime: String,
    /// The line's state name (`resultv2` ≥ 1).
    #[serde(default)]
    pub status: Option<String>,
    /// The line's advanced state code (`resultv2=4`).
    #[serde(rename = "statusCode", default, deserialize_with = "code")]
    pub status_code: Option<u16>,
    /// Division code of the place (`resultv2` ≥ 1), e.g. `CN330100000000`.
    #[serde(rename = "areaCode", default, deserialize_with = "non_empty")]
    pub area_code: Option<String>,
    /// Division name of the place, e.g. `浙江,杭州市`.
    #[serde(rename = "areaName", default, deserialize_with = "non_empty")]
    pub area_name: Option<String>,
}

/// A company correction a push reports: the subscriber should switch to `com_new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Correction<'a> {
    /// The code subscribed (may be unknown when the sender only says the new one).
    pub com_old: Option<&'a str>,
    /// The code the sender found and now watches.
    pub com_new: &'a str,
}

impl Kuaidi100Push {
    /// Parses `param` without checking a signature (for a subscription without salt).
    ///
    /// # Errors
    ///
    /// [`ReceiveError::Param`] when `param` is not a push.
    pub fn parse(param: &str) -> Result<Self, ReceiveError> {
        serde_json::from_str(param).map_err(|source| ReceiveError::Param { source })
    }

    /// Checks `sign` against `param` and `salt`, then parses `param`.
    ///
    /// # Errors
    ///
    /// [`ReceiveError::Sign`] on a wrong signature (nothing is parsed), else as
    /// [`Kuaidi100Push::parse`].
    pub fn verify(param: &str, salt: &str, sign: &str) -> Result<Self, ReceiveError> {
        verify_kuaidi100_push(param, salt, sign)?;
        Self::parse(param)
    }

    /// The company correction, if the push reports one (`comNew` set), as kuaidi100's FAQ
    /// reads it: switch to `comNew` and do not resubscribe.
    pub fn correction(&self) -> Option<Correction<'_>> {
        Some(Correction {
            com_old: self.com_old.as_deref(),
            com_new: self.com_new.as_deref()?,
        })
    }
}

impl Kuaidi100Result {
    /// The state its code stands for (base or advanced), if the code is known.
    pub fn state(&self) -> Option<State> {
        self.state.and_then(State::from_kuaidi100)
    }
}

/// kuaidi100 sends flags and codes as strings (`"0"`, `"1"`); a number is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Loose {
    Text(String),
    Number(u64),
    Bool(bool),
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<Loose>::deserialize(d)? {
        Some(Loose::Text(t)) => matches!(t.trim(), "1" | "true"),
        Some(Loose::Number(n)) => n == 1,
        Some(Loose::Bool(b)) => b,
        None => false,
    })
}

fn code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Ok(match Option::<Loose>::deserialize(d)? {
        Some(Loose::Text(t)) => t.trim().parse().ok(),
        Some(Loose::Number(n)) => u16::try_from(n).ok(),
        Some(Loose::Bool(_)) | None => None,
    })
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::kuaidi100_push_sign;

    #[test]
    fn an_abort_with_a_corrected_company_names_it() {
        let param = r#"{"status":"abort","message":"","autoCheck":"0","comOld":"","comNew":"zhongtong",
            "lastResult":{"state":"0","ischeck":"0","com":"shentong","nu":"77301234567890","data":[]}}"#;
        let push = Kuaidi100Push::parse(param).unwrap();
        assert_eq!(push.status, PushStatus::Abort);
        assert_eq!(
            push.correction(),
            Some(Correction {
                com_old: None,
                com_new: "zhongtong"
            })
        );
    }

    #[test]
    fn numbers_for_flags_and_codes_are_accepted() {
        let param = r#"{"status":"shutdown","autoCheck":1,
            "lastResult":{"state":3,"ischeck":1,"com":"sf","nu":"SF1","data":[
              {"context":"已签收","time":"2024-05-01 10:00:00","ftime":"2024-05-01 10:00:00","statusCode":301}]}}"#;
        let push = Kuaidi100Push::parse(param).unwrap();
        assert!(push.auto_check && push.last_result.ischeck);
        assert_eq!(push.last_result.state(), Some(State::Delivered));
        assert_eq!(push.last_result.data[0].status_code, Some(301));
    }

    #[test]
    fn a_wrong_sign_is_refused_before_parsing() {
        let err = Kuaidi100Push::verify("not json", "SALT", "00").unwrap_err();
        assert!(matches!(err, ReceiveError::Sign(_)), "{err}");
        let sign = kuaidi100_push_sign("not json", "SALT");
        let err = Kuaidi100Push::verify("not json", "SALT", &sign).unwrap_err();
        assert!(matches!(err, ReceiveError::Param { .. }), "{err}");
    }

    #[test]
    fn the_ack_is_what_kuaidi100_requires() {
        let v: serde_json::Value = serde_json::from_str(KUAIDI100_ACK).unwrap();
        assert_eq!(
            (&v["result"], &v["returnCode"]),
            (&true.into(), &"200".into())
        );
    }
}
