//! Time as an input. Core never reads the system clock: whoever drives it passes a
//! [`Clock`]. The host owns the one real clock; tests and the demo run on
//! [`ManualClock`] or a [`ScaledClock`] so months of polling pass in seconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

/// A source of "now".
pub trait Clock: Send + Sync {
    /// The current instant as this clock sees it.
    fn now(&self) -> Timestamp;

    /// The instant leases are timed by. A lease guards against a worker that died, so it
    /// must run out after a span of the time that worker lives in (real time), whatever
    /// pace this clock keeps for the parcels: a [`ScaledClock`] answers its source's
    /// time here. Other clocks answer [`Clock::now`], so a [`ManualClock`] drives both.
    ///
    /// ```
    /// use jiff::{SignedDuration, Timestamp};
    /// use waybill_core::clock::{Clock, ManualClock, ScaledClock};
    /// use std::sync::Arc;
    /// let real = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
    /// let fast = ScaledClock::new(real.clone(), Timestamp::UNIX_EPOCH, 3600.0);
    /// real.advance(SignedDuration::from_secs(2));
    /// assert_eq!(fast.now(), Timestamp::UNIX_EPOCH + SignedDuration::from_hours(2));
    /// assert_eq!(fast.lease_now(), Timestamp::UNIX_EPOCH + SignedDuration::from_secs(2));
    /// ```
    fn lease_now(&self) -> Timestamp {
        self.now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }

    fn lease_now(&self) -> Timestamp {
        (**self).lease_now()
    }
}

/// A clock that moves only when told to. Shareable across threads.
///
/// ```
/// use jiff::{SignedDuration, Timestamp};
/// use waybill_core::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(Timestamp::UNIX_EPOCH);
/// clock.advance(SignedDuration::from_hours(4));
/// assert_eq!(clock.now(), Timestamp::UNIX_EPOCH + SignedDuration::from_hours(4));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            nanos: AtomicI64::new(nanos_of(start)),
        }
    }

    /// Moves the clock forward (or back, for a negative duration).
    pub fn advance(&self, by: SignedDuration) {
        let delta = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(delta, Ordering::SeqCst);
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.nanos.store(nanos_of(at), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanosecond(i128::from(self.nanos.load(Ordering::SeqCst)))
            .unwrap_or(Timestamp::MAX)
    }
}

/// A clock that runs `speed` times as fast as its source, starting from `start` at the
/// moment it is made. With speed 3600 one second of the source is one hour.
///
/// ```
/// use jiff::{SignedDuration, Timestamp};
/// use waybill_core::clock::{Clock, ManualClock, ScaledClock};
/// use std::sync::Arc;
/// let real = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
/// let fast = ScaledClock::new(real.clone(), Timestamp::UNIX_EPOCH, 3600.0);
/// real.advance(SignedDuration::from_secs(2));
/// assert_eq!(fast.now(), Timestamp::UNIX_EPOCH + SignedDuration::from_hours(2));
/// ```
pub struct ScaledClock<C: Clock> {
    source: C,
    source_start: Timestamp,
    start: Timestamp,
    speed: f64,
}

impl<C: Clock> ScaledClock<C> {
    /// Starts at `start`, now, and runs `speed` times as fast as `source`. A speed that is
    /// not a positive finite number is taken as 1.
    pub fn new(source: C, start: Timestamp, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            source_start: source.now(),
            source,
            start,
            speed,
        }
    }

    /// How many times faster than its source this clock runs.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl<C: Clock> Clock for ScaledClock<C> {
    fn now(&self) -> Timestamp {
        let elapsed = self.source.now().duration_since(self.source_start);
        let scaled = SignedDuration::try_from_secs_f64(elapsed.as_secs_f64() * self.speed)
            .unwrap_or(SignedDuration::MAX);
        self.start.checked_add(scaled).unwrap_or(Timestamp::MAX)
    }

    fn lease_now(&self) -> Timestamp {
        self.source.lease_now()
    }
}

fn nanos_of(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}
