//! [`HttpNotifier`]: sends a push over HTTP and hands back what the receiver answered
//! (status, `Retry-After`, the first 64 KiB of the body) within the timeout (20 s, as
//! kuaidi100). It knows no dialect: whether the answer acknowledges the push is the
//! subscription's dialect's rule ([`crate::dialect::Dialect::judge`]).
//!
//! Unless private callbacks are allowed, the notifier connects only to public addresses,
//! checked the same way as at subscribe time ([`callback`](super::callback)): a host name
//! is resolved by [`PublicResolver`], which drops loopback, private and link-local answers,
//! so the connection goes to an address that was checked, with no second lookup an
//! attacker's DNS could answer differently (DNS rebinding). An IP-literal host, which
//! never reaches a resolver, is checked before the request. A push refused this way is
//! rejected for good (dead-lettered, with the address in its error). The client then
//! ignores `HTTP(S)_PROXY`, since through a proxy the daemon could not see where a push
//! goes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use waybill_core::carrier::{Delivery, Notifier, Push, Reply};

use super::callback::{is_public, CallbackError};

/// Header carrying the stable push id, so a receiver can drop duplicates.
pub const PUSH_ID_HEADER: &str = "X-Waybill-Push-Id";

/// kuaidi100's push timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The most of a reply body read; an acknowledgement is a few dozen bytes.
const MAX_REPLY: usize = 64 * 1024;

/// Delivers pushes with one shared HTTP client (connection pooling across pushes).
#[derive(Clone)]
pub struct HttpNotifier {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpNotifier {
    /// A notifier whose requests give up after `timeout`. Unless `allow_private`, it
    /// connects only to public addresses (see the module docs).
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect could lead to an address the subscribe-time check refused.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("waybill/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder
                .dns_resolver(std::sync::Arc::new(PublicResolver))
                .no_proxy();
        }
        Ok(Self {
            client: builder.build()?,
            allow_private,
        })
    }
}

/// A DNS resolver (tokio's, i.e. the system's) that keeps only public addresses and fails
/// the lookup with [`CallbackError::Private`] when none is left.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (public, private): (Vec<SocketAddr>, Vec<SocketAddr>) =
                all.into_iter().partition(|a| is_public(a.ip()));
            match (public.is_empty(), private.first()) {
                (true, Some(refused)) => Err(Box::new(CallbackError::Private {
                    host,
                    addr: refused.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}

/// The refusal [`PublicResolver`] put in a failed request's error chain, if any.
fn resolver_refusal(err: &reqwest::Error) -> Option<CallbackError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<CallbackError>() {
            return Some(refused.clone());
        }
        source = e.source();
    }
    None
}

/// The refusal of a URL whose host is a non-public IP literal (which no resolver sees).
fn literal_refusal(url: &str) -> Option<CallbackError> {
    let url = url::Url::parse(url).ok()?;
    let addr: IpAddr = match url.host()? {
        url::Host::Ipv4(ip) => ip.into(),
        url::Host::Ipv6(ip) => ip.into(),
        url::Host::Domain(_) => return None,
    };
    (!is_public(addr)).then(|| CallbackError::Private {
        host: addr.to_string(),
        addr,
    })
}

#[async_trait]
impl Notifier for HttpNotifier {
    async fn deliver(&self, push: &Push) -> Delivery {
        if !self.allow_private {
            if let Some(refused) = literal_refusal(&push.url) {
                return Delivery::Refused {
                    reason: format!("push refused: {refused}"),
                };
            }
        }
        let mut req = self
            .client
            .post(&push.url)
            .header(reqwest::header::CONTENT_TYPE, &push.content_type)
            .header(PUSH_ID_HEADER, &push.id)
            .body(push.body.clone());
        for (name, value) in &push.headers {
            req = req.header(name, value);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Delivery::Refused {
                    reason: format!("cannot build request to {}: {e}", push.url),
                }
            }
            Err(e) if e.is_timeout() => {
                return Delivery::Failed {
                    reason: "timed out".into(),
                }
            }
            Err(e) => {
                if let Some(refused) = resolver_refusal(&e) {
                    return Delivery::Refused {
                        reason: format!("push refused: {refused}"),
                    };
                }
                return Delivery::Failed {
                    reason: format!("request failed: {e}"),
                };
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_delay);
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => {
                return Delivery::Failed {
                    reason: "timed out reading the reply".into(),
                }
            }
            Err(e) => {
                return Delivery::Failed {
                    reason: format!("reading the reply failed: {e}"),
                }
            }
        };
        Delivery::Answered(Reply {
            status,
            retry_after,
            body,
        })
    }
}

