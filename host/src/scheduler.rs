//! The scheduler: claims due subscriptions, asks their carriers (in batches, within each
//! carrier's concurrency and rate limits), applies core's polling policy and writes the
//! result — new trace, monitor state, next check and pushes — in one transaction.
//!
//! Terminal rules follow kuaidi100: signed → final push with `status=shutdown`; no trace
//! 3 days after subscribing → the autoCheck (another carrier with a trace for the number
//! takes over, announced by an `abort` push with `comNew`; otherwise `abort` "3天查询无记录");
//! 60 days without change → `abort` "60天无变化". Only a change is pushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use waybill_core::carrier::{Carrier, TrackError, TrackOutcome};
use waybill_core::eta::{Estimate, Lesson, Milestones};
use waybill_core::model::{Trace, Waybill};
use waybill_core::policy::{
    self, AbortReason, Decision, LastOutcome, PolicyConfig, SubscriptionFacts, TraceSummary,
};
use waybill_core::problem::{Flag, Thresholds};
use waybill_core::reminder::{self, Reminder};

use crate::eta::LaneBook;
use crate::store::{
    Change, CheckOutcome, CompanyCorrection, Lease, MonitorStatus, NewPush, ProblemState,
    PushHeader, Store, StoreResult, Subscription,
};

/// Suggests the carriers a tracking number may belong to, best first (the autoCheck's
/// guesser). Core's guesser fits behind it; tests use a fixed list.
pub trait CompanyGuesser: Send + Sync {
    /// Carrier codes for `number`, best first.
    fn candidates(&self, number: &str) -> Vec<String>;
}

/// Per-carrier limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CarrierLimit {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests per second; `None` uses the carrier's own figure, if it has one.
    pub rate_per_sec: Option<f64>,
}

impl Default for CarrierLimit {
    fn default() -> Self {
        Self {
            concurrency: 4,
            rate_per_sec: None,
        }
    }
}

/// Limits for every carrier, with overrides by carrier code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CarrierLimits {
    /// For carriers without an override.
    pub default: CarrierLimit,
    /// By canonical carrier code.
    pub overrides: BTreeMap<String, CarrierLimit>,
}

