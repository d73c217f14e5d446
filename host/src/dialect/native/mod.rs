//! The native dialect: waybill's own JSON API under `/v1` ([`routes`]) and its pushes,
//! signed as [Standard Webhooks](https://www.standardwebhooks.com/) sign them.
//!
//! A push is a JSON event `{type, timestamp, data}` whose `data` is the tracking as
//! `GET /v1/trackings/{id}` shows it. It carries `webhook-id` (the push id, the same on
//! every retry, so a receiver dedupes on it), `webhook-timestamp` (Unix seconds of this
//! attempt) and `webhook-signature`: `v1,<Base64 HMAC-SHA256 of id.timestamp.body>` for
//! every secret valid now, space-separated. A tenant's secret (`whsec_` + Base64 of 24
//! random bytes) is created on first use; a rotation keeps the previous secret valid for
//! [`ROTATION_OVERLAP`], so receivers can switch without losing a push.
//!
//! A 2xx answer acknowledges. 429 and 503 are retried no sooner than their `Retry-After`;
//! 410 Gone dead-letters the push and disables its URL for the tenant (later pushes to it
//! are dead-lettered unsent until it is enabled again); anything else is retried on the
//! usual schedule.

pub mod idempotency;
pub mod problem;
pub mod routes;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use waybill_core::carrier::{Reply, Verdict};
use waybill_core::eta::{Basis, Estimate};
use waybill_core::model::{Trace, TrackEvent};
use waybill_core::problem::Flag;

use super::{Dialect, Rendered};
use crate::api::Api;
use crate::problems::kind_name;
use crate::store::{Change, MonitorStatus, Subscription};

/// The name subscriptions made through `/v1` record.
pub const NAME: &str = "native";

/// Prefix of a webhook signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How long the previous secret still signs after a rotation.
pub const ROTATION_OVERLAP: SignedDuration = SignedDuration::from_hours(24);

/// One webhook signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookSecret {
    /// `whsec_` and the Base64 of the key.
    pub secret: String,
    /// When it stops signing (set on the old secret by a rotation); null: never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// A tenant's signing secrets, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecrets(pub Vec<WebhookSecret>);

/// Why a secret could not be made.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct NoRandomness(String);

impl WebhookSecrets {
    /// The set stored as `json`; a corrupt value reads as none (a new secret is made).
    pub fn parse(json: Option<&str>) -> Self {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    /// As stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
    }

    /// A fresh secret.
    pub fn generate() -> Result<WebhookSecret, NoRandomness> {
        let mut key = [0u8; 24];
        getrandom::getrandom(&mut key).map_err(|e| NoRandomness(e.to_string()))?;
        Ok(WebhookSecret {
            secret: format!("{SECRET_PREFIX}{}", BASE64.encode(key)),
            expires_at: None,
        })
    }

    /// The set after a rotation to `new` at `now`: `new` signs from now on, the current
    /// secret for [`ROTATION_OVERLAP`] more, expired ones are dropped.
    pub fn rotated(&self, new: WebhookSecret, now: Timestamp) -> Self {
        let until = now.saturating_add(ROTATION_OVERLAP).unwrap_or(now);
        let mut out = vec![new];
        out.extend(self.valid_at(now).map(|s| WebhookSecret {
            secret: s.secret.clone(),
            expires_at: Some(s.expires_at.map_or(until, |e| e.min(until))),
        }));
        Self(out)
    }