/// A `Retry-After` value as a delay: delay-seconds, or an HTTP date (RFC 9110 §10.2.3)
/// counted from now; a date in the past is no delay.
fn retry_after_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_REPLY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_REPLY {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::extract::State as AxState;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use axum::Router;

    use super::*;

    /// What a test receiver saw: (push id header, form body).
    pub(crate) type Seen = Arc<Mutex<Vec<(String, String)>>>;

    /// Starts a receiver on 127.0.0.1:0 that answers `reply` after `delay`.
    pub(crate) async fn receiver(
        reply: &'static str,
        status: u16,
        delay: Duration,
    ) -> (SocketAddr, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/cb",
                post(
                    move |AxState(seen): AxState<Seen>, headers: HeaderMap, body: String| async move {
                        let id = headers
                            .get(PUSH_ID_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        seen.lock().expect("lock").push((id, body));
                        tokio::time::sleep(delay).await;
                        (
                            axum::http::StatusCode::from_u16(status).expect("status"),
                            reply,
                        )
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, seen)
    }

    pub(crate) const ACK: &str = r#"{"result":true,"returnCode":"200","message":"成功"}"#;

    fn push(addr: SocketAddr) -> Push {
        Push {
            id: "7-1".into(),
            url: format!("http://{addr}/cb"),
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"param=%7B%7D".to_vec(),
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn a_healthy_receiver_acknowledges_and_sees_the_push_id() {
        let (addr, seen) = receiver(ACK, 200, Duration::ZERO).await;
        let n = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        assert_eq!(
            n.deliver(&push(addr)).await,
            Delivery::Answered(Reply::ok(ACK))
        );
        let seen = seen.lock().expect("lock");
        assert_eq!(seen[0], ("7-1".to_string(), "param=%7B%7D".to_string()));
    }

    #[tokio::test]
    async fn a_failing_status_comes_back_with_its_body() {
        let (addr, _) = receiver(ACK, 503, Duration::ZERO).await;
        let n = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        match n.deliver(&push(addr)).await {
            Delivery::Answered(r) => assert_eq!((r.status, r.body), (503, ACK.into())),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after_delay(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after_delay("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
        let d = retry_after_delay(&later).expect("a date");
        assert!(
            d > Duration::from_secs(3500) && d <= Duration::from_secs(3600),
            "{d:?}"
        );
        assert_eq!(retry_after_delay("soon"), None);
    }

    #[tokio::test]
    async fn a_slow_receiver_times_out_and_is_retried() {
        let (addr, _) = receiver(ACK, 200, Duration::from_secs(5)).await;
        let n = HttpNotifier::new(Duration::from_millis(200), true).expect("client");
        match n.deliver(&push(addr)).await {
            Delivery::Failed { reason } => assert!(reason.contains("timed out"), "{reason}"),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_retried() {
        // Bind then drop, so the port is (almost certainly) closed.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let n = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        assert!(matches!(
            n.deliver(&push(addr)).await,
            Delivery::Failed { .. }
        ));
    }

    #[tokio::test]
    async fn a_loopback_receiver_is_refused_by_default_and_reached_when_allowed() {
        let (addr, seen) = receiver(ACK, 200, Duration::ZERO).await;
        let strict = HttpNotifier::new(DEFAULT_TIMEOUT, false).expect("client");
        match strict.deliver(&push(addr)).await {
            Delivery::Refused { reason } => {
                assert!(reason.contains("127.0.0.1"), "{reason}");
                assert!(reason.contains("allow-private-callbacks"), "{reason}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
        let allowed = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        assert_eq!(
            allowed.deliver(&push(addr)).await,
            Delivery::Answered(Reply::ok(ACK))
        );
        assert_eq!(seen.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn a_host_name_resolving_to_loopback_is_refused_at_connect_time() {
        let (addr, seen) = receiver(ACK, 200, Duration::ZERO).await;
        let mut p = push(addr);
        p.url = format!("http://localhost:{}/cb", addr.port());
        let strict = HttpNotifier::new(DEFAULT_TIMEOUT, false).expect("client");
        match strict.deliver(&p).await {
            Delivery::Refused { reason } => {
                assert!(reason.contains("\"localhost\""), "{reason}");
                assert!(
                    reason.contains("127.0.0.1") || reason.contains("::1"),
                    "{reason}"
                );
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
        let allowed = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        assert_eq!(
            allowed.deliver(&p).await,
            Delivery::Answered(Reply::ok(ACK))
        );
    }

    #[tokio::test]
    async fn the_resolver_keeps_public_answers_and_names_a_refused_one() {
        let r = PublicResolver;
        let err = match r.resolve("localhost".parse().expect("name")).await {
            Ok(addrs) => panic!("expected a refusal, got {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let refused = err.downcast_ref::<CallbackError>().expect("CallbackError");
        assert!(matches!(refused, CallbackError::Private { host, addr }
            if host == "localhost" && addr.is_loopback()));
        // An IP-literal name goes through getaddrinfo unchanged: a public one is kept.
        let kept: Vec<SocketAddr> = r
            .resolve("93.184.216.34".parse().expect("name"))
            .await
            .expect("public")
            .collect();
        assert_eq!(kept, vec!["93.184.216.34:0".parse().expect("addr")]);
    }

    #[test]
    fn ip_literal_hosts_are_checked_before_any_request() {
        for url in [
            "http://10.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://169.254.169.254/latest",
            "http://2130706433/cb",
        ] {
            assert!(literal_refusal(url).is_some(), "{url}");
        }
        for url in ["http://93.184.216.34/cb", "http://example.com/cb", "::"] {
            assert!(literal_refusal(url).is_none(), "{url}");
        }
    }
}
