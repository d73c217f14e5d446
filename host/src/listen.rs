//! The HTTP listener: accepts connections under a cap and closes the ones that hold a
//! socket without doing anything.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection cap, so
//! idle sockets accumulate until the process runs out of file descriptors and the API
//! stops answering without a log line. Here each connection needs a permit from a
//! semaphore (a connection over the cap is closed at once, and the refusal is logged),
//! a request whose headers are not complete within `header_read_timeout` ends its
//! connection (hyper's own timer, which also runs while a kept-alive connection waits for
//! its next request), and a keep-alive connection with no request in flight for
//! `idle_timeout` is shut down, so an idle connection lasts the shorter of the two.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long a refusal warning stays the only one: under a flood the log gets one line
/// per interval with the count, not one per connection.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Connection limits of the listener (`[server]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time from the first byte awaited to the end of a request's headers.
    pub header_read_timeout: Duration,
    /// Longest time a connection stays open with no request in flight (bounded by
    /// `header_read_timeout` too, see the module documentation).
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` completes, then stops accepting, lets
/// in-flight requests finish and closes idle connections; returns once every connection
/// has ended.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refusals = Refusals::default();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // EMFILE and friends: retrying at once would spin; the cap should keep
                // us below the descriptor limit, so this says the limit is too low.
                tracing::error!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refusals.note(limits.max_connections);
            drop(tcp);
            continue;
        };
        // Without TCP_NODELAY a client that writes headers and body separately waits out
        // delayed ACKs (~40 ms per request on Linux).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            connection(tcp, router, limits, stop_rx).await;
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends, so all permits back means drained.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// Serves one connection until the client closes it, a timeout ends it or the server
/// stops.
async fn connection(
    tcp: tokio::net::TcpStream,
    router: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let tower = TowerToHyperService::new(router);
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |req: hyper::Request<Incoming>| {
            let busy = activity.begin();
            let answer = hyper::service::Service::call(&tower, req);
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(limits.idle_timeout), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `start` at which the connection last became idle.
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Completes once the connection has had no request in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let idle_since = self.idle_since.load(Ordering::SeqCst);
            let deadline = idle_since.saturating_add(limit_ms);
            let now = self.now();
            if self.in_flight.load(Ordering::SeqCst) == 0 && now >= deadline {
                return;
            }
            // Busy, or idle for less than the limit: look again when it could expire.
            let wait = deadline.saturating_sub(now).max(1).min(limit_ms.max(1));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// Marks a request in flight; dropping it makes the connection idle from now.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections refused at the cap since the last warning.
#[derive(Default)]
struct Refusals {
    since_warning: u64,
    warned_at: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, cap: usize) {
        self.since_warning += 1;
        if self.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                max_connections = cap,
                refused = self.since_warning,
                "connection limit reached; closing new connections (raise [server] max_connections \
                 if this load is legitimate)"
            );
            self.since_warning = 0;
            self.warned_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 64,
        }
    }

    /// Starts the listener with a one-route router; dropping the sender stops it.
    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    /// Sends one request and reads its whole (small) response.
    async fn round_trip(tcp: &mut TcpStream) -> String {
        tcp.write_all(REQUEST).await.unwrap();
        let mut buf = vec![0; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// How long until the server closes `tcp` (reads end or fail), at most `within`.
    async fn closed_after(tcp: &mut TcpStream, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut buf = [0; 1024];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
                Ok(Ok(_)) => continue,
            }
        }
    }

    #[tokio::test]
    async fn half_a_request_is_cut_off_at_the_header_timeout() {
        let timeout = Duration::from_millis(300);
        let (addr, _stop) = start(Limits {
            header_read_timeout: timeout,
            ..limits()
        })
        .await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        let closed = closed_after(&mut tcp, Duration::from_secs(5))
            .await
            .expect("the server closes a connection whose headers never end");
        assert!(closed >= timeout / 2, "closed too early: {closed:?}");
        // A client that completes its request in time is served as before.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        assert!(round_trip(&mut tcp).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let idle = Duration::from_millis(400);
        let (addr, _stop) = start(Limits {
            idle_timeout: idle,
            ..limits()
        })
        .await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        assert!(round_trip(&mut tcp).await.starts_with("HTTP/1.1 200"));
        // Kept alive while used: a second request on the same socket is answered.
        tokio::time::sleep(idle / 4).await;
        assert!(round_trip(&mut tcp).await.starts_with("HTTP/1.1 200"));
        let closed = closed_after(&mut tcp, Duration::from_secs(5))
            .await
            .expect("the server closes an idle keep-alive connection");
        assert!(closed >= idle / 2, "closed too early: {closed:?}");
    }

    #[tokio::test]
    async fn a_header_timeout_shorter_than_the_idle_one_also_ends_idle_connections() {
        let timeout = Duration::from_millis(300);
        let (addr, _stop) = start(Limits {
            header_read_timeout: timeout,
            ..limits()
        })
        .await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        assert!(round_trip(&mut tcp).await.starts_with("HTTP/1.1 200"));
        let closed = closed_after(&mut tcp, Duration::from_secs(5))
            .await
            .expect("the header timer runs between requests (documented in config)");
        assert!(closed >= timeout / 2, "closed too early: {closed:?}");
    }

    /// Collects formatted log lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connections_over_the_cap_are_closed_and_logged() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let lines = lines.clone();
                move || lines.clone()
            })
            .with_ansi(false)
            .finish();
        // The runtime is single-threaded, so the listener's tasks log through this.
        let _log = tracing::subscriber::set_default(subscriber);
        let (addr, _stop) = start(Limits {
            max_connections: 2,
            ..limits()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            assert!(round_trip(&mut tcp).await.starts_with("HTTP/1.1 200"));
            held.push(tcp);
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let _ = extra.write_all(REQUEST).await;
        assert!(
            closed_after(&mut extra, Duration::from_secs(5))
                .await
                .is_some(),
            "the connection over the cap is closed"
        );
        let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("connection limit reached"), "log: {log}");
        assert!(log.contains("max_connections=2"), "log: {log}");
        // Once a held connection ends, a new one gets its slot.
        drop(held.pop());
        let mut tcp = None;
        for _ in 0..50 {
            let mut t = TcpStream::connect(addr).await.unwrap();
            t.write_all(REQUEST).await.unwrap();
            let mut buf = vec![0; 1024];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(500), t.read(&mut buf)).await
            {
                if n > 0 {
                    tcp = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(tcp.expect("a slot frees up").starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn stopping_waits_for_a_request_in_flight_and_closes_idle_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }),
            );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits(), async move {
            let _ = rx.await;
        }));
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert!(round_trip(&mut idle).await.starts_with("HTTP/1.1 200"));
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(()).unwrap();
        let mut buf = vec![0; 1024];
        let n = slow.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("slow"));
        assert!(closed_after(&mut idle, Duration::from_secs(5))
            .await
            .is_some());
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once drained")
            .unwrap();
    }
}
