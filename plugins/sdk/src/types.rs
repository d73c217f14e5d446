//! The plain Rust types a plugin author works with. None of them is FFI-aware: the
//! [`ffi`](crate::ffi) layer converts them at the boundary, so a carrier never sees
//! `abi_stable`.
//!
//! Types the host builds and the plugin only reads ([`Query`], [`QueryWaybill`],
//! [`HttpResponse`]) are `#[non_exhaustive]`: fields can be added without breaking plugins.
//! Types the plugin builds ([`Manifest`], [`HttpRequest`], [`RawEvent`], ...) implement
//! `Default`; write struct literals with `..Default::default()` so new optional fields do
//! not break your code either.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use waybill_core::carrier::TrackError;
use waybill_core::state::State;

/// What a plugin says about itself, read once at load time.
///
/// It crosses the boundary as JSON, so fields can be added freely; unknown fields are
/// ignored and missing ones take their defaults.
///
/// ```
/// use waybill_sdk::{Capabilities, ConfigKey, Manifest, NumberRule};
/// let m = Manifest {
///     codes: vec!["hexi".into()],
///     name_zh: "河西快运".into(),
///     name_en: "Hexi Express".into(),
///     number_rules: vec![NumberRule::new("hexi_hx12", r"^HX\d{12}$")],
///     capabilities: Capabilities { max_batch: 10, ..Default::default() },
///     config_keys: vec![ConfigKey::secret("api_key", "API key from the Hexi portal")],
///     ..Default::default()
/// };
/// assert_eq!(m.canonical_code(), Some("hexi"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Manifest {
    /// Carrier codes the plugin answers for, lower case; the first is canonical
    /// (a kuaidi100 company code where one exists).
    pub codes: Vec<String>,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Number shapes for the carrier guesser.
    pub number_rules: Vec<NumberRule>,
    /// What the carrier can do.
    pub capabilities: Capabilities,
    /// Configuration keys the plugin reads from the host's configuration.
    pub config_keys: Vec<ConfigKey>,
    /// The plugin's own version (free text, shown by `waybill plugins`).
    pub plugin_version: String,
    /// The plugin is an aggregator (kuaidi100, Kdniao, 17TRACK): it tracks waybills of
    /// many companies, named by each waybill's [`QueryWaybill::company`]. The host may
    /// route a company code without a dedicated plugin to it (`WAYBILL_UPSTREAM`).
    /// Added in SDK 1.1.
    pub aggregator: bool,
    /// The carrier's documented status code tables the plugin maps (SF `opCode`, DHL
    /// `statusCode`, ...): every code listed here is one the plugin decides a state for,
    /// and the conformance suite checks that a fixture covers each. Added in SDK 1.2.
    pub code_tables: Vec<CodeTable>,
}

/// One of a carrier's documented status code tables, as the plugin maps it.
///
/// An event's [`RawEvent::raw_code`] names the codes it carries as whitespace-separated
/// `field=code` tokens ([`RawEvent::with_codes`]), so a code is traced to its table even
/// where two tables share a value (SF `opCode` 204 is out for delivery, `secondaryStatusCode`
/// 204 is customs).
///
/// ```
/// use waybill_sdk::{CodeTable, State};
/// let t = CodeTable::new("statusCode", "DHL Unified Tracking API 1.5.6")
///     .code("delivered", "Delivered", Some(State::Delivered))
///     .code("unknown", "Status unknown", None);
/// assert_eq!(t.state_of("delivered"), Some(State::Delivered));
/// assert_eq!(t.state_of("unknown"), None);
/// assert!(t.documents("unknown"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeTable {
    /// The carrier's field name (`opCode`, `statusCode`, `eventType`).
    pub field: String,
    /// Where the table is documented (document, version, page).
    pub source: String,
    /// The documented codes.
    pub codes: Vec<DocumentedCode>,
}

/// One documented code of a [`CodeTable`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DocumentedCode {
    /// The code as the carrier sends it.
    pub code: String,
    /// What the documentation says it means.
    pub meaning: String,
    /// The state the code stands for by itself; `None` when the documentation gives it no
    /// state of its own (another field or the text decides).
    pub state: Option<State>,
}

