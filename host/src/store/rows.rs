//! Reading stored rows back into the store's types, the same for every backend: both
//! keep times as Unix milliseconds, states and statuses as their names and structured
//! values as JSON text, so one decoder serves SQLite and PostgreSQL rows alike.

use jiff::Timestamp;
use sqlx::{ColumnIndex, Decode, Row, Type};
use waybill_core::model::{EventTime, TrackEvent};
use waybill_core::state::State;

use super::secrets::SecretKey;
use super::*;

/// Columns of a tenant row, as [`tenant_from_row`] reads them.
pub(super) const TENANT_COLS: &str =
    "id, name, api_key, api_key_sealed, customer, created_at, disabled, \
    expires_at, kdniao_push_url, webhook_secrets";

/// Columns of a subscription row, as [`sub_from_row`] reads them.
pub(super) const SUB_COLS: &str = "id, tenant_id, company, number, phone, from_area, to_area, \
    callback_url, salt, dialect, dialect_params, options, status, state, message, com_old, com_new, next_check_at, \
    lease_owner, lease_until, checks, failures, changes, push_seq, trace_hash, event_count, \
    last_event_at, last_check_at, last_change_at, last_error, created_at, updated_at, problems, \
    problems_due_at, eta";

/// Columns of an outbox row, as [`push_from_row`] reads them.
pub(super) const PUSH_COLS: &str = "id, push_id, subscription_id, seq, url, \
    COALESCE(endpoint, url) AS endpoint, change, content_type, body, headers, attempt, \
    next_attempt_at, state, last_error, created_at, finished_at";

pub(super) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(super) fn ts(table: &'static str, v: i64) -> StoreResult<Timestamp> {
    Timestamp::from_millisecond(v).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("timestamp {v}: {e}"),
    })
}

pub(super) fn ts_opt(table: &'static str, v: Option<i64>) -> StoreResult<Option<Timestamp>> {
    v.map(|v| ts(table, v)).transpose()
}

pub(super) fn state_from_name(table: &'static str, name: &str) -> StoreResult<State> {
    State::ALL
        .iter()
        .copied()
        .find(|s| s.name() == name)
        .ok_or_else(|| StoreError::Corrupt {
            table,
            detail: format!("unknown state {name:?}"),
        })
}

pub(super) fn tenant_from_row<R>(r: &R, secrets: &SecretKey) -> StoreResult<Tenant>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let sealed: String = r.try_get("api_key_sealed")?;
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        key: secrets.open(&sealed)?,
        customer: r.try_get("customer")?,
        created_at: ts("tenants", r.try_get("created_at")?)?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        expires_at: ts_opt("tenants", r.try_get("expires_at")?)?,
        kdniao_push_url: r.try_get("kdniao_push_url")?,
        webhook_secrets: r
            .try_get::<Option<String>, _>("webhook_secrets")?
            .map(|sealed| secrets.open(&sealed))
            .transpose()?,
    })
}

pub(super) fn sub_from_row<R>(r: &R, secrets: &SecretKey) -> StoreResult<Subscription>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    const T: &str = "subscriptions";
    let options: String = r.try_get("options")?;
    let options: SubscribeOptions =
        serde_json::from_str(&options).map_err(|e| StoreError::Corrupt {
            table: T,
            detail: format!("options: {e}"),
        })?;
    let status: String = r.try_get("status")?;
    let status = MonitorStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        table: T,
        detail: format!("status {status:?}"),
    })?;
    let state: String = r.try_get("state")?;
    let com_old: Option<String> = r.try_get("com_old")?;
    let com_new: Option<String> = r.try_get("com_new")?;
    let dialect_params: String = r.try_get("dialect_params")?;
    let id = r.try_get("id")?;
    let tenant_id = r.try_get("tenant_id")?;
    Ok(Subscription {
        id,
        public_id: secrets.tracking_id(id, tenant_id),
        tenant_id,
        company: r.try_get("company")?,
        number: r.try_get("number")?,
        phone: r.try_get("phone")?,
        from: r.try_get("from_area")?,
        to: r.try_get("to_area")?,
        callback_url: r.try_get("callback_url")?,
        salt: r
            .try_get::<Option<String>, _>("salt")?
            .map(|salt| secrets.open_or_legacy(salt))
            .transpose()?,
        dialect: r.try_get("dialect")?,
        dialect_params: serde_json::from_str(&dialect_params).map_err(|e| StoreError::Corrupt {
            table: T,
            detail: format!("dialect_params: {e}"),
        })?,
        options,
        status,
        state: state_from_name(T, &state)?,
        message: r.try_get("message")?,
        correction: match (com_old, com_new) {
            (Some(com_old), Some(com_new)) => Some(CompanyCorrection { com_old, com_new }),
            _ => None,
        },
        next_check_at: ts(T, r.try_get("next_check_at")?)?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until: ts_opt(T, r.try_get("lease_until")?)?,
        checks: r.try_get("checks")?,
        failures: r.try_get("failures")?,
        changes: r.try_get("changes")?,
        push_seq: r.try_get("push_seq")?,
        trace_hash: r.try_get("trace_hash")?,
        event_count: r.try_get("event_count")?,
        last_event_at: ts_opt(T, r.try_get("last_event_at")?)?,
        last_check_at: ts_opt(T, r.try_get("last_check_at")?)?,
        last_change_at: ts_opt(T, r.try_get("last_change_at")?)?,
        last_error: r.try_get("last_error")?,
        created_at: ts(T, r.try_get("created_at")?)?,
        updated_at: ts(T, r.try_get("updated_at")?)?,
        problems: ProblemState {
            codes: ProblemState::parse_codes(&r.try_get::<String, _>("problems")?),
            due_at: ts_opt(T, r.try_get("problems_due_at")?)?,
        },
        eta: match r.try_get::<Option<String>, _>("eta")? {
            Some(text) => Some(
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    table: T,
                    detail: format!("eta: {e}"),
                })?,
            ),
            None => None,
        },
    })
}

