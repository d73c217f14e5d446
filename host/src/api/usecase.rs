//! What every API dialect does, in none of them: admit a tenant, check a number, resolve
//! a company, subscribe, answer a real-time query, recognize a number. Each rule lives
//! here once; a dialect parses its request into these calls and renders their answers and
//! [`UseError`]s in its own codes and words.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use waybill_core::carrier::TrackError;
use waybill_core::model::{Trace, Waybill};

use super::limit::Endpoint;
use super::Api;
use crate::push::callback_allowed;
use crate::store::{
    billing_month, DialectParams, MonitorStatus, NewSubscription, SubscribeOptions,
    SubscribeOutcome, Subscription, SubscriptionFilter, Tenant,
};

/// Longest tracking number accepted (kuaidi100's limit).
pub const MAX_NUMBER_CHARS: usize = 32;

/// Why a use case refused or failed. The message says what was wrong in plain words; a
/// dialect adds its code and prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseError {
    /// No tenant has the key (or id) given.
    #[error("no tenant has this key")]
    UnknownKey,
    /// The tenant's key is disabled or expired.
    #[error("{0}")]
    Inactive(String),
    /// The key is over its rate; nothing was done.
    #[error("{0}")]
    Busy(String),
    /// A field is missing or malformed.
    #[error("{0}")]
    BadInput(String),
    /// No company was given, and guessing it was not asked for.
    #[error("no company was given")]
    NoCompany,
    /// No loaded carrier serves the company.
    #[error("no loaded carrier plugin serves `{company}` (served: {served})")]
    UnsupportedCompany {
        /// As given.
        company: String,
        /// What is served.
        served: String,
    },
    /// The company cannot be told from the number.
    #[error("{0}")]
    Unrecognised(String),
    /// A live subscription of the waybill exists.
    #[error(
        "{company} {number} is still being polled; subscribe again after its shutdown or \
         abort push"
    )]
    Duplicate {
        /// Company.
        company: String,
        /// Number.
        number: String,
    },
    /// The waybill was subscribed as often as the monthly limit allows.
    #[error(
        "{company} {number} was already subscribed {subscribes} times in billing month \
         {month} (UTC+8); the monthly limit of {limit} subscriptions per waybill is \
         reached, subscribe it again next month"
    )]
    MonthlyLimit {
        /// Company.
        company: String,
        /// Number.
        number: String,
        /// Subscriptions this month.
        subscribes: u32,
        /// The limit.
        limit: u32,
        /// The billing month.
        month: String,
    },
    /// The carrier did not answer a real-time query in time.
    #[error("the carrier did not answer within {0:#}")]
    Timeout(SignedDuration),
    /// The carrier answered with an error.
    #[error("{0}")]
    Track(TrackError),
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

impl From<crate::store::StoreError> for UseError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// A subscription request, parsed by its dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The company as given (any alias or case), if given.
    pub company: Option<String>,
    /// Guess the company from the number when none is given.
    pub guess_company: bool,
    /// The waybill; its `company` is filled in by [`Api::subscribe`].
    pub waybill: Waybill,
    /// Where pushes go; empty for none (a native tracking read through the API only).
    pub callback_url: String,
    /// Push signing secret, if any.
    pub salt: Option<String>,
    /// The dialect the pushes are rendered in.
    pub dialect: &'static str,
    /// That dialect's own parameters.
    pub dialect_params: DialectParams,
    /// Detail and international options.
    pub options: SubscribeOptions,
}

/// One candidate company for a number, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognized {
    /// Company code.
    pub carrier: String,
    /// Company name (Chinese, as kuaidi100 lists it).
    pub name: String,
    /// Rank score; higher is likelier.
    pub score: u32,
    /// The number as the guesser read it (upper case, no separators).
    pub normalized: String,
}

/// A tracking number as given: trimmed, not empty, at most 32 characters, no control
/// characters.
pub fn check_number(number: Option<String>, field: &str) -> Result<String, UseError> {
    let number = number.unwrap_or_default();
    if number.is_empty() {
        return Err(UseError::BadInput(format!(
            "`{field}` (the tracking number) is empty"
        )));
    }
    let chars = number.chars().count();
    if chars > MAX_NUMBER_CHARS {
        return Err(UseError::BadInput(format!(
            "`{field}` is {chars} characters long; the limit is {MAX_NUMBER_CHARS}"
        )));
    }
    if let Some(c) = number.chars().find(|c| c.is_control()) {
        return Err(UseError::BadInput(format!(
            "`{field}` contains control character U+{:04X}",
            c as u32
        )));
    }
    Ok(number)
}