impl CodeTable {
    /// An empty table for the carrier's field `field`, documented in `source`.
    pub fn new(field: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            source: source.into(),
            codes: Vec::new(),
        }
    }

    /// The table with one more documented code.
    #[must_use]
    pub fn code(mut self, code: &str, meaning: &str, state: Option<State>) -> Self {
        self.codes.push(DocumentedCode {
            code: code.to_owned(),
            meaning: meaning.to_owned(),
            state,
        });
        self
    }

    /// Whether the table documents `code`.
    pub fn documents(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c.code == code)
    }

    /// The state `code` stands for by itself, if the table gives one.
    pub fn state_of(&self, code: &str) -> Option<State> {
        self.codes.iter().find(|c| c.code == code)?.state
    }
}

impl Manifest {
    /// The canonical code, if the manifest has any.
    pub fn canonical_code(&self) -> Option<&str> {
        self.codes.first().map(String::as_str)
    }

    /// Checks what the host relies on: at least one code; codes lower-case ASCII letters,
    /// digits, `_` or `-`; no duplicate code; every number rule has a format id and a
    /// regex that compiles; code tables named, without empty or duplicate codes;
    /// `max_batch` at least 1; a rate limit, if any, positive.
    ///
    /// ```
    /// use waybill_sdk::{Manifest, NumberRule};
    /// let mut m = Manifest { codes: vec!["hexi".into()], ..Default::default() };
    /// assert!(m.validate().is_ok());
    /// m.codes.push("Hexi".into());
    /// assert!(m.validate().unwrap_err().contains("Hexi"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if self.codes.is_empty() {
            return Err("no carrier code".to_owned());
        }
        for (i, code) in self.codes.iter().enumerate() {
            let ok = !code.is_empty()
                && code.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(format!(
                    "carrier code {code:?} must be lower-case ASCII letters, digits, '_' or '-'"
                ));
            }
            if self.codes[..i].contains(code) {
                return Err(format!("carrier code {code:?} is listed twice"));
            }
        }
        for rule in &self.number_rules {
            if rule.format.is_empty() {
                return Err(format!("number rule {:?} has no format id", rule.regex));
            }
            regex::Regex::new(&rule.regex).map_err(|e| {
                format!("number rule {:?}: regex does not compile: {e}", rule.format)
            })?;
            if let Some(code) = self.canonical_code() {
                rule.to_format_rule(code, &self.name_en)
                    .map_err(|e| format!("number rule {:?}: {e}", rule.format))?;
            }
        }
        for table in &self.code_tables {
            if table.field.is_empty() || table.field.contains(['=', ' ']) {
                return Err(format!(
                    "code table field {:?} must be a non-empty name without '=' or spaces",
                    table.field
                ));
            }
            for (i, c) in table.codes.iter().enumerate() {
                if c.code.is_empty() || c.code.contains(char::is_whitespace) {
                    return Err(format!(
                        "code table {}: code {:?} is empty or has spaces",
                        table.field, c.code
                    ));
                }
                if table.codes[..i].iter().any(|d| d.code == c.code) {
                    return Err(format!(
                        "code table {}: code {:?} is listed twice",
                        table.field, c.code
                    ));
                }
            }
        }
        if self.capabilities.max_batch == 0 {
            return Err("capabilities.max_batch must be at least 1".to_owned());
        }
        if let Some(r) = self.capabilities.rate_limit_per_sec {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "capabilities.rate_limit_per_sec {r} must be positive"
                ));
            }
        }
        Ok(())
    }
}