    /// The secrets that sign at `now`.
    pub fn valid_at(&self, now: Timestamp) -> impl Iterator<Item = &WebhookSecret> {
        self.0
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|e| now < e))
    }

    /// The `webhook-signature` header for `body` sent as message `id` at Unix second
    /// `timestamp`: one `v1,` signature per secret valid at `now`.
    ///
    /// ```
    /// use waybill_host::dialect::native::{WebhookSecret, WebhookSecrets};
    /// let set = WebhookSecrets(vec![WebhookSecret {
    ///     secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    ///     expires_at: None,
    /// }]);
    /// let now = jiff::Timestamp::from_second(1614265330).unwrap();
    /// // The example of the Standard Webhooks specification.
    /// assert_eq!(
    ///     set.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#, now),
    ///     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    /// );
    /// ```
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8], now: Timestamp) -> String {
        self.valid_at(now)
            .filter_map(|s| signature(&s.secret, id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `v1,<Base64 HMAC-SHA256 of id.timestamp.body>` under `secret`; None for a secret that
/// is not `whsec_` and Base64.
fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = BASE64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// Whether monitoring goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Being polled.
    Polling,
    /// Ended: signed for.
    Shutdown,
    /// Ended otherwise: stopped, given up, refused by the carrier.
    Abort,
}

impl From<MonitorStatus> for Monitor {
    fn from(s: MonitorStatus) -> Self {
        match s {
            MonitorStatus::Polling => Self::Polling,
            MonitorStatus::Shutdown => Self::Shutdown,
            MonitorStatus::Abort => Self::Abort,
        }
    }
}

/// One line of a trace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// When, RFC 3339 at the carrier's offset.
    pub time: String,
    /// The carrier's words, unchanged.
    pub description: String,
    /// Where, as the carrier names it.
    pub location: Option<String>,
    /// Administrative area code, when known.
    pub area_code: Option<String>,
    /// Administrative area name, when known.
    pub area_name: Option<String>,
    /// The state the line reports (`in_transit`, `in_locker`…).
    pub state: String,
    /// Its phase (`in_transit`, `available_for_pickup`…).
    pub phase: String,
    /// The rule (or `model`) that read the state.
    pub rule: Option<String>,
}

impl From<&TrackEvent> for Event {
    fn from(e: &TrackEvent) -> Self {
        Self {
            time: e.time.at.display_with_offset(e.time.offset).to_string(),
            description: e.context.clone(),
            location: e.location.clone(),
            area_code: e.area_code.clone(),
            area_name: e.area_name.clone(),
            state: e.state.name().into(),
            phase: e.state.phase().name().into(),
            rule: e.rule.clone(),
        }
    }
}

/// An active problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemFlag {
    /// Kind (`locker_timeout`…).
    pub kind: String,
    /// Kdniao StateEx code of the kind.
    pub code: u16,
    /// Since when.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// Why, with the numbers and the threshold.
    pub reason: String,
}

impl From<&Flag> for ProblemFlag {
    fn from(f: &Flag) -> Self {
        Self {
            kind: kind_name(f.kind),
            code: f.kind.code(),
            since: f.since,
            reason: f.reason.clone(),
        }
    }
}

/// When the parcel should arrive, and why we think so.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Eta {
    /// The median estimate of delivery.
    #[schema(value_type = String, format = DateTime)]
    pub arrival: Timestamp,
    /// 20th percentile: one parcel in five like this one arrives earlier.
    #[schema(value_type = String, format = DateTime)]
    pub early: Timestamp,
    /// 80th percentile: four in five arrive by then.
    #[schema(value_type = String, format = DateTime)]
    pub late: Timestamp,
    /// The stage it counts from (`collected`, `destination_city`, `out_for_delivery`);
    /// null before collection.
    pub stage: Option<String>,
    /// The learned scope that answered (`lane:440300-110000`, `provinces:…`,
    /// `reach:same_city`, `carrier`); null on the cold-start defaults.
    pub scope: Option<String>,
    /// Deliveries that scope had at the stage.
    pub samples: u64,
    /// The local hours of stage entry those deliveries share (`08-12`); null: all hours.
    pub entry_hours: Option<String>,
    /// The estimate in words.
    pub explanation: String,
}

impl From<&Estimate> for Eta {
    fn from(e: &Estimate) -> Self {
        let (scope, samples, entry_hours) = match &e.basis {
            Basis::Learned {
                scope,
                samples,
                entry_hours,
            } => (Some(scope.clone()), *samples, entry_hours.clone()),
            Basis::ColdStart { .. } => (None, 0, None),
        };
        Self {
            arrival: e.arrival,
            early: e.early,
            late: e.late,
            stage: e.stage.map(|s| s.name().to_string()),
            scope,
            samples,
            entry_hours,
            explanation: e.explanation.clone(),
        }
    }
}

