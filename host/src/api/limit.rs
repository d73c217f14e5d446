//! Per-key request rate limits, so one tenant's burst cannot slow the others down.
//!
//! kuaidi100 documents its own limits per key (seed `001_kuaidi100_push_service.txt` §4.7:
//! subscriptions 10/s, real-time queries 1/s, number recognition 1/s, "raised on request").
//! waybill runs on the operator's own machine, where a bulk `waybill import` is normal, so
//! the default sustained rates keep kuaidi100's ordering (queries reach a carrier, so they
//! are the scarce ones) at levels one machine serves comfortably, with a burst on top.
//! Every rate is a config key; `per_second = 0` switches a limit off.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

/// One endpoint's limit per key: a sustained rate and a burst above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rate {
    /// Requests per second one key may sustain; 0 means no limit.
    pub per_second: u32,
    /// Requests one key may send at once above the sustained rate (at least 1).
    pub burst: u32,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            per_second: 0,
            burst: 1,
        }
    }
}

impl Rate {
    const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

/// The `[api.rate_limit]` table: one [`Rate`] per endpoint family, counted per tenant key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `POST /poll` (kuaidi100: 10/s).
    pub subscribe: Rate,
    /// `POST /poll/query.do` (kuaidi100: 1/s).
    pub query: Rate,
    /// `/autonumber/auto` (kuaidi100: 1/s).
    pub autonumber: Rate,
    /// The native API's reads (`GET /v1/…`).
    pub read: Rate,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            subscribe: Rate::new(1_000, 2_000),
            query: Rate::new(20, 40),
            autonumber: Rate::new(20, 40),
            read: Rate::new(200, 400),
        }
    }
}

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Subscriptions.
    Subscribe,
    /// Real-time queries.
    Query,
    /// Number recognition.
    Autonumber,
    /// Reads of the store through the native API (trackings, usage, secrets): no carrier
    /// is asked, so they get a bucket of their own.
    Read,
}

/// A request over its key's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {per_second} requests per second (burst {burst}) for this key; retry in {retry_ms} ms")]
pub struct Throttled {
    /// The sustained rate that was exceeded.
    pub per_second: u32,
    /// Its burst.
    pub burst: u32,
    /// When the next request of this key would be let through.
    pub retry_ms: u128,
}

/// The live limiters, keyed by tenant id.
pub struct KeyLimits {
    clock: DefaultClock,
    subscribe: Option<(Rate, DefaultKeyedRateLimiter<i64>)>,
    query: Option<(Rate, DefaultKeyedRateLimiter<i64>)>,
    autonumber: Option<(Rate, DefaultKeyedRateLimiter<i64>)>,
    read: Option<(Rate, DefaultKeyedRateLimiter<i64>)>,
}

impl KeyLimits {
    /// Limiters for `config`.
    pub fn new(config: &RateLimitConfig) -> Self {
        let limiter = |rate: Rate| {
            let per_second = NonZeroU32::new(rate.per_second)?;
            let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
            Some((
                rate,
                RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            ))
        };
        Self {
            clock: DefaultClock::default(),
            subscribe: limiter(config.subscribe),
            query: limiter(config.query),
            autonumber: limiter(config.autonumber),
            read: limiter(config.read),
        }
    }

    /// Counts one request of `tenant` against `endpoint`'s limit.
    pub fn check(&self, endpoint: Endpoint, tenant: i64) -> Result<(), Throttled> {
        let slot = match endpoint {
            Endpoint::Subscribe => &self.subscribe,
            Endpoint::Query => &self.query,
            Endpoint::Autonumber => &self.autonumber,
            Endpoint::Read => &self.read,
        };
        let Some((rate, limiter)) = slot else {
            return Ok(());
        };
        limiter.check_key(&tenant).map_err(|not_until| {
            let wait: Duration = not_until.wait_time_from(self.clock.now());
            Throttled {
                per_second: rate.per_second,
                burst: rate.burst,
                retry_ms: wait.as_millis().max(1),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_burst_is_throttled_and_others_are_not() {
        let limits = KeyLimits::new(&RateLimitConfig {
            query: Rate::new(1, 3),
            ..RateLimitConfig::default()
        });
        for _ in 0..3 {
            limits.check(Endpoint::Query, 7).expect("inside the burst");
        }
        let throttled = limits.check(Endpoint::Query, 7).unwrap_err();
        assert_eq!((throttled.per_second, throttled.burst), (1, 3));
        assert!(throttled.retry_ms > 0 && throttled.retry_ms <= 1_000);
        assert!(throttled.to_string().contains("retry in"));
        // Another tenant, and another endpoint of the same tenant, have their own budget.
        limits.check(Endpoint::Query, 8).expect("another key");
        limits
            .check(Endpoint::Subscribe, 7)
            .expect("another endpoint");
    }

    #[test]
    fn zero_per_second_means_no_limit() {
        let off = Rate::new(0, 1);
        let limits = KeyLimits::new(&RateLimitConfig {
            subscribe: off,
            query: off,
            autonumber: off,
            read: off,
        });
        for _ in 0..10_000 {
            limits.check(Endpoint::Autonumber, 1).expect("no limit");
        }
    }
}