/// One number shape of a carrier, for the guesser.
///
/// The shape follows the tracking_number_data convention: an id, a regex, and an optional
/// checksum given as JSON `{"name": "mod10", ...constants}` (tracking_number_data names and
/// constants, or core's own `{"kind": ...}` schema, see `core/rules/README.md`).
///
/// The host adds every loaded plugin's rules to core's guesser
/// ([`NumberRule::to_format_rule`]). How far a match ranks is [`NumberRule::rank`]; left
/// out, it is read from the start of the regex.
///
/// ```
/// use waybill_sdk::{NumberRule, RuleRank};
/// let catch_all = NumberRule {
///     rank: Some(RuleRank::Fallback),
///     ..NumberRule::new("sandbox_any", r"^[0-9A-Z]{6,32}$")
/// };
/// assert_eq!(catch_all.effective_rank(), RuleRank::Fallback);
/// assert_eq!(NumberRule::new("hexi_hx12", r"^HX\d{12}$").effective_rank(), RuleRank::Literal);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NumberRule {
    /// Format id, unique within the plugin (e.g. `hexi_hx12`).
    pub format: String,
    /// Regular expression (Rust `regex` syntax) the whole number must match. Numbers reach
    /// it normalised: no spaces or dashes, upper case.
    pub regex: String,
    /// Checksum: `{"name": ..., ...parameters}`; `None` when the format has none.
    pub checksum: Option<serde_json::Value>,
    /// How much a match says, for ranking; `None` infers it from the regex (a leading
    /// letter is [`RuleRank::Literal`], a leading digit [`RuleRank::Numeric`], anything
    /// else [`RuleRank::LengthOnly`]). Added in SDK 1.1.
    pub rank: Option<RuleRank>,
    /// Region the shape is used in (`CN`, `US`, `EU`, `INT`, ...); empty means `CN`.
    /// Added in SDK 1.1.
    pub region: String,
    /// An older or less certain shape, ranked below current ones. Added in SDK 1.1.
    pub legacy: bool,
}

impl NumberRule {
    /// A rule without checksum.
    pub fn new(format: impl Into<String>, regex: impl Into<String>) -> Self {
        Self {
            format: format.into(),
            regex: regex.into(),
            ..Default::default()
        }
    }

    /// The same rule used in `region` (`CN`, `US`, `EU`, `INT`, ...), for the guesser's
    /// region prior.
    ///
    /// ```
    /// use waybill_sdk::NumberRule;
    /// assert_eq!(NumberRule::new("fedex_express_12", r"^\d{12}$").in_region("US").region, "US");
    /// ```
    #[must_use]
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The rank, inferred from the regex when the plugin gave none.
    pub fn effective_rank(&self) -> RuleRank {
        if let Some(rank) = self.rank {
            return rank;
        }
        let body = self.regex.strip_prefix('^').unwrap_or(&self.regex);
        match body.chars().next() {
            Some(c) if c.is_ascii_alphabetic() => RuleRank::Literal,
            Some(c) if c.is_ascii_digit() => RuleRank::Numeric,
            _ => RuleRank::LengthOnly,
        }
    }
}

/// How much a number rule's match says about the carrier, strongest first. Maps to core's
/// `PrefixKind`; a verified check digit ranks above all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleRank {
    /// Starts with letters few carriers use (`SF`, `JJD`).
    Literal,
    /// Starts with specific digits (`00340`).
    Numeric,
    /// Only the length and character classes (`^\d{12}$`).
    LengthOnly,
    /// A catch-all (test carriers): ranked below every other candidate.
    Fallback,
}

/// What a carrier can do, so the host can plan requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// How many waybills one [`Query`] may carry (at least 1).
    pub max_batch: usize,
    /// Whether the carrier needs the phone number (or its last four digits).
    pub needs_phone: bool,
    /// Requests per second the carrier tolerates; `None` when unknown. The host's
    /// configuration may override it.
    pub rate_limit_per_sec: Option<f64>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            max_batch: 1,
            needs_phone: false,
            rate_limit_per_sec: None,
        }
    }
}

impl From<&Capabilities> for waybill_core::carrier::Capabilities {
    fn from(c: &Capabilities) -> Self {
        Self {
            max_batch: c.max_batch.max(1),
            needs_phone: c.needs_phone,
            rate_limit_per_sec: c.rate_limit_per_sec,
        }
    }
}

/// A configuration key the plugin reads, with its documentation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigKey {
    /// Key name (e.g. `api_key`).
    pub name: String,
    /// What it is and where to get it.
    pub doc: String,
    /// Whether instantiation fails without it.
    pub required: bool,
    /// Whether the value is a secret: the host never prints it.
    pub secret: bool,
}