/// A tracking: one subscribed waybill, its state and trace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tracking {
    /// Id (`trk_` and 22 characters): opaque, stable, and meaningful only to its owner.
    pub id: String,
    /// Carrier code.
    pub carrier: String,
    /// Tracking number.
    pub number: String,
    /// Whether it is still polled.
    pub monitor: Monitor,
    /// Why monitoring ended, or the last notice.
    pub message: String,
    /// The parcel's state (`in_transit`…).
    pub state: String,
    /// Its phase.
    pub phase: String,
    /// Signed for.
    pub signed: bool,
    /// Where webhooks go; null: none (read through the API).
    pub webhook_url: Option<String>,
    /// Recipient's phone, as given.
    pub phone: Option<String>,
    /// Origin, as given.
    pub origin: Option<String>,
    /// Destination, as given.
    pub destination: Option<String>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the carrier was last asked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_check_at: Option<Timestamp>,
    /// When the trace last changed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_change_at: Option<Timestamp>,
    /// Lines, newest first.
    pub events: Vec<Event>,
    /// Active problems, with the configured thresholds (in a push: as of that change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<ProblemFlag>>,
    /// The node reminders asked for at subscription (empty: every change is pushed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<String>,
    /// The arrival estimate (in a push: as of that change); absent once delivered or on
    /// its way back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<Eta>,
}

impl Tracking {
    /// `sub` with `trace` (its stored one, or the one a push carries).
    pub fn new(
        sub: &Subscription,
        trace: &Trace,
        problems: Option<&[Flag]>,
        eta: Option<&Estimate>,
    ) -> Self {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Self {
            id: sub.public_id.clone(),
            carrier: sub.company.clone(),
            number: sub.number.clone(),
            monitor: sub.status.into(),
            message: sub.message.clone(),
            state: trace.state.name().into(),
            phase: trace.state.phase().name().into(),
            signed: trace.ischeck,
            webhook_url: Some(sub.callback_url.clone()).filter(|u| !u.is_empty()),
            phone: given(&sub.phone),
            origin: given(&sub.from),
            destination: given(&sub.to),
            created_at: sub.created_at,
            last_check_at: sub.last_check_at,
            last_change_at: sub.last_change_at,
            events: trace.data.iter().map(Event::from).collect(),
            problems: problems.map(|p| p.iter().map(ProblemFlag::from).collect()),
            reminders: sub
                .options
                .reminders
                .iter()
                .map(|r| r.name().to_string())
                .collect(),
            eta: eta.map(Eta::from),
        }
    }
}

/// A webhook event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEvent {
    /// `tracking.updated` (the trace or state changed), `tracking.problem` (a problem
    /// flag appeared or cleared with no new line) or `tracking.stopped` (monitoring ended
    /// without a delivery).
    #[serde(rename = "type")]
    pub kind: String,
    /// When this event was rendered.
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    /// The tracking as it is with this change.
    pub data: Tracking,
    /// The node reminders this change reached (`out_for_delivery`…), for a tracking that
    /// asked for reminders.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<String>,
}

/// The native dialect.
#[derive(Debug, Default)]
pub struct Native;

