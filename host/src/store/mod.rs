//! The daemon's durable state behind one [`Store`] trait: tenants, subscriptions (with
//! their scheduling lease), trace events, the push outbox and monthly usage.
//!
//! SQLite ([`sqlite::SqliteStore`]) is the embedded default; PostgreSQL
//! ([`postgres::PgStore`]) lets several daemons share one database. Everything
//! dialect-specific stays inside the implementation, so the scheduler, the push worker
//! and the HTTP API only see this module's types.
//!
//! Times are [`jiff::Timestamp`]s and are always passed in: the store never reads a clock,
//! so a virtual clock drives it as easily as the real one.

pub mod batch;
pub mod copy;
pub mod location;
pub mod postgres;
mod rows;
pub mod secrets;
pub mod sqlite;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use waybill_core::eta::{Estimate, LaneStats, Lesson, Scope};
use waybill_core::model::Trace;
use waybill_core::reminder::Reminder;
use waybill_core::state::State;

pub use batch::{BatchError, SubscribeBatcher};
pub use location::{LocationError, StoreLocation};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Where the daemon keeps its data unless told otherwise (`--data-dir`).
pub const DEFAULT_DATA_DIR: &str = "./waybill-data";

/// The secret key file of a PostgreSQL store, in the daemon's data directory (unless
/// `WAYBILL_SECRET_KEY` is set, which every daemon on another machine needs: the key must
/// be the same for all daemons sharing the database).
pub const POSTGRES_KEY_FILE: &str = "postgres.key";

/// Opens the store at `location`, creating and migrating it as needed: an SQLite file
/// (its directory created private), or a PostgreSQL database with up to `pool_size`
/// connections whose secret key is `WAYBILL_SECRET_KEY` or [`POSTGRES_KEY_FILE`] in
/// `data_dir`.
pub async fn open(
    location: &StoreLocation,
    data_dir: &std::path::Path,
    pool_size: u32,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    let data_dir_error = |path: &std::path::Path, source| StoreError::DataDir {
        path: path.display().to_string(),
        source,
    };
    match location {
        StoreLocation::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                location::create_private_dir(parent).map_err(|e| data_dir_error(parent, e))?;
            }
            Ok(std::sync::Arc::new(SqliteStore::open_file(path).await?))
        }
        StoreLocation::Postgres(url) => {
            // Connected first: an unreachable server or a wrong URL leaves no key file behind.
            let pool = PgStore::connect(url.parse()?, pool_size).await?;
            let key = location::create_private_dir(data_dir)
                .map_err(|e| data_dir_error(data_dir, e))
                .and_then(|()| {
                    Ok(secrets::SecretKey::from_env_or_file(
                        &data_dir.join(POSTGRES_KEY_FILE),
                    )?)
                });
            match key {
                Ok(key) => Ok(std::sync::Arc::new(PgStore::on_pool(pool, key).await?)),
                Err(e) => {
                    pool.close().await;
                    Err(e)
                }
            }
        }
    }
}

/// A dialect's own parameters of one subscription.
pub type DialectParams = serde_json::Map<String, serde_json::Value>;

/// Row id of a tenant.
pub type TenantId = i64;
/// Row id of a subscription.
pub type SubscriptionId = i64;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed the operation.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied at start.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created or opened.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The secret key that seals tenants' keys is missing, malformed, or not the one the
    /// stored keys were sealed with.
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    /// A stored value could not be read back (a corrupt row or a newer schema).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The caller's lease was taken over (it expired and another worker claimed the row),
    /// so its result was not written.
    #[error("lease on {what} {id} is no longer held by {owner}")]
    LeaseLost {
        /// "subscription" or "push".
        what: &'static str,
        /// Row id or push id.
        id: String,
        /// The caller's lease owner name.
        owner: String,
    },
    /// A tenant key is already taken.
    #[error("tenant key already exists")]
    DuplicateTenantKey,
    /// Another tenant already has this customer id.
    #[error("another tenant already has this customer id")]
    DuplicateCustomer,
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// An account that subscribes waybills (kuaidi100's `key` + `customer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Row id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// The secret key the tenant authenticates with (kuaidi100 `key`).
    pub key: String,
    /// kuaidi100 `customer` id, used to sign real-time queries.
    pub customer: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Switched off by the operator: its key is refused (kuaidi100 returnCode 601).
    #[serde(default)]
    pub disabled: bool,
    /// From this instant on its key is refused (kuaidi100 returnCode 601).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Where Kdniao-dialect pushes go (Kdniao sets it per account).
    #[serde(default)]
    pub kdniao_push_url: Option<String>,
    /// The native API's webhook signing secrets (JSON, see
    /// [`crate::dialect::native::WebhookSecrets`]); `None` until first asked for.
    #[serde(default, skip_serializing)]
    pub webhook_secrets: Option<String>,
}