impl ConfigKey {
    /// A required secret (API key, password).
    pub fn secret(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            doc: doc.into(),
            required: true,
            secret: true,
        }
    }

    /// An optional, non-secret setting.
    pub fn optional(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            doc: doc.into(),
            required: false,
            secret: false,
        }
    }
}

/// The plugin's configuration, from the host's configuration file or environment.
///
/// Its `Debug` output shows keys only, never values, so a config can be logged safely.
///
/// ```
/// use waybill_sdk::Config;
/// let c = Config::from_pairs([("api_key", "s3cret")]);
/// assert_eq!(c.get("api_key"), Some("s3cret"));
/// assert!(!format!("{c:?}").contains("s3cret"));
/// assert!(c.require("customer_id").is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// A configuration from key/value pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets one key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of a key, or a [`PluginError::Config`] naming the missing key.
    pub fn require(&self, key: &str) -> Result<&str, PluginError> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(PluginError::Config {
                message: format!("missing configuration key `{key}`"),
            }),
        }
    }

    /// A base URL from key `key`, or `default` when the key is missing or blank: trimmed,
    /// without trailing `/`, so the plugin can append paths. A value that does not start
    /// with `http://` or `https://` is a [`PluginError::Config`] naming the key (never the
    /// value).
    ///
    /// ```
    /// use waybill_sdk::Config;
    /// let c = Config::from_pairs([("base_url", " http://127.0.0.1:8765/ ")]);
    /// assert_eq!(c.base_url("base_url", "https://api.invalid").unwrap(), "http://127.0.0.1:8765");
    /// assert_eq!(Config::new().base_url("base_url", "https://api.invalid/").unwrap(), "https://api.invalid");
    /// let bad = Config::from_pairs([("base_url", "api.example.com")]);
    /// assert_eq!(bad.base_url("base_url", "https://api.invalid").unwrap_err().kind(), "config");
    /// ```
    pub fn base_url(&self, key: &str, default: &str) -> Result<String, PluginError> {
        let url = self
            .get(key)
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(default)
            .trim()
            .trim_end_matches('/');
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(url.to_owned())
        } else {
            Err(PluginError::Config {
                message: format!("`{key}` must start with http:// or https://"),
            })
        }
    }

    /// Every key/value pair, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// One waybill in a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueryWaybill {
    /// The carrier code the waybill was subscribed with (one of the manifest's codes).
    pub company: String,
    /// The tracking number, normalised (no spaces, upper case).
    pub number: String,
    /// The phone number, when the subscriber gave one.
    pub phone: Option<String>,
}

impl QueryWaybill {
    /// A waybill without phone.
    pub fn new(company: impl Into<String>, number: impl Into<String>) -> Self {
        Self {
            company: company.into(),
            number: number.into(),
            phone: None,
        }
    }

    /// The same waybill with a phone number.
    pub fn with_phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }

    /// The last four digits of the phone, as many Chinese carriers ask.
    pub fn phone_last4(&self) -> Option<&str> {
        let p = self.phone.as_deref()?.trim();
        let start = p.char_indices().rev().nth(3).map(|(i, _)| i).unwrap_or(0);
        Some(&p[start..])
    }
}

/// What the host asks: track these waybills (at most `max_batch` of them).
///
/// The host also hands over its clock and a fresh nonce, so a plugin that signs requests
/// with a timestamp or nonce stays a pure function of its inputs (and its tests
/// deterministic) instead of reading the system clock.
///
/// ```
/// use waybill_sdk::{Query, QueryWaybill};
/// let q = Query::new(vec![QueryWaybill::new("hexi", "HX123456789012").with_phone("13800001234")])
///     .at(1_714_528_800_000)
///     .with_nonce(7);
/// assert_eq!(q.waybills[0].phone_last4(), Some("1234"));
/// assert_eq!((q.now_ms, q.nonce), (Some(1_714_528_800_000), Some(7)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Query {
    /// The waybills, in the order their outcomes are expected.
    pub waybills: Vec<QueryWaybill>,
    /// The host's clock when it built the query, in milliseconds since the Unix epoch.
    /// `None` from hosts older than SDK 1.1, and until [`Query::at`] sets it.
    pub now_ms: Option<i64>,
    /// A random number, fresh for each query, for carriers that sign with a nonce.
    /// `None` from hosts older than SDK 1.1, and until [`Query::with_nonce`] sets it.
    pub nonce: Option<u64>,
}