/// Admits requests to one carrier: at most `concurrency` at once, and (with a rate) one
/// every `1/rate` seconds of real time.
struct Gate {
    permits: Arc<Semaphore>,
    interval: Option<Duration>,
    next_slot: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Gate {
    fn new(limit: &CarrierLimit, carrier_rate: Option<f64>) -> Self {
        let rate = limit
            .rate_per_sec
            .or(carrier_rate)
            .filter(|r| r.is_finite() && *r > 0.0);
        Self {
            permits: Arc::new(Semaphore::new(limit.concurrency.max(1))),
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next_slot: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        if let Some(interval) = self.interval {
            let at = {
                let mut next = self.next_slot.lock().await;
                let at = (*next).max(tokio::time::Instant::now());
                *next = at + interval;
                at
            };
            tokio::time::sleep_until(at).await;
        }
        Some(permit)
    }
}

/// The carriers the scheduler may ask, by every code they answer to.
pub struct Carriers {
    by_code: HashMap<String, (Arc<dyn Carrier>, Arc<Gate>)>,
    /// Codes answered by the upstream aggregator rather than a carrier of their own.
    routed: std::collections::BTreeSet<String>,
}

impl Carriers {
    /// Indexes `carriers` by their codes (a later carrier does not displace an earlier one
    /// for the same code) and gives each its limits.
    pub fn new(carriers: Vec<Arc<dyn Carrier>>, limits: &CarrierLimits) -> Self {
        let mut by_code = HashMap::new();
        for c in carriers {
            let Some(canonical) = c.codes().first().map(|s| s.to_string()) else {
                continue;
            };
            let limit = limits.overrides.get(&canonical).unwrap_or(&limits.default);
            let gate = Arc::new(Gate::new(limit, c.capabilities().rate_limit_per_sec));
            for code in c.codes() {
                by_code
                    .entry(code.to_string())
                    .or_insert_with(|| (c.clone(), gate.clone()));
            }
        }
        Self {
            by_code,
            routed: Default::default(),
        }
    }

    /// The same carriers with every code of `companies` that has no carrier of its own
    /// answered by the carrier of `upstream` (an aggregator such as kuaidi100), through
    /// that carrier's gate: the aggregator's limits hold for all it answers. Unchanged
    /// when no carrier answers for `upstream`.
    pub fn with_upstream(
        mut self,
        upstream: &str,
        companies: impl IntoIterator<Item = String>,
    ) -> Self {
        let Some(entry) = self.by_code.get(upstream).cloned() else {
            tracing::warn!(
                upstream,
                "the upstream is not a loaded carrier; companies without a plugin stay untracked"
            );
            return self;
        };
        for code in companies {
            if !self.by_code.contains_key(&code) {
                self.by_code.insert(code.clone(), entry.clone());
                self.routed.insert(code);
            }
        }
        self
    }

    /// Whether `code` is answered by the upstream aggregator.
    pub fn is_routed(&self, code: &str) -> bool {
        self.routed.contains(code)
    }

    /// Whether a carrier answers for `code`.
    pub fn knows(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }

    /// Every code a carrier of its own answers for, sorted.
    pub fn codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .by_code
            .keys()
            .filter(|c| !self.routed.contains(*c))
            .cloned()
            .collect();
        codes.sort();
        codes
    }

    /// Every code the upstream aggregator answers for, sorted.
    pub fn routed_codes(&self) -> Vec<String> {
        self.routed.iter().cloned().collect()
    }

    /// Tracks `waybills` (all of carrier `code`) in batches as large as the carrier takes,
    /// within its limits. One outcome per waybill, in order.
    pub async fn track(&self, code: &str, waybills: &[Waybill]) -> Vec<TrackOutcome> {
        let Some((carrier, gate)) = self.by_code.get(code) else {
            let err = TrackError::Unsupported {
                message: format!("no carrier plugin answers for company {code:?}"),
            };
            return waybills.iter().map(|_| Err(err.clone())).collect();
        };
        let max_batch = carrier.capabilities().max_batch.max(1);
        let mut tasks = JoinSet::new();
        for (i, chunk) in waybills.chunks(max_batch).enumerate() {
            let carrier = carrier.clone();
            let gate = gate.clone();
            let chunk = chunk.to_vec();
            tasks.spawn(async move {
                let _permit = gate.enter().await;
                let mut out = carrier.track(&chunk).await;
                if out.len() != chunk.len() {
                    let err = TrackError::BadResponse {
                        message: format!(
                            "carrier returned {} outcomes for {} waybills",
                            out.len(),
                            chunk.len()
                        ),
                    };
                    out = chunk.iter().map(|_| Err(err.clone())).collect();
                }
                // Every carrier's lines get their place here, where no carrier gave one.
                for (w, o) in chunk.iter().zip(out.iter_mut()) {
                    if let Ok(trace) = o {
                        trace.locate(w.from.as_deref(), w.to.as_deref());
                    }
                }
                (i, out)
            });
        }
        let mut parts: Vec<(usize, Vec<TrackOutcome>)> = Vec::new();
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(part) => parts.push(part),
                Err(e) => failed.push(e.to_string()),
            }
        }
        if !failed.is_empty() {
            // A panicking carrier: fail the whole call rather than guess which chunk.
            let err = TrackError::Transient {
                message: format!("carrier task failed: {}", failed.join("; ")),
            };
            return waybills.iter().map(|_| Err(err.clone())).collect();
        }
        parts.sort_by_key(|(i, _)| *i);
        parts.into_iter().flat_map(|(_, out)| out).collect()
    }
}

/// What one scheduling round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Subscriptions claimed.
    pub claimed: u32,
    /// Checks written.
    pub checked: u32,
    /// Traces that changed.
    pub changed: u32,
    /// Pushes queued.
    pub pushes: u32,
    /// Subscriptions ended because signed.
    pub shutdown: u32,
    /// Subscriptions aborted.
    pub aborted: u32,
    /// Subscriptions moved to another company by the autoCheck.
    pub corrected: u32,
    /// Checks that failed at the carrier.
    pub errors: u32,
    /// Results not written because the lease moved on.
    pub lease_lost: u32,
}