impl Tenant {
    /// Whether the tenant's key may be used at `now`: not disabled and not expired.
    pub fn active_at(&self, now: Timestamp) -> bool {
        !self.disabled && self.expires_at.is_none_or(|end| now < end)
    }
}

/// A tenant to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    /// Display name.
    pub name: String,
    /// The secret key.
    pub key: String,
    /// kuaidi100 `customer` id.
    pub customer: Option<String>,
}

/// kuaidi100 monitor status of a subscription (`status` in every push).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorStatus {
    /// Being watched.
    Polling,
    /// Ended because the parcel was signed for.
    Shutdown,
    /// Stopped: no trace for 3 days, no change for 60 days, or an unusable subscription.
    Abort,
}

impl MonitorStatus {
    /// The kuaidi100 wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorStatus::Polling => "polling",
            MonitorStatus::Shutdown => "shutdown",
            MonitorStatus::Abort => "abort",
        }
    }

    /// Reads the wire word.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "polling" => Some(MonitorStatus::Polling),
            "shutdown" => Some(MonitorStatus::Shutdown),
            "abort" => Some(MonitorStatus::Abort),
            _ => None,
        }
    }
}

/// kuaidi100 subscription options (`parameters` beyond callback URL, salt and phone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeOptions {
    /// `resultv2`: 0 off; 1 area parsing and status names; 4 adds advanced status codes
    /// and route info; 8 adds the arrival estimate (`arrivalTime`, `totalTime`,
    /// `remainTime`).
    pub resultv2: u8,
    /// `autoCom=1`: the company was guessed by the daemon.
    pub auto_com: bool,
    /// `interCom=1`: international mode (postal items: a departure and a destination
    /// country trace in each push).
    pub inter_com: bool,
    /// `departureCountry` (interCom): two-letter code, upper case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departure_country: Option<String>,
    /// `departureCom` (interCom): company code of the departure country's part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departure_com: Option<String>,
    /// `destinationCountry` (interCom): two-letter code, upper case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_country: Option<String>,
    /// `destinationCom` (interCom): company code of the destination country's part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_com: Option<String>,
    /// Node reminders (物流节点提醒): push only when the parcel reaches one of these
    /// moments (and when monitoring ends); empty: push every change, as kuaidi100 does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<Reminder>,
}

/// A subscription to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// Owner.
    pub tenant_id: TenantId,
    /// Carrier code (lower case).
    pub company: String,
    /// Tracking number.
    pub number: String,
    /// Phone (or its last four digits) when the carrier needs it.
    pub phone: Option<String>,
    /// Origin area.
    pub from: Option<String>,
    /// Destination area.
    pub to: Option<String>,
    /// Where pushes go.
    pub callback_url: String,
    /// Push signing salt; `None` sends no `sign`.
    pub salt: Option<String>,
    /// The API dialect the subscription was made in; its pushes are rendered, signed and
    /// acknowledged in it ([`crate::dialect`]).
    pub dialect: String,
    /// That dialect's own parameters (a JSON object).
    pub dialect_params: DialectParams,
    /// Options.
    pub options: SubscribeOptions,
    /// When the first check is due.
    pub next_check_at: Timestamp,
    /// When the subscription was made.
    pub created_at: Timestamp,
}

/// kuaidi100's limit on subscriptions of one waybill (company and number) per tenant and
/// billing month; the 5th is refused with returnCode 501 "重复订阅".
pub const DEFAULT_MONTHLY_SUBSCRIBE_LIMIT: u32 = 4;

/// What became of one subscription request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// Created with this id; `month_subscribes` counts this tenant's subscriptions of the
    /// waybill in the current billing month, this one included.
    Created {
        /// New row id.
        id: SubscriptionId,
        /// Subscriptions of this waybill by this tenant this month.
        month_subscribes: u32,
    },
    /// The tenant already has a live (polling) subscription for this waybill
    /// (kuaidi100 returnCode 501).
    Duplicate {
        /// The live subscription.
        existing: SubscriptionId,
    },
    /// The tenant already subscribed this waybill `limit` times in the billing month of
    /// the request, and it is not being polled now (kuaidi100 returnCode 501 "重复订阅").
    MonthlyLimit {
        /// Subscriptions of this waybill by this tenant in that month.
        subscribes: u32,
        /// The limit in force.
        limit: u32,
    },
}

/// A company correction made by the 3-day check (kuaidi100 `comOld` / `comNew`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyCorrection {
    /// The company the tenant subscribed with.
    pub com_old: String,
    /// The company the number was found at.
    pub com_new: String,
}

