//! A local push receiver, as an ERP's kuaidi100 callback endpoint would be: it checks each
//! push's signature, keeps every accepted push per waybill in arrival order, and answers
//! kuaidi100's acknowledgement. It can be made flaky (a share of requests fail with 500 or
//! hang past the sender's timeout) to show that retries lose nothing.
//!
//! `waybill demo` uses it for its summary; the end-to-end tests use it to check that
//! pushes arrive exactly once (or at least once), in order, with valid signatures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::watch;

use crate::push::PUSH_ID_HEADER;

/// kuaidi100's acknowledgement of a push.
pub const ACK: &str = r#"{"result":true,"returnCode":"200","message":"成功"}"#;

/// How unreliable the receiver is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flakiness {
    /// Share of requests answered HTTP 500 without being accepted.
    pub fail_rate: f64,
    /// Share of requests held for `hang` and then answered 500 (the sender times out).
    pub hang_rate: f64,
    /// How long a hanging request is held.
    pub hang: Duration,
    /// Seed of the sequence that picks which requests fail.
    pub seed: u64,
}

/// One accepted push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The push id (`<subscription>-<seq>`).
    pub push_id: String,
    /// Its place in the subscription's pushes (1, 2, …); 0 when the id has none.
    pub seq: i64,
    /// `status`: polling, shutdown, abort, updateall.
    pub status: String,
    /// `lastResult.state`, kuaidi100's state code.
    pub state: String,
    /// `lastResult.nu`.
    pub number: String,
    /// Events in `lastResult.data`.
    pub events: usize,
    /// When it was accepted.
    pub at: Instant,
}

/// What the receiver has seen.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Accepted pushes per subscription (the push id's part before `-<seq>`), in arrival
    /// order.
    pub by_subscription: BTreeMap<String, Vec<Received>>,
    /// Requests received.
    pub requests: u64,
    /// Pushes accepted in all, repeats included (each also kept in `by_subscription`
    /// unless the receiver only counts).
    pub accepted: u64,
    /// Requests failed on purpose (flakiness).
    pub failed: u64,
    /// Requests refused: bad form, bad JSON, or a signature that does not verify.
    pub refused: Vec<String>,
    /// Real instant of the first accepted push, and of the latest.
    pub first_at: Option<Instant>,
    /// See `first_at`.
    pub last_at: Option<Instant>,
}

impl Inbox {
    /// Problems with the order of arrival: for each subscription the accepted pushes must
    /// be 1, 2, 3, … with a push repeated only right after itself (at-least-once), and,
    /// when `exactly_once`, never repeated. An empty list means all is well.
    pub fn order_problems(&self, exactly_once: bool) -> Vec<String> {
        let mut problems = Vec::new();
        for (sub, pushes) in &self.by_subscription {
            let mut last = 0;
            for p in pushes {
                let ok = p.seq == last + 1 || (!exactly_once && p.seq == last && last > 0);
                if !ok {
                    problems.push(format!(
                        "subscription {sub}: push {} arrived after seq {last}",
                        p.push_id
                    ));
                    break;
                }
                last = p.seq;
            }
        }
        problems
    }
}

struct Shared {
    salt: String,
    flaky: Flakiness,
    /// Keep every accepted push in the inbox (false: count them only).
    keep: bool,
    counter: AtomicU64,
    inbox: Mutex<Inbox>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running receiver.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl Receiver {
    /// Listens on 127.0.0.1 (a free port), verifying signatures with `salt`.
    pub async fn start(salt: &str, flaky: Flakiness) -> std::io::Result<Self> {
        Self::start_with(salt, flaky, true).await
    }

    /// Like [`Receiver::start`], but only counts accepted pushes (`Inbox::accepted`)
    /// instead of keeping each one: for runs of millions of pushes whose memory is being
    /// measured.
    pub async fn start_counting(salt: &str, flaky: Flakiness) -> std::io::Result<Self> {
        Self::start_with(salt, flaky, false).await
    }

    async fn start_with(salt: &str, flaky: Flakiness, keep: bool) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            salt: salt.into(),
            flaky,
            keep,
            counter: AtomicU64::new(0),
            inbox: Mutex::new(Inbox::default()),
        });
        let app = Router::new()
            .route("/push", post(receive))
            .with_state(shared.clone());
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "push receiver stopped");
            }
        });
        Ok(Self { addr, shared, stop })
    }

    /// The callback URL to subscribe with.
    pub fn url(&self) -> String {
        format!("http://{}/push", self.addr)
    }

    /// Reads what was received.
    pub fn inbox<T>(&self, f: impl FnOnce(&Inbox) -> T) -> T {
        f(&lock(&self.shared.inbox))
    }

    /// Stops serving.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A number in [0, 1) fixed by `seed` and `n` (SplitMix64 finaliser).