impl Query {
    /// A query for these waybills (no clock, no nonce).
    pub fn new(waybills: Vec<QueryWaybill>) -> Self {
        Self {
            waybills,
            now_ms: None,
            nonce: None,
        }
    }

    /// A query for one waybill.
    pub fn single(company: impl Into<String>, number: impl Into<String>) -> Self {
        Self::new(vec![QueryWaybill::new(company, number)])
    }

    /// The same query stamped with the host's clock (epoch milliseconds).
    #[must_use]
    pub fn at(mut self, now_ms: i64) -> Self {
        self.now_ms = Some(now_ms);
        self
    }

    /// The same query with a nonce.
    #[must_use]
    pub fn with_nonce(mut self, nonce: u64) -> Self {
        self.nonce = Some(nonce);
        self
    }
}

/// An HTTP request the plugin asks the host to send.
///
/// ```
/// use waybill_sdk::HttpRequest;
/// let r = HttpRequest::get("https://api.example.invalid/track?no=1")
///     .header("Accept", "application/json")
///     .state("track");
/// assert_eq!(r.method, "GET");
/// assert_eq!(r.state, "track");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    /// Method, upper case (`GET`, `POST`, ...).
    pub method: String,
    /// Absolute URL with its query string.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for none).
    pub body: Vec<u8>,
    /// Opaque state handed back to [`CarrierPlugin::resume`](crate::CarrierPlugin::resume)
    /// with the response. The host never reads it; it may be logged, so keep secrets out.
    pub state: String,
}

impl HttpRequest {
    /// A request with this method and URL.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            ..Default::default()
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its `Content-Type`.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = body.into();
        self
    }

    /// Sets a JSON body.
    pub fn json(self, value: &serde_json::Value) -> Self {
        let body = value.to_string().into_bytes();
        self.body("application/json", body)
    }

    /// Sets an `application/x-www-form-urlencoded` body from pairs (percent-encoded).
    pub fn form<'a>(self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let body = pairs
            .into_iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.body("application/x-www-form-urlencoded", body)
    }

    /// Sets the opaque state for the next [`resume`](crate::CarrierPlugin::resume).
    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.state = state.into();
        self
    }
}

/// Percent-encodes a string for a URL query or a form body (RFC 3986 unreserved kept).
///
/// ```
/// assert_eq!(waybill_sdk::percent_encode("a b&c=河"), "a%20b%26c%3D%E6%B2%B3");
/// ```
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces every occurrence of each secret in `text` by `***`, so a carrier's message
/// that echoes a credential can go into a [`PluginError`] or a log. Secrets shorter than
/// four characters are left alone: masking them would garble the text and hide nothing.
///
/// ```
/// use waybill_sdk::redact;
/// assert_eq!(redact("key s3cr3t-42 refused", &["s3cr3t-42"]), "key *** refused");
/// assert_eq!(redact("a b c", &["b", ""]), "a b c");
/// ```
pub fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |t, s| t.replace(s, "***"))
}