/// A stored subscription with its monitoring state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Row id.
    pub id: SubscriptionId,
    /// The id APIs show ([`Store::tracking_id`]); the row id stays inside the daemon.
    #[serde(default)]
    pub public_id: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// Carrier code being polled (the corrected one after an autoCheck).
    pub company: String,
    /// Tracking number.
    pub number: String,
    /// Phone.
    pub phone: Option<String>,
    /// Origin area.
    pub from: Option<String>,
    /// Destination area.
    pub to: Option<String>,
    /// Where pushes go.
    pub callback_url: String,
    /// Push signing salt.
    pub salt: Option<String>,
    /// The API dialect the subscription was made in ([`crate::dialect`]).
    pub dialect: String,
    /// That dialect's own parameters (a JSON object).
    pub dialect_params: DialectParams,
    /// Options.
    pub options: SubscribeOptions,
    /// Monitor status.
    pub status: MonitorStatus,
    /// Overall state of the stored trace.
    pub state: State,
    /// Last monitor message ("3天查询无记录", "60天无变化", …).
    pub message: String,
    /// Set once the 3-day check moved the subscription to another company.
    pub correction: Option<CompanyCorrection>,
    /// When the scheduler should look next.
    pub next_check_at: Timestamp,
    /// Who holds the scheduling lease.
    pub lease_owner: Option<String>,
    /// Until when the lease holds; after that anyone may claim the row.
    pub lease_until: Option<Timestamp>,
    /// Checks made.
    pub checks: i64,
    /// Consecutive failed checks.
    pub failures: i64,
    /// Trace changes seen.
    pub changes: i64,
    /// Pushes queued so far (the last push sequence number).
    pub push_seq: i64,
    /// Hash of the stored trace; `None` before the first trace.
    pub trace_hash: Option<String>,
    /// Events stored.
    pub event_count: i64,
    /// Time of the newest stored event.
    pub last_event_at: Option<Timestamp>,
    /// When the last check ran.
    pub last_check_at: Option<Timestamp>,
    /// When the trace last changed.
    pub last_change_at: Option<Timestamp>,
    /// The last check's error, if it failed.
    pub last_error: Option<String>,
    /// When it was subscribed.
    pub created_at: Timestamp,
    /// Last write.
    pub updated_at: Timestamp,
    /// Active problem flags as of the last evaluation.
    pub problems: ProblemState,
    /// The arrival estimate made at the last evaluation; `None` when there is none.
    pub eta: Option<Estimate>,
}

/// A subscription's active problem flags as stored, and when a timed one is due to appear
/// next if the trace does not change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemState {
    /// Kdniao StateEx codes of the active flags, ascending.
    pub codes: Vec<u16>,
    /// When to evaluate again without news from the carrier.
    pub due_at: Option<Timestamp>,
}

impl ProblemState {
    /// The codes as stored: `403,412`.
    pub fn codes_text(&self) -> String {
        self.codes
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Codes as stored; a part that is not a code is skipped.
    pub fn parse_codes(text: &str) -> Vec<u16> {
        text.split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect()
    }
}

impl Subscription {
    /// The row `new` became when it was stored as `id`, before any check: what the store
    /// would read back, without reading it.
    pub fn created(id: SubscriptionId, public_id: String, new: NewSubscription) -> Self {
        Self {
            id,
            public_id,
            tenant_id: new.tenant_id,
            company: new.company,
            number: new.number,
            phone: new.phone,
            from: new.from,
            to: new.to,
            callback_url: new.callback_url,
            salt: new.salt,
            dialect: new.dialect,
            dialect_params: new.dialect_params,
            options: new.options,
            status: MonitorStatus::Polling,
            state: State::NoTrace,
            message: String::new(),
            correction: None,
            next_check_at: new.next_check_at,
            lease_owner: None,
            lease_until: None,
            checks: 0,
            failures: 0,
            changes: 0,
            push_seq: 0,
            trace_hash: None,
            event_count: 0,
            last_event_at: None,
            last_check_at: None,
            last_change_at: None,
            last_error: None,
            created_at: new.created_at,
            updated_at: new.created_at,
            problems: ProblemState::default(),
            eta: None,
        }
    }

    /// The waybill to ask the carrier about.
    pub fn waybill(&self) -> waybill_core::model::Waybill {
        waybill_core::model::Waybill {
            company: self.company.clone(),
            number: self.number.clone(),
            phone: self.phone.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }
}

/// Which subscriptions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    /// Only this tenant's.
    pub tenant_id: Option<TenantId>,
    /// Only with this status.
    pub status: Option<MonitorStatus>,
    /// Only this company.
    pub company: Option<String>,
    /// Only this number.
    pub number: Option<String>,
    /// Only ids greater than this (keyset paging).
    pub after_id: Option<SubscriptionId>,
    /// At most this many (0 = 100).
    pub limit: u32,
}

/// The monitor fields of one change, besides the trace: what every dialect's push says
/// about the subscription (kuaidi100 names them `status`, `message`, `autoCheck`,
/// `comOld`, `comNew`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushHeader {
    /// Polling, shutdown or abort.
    pub status: MonitorStatus,
    /// The monitor message, e.g. "3天查询无记录".
    pub message: String,
    /// The trace is from the company the daemon corrected to.
    pub auto_check: bool,
    /// The company subscribed with, when corrected.
    pub com_old: String,
    /// The company the number was found at, when corrected (or being moved to).
    pub com_new: String,
}