fn unit(seed: u64, n: u64) -> f64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = shared.counter.fetch_add(1, Ordering::Relaxed);
    lock(&shared.inbox).requests += 1;
    let roll = unit(shared.flaky.seed, n);
    let f = &shared.flaky;
    if roll < f.fail_rate + f.hang_rate {
        lock(&shared.inbox).failed += 1;
        if roll >= f.fail_rate {
            tokio::time::sleep(f.hang).await;
        }
        return (StatusCode::INTERNAL_SERVER_ERROR, "flaky on purpose").into_response();
    }
    match accept(&shared, &headers, &body) {
        Ok(received) => {
            let sub = received
                .push_id
                .rsplit_once('-')
                .map_or(received.push_id.as_str(), |(s, _)| s)
                .to_owned();
            let now = Instant::now();
            let mut inbox = lock(&shared.inbox);
            inbox.first_at.get_or_insert(now);
            inbox.last_at = Some(now);
            inbox.accepted += 1;
            if shared.keep {
                inbox.by_subscription.entry(sub).or_default().push(received);
            }
            ([("content-type", "application/json")], ACK).into_response()
        }
        Err(reason) => {
            lock(&shared.inbox).refused.push(reason.clone());
            // A refusal the sender should not retry would be a 200 without `result`;
            // a bad push is a bug here, so make it loud and retried.
            (StatusCode::BAD_REQUEST, reason).into_response()
        }
    }
}

fn accept(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Received, String> {
    let push_id = headers
        .get(PUSH_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut param = None;
    let mut sign = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "param" => param = Some(v.into_owned()),
            "sign" => sign = Some(v.into_owned()),
            _ => {}
        }
    }
    let param = param.ok_or_else(|| format!("push {push_id}: no param field"))?;
    let sign = sign.ok_or_else(|| format!("push {push_id}: no sign field"))?;
    waybill_core::sign::verify_kuaidi100_push(&param, &shared.salt, &sign)
        .map_err(|e| format!("push {push_id}: bad sign: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&param).map_err(|e| format!("push {push_id}: param: {e}"))?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let seq = push_id
        .rsplit_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .unwrap_or(0);
    Ok(Received {
        seq,
        status: text(&v["status"]),
        state: text(&v["lastResult"]["state"]),
        number: text(&v["lastResult"]["nu"]),
        events: v["lastResult"]["data"].as_array().map_or(0, Vec::len),
        push_id,
        at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(seq: i64) -> Received {
        Received {
            push_id: format!("1-{seq}"),
            seq,
            status: "polling".into(),
            state: "0".into(),
            number: "N".into(),
            events: 1,
            at: Instant::now(),
        }
    }

    fn inbox(seqs: &[i64]) -> Inbox {
        let mut i = Inbox::default();
        i.by_subscription
            .insert("a1".into(), seqs.iter().map(|s| received(*s)).collect());
        i
    }

    #[test]
    fn pushes_in_sequence_have_no_order_problems() {
        assert!(inbox(&[1, 2, 3]).order_problems(true).is_empty());
    }

    #[test]
    fn a_repeat_is_allowed_only_at_least_once() {
        assert!(inbox(&[1, 2, 2, 3]).order_problems(false).is_empty());
        assert_eq!(inbox(&[1, 2, 2, 3]).order_problems(true).len(), 1);
    }

    #[test]
    fn a_gap_or_a_step_back_is_a_problem() {
        assert_eq!(inbox(&[1, 3]).order_problems(false).len(), 1);
        assert_eq!(inbox(&[1, 2, 1]).order_problems(false).len(), 1);
        assert_eq!(inbox(&[2]).order_problems(false).len(), 1);
    }

    #[test]
    fn the_failure_sequence_hits_about_the_asked_share() {
        let hits = (0..10_000).filter(|n| unit(7, *n) < 0.5).count();
        assert!((4_700..5_300).contains(&hits), "{hits}");
    }
}