/// Refuses a number no carrier could track: tracking numbers are ASCII letters, digits
/// and dashes, so a space, a quote, an emoji or an invisible character (bidi control,
/// zero-width space, byte-order mark) means the number was mangled on its way here, and
/// polling it for days would find nothing. The reason names the character.
pub fn check_trackable(number: &str, field: &str) -> Result<(), UseError> {
    let Some((at, c)) = number
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
    else {
        return Ok(());
    };
    let what = match c {
        ' ' => "a space".to_owned(),
        c if c.is_ascii() => format!("{c:?}"),
        '\u{200E}'
        | '\u{200F}'
        | '\u{061C}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => {
            format!("U+{:04X} (an invisible bidi control)", c as u32)
        }
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => {
            format!("U+{:04X} (an invisible zero-width character)", c as u32)
        }
        '\u{FF01}'..='\u{FF5E}' => format!(
            "U+{:04X} {c:?} (a full-width form of {:?})",
            c as u32,
            char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
        ),
        c if c.is_whitespace() => format!("U+{:04X} (white space)", c as u32),
        c => format!("U+{:04X} {c:?}", c as u32),
    };
    Err(UseError::BadInput(format!(
        "`{field}` contains {what} at character {}: no carrier can track it; a tracking \
         number is ASCII letters, digits and '-'",
        at + 1
    )))
}

impl Api {
    /// Lets `tenant` use `endpoint` now: refused when its key is disabled or expired
    /// (asked before anything else, so such a key reaches no carrier and counts no usage)
    /// or over its rate.
    pub fn admit(&self, tenant: &Tenant, endpoint: Endpoint) -> Result<(), UseError> {
        let now = self.now();
        if !tenant.active_at(now) {
            return Err(UseError::Inactive(match tenant.expires_at {
                _ if tenant.disabled => "this key has been disabled".to_owned(),
                Some(end) => format!("this key expired at {end}"),
                None => "this key is not active".to_owned(),
            }));
        }
        self.inner
            .limits
            .check(endpoint, tenant.id)
            .map_err(|t| UseError::Busy(t.to_string()))
    }

    /// The tenant with this kuaidi100 `customer` id, not yet admitted (its signature is
    /// checked first).
    pub async fn tenant_by_customer(&self, customer: &str) -> Result<Option<Tenant>, UseError> {
        Ok(self.inner.tenants.by_customer(customer).await?)
    }

    /// The tenant with this row id, not yet admitted (its signature is checked first).
    pub async fn tenant_by_id(&self, id: i64) -> Result<Option<Arc<Tenant>>, UseError> {
        Ok(self.inner.tenants.by_id(id).await?)
    }

    /// Forgets the cached copy of tenant `id` (it was changed through this process).
    pub fn forget_tenant(&self, id: i64) {
        self.inner.tenants.forget(id);
    }

    /// The tenant holding `key`, admitted to `endpoint`.
    pub async fn tenant_by_key(
        &self,
        key: &str,
        endpoint: Endpoint,
    ) -> Result<Arc<Tenant>, UseError> {
        let tenant = self
            .inner
            .tenants
            .by_key(key)
            .await?
            .ok_or(UseError::UnknownKey)?;
        self.admit(&tenant, endpoint)?;
        Ok(tenant)
    }

    /// The company to use: the canonical code of `company` when given (any alias the
    /// catalog knows, any case), else, when `guess`, the guesser's best candidate for
    /// `number` that a loaded carrier serves.
    pub fn resolve_company(
        &self,
        company: Option<&str>,
        number: &str,
        guess: bool,
    ) -> Result<String, UseError> {
        match company {
            Some(company) => {
                self.served_company(company)
                    .ok_or_else(|| UseError::UnsupportedCompany {
                        company: company.to_owned(),
                        served: self.served_list(),
                    })
            }
            None if guess => self.guess_served_company(number),
            None => Err(UseError::NoCompany),
        }
    }

    /// The canonical code of `company` if a loaded carrier serves it.
    fn served_company(&self, company: &str) -> Option<String> {
        let lower = company.trim().to_ascii_lowercase();
        let resolved = self
            .inner
            .guesser
            .guesser()
            .catalog()
            .resolve(&lower)
            .map(str::to_owned);
        [resolved, Some(lower)]
            .into_iter()
            .flatten()
            .find(|c| self.inner.engine.knows_company(c))
    }