impl PushHeader {
    /// A plain header with this status and message, no company correction.
    pub fn new(status: MonitorStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            auto_check: false,
            com_old: String::new(),
            com_new: String::new(),
        }
    }

    /// The header every change of a subscription carries once its company was corrected.
    pub fn for_subscription(sub: &Subscription, status: MonitorStatus, message: &str) -> Self {
        let mut h = Self::new(status, message);
        if let Some(c) = &sub.correction {
            h.auto_check = true;
            h.com_old = c.com_old.clone();
            h.com_new = c.com_new.clone();
        }
        h
    }
}

/// One change to push, in no dialect: the header and the trace as it was when the change
/// was seen. The delivery worker renders and signs it, in the subscription's dialect, at
/// each attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Monitor status, message and company correction.
    pub header: PushHeader,
    /// The whole trace, newest first.
    pub trace: Trace,
    /// The problem flags active with it (a flag appearing or clearing is a change too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<waybill_core::problem::Flag>,
    /// Pushed because flags appeared or cleared, with no new line.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub problems_only: bool,
    /// The node reminders this change reached (empty when the subscription asked for
    /// none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<Reminder>,
    /// The arrival estimate made with this change (boxed: most changes are small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Box<Estimate>>,
}

impl Change {
    /// `trace` with `header`, no problem flags.
    pub fn new(header: PushHeader, trace: Trace) -> Self {
        Self {
            header,
            trace,
            problems: Vec::new(),
            problems_only: false,
            reminders: Vec::new(),
            eta: None,
        }
    }
}

/// A push to queue; the store gives it its id and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPush {
    /// Where to POST.
    pub url: String,
    /// What to say.
    pub change: Change,
}

/// What a queued push holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushPayload {
    /// A change, rendered at send time.
    Change(Change),
    /// A body rendered when it was queued, by a version of the daemon that signed at
    /// queue time (kuaidi100 pushes only); sent as stored.
    Rendered {
        /// `Content-Type`.
        content_type: String,
        /// The body.
        body: Vec<u8>,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
}

/// The receiver endpoint of a push URL: its scheme, host and port
/// (`https://erp.example:8443`), or the URL itself when it does not parse.
///
/// ```
/// use waybill_host::store::push_endpoint;
/// assert_eq!(push_endpoint("HTTP://Erp.Example/cb?shop=1"), "http://erp.example");
/// assert_eq!(push_endpoint("https://erp.example:8443/a"), "https://erp.example:8443");
/// ```
pub fn push_endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.origin().is_tuple() => u.origin().ascii_serialization(),
        _ => url.to_owned(),
    }
}

/// How many more pushes each receiver endpoint may take in one claim
/// ([`Store::claim_pushes_shared`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointRoom {
    /// Endpoints with their own room (those with pushes in flight); 0 takes none.
    pub busy: Vec<(String, u32)>,
    /// Room of every endpoint not in `busy`.
    pub others: u32,
}

/// Delivery state of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// Waiting for (another) attempt.
    Pending,
    /// Acknowledged by the receiver.
    Delivered,
    /// Out of attempts or refused for good.
    Dead,
    /// A dead push that a newer push of the same waybill made obsolete; never re-sent,
    /// because sending it would take the receiver backwards.
    Superseded,
}

impl PushState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            PushState::Pending => "pending",
            PushState::Delivered => "delivered",
            PushState::Dead => "dead",
            PushState::Superseded => "superseded",
        }
    }

    /// Reads the stored word.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(PushState::Pending),
            "delivered" => Some(PushState::Delivered),
            "dead" => Some(PushState::Dead),
            "superseded" => Some(PushState::Superseded),
            _ => None,
        }
    }
}

/// A queued push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxPush {
    /// Row id.
    pub row: i64,
    /// Stable push id (`<subscription>-<seq>`), sent as `X-Waybill-Push-Id`.
    pub push_id: String,
    /// The subscription it belongs to.
    pub subscription_id: SubscriptionId,
    /// Its place in the subscription's sequence of pushes (1, 2, …).
    pub seq: i64,
    /// Where to POST.
    pub url: String,
    /// The receiver: [`push_endpoint`] of `url` (the whole URL for pushes queued before
    /// endpoints were recorded). Delivery shares its slots between endpoints.
    pub endpoint: String,
    /// What to send.
    pub payload: PushPayload,
    /// Attempts made so far.
    pub attempt: u32,
    /// When the next attempt is due.
    pub next_attempt_at: Timestamp,
    /// Delivery state.
    pub state: PushState,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it was delivered or given up.
    pub finished_at: Option<Timestamp>,
}