pub(super) fn push_from_row<R>(r: &R) -> StoreResult<OutboxPush>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    const T: &str = "outbox";
    let change: Option<String> = r.try_get("change")?;
    let payload =
        match change {
            Some(change) => PushPayload::Change(serde_json::from_str(&change).map_err(|e| {
                StoreError::Corrupt {
                    table: T,
                    detail: format!("change: {e}"),
                }
            })?),
            None => {
                let headers: String = r.try_get("headers")?;
                PushPayload::Rendered {
                    content_type: r.try_get("content_type")?,
                    body: r.try_get("body")?,
                    headers: serde_json::from_str(&headers).map_err(|e| StoreError::Corrupt {
                        table: T,
                        detail: format!("headers: {e}"),
                    })?,
                }
            }
        };
    let state: String = r.try_get("state")?;
    let attempt: i64 = r.try_get("attempt")?;
    Ok(OutboxPush {
        row: r.try_get("id")?,
        push_id: r.try_get("push_id")?,
        subscription_id: r.try_get("subscription_id")?,
        seq: r.try_get("seq")?,
        url: r.try_get("url")?,
        endpoint: r.try_get("endpoint")?,
        payload,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        next_attempt_at: ts(T, r.try_get("next_attempt_at")?)?,
        state: PushState::parse(&state).ok_or_else(|| StoreError::Corrupt {
            table: T,
            detail: format!("state {state:?}"),
        })?,
        last_error: r.try_get("last_error")?,
        created_at: ts(T, r.try_get("created_at")?)?,
        finished_at: ts_opt(T, r.try_get("finished_at")?)?,
    })
}

pub(super) fn event_from_row<R>(r: &R) -> StoreResult<TrackEvent>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    const T: &str = "events";
    let time_text: String = r.try_get("time_text")?;
    let time: EventTime = time_text.parse().map_err(|e| StoreError::Corrupt {
        table: T,
        detail: format!("{e}"),
    })?;
    let state: String = r.try_get("state")?;
    Ok(TrackEvent {
        time,
        context: r.try_get("context")?,
        location: r.try_get("location")?,
        area_code: r.try_get("area_code")?,
        area_name: r.try_get("area_name")?,
        state: state_from_name(T, &state)?,
        raw_code: r.try_get("raw_code")?,
        rule: r.try_get("rule")?,
    })
}

pub(super) fn lease_lost(what: &'static str, id: impl ToString, owner: &str) -> StoreError {
    StoreError::LeaseLost {
        what,
        id: id.to_string(),
        owner: owner.to_owned(),
    }
}

/// The id of push `seq` of subscription `id`: `<opaque prefix>-<seq>`. The sequence is
/// the subscription's own (receivers order a waybill's pushes by it); the prefix hides the
/// row id.
pub(super) fn push_id(secrets: &SecretKey, id: SubscriptionId, seq: i64) -> String {
    format!("{}-{seq}", secrets.push_prefix(id))
}

/// `value` as the JSON text a column holds.
pub(super) fn to_json<T: Serialize + ?Sized>(
    table: &'static str,
    field: &str,
    value: &T,
) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("{field}: {e}"),
    })
}

/// Stored lane stats (`None`: none yet) with `lesson`'s added: the text to store back.
pub(super) fn merged_lane(
    carrier: &str,
    key: &str,
    stored: Option<&str>,
    lesson: &LaneStats,
) -> StoreResult<String> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        table: "lanes",
        detail: format!("{carrier} {key}: {e}"),
    };
    let mut stats: LaneStats = match stored {
        Some(text) => serde_json::from_str(text).map_err(corrupt)?,
        None => LaneStats::default(),
    };
    stats.merge(lesson);
    serde_json::to_string(&stats).map_err(corrupt)
}