    /// The guesser's best candidate for `number` that a loaded carrier serves.
    fn guess_served_company(&self, number: &str) -> Result<String, UseError> {
        let candidates = self
            .inner
            .guesser
            .ranked(number)
            .map_err(|e| UseError::Unrecognised(e.to_string()))?;
        if let Some(c) = candidates
            .iter()
            .find(|c| self.inner.engine.knows_company(c.carrier))
        {
            return Ok(c.carrier.to_owned());
        }
        let names: Vec<&str> = candidates.iter().map(|c| c.carrier).take(5).collect();
        Err(UseError::Unrecognised(if names.is_empty() {
            format!("no known carrier format matches number {number:?}")
        } else {
            format!(
                "number {number:?} looks like {} but no loaded carrier plugin serves {}",
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" }
            )
        }))
    }

    fn served_list(&self) -> String {
        let codes = self.inner.engine.companies();
        let routed = self.inner.engine.routed_companies().len();
        match (codes.is_empty(), routed) {
            (true, 0) => "none; no carrier plugin is loaded".into(),
            (false, 0) => codes.join(", "),
            (_, n) => format!(
                "{}, and {n} more companies of the catalog through the upstream aggregator",
                codes.join(", ")
            ),
        }
    }

    /// Subscribes `req.waybill` for `tenant`: the number is checked, the company resolved,
    /// the callback checked, the first check scheduled, the row written by the
    /// group-commit writer. Answers the subscription as stored.
    pub async fn subscribe(
        &self,
        tenant: &Tenant,
        mut req: Subscribe,
    ) -> Result<Subscription, UseError> {
        check_trackable(&req.waybill.number, "number")?;
        req.waybill.company = self.resolve_company(
            req.company.as_deref(),
            &req.waybill.number,
            req.guess_company,
        )?;
        if !req.callback_url.is_empty() {
            callback_allowed(&req.callback_url, self.inner.config.allow_private_callbacks)
                .await
                .map_err(|e| UseError::BadInput(e.to_string()))?;
        }
        let now = self.now();
        let next_check_at = self.inner.engine.first_check_at(&req.waybill, now);
        let Waybill {
            company,
            number,
            phone,
            from,
            to,
        } = req.waybill;
        let sub = NewSubscription {
            tenant_id: tenant.id,
            company: company.clone(),
            number: number.clone(),
            phone,
            from,
            to,
            callback_url: req.callback_url,
            salt: req.salt,
            dialect: req.dialect.into(),
            dialect_params: req.dialect_params,
            options: req.options,
            next_check_at,
            created_at: now,
        };
        match self.inner.batcher.subscribe(sub.clone()).await {
            Ok(SubscribeOutcome::Created { id, .. }) => Ok(Subscription::created(
                id,
                self.inner.store.tracking_id(id, sub.tenant_id),
                sub,
            )),
            Ok(SubscribeOutcome::Duplicate { .. }) => Err(UseError::Duplicate { company, number }),
            Ok(SubscribeOutcome::MonthlyLimit { subscribes, limit }) => {
                Err(UseError::MonthlyLimit {
                    company,
                    number,
                    subscribes,
                    limit,
                    month: billing_month(now),
                })
            }
            Err(e) => Err(UseError::Store(e.to_string())),
        }
    }

    /// A real-time query for `tenant`, counted in its usage: the tenant's stored trace or
    /// the cache when fresh, otherwise the carrier's answer within the query timeout
    /// (then cached).
    pub async fn query(&self, tenant: &Tenant, waybill: &Waybill) -> Result<Trace, UseError> {
        let now = self.now();
        self.store()
            .record_usage(tenant.id, &waybill.company, &waybill.number, now)
            .await?;
        self.find_trace(tenant.id, waybill, now).await
    }