/// What became of one delivery attempt of a claimed push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushVerdict {
    /// Acknowledged by the receiver at `at`.
    Delivered {
        /// When it was acknowledged.
        at: Timestamp,
    },
    /// Failed at `at`; try again at `next_attempt_at`.
    Retry {
        /// Why it failed.
        error: String,
        /// When it failed.
        at: Timestamp,
        /// When to try again.
        next_attempt_at: Timestamp,
    },
    /// Failed for good at `at`: dead-lettered.
    Dead {
        /// Why it was given up.
        error: String,
        /// When it was given up.
        at: Timestamp,
    },
    /// Refused for good at `at` by a receiver that wants no more pushes to the URL:
    /// dead-lettered, and the URL disabled for the subscription's tenant in the same
    /// commit ([`Store::disabled_endpoints`]).
    Gone {
        /// Why.
        error: String,
        /// When.
        at: Timestamp,
    },
}

/// A webhook URL disabled for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisabledEndpoint {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The URL, as subscribed.
    pub url: String,
    /// Why (the receiver's answer).
    pub reason: String,
    /// Since when.
    pub disabled_at: Timestamp,
}

/// A claim's lease: who holds the claimed rows and until when. Leases are timed on the
/// lease clock ([`Clock::lease_now`](waybill_core::clock::Clock::lease_now)), real time
/// even when the engine's clock runs fast, so a claim outlives the work it guards; a row
/// whose lease ran out (its holder died) can be claimed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    /// The claimant (an engine's `owner`).
    pub owner: &'a str,
    /// Now on the lease clock: leases that ended by then are free.
    pub now: Timestamp,
    /// When the new lease ends, on the lease clock.
    pub until: Timestamp,
}

impl<'a> Lease<'a> {
    /// A lease for `owner` from `now` for `span`.
    pub fn new(owner: &'a str, now: Timestamp, span: SignedDuration) -> Self {
        Self::until(owner, now, now.checked_add(span).unwrap_or(Timestamp::MAX))
    }

    /// A lease for `owner` from `now` until `until`.
    pub fn until(owner: &'a str, now: Timestamp, until: Timestamp) -> Self {
        Self { owner, now, until }
    }
}

/// The verdict on one claimed push, as the delivery worker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// The push.
    pub push_id: String,
    /// The lease owner that claimed it; the write is refused if the lease moved on.
    pub owner: String,
    /// What happened.
    pub verdict: PushVerdict,
}

/// The result of one check of one claimed subscription, written in one transaction:
/// the new trace (if it changed), monitor state, next check, and the pushes to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// The subscription checked.
    pub subscription_id: SubscriptionId,
    /// The lease owner that claimed it; the write is refused if the lease moved on.
    pub lease_owner: String,
    /// When the check ran.
    pub checked_at: Timestamp,
    /// Monitor status after the check.
    pub status: MonitorStatus,
    /// Monitor message.
    pub message: String,
    /// When to check again (ignored unless `status` is polling).
    pub next_check_at: Timestamp,
    /// The new trace and its hash, when it changed; events are replaced by it.
    pub new_trace: Option<(Trace, String)>,
    /// Set when the check moved the subscription to another company.
    pub correction: Option<CompanyCorrection>,
    /// The check failed with this error (counts as a failure; `None` resets the count).
    pub error: Option<String>,
    /// Pushes to queue, in order.
    pub pushes: Vec<NewPush>,
    /// The problem flags evaluated with this check; `None`: not evaluated (kept as they
    /// are).
    pub problems: Option<ProblemState>,
    /// The arrival estimate made with this check: `None`: not evaluated (kept as it is);
    /// `Some(None)`: there is none any more (delivered, on its way back).
    pub eta: Option<Option<Estimate>>,
    /// A parcel delivered with this check: what its carrier's lanes learn from it, merged
    /// into the stored lanes in the same transaction.
    pub lesson: Option<(String, Lesson)>,
}

/// How many subscriptions and pushes are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Subscriptions being polled.
    pub polling: u64,
    /// Ended because signed.
    pub shutdown: u64,
    /// Aborted.
    pub abort: u64,
    /// Pushes waiting.
    pub pending_pushes: u64,
    /// Pushes delivered.
    pub delivered_pushes: u64,
    /// Pushes dead-lettered.
    pub dead_pushes: u64,
}

/// Durable state of the daemon. Implementations must make each method atomic.
#[async_trait]
pub trait Store: Send + Sync {
    // --- tenants ---

    /// Creates a tenant; fails with [`StoreError::DuplicateTenantKey`] if the key is taken
    /// and [`StoreError::DuplicateCustomer`] if another tenant has its customer id.
    async fn create_tenant(&self, tenant: &NewTenant, now: Timestamp) -> StoreResult<Tenant>;
    /// The tenant with this key.
    async fn tenant_by_key(&self, key: &str) -> StoreResult<Option<Tenant>>;
    /// The tenant with this id.
    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>>;
    /// All tenants, by id.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Sets whether a tenant is disabled and when its key expires (`None`: never).
    /// Returns false if there is no such tenant.
    async fn set_tenant_access(
        &self,
        id: TenantId,
        disabled: bool,
        expires_at: Option<Timestamp>,
    ) -> StoreResult<bool>;