impl CheckReport {
    fn add(&mut self, o: &CheckOutcome, changed: bool) {
        self.checked += 1;
        self.changed += u32::from(changed);
        self.pushes += u32::try_from(o.pushes.len()).unwrap_or(u32::MAX);
        match o.status {
            MonitorStatus::Shutdown => self.shutdown += 1,
            MonitorStatus::Abort => self.aborted += 1,
            MonitorStatus::Polling => {}
        }
        self.corrected += u32::from(o.correction.is_some());
        self.errors += u32::from(o.error.is_some());
    }

    /// Adds another round's counts.
    pub fn merge(&mut self, other: &CheckReport) {
        self.claimed += other.claimed;
        self.checked += other.checked;
        self.changed += other.changed;
        self.pushes += other.pushes;
        self.shutdown += other.shutdown;
        self.aborted += other.aborted;
        self.corrected += other.corrected;
        self.errors += other.errors;
        self.lease_lost += other.lease_lost;
    }
}

/// Everything a check needs, shared by the tasks of a round.
pub(crate) struct Checker {
    pub store: Arc<dyn Store>,
    pub carriers: Arc<Carriers>,
    pub guesser: Option<Arc<dyn CompanyGuesser>>,
    pub policy: PolicyConfig,
    pub problems: Thresholds,
    pub lanes: Arc<LaneBook>,
    pub owner: String,
}