    async fn find_trace(
        &self,
        tenant: i64,
        waybill: &Waybill,
        now: Timestamp,
    ) -> Result<Trace, UseError> {
        let fresh_for = self.inner.config.query_fresh_for;
        let subs = self
            .store()
            .list_subscriptions(&SubscriptionFilter {
                tenant_id: Some(tenant),
                company: Some(waybill.company.clone()),
                number: Some(waybill.number.clone()),
                ..SubscriptionFilter::default()
            })
            .await?;
        if let Some(sub) = subs.last() {
            let fresh = sub
                .last_check_at
                .is_some_and(|at| now.duration_since(at) < fresh_for);
            let ended = sub.status != MonitorStatus::Polling;
            if sub.event_count > 0 && (fresh || ended) {
                if let Ok(Some(trace)) = self.store().trace(sub.id).await {
                    self.metrics().query("stored");
                    return Ok(trace);
                }
            }
        }
        let cache_key = (
            waybill.company.clone(),
            format!(
                "{}\n{}",
                waybill.number,
                waybill.phone.as_deref().unwrap_or("")
            ),
        );
        if let Some(hit) = self.inner.query_cache.get(&cache_key) {
            let (trace, at) = &*hit;
            if now.duration_since(*at) < fresh_for {
                self.metrics().query("cache");
                return Ok(trace.clone());
            }
        }
        // The memory cache is empty after a restart; the stored answer is not.
        match self.store().cached_query(&cache_key.0, &cache_key.1).await {
            Ok(Some((trace, at))) if now.duration_since(at) < fresh_for => {
                self.metrics().query("cache");
                self.remember(cache_key, &trace, at);
                return Ok(trace);
            }
            Ok(_) => {}
            // A broken cache must not stop the query: ask the carrier instead.
            Err(e) => tracing::warn!(error = %e, "cannot read the stored query answer"),
        }
        // The request goes through the engine's gate, the one limit on traffic to each
        // carrier (the upstream aggregator's for a company it answers).
        if !self.inner.engine.knows_company(&waybill.company) {
            return Err(UseError::UnsupportedCompany {
                company: waybill.company.clone(),
                served: self.served_list(),
            });
        }
        let timeout = std::time::Duration::try_from(self.inner.config.query_timeout)
            .unwrap_or(std::time::Duration::from_secs(3));
        let outcome = match tokio::time::timeout(
            timeout,
            self.inner
                .engine
                .track(&waybill.company, std::slice::from_ref(waybill)),
        )
        .await
        {
            Ok(mut outcomes) => outcomes.pop().unwrap_or_else(|| {
                Err(TrackError::BadResponse {
                    message: "the carrier gave no answer for the waybill".into(),
                })
            }),
            Err(_) => return Err(UseError::Timeout(self.inner.config.query_timeout)),
        };
        // `Engine::track` already gave every line its place, as for a scheduled check.
        let trace = outcome.map_err(UseError::Track)?;
        self.metrics().query("carrier");
        if let Err(e) = self
            .store()
            .save_query(&cache_key.0, &cache_key.1, &trace, now)
            .await
        {
            tracing::warn!(error = %e, "cannot store the query answer");
        }
        self.remember(cache_key, &trace, now);
        Ok(trace)
    }

    /// Keeps a query answer fetched at `at` in the memory cache.
    fn remember(&self, key: (String, String), trace: &Trace, at: Timestamp) {
        if self.inner.config.query_cache_entries > 0 {
            self.inner
                .query_cache
                .insert(key, Arc::new((trace.clone(), at)));
        }
    }

    /// The companies `number` may belong to, best first, each once.
    pub fn recognize(&self, number: &str) -> Result<Vec<Recognized>, UseError> {
        let number = check_number(Some(number.trim().to_owned()), "num")?;
        let normalized = waybill_core::guess::canonical(&number)
            .map_err(|e| UseError::BadInput(e.to_string()))?;
        let guesser = &self.inner.guesser;
        let candidates = guesser
            .ranked(&number)
            .map_err(|e| UseError::BadInput(e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        Ok(candidates
            .iter()
            .filter(|c| seen.insert(c.carrier))
            .map(|c| Recognized {
                carrier: c.carrier.to_owned(),
                name: guesser
                    .guesser()
                    .catalog()
                    .get(c.carrier)
                    .map(|e| e.name_zh.clone())
                    .unwrap_or_else(|| c.carrier.to_owned()),
                score: c.score,
                normalized: normalized.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_refused_with_the_reason_named() {
        assert_eq!(check_number(Some("SF1".into()), "n"), Ok("SF1".into()));
        for (raw, says) in [
            ("", "is empty"),
            (&"9".repeat(33), "33 characters"),
            ("SF\u{7}1", "U+0007"),
        ] {
            match check_number(Some(raw.to_owned()), "n") {
                Err(UseError::BadInput(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        for (raw, says) in [
            ("SF 1", "a space"),
            ("SF\u{200B}1", "zero-width"),
            ("ＳF1", "full-width form of 'S'"),
        ] {
            match check_trackable(raw, "n") {
                Err(UseError::BadInput(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        assert!(check_trackable("JD-0012", "n").is_ok());
    }
}