    // --- subscriptions ---

    /// Creates many subscriptions in one transaction (one durable commit for the lot), one
    /// outcome per input, in order. Also records monthly usage.
    ///
    /// A waybill the tenant already subscribed `monthly_limit` times in the billing month
    /// of its `created_at` is refused with [`SubscribeOutcome::MonthlyLimit`]; the count is
    /// read and raised inside the same transaction, so concurrent subscribes cannot pass
    /// the limit. 0 means no limit. A waybill still being polled is a
    /// [`SubscribeOutcome::Duplicate`] whatever its count.
    async fn subscribe_many(
        &self,
        subs: &[NewSubscription],
        monthly_limit: u32,
    ) -> StoreResult<Vec<SubscribeOutcome>>;

    /// Creates one subscription, with kuaidi100's monthly limit
    /// ([`DEFAULT_MONTHLY_SUBSCRIBE_LIMIT`]).
    async fn subscribe(&self, sub: &NewSubscription) -> StoreResult<SubscribeOutcome> {
        let mut out = self
            .subscribe_many(std::slice::from_ref(sub), DEFAULT_MONTHLY_SUBSCRIBE_LIMIT)
            .await?;
        out.pop().ok_or_else(|| StoreError::Corrupt {
            table: "subscriptions",
            detail: "subscribe_many returned no outcome".into(),
        })
    }

    /// One subscription.
    async fn subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>>;
    /// Sets (or with `None` clears) where a tenant's Kdniao pushes go; false when there
    /// is no such tenant.
    async fn set_kdniao_push_url(&self, tenant: TenantId, url: Option<&str>) -> StoreResult<bool>;
    /// Sets a tenant's webhook signing secrets (JSON) and gives every native-dialect
    /// subscription of the tenant the same set as its salt, in one transaction; false when
    /// there is no such tenant. Sealed at rest.
    async fn set_webhook_secrets(&self, tenant: TenantId, secrets: &str) -> StoreResult<bool>;
    /// Polls a subscription again from `now` (a stopped one is resumed, its message
    /// cleared). [`Retrack::Busy`] when another subscription of the same waybill by the
    /// same tenant is being polled.
    async fn retrack(&self, id: SubscriptionId, now: Timestamp) -> StoreResult<Retrack>;
    /// The stored answer to a request with this tenant's `Idempotency-Key`.
    async fn idempotent_answer(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotentAnswer>>;
    /// Stores the first answer to a request with this key; a second save of the same key
    /// keeps the first. Answers older than `forget_before` are dropped on the way.
    async fn save_idempotent_answer(
        &self,
        tenant: TenantId,
        key: &str,
        answer: &IdempotentAnswer,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> StoreResult<()>;
    /// The subscriptions with these ids that exist, in any order.
    async fn subscriptions_by_id(&self, ids: &[SubscriptionId]) -> StoreResult<Vec<Subscription>>;
    /// Subscriptions matching `filter`, by id.
    async fn list_subscriptions(
        &self,
        filter: &SubscriptionFilter,
    ) -> StoreResult<Vec<Subscription>>;
    /// The stored trace of a subscription (events newest first); `None` if no such row.
    async fn trace(&self, id: SubscriptionId) -> StoreResult<Option<Trace>>;
    /// Stops monitoring (status abort with `message`), without a push. Returns false if
    /// the subscription was not polling.
    async fn cancel(&self, id: SubscriptionId, message: &str, now: Timestamp) -> StoreResult<bool>;

    // --- scheduling ---

    /// Claims up to `limit` polling subscriptions due at `now` whose lease is free or
    /// has run out by `lease.now`, leasing them as `lease` says. Oldest due first.
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: u32,
        lease: &Lease<'_>,
    ) -> StoreResult<Vec<Subscription>>;
    /// Writes a check's result and releases the lease, atomically. Fails with
    /// [`StoreError::LeaseLost`] (writing nothing) if `outcome.lease_owner` no longer
    /// holds the lease.
    async fn complete_check(&self, outcome: &CheckOutcome) -> StoreResult<()>;
    /// Writes many checks' results in one transaction (one durable commit). Each entry
    /// says whether that outcome was written: `false` where its lease had moved on.
    async fn complete_checks(&self, outcomes: &[CheckOutcome]) -> StoreResult<Vec<bool>> {
        let mut written = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            written.push(match self.complete_check(o).await {
                Ok(()) => true,
                Err(StoreError::LeaseLost { .. }) => false,
                Err(e) => return Err(e),
            });
        }
        Ok(written)
    }
    /// The earliest `next_check_at` of a polling subscription.
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;