impl Dialect for Native {
    fn name(&self) -> &'static str {
        NAME
    }

    fn render(
        &self,
        sub: &Subscription,
        change: &Change,
        push_id: &str,
        now: Timestamp,
    ) -> Rendered {
        let mut at_change = sub.clone();
        at_change.status = change.header.status;
        at_change.message.clone_from(&change.header.message);
        let kind = match change.header.status {
            MonitorStatus::Abort => "tracking.stopped",
            MonitorStatus::Polling if change.problems_only => "tracking.problem",
            MonitorStatus::Polling | MonitorStatus::Shutdown => "tracking.updated",
        };
        let event = WebhookEvent {
            kind: kind.into(),
            timestamp: now,
            data: Tracking::new(
                &at_change,
                &change.trace,
                Some(&change.problems),
                change.eta.as_deref(),
            ),
            reminders: change
                .reminders
                .iter()
                .map(|r| r.name().to_string())
                .collect(),
        };
        let body = serde_json::to_vec(&event).unwrap_or_default();
        // The receiver checks the timestamp against its own clock to refuse replays, so
        // it is the wall time of this attempt even when the daemon's clock runs scaled
        // (the sandbox); which secrets sign still follows the daemon's clock, as their
        // rotation does.
        let timestamp = Timestamp::now().as_second();
        let secrets = WebhookSecrets::parse(sub.salt.as_deref());
        let mut headers = vec![
            ("webhook-id".to_owned(), push_id.to_owned()),
            ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ];
        let signature = secrets.sign(push_id, timestamp, &body, now);
        if !signature.is_empty() {
            headers.push(("webhook-signature".to_owned(), signature));
        }
        Rendered {
            content_type: "application/json".into(),
            body,
            headers,
        }
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        match reply.status {
            200..=299 => Verdict::Accepted,
            410 => Verdict::Gone {
                reason: "HTTP 410 Gone: the endpoint asked for no more webhooks".into(),
            },
            429 | 503 => Verdict::Retry {
                reason: format!("HTTP {}", reply.status),
                after: reply.retry_after,
            },
            status => Verdict::retry(format!("HTTP {status}")),
        }
    }

    fn routes(&self) -> axum::Router<Api> {
        routes::router()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_signing_for_the_overlap_only() {
        let old = WebhookSecrets::generate().unwrap();
        let new = WebhookSecrets::generate().unwrap();
        assert!(old.secret.starts_with("whsec_") && old.secret != new.secret);
        let set = WebhookSecrets(vec![old.clone()]).rotated(new.clone(), at(1_000));
        let both = set.sign("msg", 5, b"{}", at(2_000));
        assert_eq!(both.split(' ').count(), 2, "{both}");
        assert!(both.starts_with(&signature(&new.secret, "msg", 5, b"{}").unwrap()));
        let later = at(1_000 + ROTATION_OVERLAP.as_secs());
        assert_eq!(set.sign("msg", 5, b"{}", later).split(' ').count(), 1);
        // A second rotation drops what has expired and never extends an expiry.
        let third = WebhookSecrets::generate().unwrap();
        let again = set.rotated(third, later);
        assert_eq!(again.0.len(), 2);
        assert_eq!(again.0[1].secret, new.secret);
    }

    #[test]
    fn a_flag_without_a_new_line_is_a_signed_tracking_problem_event() {
        use crate::store::{NewSubscription, PushHeader, SubscribeOptions};
        use waybill_core::policy::SubscriptionFacts;
        use waybill_core::problem::{flags, Thresholds};

        let secret = WebhookSecrets::generate().unwrap();
        let set = WebhookSecrets(vec![secret.clone()]);
        let created = at(1_700_000_000);
        let sub = Subscription::created(
            5,
            "trk_native_test".into(),
            NewSubscription {
                tenant_id: 1,
                company: "sandbox".into(),
                number: "SB1".into(),
                phone: None,
                from: None,
                to: None,
                callback_url: "https://erp.example/hooks".into(),
                salt: Some(set.to_json()),
                dialect: NAME.into(),
                dialect_params: Default::default(),
                options: SubscribeOptions::default(),
                next_check_at: created,
                created_at: created,
            },
        );
        let empty = Trace::from_events("sandbox", "SB1", vec![]);
        let facts = SubscriptionFacts {
            company: "sandbox",
            number: "SB1",
            subscribed_at: created,
            to: None,
        };
        let now = at(1_700_000_000 + 25 * 3600);
        let problems = flags(&empty, &facts, &Thresholds::default(), now);
        assert_eq!(problems.len(), 1, "401: no trace after 24 h");
        let change = Change {
            problems,
            problems_only: true,
            ..Change::new(PushHeader::new(MonitorStatus::Polling, ""), empty)
        };
        let r = Native.render(&sub, &change, "5-1", now);
        let event: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event["type"], "tracking.problem");
        assert_eq!(event["data"]["problems"][0]["code"], 401);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("webhook-id"), "5-1");
        let ts: i64 = header("webhook-timestamp").parse().unwrap();
        assert_eq!(
            header("webhook-signature"),
            signature(&secret.secret, "5-1", ts, &r.body).unwrap()
        );
    }

    #[test]
    fn replies_are_judged_as_standard_webhooks_say() {
        let reply = |status, after| Reply {
            status,
            retry_after: after,
            body: Vec::new(),
        };
        let d = Native;
        assert_eq!(d.judge(&reply(204, None)), Verdict::Accepted);
        assert!(matches!(d.judge(&reply(410, None)), Verdict::Gone { .. }));
        let wait = Some(std::time::Duration::from_secs(30));
        assert_eq!(
            d.judge(&reply(429, wait)),
            Verdict::Retry {
                reason: "HTTP 429".into(),
                after: wait
            }
        );
        assert!(matches!(
            d.judge(&reply(500, wait)),
            Verdict::Retry { after: None, .. }
        ));
    }
}