/// The response the host got for an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers, in order, names as received.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with status and body, no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text, lossily.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON, or a [`PluginError::BadResponse`] saying why not.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body).map_err(|e| PluginError::BadResponse {
            message: format!("HTTP {}: body is not the expected JSON: {e}", self.status),
        })
    }

    /// The delay in seconds of a `Retry-After` header, when it is given in seconds (an
    /// HTTP date or garbage gives `None`).
    ///
    /// ```
    /// use waybill_sdk::HttpResponse;
    /// assert_eq!(HttpResponse::new(429, "").with_header("retry-after", " 30 ").retry_after_secs(), Some(30));
    /// assert_eq!(HttpResponse::new(429, "").retry_after_secs(), None);
    /// ```
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.header("retry-after")
            .and_then(|v| v.trim().parse().ok())
    }

    /// A classified error for a non-2xx status: 401/403 unauthorized, 404 not found,
    /// 429 rate limited (with `Retry-After` seconds when given), 5xx and 408 transient,
    /// other 4xx bad response. `None` for 2xx/3xx.
    pub fn status_error(&self) -> Option<PluginError> {
        self.status_error_with(|| format!("HTTP {}", self.status))
    }

    /// [`status_error`](Self::status_error) with the plugin's own message (built only
    /// when the status is an error), e.g. one with the carrier's error text, passed
    /// through [`redact`] first.
    ///
    /// ```
    /// use waybill_sdk::{HttpResponse, PluginError};
    /// let r = HttpResponse::new(503, "busy");
    /// let e = r.status_error_with(|| format!("Hexi HTTP {}: {}", r.status, r.text()));
    /// assert_eq!(e, Some(PluginError::Transient { message: "Hexi HTTP 503: busy".into() }));
    /// assert_eq!(HttpResponse::new(200, "").status_error_with(|| unreachable!()), None);
    /// ```
    pub fn status_error_with(&self, message: impl FnOnce() -> String) -> Option<PluginError> {
        Some(match self.status {
            200..=399 => return None,
            429 => PluginError::RateLimited {
                retry_after_secs: self.retry_after_secs(),
            },
            401 | 403 => PluginError::Unauthorized { message: message() },
            404 => PluginError::NotFound { message: message() },
            408 | 500..=599 => PluginError::Transient { message: message() },
            _ => PluginError::BadResponse { message: message() },
        })
    }
}

/// What the plugin wants next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send this request and call [`resume`](crate::CarrierPlugin::resume) with the
    /// response and the request's `state`.
    Send(HttpRequest),
    /// Finished: one outcome per queried waybill, in query order.
    Done(Vec<WaybillOutcome>),
    /// The whole query failed.
    Failed(PluginError),
}

/// The result for one waybill.
#[derive(Debug, Clone, PartialEq)]
pub struct WaybillOutcome {
    /// The tracking number it answers.
    pub number: String,
    /// The raw events (any order), or why there are none.
    pub result: Result<Vec<RawEvent>, PluginError>,
}

impl WaybillOutcome {
    /// Events for a number.
    pub fn events(number: impl Into<String>, events: Vec<RawEvent>) -> Self {
        Self {
            number: number.into(),
            result: Ok(events),
        }
    }

    /// An error for a number.
    pub fn error(number: impl Into<String>, error: PluginError) -> Self {
        Self {
            number: number.into(),
            result: Err(error),
        }
    }
}

/// One line of a carrier's trace, as the carrier printed it.
///
/// ```
/// use waybill_sdk::RawEvent;
/// use waybill_core::state::State;
/// let e = RawEvent::new("2024-05-01 10:00:00", "已签收，签收人：本人")
///     .with_code("SIGNED")
///     .with_state(State::Delivered);
/// assert_eq!(e.offset_minutes, None); // +08:00 is assumed
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawEvent {
    /// The carrier's time: RFC 3339, or civil `YYYY-MM-DD HH:MM[:SS]`.
    pub time: String,
    /// The offset of a civil `time` in minutes east of UTC; `None` means +08:00.
    pub offset_minutes: Option<i32>,
    /// The carrier's text, unchanged.
    pub text: String,
    /// Where, as the carrier names it. When the carrier gives a structured area, put it
    /// here as text (`广东省深圳市南山区`, `SHENZHEN, GUANGDONG`): the host reads the
    /// line's kuaidi100 `areaCode`/`areaName` from the text, and from this field when the
    /// text names no place.
    pub location: Option<String>,
    /// The carrier's own status code for this line.
    pub raw_code: Option<String>,
    /// The state, when the plugin maps the carrier's code itself; `None` leaves it to
    /// core's text normalizer.
    pub state: Option<State>,
}