    // --- outbox ---

    /// Claims up to `limit` pushes due at `now`: for each subscription only its oldest
    /// pending push is eligible, so a waybill's pushes go out strictly in order. Oldest
    /// due first, whatever the receiver.
    async fn claim_pushes(
        &self,
        now: Timestamp,
        limit: u32,
        lease: &Lease<'_>,
    ) -> StoreResult<Vec<OutboxPush>> {
        let room = EndpointRoom {
            busy: Vec::new(),
            others: limit,
        };
        self.claim_pushes_shared(now, limit, lease, &room).await
    }
    /// [`Store::claim_pushes`], taking at most `room` pushes of each receiver endpoint
    /// ([`OutboxPush::endpoint`]), so one receiver cannot fill every delivery slot. Among
    /// the eligible pushes, oldest due first.
    async fn claim_pushes_shared(
        &self,
        now: Timestamp,
        limit: u32,
        lease: &Lease<'_>,
        room: &EndpointRoom,
    ) -> StoreResult<Vec<OutboxPush>>;
    /// Records the verdicts on claimed pushes in one transaction (one durable commit for
    /// a whole delivery batch). Returns, per result, whether it was written (`false`: the
    /// push is no longer pending under that owner's lease).
    async fn push_results(&self, results: &[PushResult]) -> StoreResult<Vec<bool>>;
    /// Marks a claimed push delivered.
    async fn push_delivered(&self, push_id: &str, owner: &str, now: Timestamp) -> StoreResult<()> {
        self.push_result(push_id, owner, PushVerdict::Delivered { at: now })
            .await
    }
    /// Records a failed attempt and when to try again.
    async fn push_retry(
        &self,
        push_id: &str,
        owner: &str,
        error: &str,
        now: Timestamp,
        next_attempt_at: Timestamp,
    ) -> StoreResult<()> {
        let verdict = PushVerdict::Retry {
            error: error.into(),
            at: now,
            next_attempt_at,
        };
        self.push_result(push_id, owner, verdict).await
    }
    /// Records a failed last attempt: the push is dead-lettered.
    async fn push_dead(
        &self,
        push_id: &str,
        owner: &str,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let verdict = PushVerdict::Dead {
            error: error.into(),
            at: now,
        };
        self.push_result(push_id, owner, verdict).await
    }
    /// The webhook URLs disabled (of one tenant, or of all).
    async fn disabled_endpoints(
        &self,
        tenant: Option<TenantId>,
    ) -> StoreResult<Vec<DisabledEndpoint>>;
    /// Enables a disabled URL again; false when it was not disabled.
    async fn enable_endpoint(&self, tenant: TenantId, url: &str) -> StoreResult<bool>;
    /// Disables every URL whose pushes have failed since before `failing_before` with
    /// none delivered (failures and deliveries are tracked by [`Store::push_results`]),
    /// at `now`; the URLs it disabled.
    async fn disable_failing_endpoints(
        &self,
        failing_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<DisabledEndpoint>>;
    /// One verdict through [`Store::push_results`]; `LeaseLost` if it was not written.
    async fn push_result(
        &self,
        push_id: &str,
        owner: &str,
        verdict: PushVerdict,
    ) -> StoreResult<()> {
        let result = PushResult {
            push_id: push_id.into(),
            owner: owner.into(),
            verdict,
        };
        match self.push_results(std::slice::from_ref(&result)).await?[..] {
            [true] => Ok(()),
            _ => Err(StoreError::LeaseLost {
                what: "push",
                id: push_id.into(),
                owner: owner.into(),
            }),
        }
    }
    /// One push by id.
    async fn push(&self, push_id: &str) -> StoreResult<Option<OutboxPush>>;
    /// Pushes of a subscription, in sequence.
    async fn pushes_of(&self, id: SubscriptionId) -> StoreResult<Vec<OutboxPush>>;
    /// Dead-lettered pushes, oldest first.
    async fn dead_letters(&self, limit: u32) -> StoreResult<Vec<OutboxPush>>;
    /// Re-drives dead pushes from attempt 0 at `now`: those named, or when `push_ids` is
    /// empty every dead push created at or after `since` (all when `None`). A dead push
    /// with a newer push of the same subscription is marked superseded instead, so a
    /// receiver never goes backwards. Returns (re-driven, superseded).
    async fn redeliver(
        &self,
        push_ids: &[String],
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<(u64, u64)>;
    /// The earliest `next_attempt_at` of a pending push.
    async fn next_push_due(&self) -> StoreResult<Option<Timestamp>>;
    /// Pushes that could be sent now (the delivery backlog): those [`Store::claim_pushes`]
    /// could hand out at `now` with `lease_now` on the lease clock — due, held by no
    /// worker, and the oldest pending push of their waybill (one queued behind a push that
    /// waits for its retry is not counted). Counted up to `limit`: the count stops there
    /// so asking stays cheap however long the queue is.
    async fn waiting_pushes(
        &self,
        now: Timestamp,
        lease_now: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;

    // --- usage and stats ---

    /// Distinct waybills a tenant subscribed in a billing month (`YYYY-MM`).
    async fn usage(&self, tenant: TenantId, month: &str) -> StoreResult<u64>;
    /// Counts by state.
    async fn stats(&self) -> StoreResult<StoreStats>;

    // --- real-time query answers ---

    /// The last carrier answer stored for `(company, waybill_key)` and when it was fetched.
    async fn cached_query(
        &self,
        company: &str,
        waybill_key: &str,
    ) -> StoreResult<Option<(Trace, Timestamp)>>;
    /// Stores a carrier answer for `(company, waybill_key)`, replacing an older one.
    async fn save_query(
        &self,
        company: &str,
        waybill_key: &str,
        trace: &Trace,
        fetched_at: Timestamp,
    ) -> StoreResult<()>;
    /// Counts a waybill in the tenant's billing month of `at` without subscribing it (a
    /// real-time query): once per (tenant, company, number) and month, like a subscription.
    async fn record_usage(
        &self,
        tenant: TenantId,
        company: &str,
        number: &str,
        at: Timestamp,
    ) -> StoreResult<()>;

    // --- what the guesser learns ---

    /// Distinct confirmed waybills (at least one event came back) counted by company, length
    /// of the number (without spaces and dashes, upper-cased) and its first
    /// [`waybill_core::guess::PREFIX_LEN`] characters: the facts of the guesser's learned
    /// prior. One aggregate read.
    async fn confirmed_number_counts(&self) -> StoreResult<Vec<waybill_core::guess::PriorCount>>;

    /// Every carrier's learned lane stats, to load the estimator.
    async fn lanes(&self) -> StoreResult<Vec<(String, Scope, LaneStats)>>;

    // --- retention ---

    /// Up to `limit` subscriptions that ended (shutdown or abort) before `ended_before`
    /// (their last write) and have no push waiting, oldest first: what
    /// [`Store::delete_subscriptions`] may remove. The newest subscription is never listed,
    /// so a backend that hands out the highest id + 1 never reuses an id (push ids are
    /// derived from it).
    async fn ended_before(
        &self,
        ended_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<SubscriptionId>>;

    /// Deletes these subscriptions with their traces and pushes, in one transaction, if
    /// they are still ended with no push waiting (a retrack in between keeps one); the
    /// number deleted. Monthly usage is kept.
    async fn delete_subscriptions(&self, ids: &[SubscriptionId]) -> StoreResult<u64>;

    // --- shared settings ---

    /// The value stored under `name`, if any.
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;

    /// Stores `value` under `name` unless a value is there already; the value in force
    /// either way. Daemons starting at once agree on the first one written.
    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String>;

    /// Closes the store's connections, waiting for running statements.
    async fn close(&self) {}

    /// Signals `wake` whenever another process sharing this store queues pushes or makes
    /// dead ones pending again, if the backend can tell (PostgreSQL: `LISTEN`, one
    /// notification per committed batch). The returned task runs until aborted. `None`:
    /// nothing to watch (one SQLite file has one daemon, which knows its own writes).
    async fn watch_pushes(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> StoreResult<Option<tokio::task::JoinHandle<()>>> {
        let _ = wake;
        Ok(None)
    }

    /// What every push id of subscription `id` starts with, before `-<seq>`: a keyed hash
    /// of the row id, so receivers learn nothing of the store's counters.
    fn push_prefix(&self, id: SubscriptionId) -> String;

    /// The public id of subscription `id` of `tenant`, as APIs show it
    /// ([`secrets::SecretKey::tracking_id`]): the same in every daemon on this store.
    fn tracking_id(&self, id: SubscriptionId, tenant: TenantId) -> String;

    /// The subscription a public id names, if it is one of `tenant`'s.
    fn tracking_row(&self, public: &str, tenant: TenantId) -> Option<SubscriptionId>;

    /// The id push `seq` of subscription `id` has (or will have) in this store.
    fn push_id(&self, id: SubscriptionId, seq: i64) -> String {
        format!("{}-{seq}", self.push_prefix(id))
    }
}

/// What [`Store::retrack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retrack {
    /// Polled again from now.
    Resumed,
    /// No such subscription.
    Missing,
    /// Another subscription of the waybill is being polled; nothing changed.
    Busy(SubscriptionId),
}

/// The first answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// Hash of the request it answered (method, path, body).
    pub fingerprint: String,
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// kuaidi100's billing month (`YYYY-MM` at UTC+8) of an instant.
pub fn billing_month(at: Timestamp) -> String {
    waybill_core::model::CHINA_OFFSET
        .to_datetime(at)
        .strftime("%Y-%m")
        .to_string()
}