impl Checker {
    /// Claims the subscriptions due at `now` (at most `limit`), leased for `lease` from
    /// `lease_now` on the lease clock, and checks them, one task per carrier.
    pub async fn round(
        self: &Arc<Self>,
        now: Timestamp,
        limit: u32,
        lease_now: Timestamp,
        lease: SignedDuration,
    ) -> StoreResult<CheckReport> {
        let lease = Lease::new(&self.owner, lease_now, lease);
        self.lanes.ready().await?;
        let subs = self.store.claim_due(now, limit, &lease).await?;
        let mut report = CheckReport {
            claimed: u32::try_from(subs.len()).unwrap_or(u32::MAX),
            ..CheckReport::default()
        };
        let mut groups: BTreeMap<String, Vec<Subscription>> = BTreeMap::new();
        for s in subs {
            groups.entry(s.company.clone()).or_default().push(s);
        }
        let mut tasks = JoinSet::new();
        for (company, subs) in groups {
            let this = self.clone();
            tasks.spawn(async move { this.check_group(&company, subs, now).await });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(r)) => report.merge(&r),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "writing check results failed");
                    first_error.get_or_insert(e);
                }
                // A panic in a group leaves its leases to expire; they are retried then.
                Err(e) => tracing::error!(error = %e, "check task failed"),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn check_group(
        &self,
        company: &str,
        subs: Vec<Subscription>,
        now: Timestamp,
    ) -> StoreResult<CheckReport> {
        let waybills: Vec<Waybill> = subs.iter().map(Subscription::waybill).collect();
        let outcomes = self.carriers.track(company, &waybills).await;
        let mut decided = Vec::with_capacity(subs.len());
        for (sub, outcome) in subs.iter().zip(outcomes) {
            decided.push(self.decide(sub, outcome, now).await?);
        }
        // One transaction (one durable commit) for the whole group.
        let (results, changed): (Vec<CheckOutcome>, Vec<bool>) = decided.into_iter().unzip();
        let written = self.store.complete_checks(&results).await?;
        let mut report = CheckReport::default();
        for ((o, changed), ok) in results.iter().zip(changed).zip(written) {
            if ok {
                if let Some((carrier, lesson)) = &o.lesson {
                    self.lanes.apply(carrier, lesson);
                }
                report.add(o, changed);
            } else {
                report.lease_lost += 1;
            }
        }
        Ok(report)
    }

    /// Turns a carrier's answer for one subscription into the outcome to write, and says
    /// whether the trace changed.
    pub async fn decide(
        &self,
        sub: &Subscription,
        outcome: TrackOutcome,
        now: Timestamp,
    ) -> StoreResult<(CheckOutcome, bool)> {
        let mut error = None;
        let mut new_trace: Option<(Trace, String)> = None;
        // The carrier says the number (or the query) itself is wrong: asking again cannot
        // help, so monitoring stops now with the carrier's reason instead of retrying it
        // for three days.
        if let Err(TrackError::InvalidInput { message }) = &outcome {
            let message = format!(
                "单号错误: {} refused the number {:?}: {message}",
                sub.company, sub.number
            );
            let trace = self.stored_trace(sub).await?;
            let header = PushHeader::for_subscription(sub, MonitorStatus::Abort, &message);
            return Ok((
                CheckOutcome {
                    subscription_id: sub.id,
                    lease_owner: self.owner.clone(),
                    checked_at: now,
                    status: MonitorStatus::Abort,
                    pushes: change(sub, trace, header, Vec::new(), None)
                        .into_iter()
                        .collect(),
                    message,
                    next_check_at: now,
                    new_trace: None,
                    correction: None,
                    error: outcome.err().map(|e| e.to_string()),
                    problems: None,
                    eta: Some(None),
                    lesson: None,
                },
                false,
            ));
        }
        let mut seen_location: Option<String> = None;
        let mut unchanged: Option<Trace> = None;
        let last = match outcome {
            Ok(mut trace) if !trace.data.is_empty() => {
                trace.com.clone_from(&sub.company);
                trace.nu.clone_from(&sub.number);
                if self.is_news(sub, &trace) {
                    let hash = trace.fingerprint();
                    new_trace = Some((trace, hash));
                } else {
                    // Unchanged, but the fresh trace still says where the parcel is: the
                    // policy's near-destination rule needs it on this path too.
                    seen_location = TraceSummary::of(&trace).newest_location.map(str::to_owned);
                    unchanged = Some(trace);
                }
                LastOutcome::Ok { at: now }
            }
            Ok(_) | Err(TrackError::NotFound { .. }) => LastOutcome::Ok { at: now },
            Err(e) => {
                tracing::debug!(sub = sub.id, company = %sub.company, error = %e, "check failed");
                let retry_after = e.retry_after();
                error = Some(e.to_string());
                LastOutcome::Error {
                    at: now,
                    retry_after,
                    consecutive_failures: u32::try_from(sub.failures + 1).unwrap_or(u32::MAX),
                }
            }
        };
        let changed = new_trace.is_some();
        let summary = match &new_trace {
            Some((trace, _)) => TraceSummary {
                last_change_at: Some(now),
                ..TraceSummary::of(trace)
            },
            None => TraceSummary {
                state: sub.state,
                newest_event_at: sub.last_event_at,
                last_change_at: sub.last_change_at,
                newest_location: seen_location.as_deref(),
            },
        };
        let waybill = sub.waybill();
        let facts = SubscriptionFacts::new(&waybill, sub.created_at);
        let decision = policy::next(&facts, &summary, &last, now, &self.policy);

        // Problem flags, on the trace at hand: the new one, the carrier's unchanged one, none
        // yet; without news, the stored one only when a timed flag is due.
        let stored = match (&new_trace, &unchanged) {
            (None, None)
                if sub.event_count > 0 && sub.problems.due_at.is_some_and(|d| d <= now) =>
            {
                Some(self.stored_trace(sub).await?)
            }
            _ => None,
        };
        let empty = Trace::from_events(&sub.company, &sub.number, Vec::new());
        let at_hand = match (&new_trace, &unchanged, &stored) {
            (Some((t, _)), _, _) | (None, Some(t), _) | (None, None, Some(t)) => Some(t),
            _ if sub.event_count == 0 => Some(&empty),
            _ => None,
        };
        // The trace at hand's milestones, read once for the flags, the estimate and the
        // lesson.
        let to = sub.to.as_deref();
        let evaluated = at_hand.map(|trace| {
            let m = Milestones::of(trace, to);
            let (flags, due_at) = self.lanes.flags(trace, &m, &facts, &self.problems, now);
            let codes: Vec<u16> = flags.iter().map(|f| f.kind.code()).collect();
            (trace, flags, ProblemState { codes, due_at }, m)
        });
        let flags = evaluated
            .as_ref()
            .map(|(_, f, _, _)| f.clone())
            .unwrap_or_default();
        let flags_changed = evaluated
            .as_ref()
            .is_some_and(|(_, _, state, _)| state.codes != sub.problems.codes);
        // The estimate is remade at every change (the trace at hand is the new one when
        // there is one); a delivery new with this trace is a lesson for the lanes.
        let eta = evaluated
            .as_ref()
            .filter(|_| new_trace.is_some() || flags_changed)
            .map(|(_, _, _, m)| self.lanes.estimate(&sub.company, m, now));
        let lesson = match (&new_trace, &evaluated) {
            (Some(_), Some((_, _, _, m))) => m
                .delivered
                .filter(|&delivered| sub.last_event_at.is_none_or(|seen| delivered > seen))
                .and_then(|_| Lesson::of(m))
                .map(|lesson| (sub.company.clone(), lesson)),
            _ => None,
        };

        let mut out = CheckOutcome {
            subscription_id: sub.id,
            lease_owner: self.owner.clone(),
            checked_at: now,
            status: MonitorStatus::Polling,
            message: sub.message.clone(),
            next_check_at: now,
            new_trace: None,
            correction: None,
            error,
            pushes: Vec::new(),
            problems: evaluated.as_ref().map(|(_, _, state, _)| state.clone()),
            eta: eta.clone(),
            lesson,
        };
        let eta = match eta {
            Some(made) => made,
            None => sub.eta.clone(),
        };
        match decision {
            Decision::CheckAt { at, .. } => {
                // A timed flag due before the next check moves the check to it.
                let due = evaluated.as_ref().and_then(|(_, _, s, _)| s.due_at);
                out.next_check_at = due.map_or(at, |d| d.min(at));
                let pushed = match (&new_trace, &evaluated) {
                    (Some((trace, _)), _) => Some(trace),
                    (None, Some((trace, _, _, _))) if flags_changed => Some(*trace),
                    _ => None,
                };
                // A subscription that chose its reminders hears only of those moments.
                let wanted = &sub.options.reminders;
                let reminded = pushed.map(|trace| {
                    let mut r = reminder::reached(trace, to, sub.last_event_at, wanted);
                    let appeared = evaluated.as_ref().is_some_and(|(_, _, state, _)| {
                        state.codes.iter().any(|c| !sub.problems.codes.contains(c))
                    });
                    if appeared && wanted.contains(&Reminder::Problem) {
                        r.push(Reminder::Problem);
                    }
                    r
                });
                let pushed = pushed.filter(|_| {
                    wanted.is_empty() || reminded.as_ref().is_some_and(|r| !r.is_empty())
                });
                if let Some(trace) = pushed {
                    let reasons: Vec<&str> = flags.iter().map(|f| f.reason.as_str()).collect();
                    let header = PushHeader::for_subscription(
                        sub,
                        MonitorStatus::Polling,
                        &reasons.join("; "),
                    );
                    let mut push = change(sub, trace.clone(), header, flags.clone(), eta.clone());
                    if let Some(p) = &mut push {
                        p.change.problems_only = new_trace.is_none();
                        p.change.reminders = reminded.unwrap_or_default();
                    }
                    out.pushes.extend(push);
                }
            }
            Decision::Shutdown => {
                let trace = match &new_trace {
                    Some((t, _)) => t.clone(),
                    None => self.stored_trace(sub).await?,
                };
                out.status = MonitorStatus::Shutdown;
                out.message = String::new();
                let header = PushHeader::for_subscription(sub, MonitorStatus::Shutdown, "");
                // The end of monitoring is always told, with the reminders it reaches.
                let reminded =
                    reminder::reached(&trace, to, sub.last_event_at, &sub.options.reminders);
                let mut push = change(sub, trace, header, flags.clone(), eta.clone());
                if let Some(p) = &mut push {
                    p.change.reminders = reminded;
                }
                out.pushes.extend(push);
            }
            Decision::Abort {
                reason: AbortReason::NoTraceIn3Days,
            } => match self.auto_check(sub).await {
                Some(com_new) => {
                    // kuaidi100 resubscribes on the right company and says so with an
                    // abort push carrying only comNew; the next check finds the trace and
                    // its pushes carry autoCheck=1 with comOld and comNew.
                    let header = PushHeader {
                        status: MonitorStatus::Abort,
                        message: String::new(),
                        auto_check: false,
                        com_old: String::new(),
                        com_new: com_new.clone(),
                    };
                    out.pushes
                        .extend(change(sub, empty.clone(), header, Vec::new(), None));
                    out.correction = Some(CompanyCorrection {
                        com_old: sub.company.clone(),
                        com_new,
                    });
                    out.next_check_at = now;
                }
                None => {
                    let message = AbortReason::NoTraceIn3Days.message();
                    out.status = MonitorStatus::Abort;
                    out.message = message.into();
                    let header = PushHeader::for_subscription(sub, MonitorStatus::Abort, message);
                    out.pushes
                        .extend(change(sub, empty.clone(), header, Vec::new(), None));
                }
            },
            Decision::Abort { reason } => {
                let trace = match &new_trace {
                    Some((t, _)) => t.clone(),
                    None => self.stored_trace(sub).await?,
                };
                out.status = MonitorStatus::Abort;
                out.message = reason.message().into();
                let header =
                    PushHeader::for_subscription(sub, MonitorStatus::Abort, reason.message());
                out.pushes
                    .extend(change(sub, trace, header, flags.clone(), eta.clone()));
            }
        }
        out.new_trace = new_trace;
        Ok((out, changed))
    }

    /// Whether a non-empty answer is news: different from what is stored, and not a stale
    /// or partial answer that would take the subscriber backwards (fewer events, an older
    /// newest event, or a state the regression guard refuses).
    fn is_news(&self, sub: &Subscription, trace: &Trace) -> bool {
        let Some(stored) = &sub.trace_hash else {
            return true;
        };
        if *stored == trace.fingerprint() {
            return false;
        }
        let newest = trace.data.first().map(|e| e.time.at);
        let older = match (newest, sub.last_event_at) {
            (Some(n), Some(s)) => n < s,
            _ => false,
        };
        let fewer = i64::try_from(trace.data.len()).unwrap_or(i64::MAX) < sub.event_count;
        let regresses = sub.state != trace.state && !sub.state.accepts(trace.state);
        if older || fewer || regresses {
            tracing::info!(
                sub = sub.id,
                older,
                fewer,
                regresses,
                "ignoring an answer that would go backwards"
            );
            return false;
        }
        true
    }

    async fn stored_trace(&self, sub: &Subscription) -> StoreResult<Trace> {
        Ok(self
            .store
            .trace(sub.id)
            .await?
            .unwrap_or_else(|| Trace::from_events(&sub.company, &sub.number, vec![])))
    }

    /// The autoCheck: the first other carrier the guesser suggests that has a trace for
    /// the number. Only once per subscription.
    async fn auto_check(&self, sub: &Subscription) -> Option<String> {
        if sub.correction.is_some() {
            return None;
        }
        let guesser = self.guesser.as_ref()?;
        for code in guesser.candidates(&sub.number) {
            if code == sub.company || !self.carriers.knows(&code) {
                continue;
            }
            let mut waybill = sub.waybill();
            waybill.company.clone_from(&code);
            let found = self.carriers.track(&code, &[waybill]).await;
            if let Some(Ok(trace)) = found.first() {
                if !trace.data.is_empty() {
                    tracing::info!(sub = sub.id, com_old = %sub.company, com_new = %code, "autoCheck moved the subscription");
                    return Some(code);
                }
            }
        }
        None
    }
}