/// Marks as [`State::Returned`] every delivered-phase event that follows a
/// [`State::Returning`] one: once a parcel has turned back, a signature is the sender's,
/// not the addressee's. `events` are oldest first, as Chinese carriers list their scans.
///
/// ```
/// use waybill_sdk::{returned_signatures, RawEvent, State};
/// let events = returned_signatures(vec![
///     RawEvent::new("2025-03-01 09:00", "派件").with_state(State::OutForDelivery),
///     RawEvent::new("2025-03-01 18:00", "退回").with_state(State::Returning),
///     RawEvent::new("2025-03-03 10:00", "签收").with_state(State::Delivered),
/// ]);
/// assert_eq!(events[2].state, Some(State::Returned));
/// assert_eq!(events[0].state, Some(State::OutForDelivery));
/// ```
pub fn returned_signatures(mut events: Vec<RawEvent>) -> Vec<RawEvent> {
    let mut turned_back = false;
    for e in &mut events {
        match e.state {
            Some(State::Returning) => turned_back = true,
            Some(s) if turned_back && s.phase() == State::Delivered.phase() => {
                e.state = Some(State::Returned)
            }
            _ => {}
        }
    }
    events
}

impl RawEvent {
    /// An event with time and text.
    pub fn new(time: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            time: time.into(),
            text: text.into(),
            ..Default::default()
        }
    }

    /// With the carrier's status code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.raw_code = Some(code.into());
        self
    }

    /// With a state.
    pub fn with_state(mut self, state: State) -> Self {
        self.state = Some(state);
        self
    }

    /// With a place.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// With the offset of a civil time, in minutes east of UTC.
    pub fn with_offset_minutes(mut self, minutes: i32) -> Self {
        self.offset_minutes = Some(minutes);
        self
    }

    /// With the carrier's codes as `field=code` tokens (see [`CodeTable`]); empty codes
    /// are left out, and no code at all leaves `raw_code` unset.
    ///
    /// ```
    /// use waybill_sdk::RawEvent;
    /// let e = RawEvent::new("2025-03-04 10:00:00", "已代收")
    ///     .with_codes([("opCode", "655"), ("firstStatusCode", ""), ("secondaryStatusCode", "701")]);
    /// assert_eq!(e.raw_code.as_deref(), Some("opCode=655 secondaryStatusCode=701"));
    /// assert_eq!(e.codes().collect::<Vec<_>>(), [("opCode", "655"), ("secondaryStatusCode", "701")]);
    /// ```
    pub fn with_codes<'a>(mut self, codes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let tokens: Vec<String> = codes
            .into_iter()
            .filter(|(_, c)| !c.trim().is_empty())
            .map(|(f, c)| format!("{f}={}", c.trim()))
            .collect();
        self.raw_code = (!tokens.is_empty()).then(|| tokens.join(" "));
        self
    }

    /// The `field=code` tokens of [`raw_code`](Self::raw_code) (see [`CodeTable`]).
    pub fn codes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw_code
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|t| t.split_once('='))
    }
}

/// Why a plugin could not answer, classified like core's [`TrackError`] so the host knows
/// whether and when to retry. Messages must never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The carrier does not know the number (yet).
    #[error("not found: {message}")]
    NotFound {
        /// Details.
        message: String,
    },
    /// Credentials are missing or refused.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// Details.
        message: String,
    },
    /// Too many requests.
    #[error("rate limited{}", retry_after_secs.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    RateLimited {
        /// The delay the carrier asked for.
        retry_after_secs: Option<u64>,
    },
    /// A passing failure (carrier busy, 5xx).
    #[error("transient: {message}")]
    Transient {
        /// Details.
        message: String,
    },
    /// The carrier answered something the plugin cannot read.
    #[error("bad response: {message}")]
    BadResponse {
        /// Details.
        message: String,
    },
    /// The carrier does not offer this.
    #[error("unsupported: {message}")]
    Unsupported {
        /// Details.
        message: String,
    },
    /// The query itself is wrong (malformed number, missing phone).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// Details.
        message: String,
    },
    /// The plugin's configuration is missing or wrong (never includes the values).
    #[error("configuration: {message}")]
    Config {
        /// Details.
        message: String,
    },
    /// The plugin itself failed (a panic caught at the boundary, a bad state string).
    #[error("plugin failure: {message}")]
    Internal {
        /// Details.
        message: String,
    },
}

impl PluginError {
    /// A [`PluginError::BadResponse`].
    pub fn bad_response(message: impl Into<String>) -> Self {
        Self::BadResponse {
            message: message.into(),
        }
    }

