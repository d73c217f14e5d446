//! Problem parcels: the list a customer-service agent works from every morning. Every live
//! subscription's stored trace is read through core's [`flags`] with the configured
//! thresholds, so time-based problems (no update for 5 days, 19 h in a locker) show up
//! without a new carrier event, each with the reason and the threshold used.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use waybill_core::eta::Lanes;
use waybill_core::model::Trace;
use waybill_core::policy::SubscriptionFacts;
use waybill_core::problem::{Flag, FlagKind, Thresholds};

use crate::store::{MonitorStatus, Store, StoreResult, SubscriptionFilter, SubscriptionId};

/// Which problem parcels to list.
#[derive(Debug, Clone, Default)]
pub struct ProblemFilter {
    /// Only these kinds (empty: every kind).
    pub kinds: Vec<FlagKind>,
    /// Only this carrier code.
    pub carrier: Option<String>,
    /// Only problems active for at least this long.
    pub older_than: Option<SignedDuration>,
    /// Only this tenant's parcels.
    pub tenant_id: Option<i64>,
}

/// One parcel with its active problems.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemParcel {
    /// The subscription.
    pub subscription: SubscriptionId,
    /// Its tenant.
    pub tenant: i64,
    /// Carrier code.
    pub company: String,
    /// Tracking number.
    pub number: String,
    /// The active problems that pass the filter, in code order.
    pub flags: Vec<Flag>,
}

/// Parses a `--kind`: the Kdniao code (`412`) or the snake-case name (`locker_timeout`).
pub fn parse_kind(text: &str) -> Result<FlagKind, String> {
    let text = text.trim();
    if let Ok(code) = text.parse::<u16>() {
        return FlagKind::from_code(code).ok_or_else(|| format!("no problem kind has code {code}"));
    }
    serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase())).map_err(|_| {
        let names: Vec<String> = FlagKind::ALL
            .iter()
            .map(|k| format!("{} ({})", kind_name(*k), k.code()))
            .collect();
        format!("unknown problem kind {text:?}; kinds: {}", names.join(", "))
    })
}

/// The snake-case name of a kind, as `--kind` and JSON spell it.
pub fn kind_name(kind: FlagKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The problem parcels among the subscriptions still being polled, at `now`; `lanes`
/// (the store's learned ones) add lane lateness.
pub async fn problem_parcels(
    store: &dyn Store,
    lanes: &Lanes,
    thresholds: &Thresholds,
    filter: &ProblemFilter,
    now: Timestamp,
) -> StoreResult<Vec<ProblemParcel>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_subscriptions(&SubscriptionFilter {
                tenant_id: filter.tenant_id,
                status: Some(MonitorStatus::Polling),
                company: filter.carrier.clone(),
                after_id: after,
                limit: 1_000,
                ..SubscriptionFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for sub in page {
            let trace = match store.trace(sub.id).await? {
                Some(trace) => trace,
                None => Trace::from_events(&sub.company, &sub.number, Vec::new()),
            };
            let facts = SubscriptionFacts {
                company: &sub.company,
                number: &sub.number,
                subscribed_at: sub.created_at,
                to: sub.to.as_deref(),
            };
            let m = waybill_core::eta::Milestones::of(&trace, facts.to);
            let active: Vec<Flag> = lanes
                .flags(&trace, &m, &facts, thresholds, now)
                .0
                .into_iter()
                .filter(|f| filter.kinds.is_empty() || filter.kinds.contains(&f.kind))
                .filter(|f| {
                    filter
                        .older_than
                        .is_none_or(|d| now.duration_since(f.since) >= d)
                })
                .collect();
            if !active.is_empty() {
                out.push(ProblemParcel {
                    subscription: sub.id,
                    tenant: sub.tenant_id,
                    company: sub.company,
                    number: sub.number,
                    flags: active,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_code_or_name_and_say_what_exists() {
        assert_eq!(parse_kind("412"), Ok(FlagKind::LockerTimeout));
        assert_eq!(parse_kind("locker_timeout"), Ok(FlagKind::LockerTimeout));
        assert_eq!(
            parse_kind(" Not_Updated_In_Time "),
            Ok(FlagKind::NotUpdatedInTime)
        );
        assert!(parse_kind("999").unwrap_err().contains("999"));
        let err = parse_kind("lost").unwrap_err();
        assert!(err.contains("locker_timeout (412)"), "{err}");
        assert_eq!(kind_name(FlagKind::NoShippingInfo), "no_shipping_info");
    }
}