/// The push of a change: the subscription's callback, the header, the trace as it is now.
/// None for a subscription without a callback (a native tracking read by polling the
/// API): the change is stored with the trace all the same.
fn change(
    sub: &Subscription,
    trace: Trace,
    header: PushHeader,
    problems: Vec<Flag>,
    eta: Option<Estimate>,
) -> Option<NewPush> {
    (!sub.callback_url.is_empty()).then(|| NewPush {
        url: sub.callback_url.clone(),
        change: Change {
            problems,
            eta: eta.map(Box::new),
            ..Change::new(header, trace)
        },
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use waybill_core::carrier::Capabilities;

    use super::*;

    /// A carrier double that takes `delay` per call and records when calls started and
    /// how many ran at once.
    struct Slow {
        delay: Duration,
        max_batch: usize,
        rate: Option<f64>,
        short_by: usize,
        starts: Mutex<Vec<tokio::time::Instant>>,
        in_flight: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Slow {
        fn new(delay: Duration, max_batch: usize) -> Self {
            Self {
                delay,
                max_batch,
                rate: None,
                short_by: 0,
                starts: Mutex::default(),
                in_flight: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait]
    impl Carrier for Slow {
        fn codes(&self) -> &[&str] {
            &["slow", "slow-alias"]
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                max_batch: self.max_batch,
                needs_phone: false,
                rate_limit_per_sec: self.rate,
            }
        }
        async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
            self.starts
                .lock()
                .expect("lock")
                .push(tokio::time::Instant::now());
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            waybills
                .iter()
                .skip(self.short_by)
                .map(|w| Ok(Trace::from_events(&w.company, &w.number, vec![])))
                .collect()
        }
    }

    fn waybills(n: usize) -> Vec<Waybill> {
        (0..n)
            .map(|i| Waybill::new("slow", format!("S{i}")))
            .collect()
    }

    fn limits(concurrency: usize, rate: Option<f64>) -> CarrierLimits {
        CarrierLimits {
            default: CarrierLimit {
                concurrency,
                rate_per_sec: rate,
            },
            overrides: BTreeMap::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_requests_than_the_carriers_concurrency_run_at_once() {
        let slow = Arc::new(Slow::new(Duration::from_millis(50), 1));
        let carriers = Carriers::new(vec![slow.clone()], &limits(2, None));
        let out = carriers.track("slow", &waybills(6)).await;
        assert_eq!(out.len(), 6);
        assert_eq!(slow.peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_carriers_rate_limit() {
        let mut slow = Slow::new(Duration::ZERO, 1);
        slow.rate = Some(10.0);
        let slow = Arc::new(slow);
        let carriers = Carriers::new(vec![slow.clone()], &limits(8, None));
        carriers.track("slow-alias", &waybills(4)).await;
        let mut starts = slow.starts.lock().expect("lock").clone();
        starts.sort();
        for pair in starts.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(100),
                "{starts:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_short_answer_fails_its_batch_instead_of_misattributing_traces() {
        let mut slow = Slow::new(Duration::ZERO, 3);
        slow.short_by = 1;
        let carriers = Carriers::new(vec![Arc::new(slow)], &limits(2, None));
        let out = carriers.track("slow", &waybills(5)).await;
        assert_eq!(out.len(), 5);
        assert!(out
            .iter()
            .all(|o| matches!(o, Err(TrackError::BadResponse { .. }))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_company_without_a_carrier_goes_to_the_upstream_within_its_limits() {
        let slow = Arc::new(Slow::new(Duration::from_millis(50), 1));
        let carriers = Carriers::new(vec![slow.clone()], &limits(2, None))
            .with_upstream("slow", ["zhongtong".to_owned(), "slow".to_owned()]);
        assert!(carriers.knows("zhongtong") && carriers.is_routed("zhongtong"));
        assert!(
            !carriers.is_routed("slow"),
            "its own carrier is not displaced"
        );
        assert_eq!(carriers.codes(), ["slow", "slow-alias"]);
        assert_eq!(carriers.routed_codes(), ["zhongtong"]);
        let zto: Vec<Waybill> = (0..4)
            .map(|i| Waybill::new("zhongtong", format!("7{i}")))
            .collect();
        let own = waybills(4);
        let (a, b) = tokio::join!(
            carriers.track("zhongtong", &zto),
            carriers.track("slow", &own)
        );
        assert!(a.iter().chain(&b).all(Result::is_ok));
        assert_eq!(
            slow.peak.load(Ordering::SeqCst),
            2,
            "routed and own requests share the upstream's gate"
        );
        // An upstream that is not loaded routes nothing.
        let none = Carriers::new(vec![], &CarrierLimits::default())
            .with_upstream("kuaidi100", ["zhongtong".to_owned()]);
        assert!(!none.knows("zhongtong"));
    }

    #[tokio::test]
    async fn an_unknown_company_gets_an_unsupported_error_per_waybill() {
        let carriers = Carriers::new(vec![], &CarrierLimits::default());
        let out = carriers.track("nobody", &waybills(2)).await;
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0], Err(TrackError::Unsupported { .. })));
        assert!(!carriers.knows("nobody"));
    }
}