    /// A [`PluginError::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
        }
    }

    /// The kind as a snake_case word, as in core's `TrackError` JSON (`not_found`,
    /// `unauthorized`, `rate_limited`, `transient`, `bad_response`, `unsupported`,
    /// `invalid_input`, `config`, `internal`).
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::NotFound { .. } => "not_found",
            PluginError::Unauthorized { .. } => "unauthorized",
            PluginError::RateLimited { .. } => "rate_limited",
            PluginError::Transient { .. } => "transient",
            PluginError::BadResponse { .. } => "bad_response",
            PluginError::Unsupported { .. } => "unsupported",
            PluginError::InvalidInput { .. } => "invalid_input",
            PluginError::Config { .. } => "config",
            PluginError::Internal { .. } => "internal",
        }
    }

    /// Whether this error is a panic caught at the boundary.
    pub fn is_panic(&self) -> bool {
        matches!(self, PluginError::Internal { message } if message.starts_with(PANIC_PREFIX))
    }

    /// The message (empty for [`PluginError::RateLimited`]).
    pub fn message(&self) -> &str {
        match self {
            PluginError::RateLimited { .. } => "",
            PluginError::NotFound { message }
            | PluginError::Unauthorized { message }
            | PluginError::Transient { message }
            | PluginError::BadResponse { message }
            | PluginError::Unsupported { message }
            | PluginError::InvalidInput { message }
            | PluginError::Config { message }
            | PluginError::Internal { message } => message,
        }
    }
}

/// How a caught panic's message starts.
pub(crate) const PANIC_PREFIX: &str = "plugin panicked: ";

impl From<PluginError> for TrackError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::NotFound { message } => TrackError::NotFound { message },
            PluginError::Unauthorized { message } => TrackError::Unauthorized { message },
            PluginError::RateLimited { retry_after_secs } => {
                TrackError::RateLimited { retry_after_secs }
            }
            PluginError::Transient { message } => TrackError::Transient { message },
            PluginError::BadResponse { message } => TrackError::BadResponse { message },
            PluginError::Unsupported { message } => TrackError::Unsupported { message },
            PluginError::InvalidInput { message } => TrackError::InvalidInput { message },
            PluginError::Config { message } => TrackError::Unauthorized {
                message: format!("configuration: {message}"),
            },
            PluginError::Internal { message } => TrackError::BadResponse {
                message: format!("plugin failure: {message}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_reads_json_with_missing_and_unknown_fields() {
        let m: Manifest =
            serde_json::from_str(r#"{"codes":["x"],"future_field":1,"capabilities":{}}"#).unwrap();
        assert_eq!(m.codes, vec!["x"]);
        assert_eq!(m.capabilities.max_batch, 1);
    }

    #[test]
    fn status_error_classifies_429_with_retry_after() {
        let r = HttpResponse::new(429, "").with_header("Retry-After", "7");
        assert_eq!(
            r.status_error(),
            Some(PluginError::RateLimited {
                retry_after_secs: Some(7)
            })
        );
        assert_eq!(HttpResponse::new(200, "").status_error(), None);
        assert!(matches!(
            HttpResponse::new(503, "").status_error(),
            Some(PluginError::Transient { .. })
        ));
    }

    #[test]
    fn phone_last4_handles_short_and_multibyte_phones() {
        let w = QueryWaybill::new("x", "1").with_phone("12");
        assert_eq!(w.phone_last4(), Some("12"));
        let w = QueryWaybill::new("x", "1").with_phone("电话13800001234");
        assert_eq!(w.phone_last4(), Some("1234"));
    }

    #[test]
    fn config_error_names_the_key_not_values() {
        let c = Config::from_pairs([("secret", "hunter2")]);
        let e = c.require("api_key").unwrap_err();
        assert!(e.to_string().contains("api_key"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn plugin_errors_keep_their_class_in_core() {
        let e: TrackError = PluginError::RateLimited {
            retry_after_secs: Some(3),
        }
        .into();
        assert!(e.is_retryable());
        let e: TrackError = PluginError::internal("boom").into();
        assert!(!e.is_retryable());
    }
}
