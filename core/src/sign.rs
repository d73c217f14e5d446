//! Signatures of the protocols waybill speaks, and their checks.
//!
//! | scheme | signature |
//! |---|---|
//! | kuaidi100 query | upper-case hex MD5 of `param + key + customer` |
//! | kuaidi100 push | upper-case hex MD5 of `param + salt`; checked case-insensitively |
//! | Kdniao `DataSign` | Base64 of the lower-case hex MD5 of `RequestData + AppKey` |
//! | Standard Webhooks | `v1,` + Base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` |
//! | AfterShip `aftership-hmac-sha256` | Base64 HMAC-SHA256 of the raw body |
//!
//! Every check compares in constant time. Nothing here reads a clock: the Standard
//! Webhooks check takes `now` from the caller.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a signature was not accepted, or a secret not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The secret cannot be used.
    #[error("bad signing secret: {reason}")]
    BadSecret {
        /// What is wrong with it.
        reason: String,
    },
    /// The timestamp is further from `now` than the tolerance allows.
    #[error(
        "webhook timestamp {timestamp} is {skew_secs} s away from now ({now}); \
         at most {tolerance_secs} s is accepted"
    )]
    StaleTimestamp {
        /// The timestamp sent, in Unix seconds.
        timestamp: i64,
        /// The caller's `now`, in Unix seconds.
        now: i64,
        /// How far apart they are, in seconds.
        skew_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The signature was well formed but does not match the content.
    #[error("{scheme} signature does not match the content")]
    Mismatch {
        /// Which scheme was checked.
        scheme: &'static str,
    },
    /// A signature header or field could not be read.
    #[error("malformed {header}: {reason}")]
    MalformedHeader {
        /// The header or field.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn md5_hex(parts: &[&str], upper: bool) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part.as_bytes());
    }
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    md5.finalize()
        .iter()
        .flat_map(|b| [digits[usize::from(b >> 4)], digits[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// kuaidi100's query `sign`: upper-case hex MD5 of `param + key + customer`.
///
/// ```
/// use waybill_core::sign::kuaidi100_query_sign;
/// let sign = kuaidi100_query_sign(r#"{"com":"yuantong","num":"YT0000000000"}"#, "KEY123", "CUSTOMER123");
/// assert_eq!(sign, "4453C856DF01D7A114028C31584C365C");
/// ```
pub fn kuaidi100_query_sign(param: &str, key: &str, customer: &str) -> String {
    md5_hex(&[param, key, customer], true)
}

/// kuaidi100's push `sign`: upper-case hex MD5 of `param + salt`.
///
/// ```
/// use waybill_core::sign::kuaidi100_push_sign;
/// let param = r#"{"status":"polling","message":"","lastResult":{"state":"0"}}"#;
/// assert_eq!(kuaidi100_push_sign(param, "SALT123"), "61CC7EDCAB9995124A8D54A14113DC5C");
/// ```
pub fn kuaidi100_push_sign(param: &str, salt: &str) -> String {
    md5_hex(&[param, salt], true)
}

/// Checks a kuaidi100 push `sign` against `param + salt`, ignoring the case of the hex
/// digits (kuaidi100 documents only "md5(param+salt)").
///
/// A receiving endpoint usually wants the push parsed too:
/// [`crate::receive::Kuaidi100Push::verify`] checks this sign, then parses `param`.
///
/// ```
/// use waybill_core::sign::verify_kuaidi100_push;
/// let param = r#"{"status":"polling","message":"","lastResult":{"state":"0"}}"#;
/// assert!(verify_kuaidi100_push(param, "SALT123", "61cc7edcab9995124a8d54a14113dc5c").is_ok());
/// assert!(verify_kuaidi100_push(param, "OTHER", "61CC7EDCAB9995124A8D54A14113DC5C").is_err());
/// ```
pub fn verify_kuaidi100_push(param: &str, salt: &str, sign: &str) -> Result<(), SignError> {
    let expected = kuaidi100_push_sign(param, salt);
    let given = sign.trim().to_ascii_uppercase();
    if equal(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(SignError::Mismatch {
            scheme: "kuaidi100 push",
        })
    }
}

/// Kdniao's `DataSign`: Base64 of the lower-case hex MD5 of `data + app_key` (Base64 of
/// the 32-character hex string, not of the raw digest). URL-encode it before sending.
///
/// ```
/// use waybill_core::sign::kdniao_data_sign;
/// let data = r#"{"OrderCode":"","ShipperCode":"YTO","LogisticCode":"YT0000000000"}"#;
/// assert_eq!(kdniao_data_sign(data, "APPKEY123"), "NjdlYWY0NDEyMzU5ZmQyNjcwZjEyMzNkYmYwNTYzZGU=");
/// ```
pub fn kdniao_data_sign(data: &str, app_key: &str) -> String {
    BASE64.encode(md5_hex(&[data, app_key], false))
}

/// Checks a Kdniao `DataSign` (already URL-decoded) against `data + app_key`.
///
/// ```
/// use waybill_core::sign::verify_kdniao;
/// let data = r#"{"OrderCode":"","ShipperCode":"YTO","LogisticCode":"YT0000000000"}"#;
/// assert!(verify_kdniao(data, "APPKEY123", "NjdlYWY0NDEyMzU5ZmQyNjcwZjEyMzNkYmYwNTYzZGU=").is_ok());
/// ```
pub fn verify_kdniao(data: &str, app_key: &str, data_sign: &str) -> Result<(), SignError> {
    let expected = kdniao_data_sign(data, app_key);
    if equal(data_sign.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(SignError::Mismatch { scheme: "Kdniao" })
    }
}

/// An HMAC-SHA256 key, ready to sign. Its `Debug` output does not show the key.
#[derive(Clone)]
pub struct HmacKey {
    // Keyed once; each signature clones this state.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl HmacKey {
    /// The Standard Webhooks secret prefix.
    pub const WHSEC_PREFIX: &'static str = "whsec_";

    /// A key from raw bytes (AfterShip's webhook secret is its UTF-8 bytes).
    ///
    /// ```
    /// use waybill_core::sign::HmacKey;
    /// assert!(HmacKey::new(b"SECRET123").is_ok());
    /// assert!(HmacKey::new(b"").is_err());
    /// ```
    pub fn new(secret: &[u8]) -> Result<Self, SignError> {
        if secret.is_empty() {
            return Err(SignError::BadSecret {
                reason: "the secret is empty".into(),
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| SignError::BadSecret {
            reason: e.to_string(),
        })?;
        Ok(Self { mac })
    }

    /// A key from a Standard Webhooks secret, `whsec_` followed by the Base64 key bytes.
    ///
    /// ```
    /// use waybill_core::sign::HmacKey;
    /// assert!(HmacKey::from_whsec("whsec_d2F5YmlsbC1zdGFuZGFyZC13ZWJob29rcy10ZXN0ISE=").is_ok());
    /// assert!(HmacKey::from_whsec("d2F5YmlsbA==").is_err());
    /// ```
    pub fn from_whsec(secret: &str) -> Result<Self, SignError> {
        let encoded = secret
            .trim()
            .strip_prefix(Self::WHSEC_PREFIX)
            .ok_or_else(|| SignError::BadSecret {
                reason: format!(
                    "a Standard Webhooks secret starts with `{}`",
                    Self::WHSEC_PREFIX
                ),
            })?;
        let bytes = BASE64.decode(encoded).map_err(|e| SignError::BadSecret {
            reason: format!("the part after `{}` is not Base64: {e}", Self::WHSEC_PREFIX),
        })?;
        Self::new(&bytes)
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// AfterShip's `aftership-hmac-sha256` header value: Base64 HMAC-SHA256 of the raw body.
///
/// ```
/// use waybill_core::sign::{aftership_sign, HmacKey};
/// let key = HmacKey::new(b"SECRET123")?;
/// assert_eq!(
///     aftership_sign(br#"{"event":"tracking_update"}"#, &key),
///     "UM1ueFlreK9iAklp8El4s/OL8Q5E0I+LSpyD53oELU8="
/// );
/// # Ok::<(), waybill_core::sign::SignError>(())
/// ```
pub fn aftership_sign(body: &[u8], key: &HmacKey) -> String {
    BASE64.encode(key.tag(&[body]))
}

/// Checks an `aftership-hmac-sha256` header against the raw body.
///
/// ```
/// use waybill_core::sign::{verify_aftership, HmacKey};
/// let key = HmacKey::new(b"SECRET123")?;
/// let body = br#"{"event":"tracking_update"}"#;
/// assert!(verify_aftership(body, &key, "UM1ueFlreK9iAklp8El4s/OL8Q5E0I+LSpyD53oELU8=").is_ok());
/// # Ok::<(), waybill_core::sign::SignError>(())
/// ```
pub fn verify_aftership(body: &[u8], key: &HmacKey, header: &str) -> Result<(), SignError> {
    let given = BASE64
        .decode(header.trim())
        .map_err(|e| SignError::MalformedHeader {
            header: "aftership-hmac-sha256",
            reason: format!("not Base64: {e}"),
        })?;
    if equal(&given, &key.tag(&[body])) {
        Ok(())
    } else {
        Err(SignError::Mismatch {
            scheme: "AfterShip",
        })
    }
}

/// Signs and checks [Standard Webhooks](https://www.standardwebhooks.com/) messages.
///
/// ```
/// use std::time::Duration;
/// use waybill_core::sign::{HmacKey, StandardWebhook};
/// let key = HmacKey::from_whsec("whsec_d2F5YmlsbC1zdGFuZGFyZC13ZWJob29rcy10ZXN0ISE=")?;
/// let hook = StandardWebhook::new(key).with_tolerance(Duration::from_secs(60));
/// let sent = jiff::Timestamp::from_second(1_700_000_000).unwrap();
/// let body = br#"{"event":"tracking_update"}"#;
/// let signature = hook.sign("msg_1", sent, body);
/// let now = jiff::Timestamp::from_second(1_700_000_030).unwrap();
/// hook.verify("msg_1", "1700000000", body, &signature, now)?;
/// # Ok::<(), waybill_core::sign::SignError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StandardWebhook {
    key: HmacKey,
    tolerance: Duration,
}

impl StandardWebhook {
    /// Header carrying the message id.
    pub const ID_HEADER: &'static str = "webhook-id";
    /// Header carrying the Unix timestamp in seconds.
    pub const TIMESTAMP_HEADER: &'static str = "webhook-timestamp";
    /// Header carrying the space-separated signatures.
    pub const SIGNATURE_HEADER: &'static str = "webhook-signature";
    /// How far a timestamp may be from `now`, either way, unless set otherwise.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

    /// A signer and checker with the default tolerance.
    pub fn new(key: HmacKey) -> Self {
        Self {
            key,
            tolerance: Self::DEFAULT_TOLERANCE,
        }
    }

    /// The same, accepting timestamps up to `tolerance` away from `now`.
    pub fn with_tolerance(self, tolerance: Duration) -> Self {
        Self { tolerance, ..self }
    }

    /// The `webhook-signature` value for a message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: jiff::Timestamp, body: &[u8]) -> String {
        let seconds = timestamp.as_second().to_string();
        format!("v1,{}", BASE64.encode(self.tag(id, &seconds, body)))
    }

    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        self.key
            .tag(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
    }

    /// Checks a message from its three headers and raw body.
    ///
    /// The timestamp must be within the tolerance of `now`, and one `v1` signature in the
    /// space-separated list must match; signatures of other versions are skipped.
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        body: &[u8],
        signatures: &str,
        now: jiff::Timestamp,
    ) -> Result<(), SignError> {
        if id.is_empty() {
            return Err(SignError::MalformedHeader {
                header: Self::ID_HEADER,
                reason: "empty".into(),
            });
        }
        let sent: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignError::MalformedHeader {
                header: Self::TIMESTAMP_HEADER,
                reason: format!("{timestamp:?} is not Unix seconds"),
            })?;
        let now = now.as_second();
        let skew = now.abs_diff(sent);
        if skew > self.tolerance.as_secs() {
            return Err(SignError::StaleTimestamp {
                timestamp: sent,
                now,
                skew_secs: skew,
                tolerance_secs: self.tolerance.as_secs(),
            });
        }
        let expected = self.tag(id, timestamp.trim(), body);
        let mut candidates = 0usize;
        let mut matched = subtle::Choice::from(0);
        for entry in signatures.split_whitespace() {
            let Some(("v1", encoded)) = entry.split_once(',') else {
                continue;
            };
            let Ok(given) = BASE64.decode(encoded) else {
                continue;
            };
            candidates += 1;
            // Check every candidate so the time taken does not tell which one matched.
            matched |= given.ct_eq(&expected);
        }
        if candidates == 0 {
            return Err(SignError::MalformedHeader {
                header: Self::SIGNATURE_HEADER,
                reason: "no `v1,<base64>` signature in it".into(),
            });
        }
        if matched.into() {
            Ok(())
        } else {
            Err(SignError::Mismatch {
                scheme: "Standard Webhooks",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers computed for this project with Python's hashlib/hmac from made-up
    // inputs (not taken from any provider's documentation).
    const K100_PARAM: &str = r#"{"com":"yuantong","num":"YT0000000000"}"#;
    const K100_QUERY_SIGN: &str = "4453C856DF01D7A114028C31584C365C";
    const K100_PUSH_PARAM: &str = r#"{"status":"polling","message":"","lastResult":{"state":"0"}}"#;
    const K100_PUSH_SIGN: &str = "61CC7EDCAB9995124A8D54A14113DC5C";
    const KDNIAO_DATA: &str =
        r#"{"OrderCode":"","ShipperCode":"YTO","LogisticCode":"YT0000000000"}"#;
    const KDNIAO_MD5: &str = "67eaf4412359fd2670f1233dbf0563de";
    const KDNIAO_SIGN: &str = "NjdlYWY0NDEyMzU5ZmQyNjcwZjEyMzNkYmYwNTYzZGU=";
    const AFTERSHIP_BODY: &[u8] = br#"{"event":"tracking_update"}"#;
    const AFTERSHIP_SIGN: &str = "UM1ueFlreK9iAklp8El4s/OL8Q5E0I+LSpyD53oELU8=";
    // Standard Webhooks: key = b"waybill-standard-webhooks-test!!", id = "msg_waybill_0001",
    // timestamp = 1700000000, body as AfterShip's above.
    const WHSEC: &str = "whsec_d2F5YmlsbC1zdGFuZGFyZC13ZWJob29rcy10ZXN0ISE=";
    const WH_ID: &str = "msg_waybill_0001";
    const WH_TS: i64 = 1_700_000_000;
    const WH_SIGN: &str = "v1,jATAUpfOWILZP0ljn1s4+TGHhDXrYXwsQXFsOiaCEQg=";

    fn at(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(second).expect("in range")
    }

    fn hook() -> StandardWebhook {
        StandardWebhook::new(HmacKey::from_whsec(WHSEC).expect("valid secret"))
    }

    #[test]
    fn kuaidi100_query_sign_matches_known_answer() {
        assert_eq!(
            kuaidi100_query_sign(K100_PARAM, "KEY123", "CUSTOMER123"),
            K100_QUERY_SIGN
        );
    }

    #[test]
    fn kuaidi100_push_sign_matches_known_answer() {
        assert_eq!(
            kuaidi100_push_sign(K100_PUSH_PARAM, "SALT123"),
            K100_PUSH_SIGN
        );
    }

    #[test]
    fn kuaidi100_push_verify_ignores_case_and_rejects_other_salt_or_param() {
        assert_eq!(
            verify_kuaidi100_push(K100_PUSH_PARAM, "SALT123", K100_PUSH_SIGN),
            Ok(())
        );
        let lower = K100_PUSH_SIGN.to_ascii_lowercase();
        assert_eq!(
            verify_kuaidi100_push(K100_PUSH_PARAM, "SALT123", &lower),
            Ok(())
        );
        let mismatch = Err(SignError::Mismatch {
            scheme: "kuaidi100 push",
        });
        assert_eq!(
            verify_kuaidi100_push(K100_PUSH_PARAM, "SALT124", K100_PUSH_SIGN),
            mismatch
        );
        assert_eq!(
            verify_kuaidi100_push("{}", "SALT123", K100_PUSH_SIGN),
            mismatch
        );
        assert_eq!(
            verify_kuaidi100_push(K100_PUSH_PARAM, "SALT123", ""),
            mismatch
        );
    }

    #[test]
    fn kdniao_data_sign_is_base64_of_lower_hex_md5() {
        assert_eq!(md5_hex(&[KDNIAO_DATA, "APPKEY123"], false), KDNIAO_MD5);
        assert_eq!(kdniao_data_sign(KDNIAO_DATA, "APPKEY123"), KDNIAO_SIGN);
        assert_eq!(verify_kdniao(KDNIAO_DATA, "APPKEY123", KDNIAO_SIGN), Ok(()));
        assert_eq!(
            verify_kdniao(KDNIAO_DATA, "APPKEY124", KDNIAO_SIGN),
            Err(SignError::Mismatch { scheme: "Kdniao" })
        );
    }

    #[test]
    fn aftership_sign_matches_known_answer_and_verifies() {
        let key = HmacKey::new(b"SECRET123").expect("non-empty");
        assert_eq!(aftership_sign(AFTERSHIP_BODY, &key), AFTERSHIP_SIGN);
        assert_eq!(
            verify_aftership(AFTERSHIP_BODY, &key, AFTERSHIP_SIGN),
            Ok(())
        );
        assert_eq!(
            verify_aftership(b"{}", &key, AFTERSHIP_SIGN),
            Err(SignError::Mismatch {
                scheme: "AfterShip"
            })
        );
        assert!(matches!(
            verify_aftership(AFTERSHIP_BODY, &key, "not base64!"),
            Err(SignError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn standard_webhook_sign_matches_known_answer() {
        assert_eq!(hook().sign(WH_ID, at(WH_TS), AFTERSHIP_BODY), WH_SIGN);
    }

    #[test]
    fn whsec_and_raw_bytes_give_the_same_key() {
        let raw = HmacKey::new(b"waybill-standard-webhooks-test!!").expect("non-empty");
        let hook_raw = StandardWebhook::new(raw);
        assert_eq!(hook_raw.sign(WH_ID, at(WH_TS), AFTERSHIP_BODY), WH_SIGN);
    }

    #[test]
    fn standard_webhook_verifies_within_tolerance_either_side() {
        let ts = WH_TS.to_string();
        for now in [WH_TS, WH_TS + 300, WH_TS - 300] {
            assert_eq!(
                hook().verify(WH_ID, &ts, AFTERSHIP_BODY, WH_SIGN, at(now)),
                Ok(()),
                "now = {now}"
            );
        }
    }

    #[test]
    fn standard_webhook_rejects_a_stale_or_future_timestamp() {
        let ts = WH_TS.to_string();
        for now in [WH_TS + 301, WH_TS - 301] {
            assert_eq!(
                hook().verify(WH_ID, &ts, AFTERSHIP_BODY, WH_SIGN, at(now)),
                Err(SignError::StaleTimestamp {
                    timestamp: WH_TS,
                    now,
                    skew_secs: 301,
                    tolerance_secs: 300
                })
            );
        }
        let strict = hook().with_tolerance(Duration::from_secs(10));
        assert!(matches!(
            strict.verify(WH_ID, &ts, AFTERSHIP_BODY, WH_SIGN, at(WH_TS + 11)),
            Err(SignError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn standard_webhook_accepts_any_matching_v1_in_the_list() {
        let ts = WH_TS.to_string();
        let list = format!("v2,abcd v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {WH_SIGN}");
        assert_eq!(
            hook().verify(WH_ID, &ts, AFTERSHIP_BODY, &list, at(WH_TS)),
            Ok(())
        );
    }

    #[test]
    fn standard_webhook_rejects_changed_id_timestamp_or_body() {
        let mismatch = Err(SignError::Mismatch {
            scheme: "Standard Webhooks",
        });
        let ts = WH_TS.to_string();
        let h = hook();
        assert_eq!(
            h.verify("msg_other", &ts, AFTERSHIP_BODY, WH_SIGN, at(WH_TS)),
            mismatch
        );
        let later = (WH_TS + 1).to_string();
        assert_eq!(
            h.verify(WH_ID, &later, AFTERSHIP_BODY, WH_SIGN, at(WH_TS)),
            mismatch
        );
        assert_eq!(h.verify(WH_ID, &ts, b"{}", WH_SIGN, at(WH_TS)), mismatch);
    }

    #[test]
    fn standard_webhook_reports_malformed_headers() {
        let ts = WH_TS.to_string();
        let h = hook();
        let header = |r: Result<(), SignError>| match r {
            Err(SignError::MalformedHeader { header, .. }) => header,
            other => panic!("expected a malformed header, got {other:?}"),
        };
        assert_eq!(
            header(h.verify(WH_ID, "soon", AFTERSHIP_BODY, WH_SIGN, at(WH_TS))),
            "webhook-timestamp"
        );
        assert_eq!(
            header(h.verify(WH_ID, &ts, AFTERSHIP_BODY, "", at(WH_TS))),
            "webhook-signature"
        );
        assert_eq!(
            header(h.verify(WH_ID, &ts, AFTERSHIP_BODY, "v2,abc v1", at(WH_TS))),
            "webhook-signature"
        );
        assert_eq!(
            header(h.verify("", &ts, AFTERSHIP_BODY, WH_SIGN, at(WH_TS))),
            "webhook-id"
        );
    }

    #[test]
    fn bad_secrets_are_refused() {
        for secret in ["", "whsec_", "whsec_***", "d2F5YmlsbA=="] {
            assert!(
                matches!(
                    HmacKey::from_whsec(secret),
                    Err(SignError::BadSecret { .. })
                ),
                "{secret:?}"
            );
        }
        assert!(matches!(
            HmacKey::new(b""),
            Err(SignError::BadSecret { .. })
        ));
    }

    #[test]
    fn key_debug_output_hides_the_secret() {
        let key = HmacKey::new(b"SECRET123").expect("non-empty");
        assert!(!format!("{key:?}").contains("SECRET"));
    }
}
